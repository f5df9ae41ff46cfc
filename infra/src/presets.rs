//! Reading a presets directory: the I/O half of validation (the rules live in
//! `kiln_shared::preset`).

use std::io::Read;
use std::path::{Path, PathBuf};

use kiln_shared::Preset;
use kiln_shared::preset::{self, MAX_FILE_BYTES, PresetError, PresetErrors, PresetSource};

use crate::template;

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

/// What a presets directory holds: the files to parse, and the problems of files that
/// look like presets but cannot be read as such (each reported, the rest still checked).
#[derive(Debug, Default)]
pub struct Scan {
    pub sources: Vec<PresetSource>,
    pub problems: Vec<PresetError>,
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted by name, each named as
/// `<dir as given>/<file>` so messages point where the user looked. Directories are
/// skipped; anything else with a YAML-like name that cannot be read as UTF-8 text of at
/// most [`MAX_FILE_BYTES`] is a problem of that file.
pub fn scan(dir: &Path) -> Result<Scan, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    let mut out = Scan::default();
    for path in paths {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !matches!(ext.to_ascii_lowercase().as_str(), "yaml" | "yml") {
            continue;
        }
        let file = path.display().to_string();
        match read_one(&path, ext) {
            Ok(Some(text)) => out.sources.push(PresetSource { file, text }),
            Ok(None) => {}
            Err(reason) => out.problems.push(PresetError {
                file,
                field: "(file)".into(),
                reason,
            }),
        }
    }
    Ok(out)
}

/// The text of one candidate file, `None` for a directory, or why it is not a preset.
fn read_one(path: &Path, ext: &str) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(_) if path.is_symlink() => {
            return Err("broken symbolic link: its target does not exist".into());
        }
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    if meta.is_dir() {
        return Ok(None);
    }
    if ext != "yaml" && ext != "yml" {
        return Err(format!(
            "'.{ext}' is not read as a preset: rename the file to end in .yaml or .yml"
        ));
    }
    // Read one byte past the cap, never a whole oversized file.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file is larger than {MAX_FILE_BYTES} bytes, the most a preset file may be"
        ));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The readable preset files of `dir` (see [`scan`]; problems are dropped).
pub fn read_sources(dir: &Path) -> Result<Vec<PresetSource>, LoadError> {
    Ok(scan(dir)?.sources)
}

/// Reads and validates a presets directory: every problem of every file, and then
/// everything `kiln synth` or AWS would refuse (template limits, logical ids), so a
/// directory that loads always synthesises.
pub fn load(dir: &Path) -> Result<Vec<Preset>, LoadError> {
    let location = dir.display().to_string();
    let Scan {
        sources,
        mut problems,
    } = scan(dir)?;
    let presets = match preset::parse_all(&location, &sources) {
        Ok(presets) if problems.is_empty() => presets,
        Ok(_) => return Err(invalid(problems)),
        Err(PresetErrors(errors)) => {
            // "No presets" is noise next to files that were found but not readable.
            let unreadable = !problems.is_empty();
            problems.extend(
                errors
                    .into_iter()
                    .filter(|e| !(unreadable && e.field == "(directory)")),
            );
            return Err(invalid(problems));
        }
    };
    template::limits::check(&presets, &location).map_err(LoadError::Invalid)?;
    Ok(presets)
}

fn invalid(mut problems: Vec<PresetError>) -> LoadError {
    problems.sort();
    problems.dedup();
    LoadError::Invalid(PresetErrors(problems))
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

    const OK: &str = "name: ok\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n";

    fn problems(dir: &Path) -> Vec<String> {
        let LoadError::Invalid(errs) = load(dir).unwrap_err() else {
            panic!("expected validation errors");
        };
        errs.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn unreadable_files_are_problems_of_that_file_and_the_rest_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().display().to_string();
        std::fs::write(dir.path().join("latin1.yaml"), b"name: caf\xe9\n").unwrap();
        std::fs::write(dir.path().join("UPPER.YAML"), OK).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x.yaml", dir.path().join("gone.yml")).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), OK.replace("x86_64", "sparc")).unwrap();
        std::fs::write(dir.path().join("good.yaml"), OK).unwrap();
        let found = problems(dir.path());
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with(&format!("{base}/UPPER.YAML: (file): '.YAML' is not read")));
        assert!(found[1].starts_with(&format!("{base}/bad.yaml: architecture: unknown")));
        assert!(found[2].starts_with(&format!("{base}/gone.yml: (file): broken symbolic link")));
        assert!(found[3].starts_with(&format!("{base}/latin1.yaml: (file): not UTF-8")));
    }

    #[test]
    fn validate_refuses_what_synth_would_refuse() {
        // 100 presets of one group (nested stack): more resources than one template
        // may hold, however many other groups there are.
        let dir = tempfile::tempdir().unwrap();
        let target = template::groups::bucket("p0");
        let names = (0..)
            .map(|i| format!("p{i}"))
            .filter(|n| template::groups::bucket(n) == target)
            .take(100);
        for name in names {
            std::fs::write(
                dir.path().join(format!("{name}.yaml")),
                OK.replace("name: ok", &format!("name: {name}")),
            )
            .unwrap();
        }
        let found = problems(dir.path());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains(&format!(
                "template {} would have 501 resources; CloudFormation allows at most 500",
                template::groups::file_name(target)
            )),
            "{}",
            found[0]
        );
        let all: Vec<Preset> = preset::parse_all("d", &read_sources(dir.path()).unwrap()).unwrap();
        assert!(template::synth(&all, &template::SynthOptions::default()).is_err());

        // A setup script over Image Builder's inline limit, in a file under the size cap.
        let dir = tempfile::tempdir().unwrap();
        let script = "  echo 0123456789012345678901234567890123456789\n".repeat(400);
        std::fs::write(
            dir.path().join("big.yaml"),
            format!(
                "{}setup_script: |\n{script}",
                OK.replace("setup_script: x\n", "")
            ),
        )
        .unwrap();
        let found = problems(dir.path());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("big.yaml: setup_script: the setup component document of 'ok'"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn what_validates_synthesises() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a-b", "a--b", "a-bd44362d6"] {
            std::fs::write(
                dir.path().join(format!("{name}.yaml")),
                OK.replace("name: ok", &format!("name: {name}")),
            )
            .unwrap();
        }
        let presets = load(dir.path()).unwrap();
        let t = template::synth(&presets, &template::SynthOptions::default()).unwrap();
        template::render(&t.core, template::Format::Json).unwrap();
    }
}
