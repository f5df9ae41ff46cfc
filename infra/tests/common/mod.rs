//! Helpers shared by kiln-infra's integration tests: the `kiln` binary, external tools
//! (cfn-lint, cfn-guard, moto_server) and preset fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    // Tests never talk to real AWS, whatever the developer's shell has.
    for var in [
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "KILN_PREFIX",
        "KILN_TABLE",
        "KILN_STATUS_URL",
    ] {
        c.env_remove(var);
    }
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1");
    c
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// An external tool: on PATH, in the project's venv, or in ~/.cargo/bin. Missing: a
/// failure under `KILN_REQUIRE_TOOLS=1` (make test), else `None` with a note.
pub fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(repo_root().join(".venv/bin"));
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    if let Some(found) = dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("KILN_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{name} is required (KILN_REQUIRE_TOOLS=1) but not installed: run scripts/setup.sh");
    }
    eprintln!("note: {name} is not installed; skipping (set KILN_REQUIRE_TOOLS=1 to fail instead)");
    None
}

/// Writes preset files into a fresh directory.
pub fn preset_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

/// A small valid preset.
pub fn preset_yaml(name: &str, extra: &str) -> String {
    format!(
        "name: {name}\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: |\n  apt-get update\n  apt-get install -y docker.io\nadditional_docker_images: [public.ecr.aws/docker/library/alpine:3]\nvalidation_tests:\n  - name: docker\n    command: docker --version\n    expected_contains: Docker version\n{extra}"
    )
}
