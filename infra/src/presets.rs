//! Reading a presets directory: the I/O half of validation (the rules live in
//! `kiln_shared::preset`).

use std::path::{Path, PathBuf};

use kiln_shared::Preset;
use kiln_shared::preset::{self, PresetErrors, PresetSource};

/// Why a presets directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem of every file, one `file: field: reason` per line.
    #[error("{0}")]
    Invalid(PresetErrors),
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted by name, each named as
/// `<dir as given>/<file>` so messages point where the user looked.
pub fn read_sources(dir: &Path) -> Result<Vec<PresetSource>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(PresetSource {
                file: path.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Reads and validates a presets directory.
pub fn load(dir: &Path) -> Result<Vec<Preset>, LoadError> {
    let sources = read_sources(dir)?;
    preset::parse_all(&dir.display().to_string(), &sources).map_err(LoadError::Invalid)
}

/// One line for a successful `kiln validate`.
pub fn summary(presets: &[Preset]) -> String {
    let files: std::collections::BTreeSet<&str> =
        presets.iter().map(|p| p.source_file.as_str()).collect();
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    format!(
        "{} valid: {} preset{} from {} file{} ({})",
        if presets.len() == 1 {
            "1 preset"
        } else {
            "all presets"
        },
        presets.len(),
        if presets.len() == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_yaml_files_sorted_with_dir_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), "x").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "y").unwrap();
        std::fs::write(dir.path().join("notes.md"), "z").unwrap();
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let sources = read_sources(dir.path()).unwrap();
        let names: Vec<String> = sources.iter().map(|s| s.file.clone()).collect();
        let base = dir.path().display().to_string();
        assert_eq!(
            names,
            vec![format!("{base}/a.yaml"), format!("{base}/b.yml")]
        );
        assert_eq!(sources[0].text, "y");
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_it() {
        let err = load(Path::new("/nonexistent/presets")).unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }));
        assert!(err.to_string().starts_with("/nonexistent/presets: "));
    }

    #[test]
    fn empty_directory_reports_no_presets() {
        let dir = tempfile::tempdir().unwrap();
        let LoadError::Invalid(errs) = load(dir.path()).unwrap_err() else {
            panic!("expected validation errors");
        };
        assert_eq!(errs.0.len(), 1);
        assert!(errs.0[0].reason.contains("no presets"));
    }
}
