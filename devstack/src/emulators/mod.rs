//! The AWS emulators kiln runs against locally: moto (SSM, EC2, EventBridge, DynamoDB)
//! and DynamoDB Local (Amazon's own, higher fidelity for DynamoDB).
//!
//! Each runs as a [`ManagedProcess`] on a free (or chosen) port on 127.0.0.1 and is
//! stopped, with its whole process group, when its handle is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::process::{self, ManagedProcess, ProcessError};

mod dynamodb_local;

pub use dynamodb_local::{DynamoDbLocal, find_dynamodb_local_jar, find_java, find_javac};

/// Region used when a caller has no opinion.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Dummy credentials: the emulators accept any, the SDK insists on some.
pub const ACCESS_KEY_ID: &str = "kilnlocal";
pub const SECRET_ACCESS_KEY: &str = "kilnlocal";

const SETUP_HINT: &str = "run `make setup` (scripts/setup.sh) in the kiln checkout";

/// Start options shared by the emulators.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Fixed port; `None` picks a free one.
    pub port: Option<u16>,
    /// How long to wait for the emulator to answer (JVM and Python start slowly on a
    /// busy machine).
    pub startup_timeout: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            port: None,
            startup_timeout: Duration::from_secs(90),
        }
    }
}

/// An SDK configuration for a local endpoint: endpoint override, region and static dummy
/// credentials. Works for every `aws-sdk-*` client (`Client::new(&config)`).
pub fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "kiln-devstack",
        )))
        .behavior_version(BehaviorVersion::latest())
        .build()
}

/// The kiln checkout: `$KILN_ROOT`, else the workspace this crate was built in.
pub fn kiln_root() -> PathBuf {
    match std::env::var_os("KILN_ROOT") {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    }
}

/// `program` on `PATH`, if there (for tools installed system-wide, e.g. Chromium).
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `moto_server`: `$KILN_MOTO_SERVER`, the project venv, then `PATH`.
pub fn find_moto_server() -> Result<PathBuf, ProcessError> {
    if let Some(p) = std::env::var_os("KILN_MOTO_SERVER") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(ProcessError::ToolMissing {
            tool: "moto_server".into(),
            hint: format!("KILN_MOTO_SERVER={} does not exist", p.display()),
        });
    }
    let venv = kiln_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    on_path("moto_server").ok_or_else(|| ProcessError::ToolMissing {
        tool: "moto_server".into(),
        hint: format!("not in {} nor on PATH; {SETUP_HINT}", venv.display()),
    })
}

fn bind_conflict(err: &ProcessError) -> bool {
    matches!(err, ProcessError::ExitedEarly { tail, .. }
        if tail.contains("Address already in use") || tail.contains("BindException"))
}

/// Starts a server on a chosen port; when the port was picked by us and another process
/// grabbed it in between, tries again with a new one.
async fn start_on_port<S, P, Fut>(
    options: &EmulatorOptions,
    mut spawn: S,
    probe: P,
) -> Result<(ManagedProcess, u16), ProcessError>
where
    S: FnMut(u16) -> Result<ManagedProcess, ProcessError>,
    P: Fn(u16) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = process::choose_port(options.port)?;
        let mut child = spawn(port)?;
        match child
            .wait_ready(options.startup_timeout, || probe(port))
            .await
        {
            Ok(()) => return Ok((child, port)),
            Err(e) if bind_conflict(&e) && options.port.is_none() && attempts < 4 => {
                tracing::debug!(port, "port taken during startup, retrying: {e}");
            }
            Err(e) if bind_conflict(&e) && options.port.is_some() => {
                return Err(ProcessError::PortInUse(port));
            }
            Err(e) => return Err(e),
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("static reqwest configuration")
}

/// A running `moto_server`.
#[derive(Debug)]
pub struct Moto {
    process: ManagedProcess,
    port: u16,
    http: reqwest::Client,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> Result<Self, ProcessError> {
        Self::start_with(EmulatorOptions::default()).await
    }

    pub async fn start_with(options: EmulatorOptions) -> Result<Self, ProcessError> {
        let program = find_moto_server()?;
        let http = http_client();
        let spawn = |port: u16| {
            let mut cmd = Command::new(&program);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            ManagedProcess::spawn("moto", cmd)
        };
        let probe = |port: u16| {
            let http = http.clone();
            async move {
                // moto's own API: proves it is moto answering, not a stranger on the port.
                http.get(format!("http://127.0.0.1:{port}/moto-api/data.json"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        };
        let (process, port) = start_on_port(&options, spawn, probe).await?;
        tracing::info!(port, "moto ready");
        Ok(Moto {
            process,
            port,
            http,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn sdk_config(&self, region: &str) -> SdkConfig {
        sdk_config(&self.endpoint(), region)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Clears all of moto's state (`POST /moto-api/reset`).
    pub async fn reset(&self) -> Result<(), EmulatorError> {
        let url = format!("{}/moto-api/reset", self.endpoint());
        let response = self
            .http
            .post(&url)
            .send()
            .await
            .map_err(|e| EmulatorError::Http(url.clone(), e.to_string()))?;
        if !response.status().is_success() {
            return Err(EmulatorError::Http(
                url,
                format!("status {}", response.status()),
            ));
        }
        Ok(())
    }
}

/// Errors talking to a running emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("{0}: {1}")]
    Http(String, String),
}

/// Which emulator serves DynamoDB in a [`LocalAws`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DynamoBackend {
    /// Amazon's DynamoDB Local (Java): highest fidelity.
    #[default]
    DynamoDbLocal,
    /// moto's DynamoDB: no JVM, faster to start.
    Moto,
}

/// moto plus (optionally) DynamoDB Local, started in parallel: the AWS side of the local
/// stack. DynamoDB requests go to DynamoDB Local when it runs, everything else to moto.
#[derive(Debug)]
pub struct LocalAws {
    pub moto: Moto,
    pub dynamodb: Option<DynamoDbLocal>,
    region: String,
}

impl LocalAws {
    pub async fn start(backend: DynamoBackend, region: &str) -> Result<Self, ProcessError> {
        let (moto, dynamodb) = match backend {
            DynamoBackend::Moto => (Moto::start().await?, None),
            DynamoBackend::DynamoDbLocal => {
                let (moto, ddb) = tokio::join!(Moto::start(), DynamoDbLocal::start());
                (moto?, Some(ddb?))
            }
        };
        Ok(LocalAws {
            moto,
            dynamodb,
            region: region.to_owned(),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn dynamodb_endpoint(&self) -> String {
        self.dynamodb
            .as_ref()
            .map_or_else(|| self.moto.endpoint(), DynamoDbLocal::endpoint)
    }

    /// Config for DynamoDB clients.
    pub fn dynamodb_config(&self) -> SdkConfig {
        sdk_config(&self.dynamodb_endpoint(), &self.region)
    }

    /// Config for SSM, EC2 and the other moto-served clients, in `region`.
    pub fn moto_config(&self, region: &str) -> SdkConfig {
        self.moto.sdk_config(region)
    }

    /// Environment for a child process (a Lambda binary) so its default SDK config
    /// reaches these emulators: the SDKs honour `AWS_ENDPOINT_URL` and per-service
    /// `AWS_ENDPOINT_URL_<SERVICE>`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = aws_env(&self.moto.endpoint(), &self.region);
        env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), self.dynamodb_endpoint()));
        env
    }
}

/// `AWS_*` variables pointing a child's SDK at `endpoint` with dummy credentials.
pub fn aws_env(endpoint: &str, region: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
