//! `wrangler dev` running the real, prebuilt kiln Worker (or any Worker) on a free port,
//! with its own persistence directory; the whole process group is killed on drop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_tests::wrangler::WranglerError> {
//! use kiln_tests::wrangler::{WranglerDev, EdgeVars};
//! let edge = WranglerDev::start_edge(&EdgeVars::new("http://127.0.0.1:9000", "secret")).await?;
//! let body = reqwest::get(format!("{}/status", edge.url())).await.unwrap().text().await.unwrap();
//! # Ok(()) }
//! ```

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{find_tool, free_port, kill_group, repo_root, tool_path};

#[derive(Debug, thiserror::Error)]
pub enum WranglerError {
    #[error("{0} not found: run scripts/setup.sh")]
    Missing(&'static str),
    #[error(
        "building the edge Worker failed (scripts/build-edge.sh exited {0}); see its output above"
    )]
    Build(std::process::ExitStatus),
    #[error("could not start wrangler: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("wrangler dev exited early ({status}); log:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("wrangler dev did not serve within {secs} s; log:\n{log}")]
    NotReady { secs: u64, log: String },
}

/// The Worker's settings: the same type `kiln dev` uses.
pub use kiln_devstack::wrangler::EdgeVars;

/// A running `wrangler dev`.
pub struct WranglerDev {
    child: Child,
    url: String,
    log_path: PathBuf,
    _state: tempfile::TempDir,
}

/// Builds the edge Worker if its inputs changed (`scripts/build-edge.sh`: a quick no-op
/// when up to date; concurrent callers serialise on its lock). Returns `edge/`.
pub fn ensure_edge_built() -> Result<PathBuf, WranglerError> {
    let root = repo_root();
    let status = Command::new("bash")
        .arg(root.join("scripts/build-edge.sh"))
        .env("PATH", tool_path())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()?;
    if !status.success() {
        return Err(WranglerError::Build(status));
    }
    Ok(root.join("edge"))
}

/// Whether wrangler is installed (for the KILN_REQUIRE_TOOLS skip rule).
pub fn wrangler_available() -> bool {
    find_tool("wrangler").is_some()
}

impl WranglerDev {
    /// Builds (if needed) and starts the kiln edge Worker with `vars`.
    pub async fn start_edge(vars: &EdgeVars) -> Result<WranglerDev, WranglerError> {
        let edge = tokio::task::spawn_blocking(ensure_edge_built)
            .await
            .expect("build task")?;
        Self::start(&edge.join("wrangler.toml"), &vars.pairs(), "/healthz").await
    }

    /// Starts `wrangler dev --config <config>` with `vars` (vars and secrets alike, via an
    /// env file so values stay off the command line) and waits until `ready_path` answers.
    pub async fn start(
        config: &Path,
        vars: &[(String, String)],
        ready_path: &str,
    ) -> Result<WranglerDev, WranglerError> {
        let wrangler = find_tool("wrangler").ok_or(WranglerError::Missing("wrangler"))?;
        let state = tempfile::tempdir()?;
        let env_file = state.path().join("vars.env");
        let mut env = String::new();
        for (k, v) in vars {
            env.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&env_file, env)?;
        let log_path = state.path().join("wrangler.log");
        let log = File::create(&log_path)?;
        let port = free_port();
        let mut cmd = Command::new(wrangler);
        cmd.arg("dev")
            .arg("--config")
            .arg(config)
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(state.path().join("persist"))
            .arg("--env-file")
            .arg(&env_file)
            // Default log level: the Worker's console lines are at "log", below "info".
            .arg("--show-interactive-dev-session=false")
            .current_dir(config.parent().unwrap_or(Path::new(".")))
            .env("PATH", tool_path())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn()?;
        let mut dev = WranglerDev {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            _state: state,
        };
        dev.wait_ready(ready_path, Duration::from_secs(120)).await?;
        Ok(dev)
    }

    async fn wait_ready(&mut self, path: &str, limit: Duration) -> Result<(), WranglerError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let start = Instant::now();
        let url = format!("{}{path}", self.url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(WranglerError::Exited {
                    status,
                    log: self.log(),
                });
            }
            // Any HTTP answer from the Worker means it is loaded (its own 503s included).
            if let Ok(resp) = client.get(&url).send().await
                && resp.headers().contains_key("content-type")
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(WranglerError::NotReady {
                    secs: limit.as_secs(),
                    log: self.log(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything wrangler (and the Worker's console) printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        let pgid = self.child.id();
        kill_group(pgid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // workerd children may outlive a TERMed wrangler: take the group down.
        kill_group(pgid, "KILL");
        let _ = self.child.wait();
    }
}
