//! Documents checked against committed JSON Schemas by python-jsonschema from the
//! project's venv: a validator written independently of kiln's serde types.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_devstack::emulators::kiln_root;

/// Validates with Draft 2020-12 and format checking (`date-time` included);
/// `schemas` are loaded into one registry by their `$id`, so they may `$ref` each other,
/// and the first one is the document's schema. `Err` carries every violation.
pub fn validate(schemas: &[&str], document: &serde_json::Value) -> Result<(), String> {
    let python = python();
    let files: Vec<PathBuf> = schemas.iter().map(|s| kiln_root().join(s)).collect();
    let doc = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(doc.path(), document.to_string()).map_err(|e| e.to_string())?;
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(doc.path())
        .args(&files)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Panics with every violation unless `document` matches.
pub fn assert_valid(schemas: &[&str], document: &serde_json::Value) {
    if let Err(e) = validate(schemas, document) {
        panic!("does not match {}: {e}\n{document:#}", schemas[0]);
    }
}

fn python() -> PathBuf {
    let venv = kiln_root().join(".venv/bin/python3");
    if venv.is_file() {
        venv
    } else {
        Path::new("python3").to_owned()
    }
}

const SCRIPT: &str = r#"
import json, sys
import jsonschema, referencing
doc = json.load(open(sys.argv[1]))
schemas = [json.load(open(p)) for p in sys.argv[2:]]
registry = referencing.Registry().with_resources(
    [(s["$id"], referencing.Resource.from_contents(s)) for s in schemas])
validator = jsonschema.Draft202012Validator(
    schemas[0], registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(str(p) for p in e.absolute_path) or "(root)", ":", e.message)
sys.exit(1 if errors else 0)
"#;
