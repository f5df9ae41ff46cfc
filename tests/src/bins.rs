//! The workspace's binaries (the four Lambdas, `kiln`) for the tests that run them.
//!
//! Built once per test process with `cargo build --workspace --bins`: the same feature
//! set as `make test`'s own build step, so this is a no-op there and never recompiles
//! the AWS SDK crates with a `-p` feature set of its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use kiln_devstack::emulators::kiln_root as repo_root;

/// `target/debug` after the workspace binaries are built.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(repo_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the workspace binaries failed");
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("debug")
    })
    .clone()
}

/// [`bin_dir`] with the Worker built too (`scripts/build-edge.sh`): what the tests that
/// run the whole local system need, once per test process.
pub fn bin_dir_and_edge() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = bin_dir();
        kiln_devstack::wrangler::build_edge().expect("building the Worker");
        dir
    })
    .clone()
}

/// One of the workspace's binaries, built.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The real `kiln` with exactly the environment in `env_file` (what `kiln dev` writes),
/// nothing inherited that could point it elsewhere; add the arguments.
pub fn kiln_with_env(env_file: &std::path::Path) -> Command {
    let script = format!(
        ". '{}' && exec '{}' \"$@\"",
        env_file.display(),
        bin("kiln").display()
    );
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("kiln")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir());
    command
}

/// A finished command's exit code and output, for assertion messages.
pub fn describe(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
