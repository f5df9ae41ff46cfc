//! Runs every committed fuzz seed (`fuzz/seeds/<target>/*`) through the same invariant
//! checks the fuzz targets use, so `cargo test` guards them without cargo-fuzz. Inputs
//! that once found a bug are committed as seeds too: this is their regression test.

use std::path::{Path, PathBuf};

use kiln_shared::fuzzing::TARGETS;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

#[test]
fn every_target_has_seeds_and_every_seed_passes() {
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let dir = seeds_dir().join(target);
        let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for seed in seeds {
            let data = std::fs::read(&seed).expect("seed readable");
            let outcome = std::panic::catch_unwind(|| check(&data));
            if outcome.is_err() {
                failures.push(seed.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failing seeds: {failures:#?}");
}

#[test]
fn no_seed_directory_without_a_target() {
    for entry in std::fs::read_dir(seeds_dir()).expect("fuzz/seeds exists") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/seeds/{name} has no target in kiln_shared::fuzzing::TARGETS"
        );
    }
}

#[test]
fn every_check_has_a_fuzz_binary() {
    let manifest =
        std::fs::read_to_string(seeds_dir().join("../Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        let source = seeds_dir().join(format!("../fuzz_targets/{target}.rs"));
        assert!(source.exists(), "{} is missing", source.display());
    }
}
