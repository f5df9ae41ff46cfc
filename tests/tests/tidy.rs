//! Keeps ARCHITECTURE.md's crate table true (as rust-analyzer's tidy test does): the
//! "depends on" and "tests also use" columns must list exactly the workspace crates each
//! crate's Cargo.toml names, with optional dependencies marked as such.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// (dir, optional) pairs of one column.
type Deps = BTreeSet<(String, bool)>;

#[derive(Debug, Default, PartialEq, Eq)]
struct Row {
    normal: Deps,
    dev: Deps,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Each workspace member by its directory, with its dependencies on other members.
fn from_cargo() -> BTreeMap<String, Row> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let dir_of = |manifest: &str| {
        Path::new(manifest)
            .parent()
            .and_then(|d| d.file_name())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let dirs: BTreeMap<&str, String> = packages
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                dir_of(p["manifest_path"].as_str().unwrap()),
            )
        })
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            let mut row = Row::default();
            for dep in p["dependencies"].as_array().unwrap() {
                let dep_name = dep["name"].as_str().unwrap();
                // A crate naming itself as a dev-dependency only turns on its own features.
                let Some(dir) = dirs.get(dep_name).filter(|_| dep_name != name) else {
                    continue;
                };
                let entry = (dir.clone(), dep["optional"].as_bool().unwrap_or(false));
                match dep["kind"].as_str() {
                    None | Some("build") => row.normal.insert(entry),
                    Some(_) => row.dev.insert(entry),
                };
            }
            // Already a normal dependency: listing it again for tests says nothing new.
            row.dev
                .retain(|(d, _)| !row.normal.iter().any(|(n, _)| n == d));
            (dirs[name].clone(), row)
        })
        .collect()
}

/// Parses one column: entries separated by ", ", each starting with a backticked dir;
/// "optional" anywhere in the entry marks it optional; "—" is none.
fn column(cell: &str, dirs: &BTreeSet<String>) -> Result<Deps, String> {
    let cell = cell.trim();
    if cell == "—" {
        return Ok(Deps::new());
    }
    cell.split(", ")
        .map(|entry| {
            let dir = entry
                .split('`')
                .nth(1)
                .ok_or_else(|| format!("entry '{entry}' does not start with a `dir`"))?;
            if !dirs.contains(dir) {
                return Err(format!("'{dir}' is not a workspace crate's directory"));
            }
            Ok((dir.to_owned(), entry.contains("optional")))
        })
        .collect()
}

/// The table under "## Crates", by dir: rows whose crate cell is not backticked
/// (e.g. `fuzz/`, not a member) are skipped.
fn from_doc(doc: &str, dirs: &BTreeSet<String>) -> Result<BTreeMap<String, Row>, String> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Crates"))
        .ok_or("ARCHITECTURE.md has no '## Crates' section")?;
    let mut lines = section.lines().filter(|l| l.starts_with('|'));
    let header: Vec<&str> = lines
        .next()
        .ok_or("no table")?
        .split('|')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("the table has no '{name}' column"))
    };
    let (dir_col, crate_col, normal_col, dev_col) = (
        col("dir")?,
        col("crate")?,
        col("depends on")?,
        col("tests also use")?,
    );
    let mut rows = BTreeMap::new();
    for line in lines.skip(1) {
        let cells: Vec<&str> = line.split('|').collect();
        if !cells[crate_col].trim().starts_with("`kiln-") {
            continue;
        }
        let dir = cells[dir_col]
            .trim()
            .trim_matches('`')
            .trim_end_matches('/');
        let row = Row {
            normal: column(cells[normal_col], dirs).map_err(|e| format!("{dir}: {e}"))?,
            dev: column(cells[dev_col], dirs).map_err(|e| format!("{dir}: {e}"))?,
        };
        if rows.insert(dir.to_owned(), row).is_some() {
            return Err(format!("{dir} has two rows"));
        }
    }
    Ok(rows)
}

#[test]
fn architecture_md_dependency_table_matches_cargo_metadata() {
    let cargo = from_cargo();
    let dirs: BTreeSet<String> = cargo.keys().cloned().collect();
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let documented = from_doc(&doc, &dirs).unwrap();
    let mut problems = Vec::new();
    for (dir, actual) in &cargo {
        match documented.get(dir) {
            None => problems.push(format!("{dir}/ is a workspace crate with no row")),
            Some(row) if row != actual => problems.push(format!(
                "{dir}/: ARCHITECTURE.md says {row:?}, Cargo.toml says {actual:?}"
            )),
            Some(_) => {}
        }
    }
    for dir in documented.keys().filter(|d| !cargo.contains_key(*d)) {
        problems.push(format!("{dir}/ has a row but is not a workspace crate"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_table_parser_sees_a_drifted_row() {
    let dirs: BTreeSet<String> = ["shared", "aws", "devstack"].map(String::from).into();
    let doc = "# x\n\n## Crates\n\n| dir | crate | depends on | tests also use |\n|---|---|---|---|\n\
               | `aws/` | `kiln-aws` | `shared` | — |\n\
               | `infra/` | `kiln-infra` | `aws`, `devstack` (optional: feature `dev`) | `shared` |\n\
               | `fuzz/` | (not a member) | `shared` | — |\n";
    let rows = from_doc(doc, &dirs).unwrap();
    assert_eq!(rows.len(), 2, "fuzz/ is skipped");
    assert_eq!(
        rows["infra"].normal,
        [("aws".into(), false), ("devstack".into(), true)].into()
    );
    assert_eq!(rows["infra"].dev, [("shared".into(), false)].into());
    let unknown = doc.replace("`shared` | — |\n| `infra", "`lambdas` | — |\n| `infra");
    assert!(
        from_doc(&unknown, &dirs)
            .unwrap_err()
            .contains("'lambdas' is not")
    );
}
