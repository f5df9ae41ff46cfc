//! A local AWS Lambda runtime: runs an unmodified Lambda binary (built for
//! `provided.al2023` with `lambda_runtime` / `lambda_http`) against an implementation of
//! the Lambda Runtime API, and invokes it.
//!
//! - [`LocalLambda::invoke`]: one synchronous invocation, JSON in, JSON out.
//! - `POST /2015-03-31/functions/{name}/invocations` on [`LocalLambda::endpoint`]: the
//!   Lambda Invoke API shape (function errors: 200 with `X-Amz-Function-Error`), usable
//!   as the local Image Builder's event sink ([`LocalLambda::invoke_url`]).
//! - [`LocalLambda::serve_function_url`]: a Function URL front that turns plain HTTP
//!   requests into payload-2.0 events and the handler's response back into HTTP.
//!
//! Like Lambda, the sandbox (process) is started on demand and replaced after a crash
//! or a timeout. One invocation at a time per function (sequential polling).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::any;
use serde_json::Value;
use tokio::sync::Notify;

use crate::process::{Output, ProcessError};

mod function_url;
mod runtime_api;
mod sandbox;

pub use function_url::{function_url_event, function_url_response};

use runtime_api::{runtime_router, streamed_body};
use sandbox::{Outcome, Runtime, RuntimeState};

/// Errors of the local Lambda runtime.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("Lambda binary {0} does not exist; build it first (cargo build -p kiln-lambdas)")]
    BinaryMissing(PathBuf),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot bind the Lambda runtime API: {0}")]
    Bind(std::io::Error),
    #[error("function {function} did not poll for work within {timeout:?}; last output:\n{tail}")]
    NotReady {
        function: String,
        timeout: Duration,
        tail: String,
    },
    #[error("function {function} failed to initialise: {error_type}: {message}")]
    Init {
        function: String,
        error_type: String,
        message: String,
    },
    #[error("function {function} returned an error: {error_type}: {message}")]
    Function {
        function: String,
        error_type: String,
        message: String,
    },
    #[error("function {function} timed out after {timeout:?}")]
    Timeout { function: String, timeout: Duration },
    #[error("function {function} exited during the invocation ({status}); last output:\n{tail}")]
    Crashed {
        function: String,
        status: String,
        tail: String,
    },
    #[error("function {function} returned a response that is not JSON: {message}")]
    BadResponse { function: String, message: String },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Function name (`AWS_LAMBDA_FUNCTION_NAME`, the invoke path, the ARN).
    pub name: String,
    /// The bootstrap binary (e.g. `target/debug/ami-update`).
    pub binary: PathBuf,
    /// The function's environment (plus `AWS_*` variables for the emulators).
    pub env: Vec<(String, String)>,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub region: String,
    pub account_id: String,
    /// How long the binary may take to start polling.
    pub startup_timeout: Duration,
    pub output: Output,
}

impl FunctionSpec {
    pub fn new(name: &str, binary: impl Into<PathBuf>) -> Self {
        FunctionSpec {
            name: name.to_owned(),
            binary: binary.into(),
            env: Vec::new(),
            memory_mb: 128,
            timeout: Duration::from_secs(30),
            region: crate::emulators::DEFAULT_REGION.to_owned(),
            account_id: "123456789012".to_owned(),
            startup_timeout: Duration::from_secs(30),
            output: Output::LogFile,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    pub(crate) fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.name
        )
    }
}

/// The outcome the Runtime API reports for one invocation.
pub struct LocalLambda {
    runtime: Arc<Runtime>,
    _server: crate::serve::Server,
}

impl std::fmt::Debug for LocalLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLambda")
            .field("function", &self.runtime.spec.name)
            .field("endpoint", &self.endpoint())
            .finish()
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        self.runtime.lock_sandbox().take();
    }
}

impl LocalLambda {
    /// Starts the Runtime API, spawns the binary and waits until it polls for work.
    pub async fn start(spec: FunctionSpec) -> Result<Self, LambdaError> {
        if !spec.binary.is_file() {
            return Err(LambdaError::BinaryMissing(spec.binary.clone()));
        }
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(LambdaError::Bind)?;
        let api_addr = listener.local_addr().map_err(LambdaError::Bind)?;
        let runtime = Arc::new(Runtime {
            spec,
            state: Mutex::new(RuntimeState::default()),
            polled: Notify::new(),
            sandbox: Mutex::new(None),
            invocations: Default::default(),
            invoke_lock: tokio::sync::Mutex::new(()),
            api_addr,
        });
        let app = runtime_router(runtime.clone());
        let server = crate::serve::Server::spawn(listener, app, "Lambda runtime API");
        let lambda = LocalLambda {
            runtime,
            _server: server,
        };
        lambda.runtime.ensure_running().await?;
        tracing::info!(function = %lambda.runtime.spec.name, endpoint = %lambda.endpoint(), "Lambda ready");
        Ok(lambda)
    }

    pub fn name(&self) -> &str {
        &self.runtime.spec.name
    }

    /// `http://127.0.0.1:PORT` of the Runtime API and the invoke endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.runtime.api_addr)
    }

    /// The Invoke API URL of this function (POST a JSON event).
    pub fn invoke_url(&self) -> String {
        format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.endpoint(),
            self.runtime.spec.name
        )
    }

    /// The running binary's pid (changes when the sandbox is replaced).
    pub fn pid(&self) -> Option<u32> {
        self.runtime
            .lock_sandbox()
            .as_ref()
            .map(|s| s.process.pid())
    }

    /// The binary's output file (when [`Output::LogFile`]).
    pub fn log_path(&self) -> Option<PathBuf> {
        self.runtime
            .lock_sandbox()
            .as_ref()
            .map(|s| s.process.log_path().to_path_buf())
    }

    /// How many invocations the function has been handed (from any front).
    pub fn invocation_count(&self) -> u64 {
        self.runtime
            .invocations
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One synchronous invocation.
    pub async fn invoke(&self, event: &Value) -> Result<Value, LambdaError> {
        let body = self.invoke_raw(Bytes::from(event.to_string())).await?;
        serde_json::from_slice(&body).map_err(|e| LambdaError::BadResponse {
            function: self.runtime.spec.name.clone(),
            message: e.to_string(),
        })
    }

    /// One synchronous invocation with raw bytes.
    pub async fn invoke_raw(&self, payload: Bytes) -> Result<Bytes, LambdaError> {
        match self.runtime.invoke(payload).await? {
            Outcome::Response { body, streaming } => Ok(if streaming {
                streamed_body(&body).unwrap_or(body)
            } else {
                body
            }),
            Outcome::Error {
                error_type,
                message,
            } => Err(LambdaError::Function {
                function: self.runtime.spec.name.clone(),
                error_type,
                message,
            }),
        }
    }

    /// Starts a Function URL front on 127.0.0.1 (`port` or a free one).
    pub async fn serve_function_url(&self, port: Option<u16>) -> Result<FunctionUrl, LambdaError> {
        let port = crate::process::choose_port(port)?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(LambdaError::Bind)?;
        let addr = listener.local_addr().map_err(LambdaError::Bind)?;
        let runtime = self.runtime.clone();
        let app = Router::new()
            .fallback(any(function_url::function_url))
            .with_state(runtime);
        let server = crate::serve::Server::spawn(listener, app, "Function URL front");
        Ok(FunctionUrl {
            addr,
            _server: server,
        })
    }
}

/// A running Function URL front; dropping it stops the listener.
#[derive(Debug)]
pub struct FunctionUrl {
    addr: SocketAddr,
    _server: crate::serve::Server,
}

impl FunctionUrl {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}
