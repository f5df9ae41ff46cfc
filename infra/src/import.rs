//! `kiln import FILE…`: rewrites template-format files (the seed's `base_ami` shape) as
//! kiln presets. Each file is converted only when it validates, and the result must
//! validate to the same presets before anything is written.

use std::path::{Path, PathBuf};

use kiln_shared::Preset;
use kiln_shared::preset::{self, PresetErrors, PresetSource, template_format};

/// Why a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(PresetErrors),
    #[error("{0}: already a kiln preset (no base_ami): nothing to import")]
    AlreadyKiln(String),
    #[error("{file}: the converted preset does not validate to the same presets: {reason}")]
    NotFaithful { file: String, reason: String },
}

/// One converted file: where it goes and its text.
#[derive(Debug, Clone)]
pub struct Imported {
    pub from: PathBuf,
    pub to: PathBuf,
    pub text: String,
    /// Expanded preset names, for the summary.
    pub presets: Vec<String>,
}

/// Converts one template file. `out_dir`: where the preset goes (`<stem>.yaml`); by
/// default it replaces the file (same stem, so the same preset names).
pub fn convert(path: &Path, out_dir: Option<&Path>) -> Result<Imported, ImportError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let source = PresetSource {
        file: file.clone(),
        text: text.clone(),
    };
    let original = preset::parse_one(&source).map_err(|e| ImportError::Invalid(PresetErrors(e)))?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(text.strip_prefix('\u{feff}').unwrap_or(&text)).map_err(|e| {
            ImportError::NotFaithful {
                file: file.clone(),
                reason: e.to_string(),
            }
        })?;
    let Some(map) = value
        .as_mapping()
        .filter(|m| template_format::is_template(m))
    else {
        return Err(ImportError::AlreadyKiln(file));
    };
    let converted =
        template_format::to_kiln(&file, map).map_err(|problems| ImportError::NotFaithful {
            file: file.clone(),
            reason: problems
                .into_iter()
                .map(|(f, r)| format!("{f}: {r}"))
                .collect::<Vec<_>>()
                .join("; "),
        })?;
    let stem = template_format::file_stem(&file).to_owned();
    let body = serde_yaml::to_string(&serde_yaml::Value::Mapping(converted)).map_err(|e| {
        ImportError::NotFaithful {
            file: file.clone(),
            reason: e.to_string(),
        }
    })?;
    let base_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{stem}.yaml"));
    let text = format!(
        "# yaml-language-server: $schema=../shared/preset.schema.json\n# Imported by `kiln import` from the template {base_name}.\n{body}"
    );
    let to = match out_dir {
        Some(dir) => dir.join(format!("{stem}.yaml")),
        None => path.to_path_buf(),
    };
    let again = preset::parse_one(&PresetSource {
        file: file.clone(),
        text: text.clone(),
    })
    .map_err(|e| ImportError::NotFaithful {
        file: file.clone(),
        reason: PresetErrors(e).to_string(),
    })?;
    if !same(&original, &again) {
        return Err(ImportError::NotFaithful {
            file,
            reason: "the presets differ".into(),
        });
    }
    Ok(Imported {
        from: path.to_path_buf(),
        to,
        text,
        presets: again.into_iter().map(|p| p.name).collect(),
    })
}

fn same(a: &[Preset], b: &[Preset]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.content_hash() == b.content_hash())
}

/// Writes a converted file (creating `--out`'s directory).
pub fn write(imported: &Imported) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: imported.to.clone(),
        source,
    };
    if let Some(dir) = imported.to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&imported.to, &imported.text).map_err(io)
}
