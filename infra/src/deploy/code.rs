//! The four Lambda zips: built for arm64 with cargo-lambda (or taken prebuilt from a
//! directory), then named by content so an unchanged binary is never re-uploaded and a
//! changed one always gets a new key (what makes CloudFormation update the code).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::DeployError;

/// (template parameter, cargo binary) of every Lambda, in the template's order.
pub const FUNCTIONS: [(&str, &str); 4] = [
    ("AmiUpdateCodeKey", "ami-update"),
    ("ReconcileCodeKey", "reconcile"),
    ("StatusOriginCodeKey", "status-origin"),
    ("PresetInitCodeKey", "preset-init"),
];

/// Where the zips come from.
#[derive(Debug, Clone)]
pub enum CodeSource {
    /// `cargo lambda build --release --arm64` in this workspace.
    Build { workspace: PathBuf },
    /// `<dir>/<function>.zip` or `<dir>/<function>/bootstrap.zip`, already built.
    Prebuilt(PathBuf),
}

/// One zip, ready to upload.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub parameter: &'static str,
    pub function: &'static str,
    pub key: String,
    pub body: Vec<u8>,
}

/// `kiln/<sha256>/<file>`: the content decides the key.
pub fn content_key(body: &[u8], file: &str) -> String {
    format!("kiln/{}/{file}", hex::encode(Sha256::digest(body)))
}

/// Builds (when asked) and reads the four zips.
pub fn collect(
    source: &CodeSource,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Artifact>, DeployError> {
    let dir = match source {
        CodeSource::Build { workspace } => {
            progress("building the Lambdas for arm64 (cargo lambda build --release --arm64)");
            build(workspace)?;
            workspace.join("target/lambda")
        }
        CodeSource::Prebuilt(dir) => dir.clone(),
    };
    FUNCTIONS
        .iter()
        .map(|&(parameter, function)| {
            let path = zip_path(&dir, function)?;
            let body = std::fs::read(&path).map_err(|source| DeployError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(Artifact {
                parameter,
                function,
                key: content_key(&body, &format!("{function}.zip")),
                body,
            })
        })
        .collect()
}

fn zip_path(dir: &Path, function: &str) -> Result<PathBuf, DeployError> {
    let candidates = [
        dir.join(format!("{function}.zip")),
        dir.join(function).join("bootstrap.zip"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DeployError::MissingZip {
            function: function.to_owned(),
            dir: dir.to_path_buf(),
        })
}

fn build(workspace: &Path) -> Result<(), DeployError> {
    let status = Command::new("cargo")
        .args([
            "lambda",
            "build",
            "--release",
            "--arm64",
            "-p",
            "kiln-lambdas",
            "--output-format",
            "zip",
        ])
        .current_dir(workspace)
        .status()
        .map_err(|source| DeployError::Spawn {
            program: "cargo lambda".into(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(DeployError::Tool {
            tool: "cargo lambda build".into(),
            detail: format!(
                "{status} (install it with `pip install cargo-lambda`, or pass --lambda-zips DIR)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_content() {
        let a = content_key(b"one", "reconcile.zip");
        assert!(a.starts_with("kiln/") && a.ends_with("/reconcile.zip"));
        assert_eq!(a.len(), "kiln/".len() + 64 + "/reconcile.zip".len());
        assert_eq!(a, content_key(b"one", "reconcile.zip"));
        assert_ne!(a, content_key(b"two", "reconcile.zip"));
    }

    #[test]
    fn prebuilt_zips_are_found_in_either_layout() {
        let dir = tempfile::tempdir().unwrap();
        for (i, (_, f)) in FUNCTIONS.iter().enumerate() {
            if i % 2 == 0 {
                std::fs::write(dir.path().join(format!("{f}.zip")), f).unwrap();
            } else {
                std::fs::create_dir(dir.path().join(f)).unwrap();
                std::fs::write(dir.path().join(f).join("bootstrap.zip"), f).unwrap();
            }
        }
        let got = collect(&CodeSource::Prebuilt(dir.path().into()), &mut |_| {}).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].body, b"reconcile");
        std::fs::remove_file(dir.path().join("ami-update.zip")).unwrap();
        let err = collect(&CodeSource::Prebuilt(dir.path().into()), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("ami-update"), "{err}");
    }
}
