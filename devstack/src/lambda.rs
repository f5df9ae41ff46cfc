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

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::process::{ManagedProcess, Output, ProcessError};

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

    fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.name
        )
    }
}

/// The outcome the Runtime API reports for one invocation.
#[derive(Debug)]
enum Outcome {
    Response { body: Bytes, streaming: bool },
    Error { error_type: String, message: String },
}

struct Invocation {
    id: String,
    payload: Bytes,
    deadline_ms: u64,
}

#[derive(Default)]
struct RuntimeState {
    /// Replies awaited by `invoke`, by request id.
    pending: HashMap<String, oneshot::Sender<Outcome>>,
    /// Set when the binary reports `/init/error`.
    init_error: Option<(String, String)>,
    /// The binary has polled `/next` at least once since it was (re)started.
    polled: bool,
}

/// One process of the function with its own work queue. Replacing the sandbox drops the
/// queue's sender, so a `/next` poll still pending from a dead process can never take
/// work meant for its successor.
struct Sandbox {
    process: ManagedProcess,
    queue: mpsc::UnboundedSender<Invocation>,
    work: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
}

struct Runtime {
    spec: FunctionSpec,
    state: Mutex<RuntimeState>,
    polled: Notify,
    sandbox: Mutex<Option<Sandbox>>,
    /// Invocations handed to the function so far.
    invocations: std::sync::atomic::AtomicU64,
    /// Serialises invocations: one sandbox, one request at a time.
    invoke_lock: tokio::sync::Mutex<()>,
    api_addr: SocketAddr,
}

/// A Lambda function running locally. Dropping it stops the binary and the servers.
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
            .fallback(any(function_url))
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Runtime {
    fn lock_state(&self) -> MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_sandbox(&self) -> MutexGuard<'_, Option<Sandbox>> {
        self.sandbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sandbox's process exit status and output tail, once it has exited.
    fn exited(&self) -> Option<(String, String)> {
        self.lock_sandbox().as_mut().and_then(|s| {
            s.process
                .try_status()
                .map(|st| (st.to_string(), s.process.log_tail(30)))
        })
    }

    /// Starts the binary unless it runs, then waits for its first poll.
    async fn ensure_running(&self) -> Result<(), LambdaError> {
        let running = self
            .lock_sandbox()
            .as_mut()
            .is_some_and(|s| s.process.try_status().is_none());
        if running {
            return Ok(());
        }
        {
            let mut st = self.lock_state();
            st.polled = false;
            st.init_error = None;
        }
        let spec = &self.spec;
        let mut cmd = Command::new(&spec.binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", self.api_addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &spec.region)
            .env("AWS_DEFAULT_REGION", &spec.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(spec.env.iter().map(|(k, v)| (k, v)));
        {
            // Held across the spawn so the new process's first poll finds its sandbox.
            let mut slot = self.lock_sandbox();
            slot.take();
            let process = ManagedProcess::spawn_with(&spec.name, cmd, spec.output)?;
            let (queue, work) = mpsc::unbounded_channel();
            *slot = Some(Sandbox {
                process,
                queue,
                work: Arc::new(tokio::sync::Mutex::new(work)),
            });
        }

        let deadline = tokio::time::Instant::now() + spec.startup_timeout;
        loop {
            let notified = self.polled.notified();
            {
                let st = self.lock_state();
                if let Some((error_type, message)) = st.init_error.clone() {
                    return Err(LambdaError::Init {
                        function: spec.name.clone(),
                        error_type,
                        message,
                    });
                }
                if st.polled {
                    return Ok(());
                }
            }
            if let Some(s) = self.lock_sandbox().as_mut() {
                s.process.check_running()?;
            }
            if tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
                notified,
            )
            .await
            .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                let tail = self
                    .lock_sandbox()
                    .as_ref()
                    .map(|s| s.process.log_tail(30))
                    .unwrap_or_default();
                return Err(LambdaError::NotReady {
                    function: spec.name.clone(),
                    timeout: spec.startup_timeout,
                    tail,
                });
            }
        }
    }

    async fn invoke(&self, payload: Bytes) -> Result<Outcome, LambdaError> {
        let _one_at_a_time = self.invoke_lock.lock().await;
        self.ensure_running().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, mut rx) = oneshot::channel();
        self.lock_state().pending.insert(id.clone(), tx);
        let deadline_ms = now_ms() + self.spec.timeout.as_millis() as u64;
        let invocation = Invocation {
            id: id.clone(),
            payload,
            deadline_ms,
        };
        let sent = self
            .lock_sandbox()
            .as_ref()
            .is_some_and(|s| s.queue.send(invocation).is_ok());
        if sent {
            self.invocations
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        } else {
            self.lock_state().pending.remove(&id);
            let (status, tail) = self
                .exited()
                .unwrap_or_else(|| ("gone".into(), String::new()));
            return Err(LambdaError::Crashed {
                function: self.spec.name.clone(),
                status,
                tail,
            });
        }
        let timeout = tokio::time::sleep(self.spec.timeout);
        tokio::pin!(timeout);
        loop {
            tokio::select! {
                outcome = &mut rx => {
                    if let Ok(outcome) = outcome {
                        return Ok(outcome);
                    }
                }
                _ = &mut timeout => {
                    self.lock_state().pending.remove(&id);
                    // Lambda discards a timed-out sandbox; the next invoke starts afresh.
                    self.lock_sandbox().take();
                    return Err(LambdaError::Timeout { function: self.spec.name.clone(), timeout: self.spec.timeout });
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            // A crash mid-invocation never answers: report it instead of waiting.
            if let Some((status, tail)) = self.exited() {
                self.lock_state().pending.remove(&id);
                self.lock_sandbox().take();
                return Err(LambdaError::Crashed {
                    function: self.spec.name.clone(),
                    status,
                    tail,
                });
            }
        }
    }
}

fn runtime_router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
        .with_state(runtime)
}

fn trace_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        now_ms() / 1000,
        &hex[..24],
        &hex[16..32]
    )
}

/// `GET /next`: long-polls until an invocation is queued.
async fn next(State(rt): State<Arc<Runtime>>) -> Response {
    {
        rt.lock_state().polled = true;
    }
    rt.polled.notify_waiters();
    let Some(work) = rt.lock_sandbox().as_ref().map(|s| s.work.clone()) else {
        return StatusCode::GONE.into_response();
    };
    let invocation = work.lock().await.recv().await;
    let Some(inv) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let mut response = Response::new(Body::from(inv.payload));
    let h = response.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", inv.id);
    put("lambda-runtime-deadline-ms", inv.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", rt.spec.arn());
    put("lambda-runtime-trace-id", trace_id());
    put("content-type", "application/json".into());
    response
}

async fn respond(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v == "streaming");
    complete(&rt, &id, Outcome::Response { body, streaming })
}

async fn invocation_error(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&body);
    complete(
        &rt,
        &id,
        Outcome::Error {
            error_type,
            message,
        },
    )
}

fn complete(rt: &Runtime, id: &str, outcome: Outcome) -> Response {
    match rt.lock_state().pending.remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errorType": "InvalidRequestID", "errorMessage": format!("unknown or expired request id {id}")})),
        )
            .into_response(),
    }
}

/// `{"errorType", "errorMessage"}` as `lambda_runtime` posts it.
fn diagnostic(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (
        v["errorType"].as_str().unwrap_or("Unknown").to_owned(),
        v["errorMessage"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    )
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> Response {
    let (error_type, message) = diagnostic(&body);
    tracing::warn!(function = %rt.spec.name, %error_type, %message, "init error");
    rt.lock_state().init_error = Some((error_type, message));
    rt.polled.notify_waiters();
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

/// The Lambda Invoke API (RequestResponse): 200 with the payload, or 200 with
/// `X-Amz-Function-Error: Unhandled` and the error document.
async fn invoke_api(
    State(rt): State<Arc<Runtime>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if name != rt.spec.name {
        return (
            StatusCode::NOT_FOUND,
            [("x-amzn-ErrorType", "ResourceNotFoundException")],
            axum::Json(json!({"Type": "User", "message": format!("Function not found: {name}")})),
        )
            .into_response();
    }
    let error = |error_type: &str, message: String| {
        let mut r =
            axum::Json(json!({"errorType": error_type, "errorMessage": message})).into_response();
        r.headers_mut().insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
        r
    };
    match rt.invoke(body).await {
        Ok(Outcome::Response { body, streaming }) => {
            let body = if streaming {
                streamed_body(&body).unwrap_or(body)
            } else {
                body
            };
            ([("content-type", "application/json")], body).into_response()
        }
        Ok(Outcome::Error {
            error_type,
            message,
        }) => error(&error_type, message),
        Err(LambdaError::Timeout { .. }) => error("Sandbox.Timedout", "Task timed out".into()),
        Err(e) => error("Runtime.ExitError", e.to_string()),
    }
}

/// A streamed response: JSON prelude, eight NUL bytes, then the body. Returns the
/// prelude merged with the body as a buffered payload-2.0 response.
fn streamed_body(raw: &[u8]) -> Option<Bytes> {
    let sep = raw.windows(8).position(|w| w == [0u8; 8])?;
    let mut prelude: Value = serde_json::from_slice(&raw[..sep]).ok()?;
    let body = &raw[sep + 8..];
    match std::str::from_utf8(body) {
        Ok(text) => {
            prelude["body"] = text.into();
            prelude["isBase64Encoded"] = false.into();
        }
        Err(_) => {
            prelude["body"] = B64.encode(body).into();
            prelude["isBase64Encoded"] = true.into();
        }
    }
    Some(Bytes::from(prelude.to_string()))
}

// ---- Function URL front --------------------------------------------------------------

fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
}

/// The payload-2.0 event a Function URL sends for this request.
pub fn function_url_event(
    method: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    source_ip: &str,
    region: &str,
) -> Value {
    let mut header_map: serde_json::Map<String, Value> = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        // Function URLs join repeated headers with commas.
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let raw_query = uri.query().unwrap_or("");
    let mut query: serde_json::Map<String, Value> = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), v.into_owned().into());
            }
        }
    }
    let url_id = "kilnlocal0000000000000000000000";
    let domain = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map_or_else(
            || format!("{url_id}.lambda-url.{region}.on.aws"),
            str::to_owned,
        );
    let now = chrono::Utc::now();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": domain,
            "domainPrefix": url_id,
            "http": {
                "method": method,
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = cookies.into();
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) if is_text(content_type) => event["body"] = text.into(),
            _ => {
                event["body"] = B64.encode(body).into();
                event["isBase64Encoded"] = true.into();
            }
        }
    }
    event
}

/// Turns a handler's result into the HTTP response a Function URL would send.
pub fn function_url_response(payload: &[u8]) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return bad_gateway("the function returned a response that is not JSON");
    };
    // Without `statusCode` a Function URL returns the whole payload as JSON with 200.
    let Some(status) = v.get("statusCode") else {
        return ([("content-type", "application/json")], v.to_string()).into_response();
    };
    let Some(status) = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return bad_gateway("the function returned an invalid statusCode");
    };
    let body = match v.get("body") {
        Some(Value::String(s)) if v["isBase64Encoded"] == true => match B64.decode(s) {
            Ok(bytes) => bytes,
            Err(_) => return bad_gateway("the function returned an invalid base64 body"),
        },
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Some(headers) = v.get("headers").and_then(Value::as_object) {
        for (k, val) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                val.as_str().map(HeaderValue::from_str),
            ) {
                h.insert(name, value);
            }
        }
    }
    if let Some(multi) = v.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vals) in multi {
            let Ok(name) = axum::http::HeaderName::from_bytes(k.as_bytes()) else {
                continue;
            };
            for val in vals.as_array().into_iter().flatten() {
                if let Some(Ok(value)) = val.as_str().map(HeaderValue::from_str)
                    && !h.get_all(&name).iter().any(|existing| existing == value)
                {
                    h.append(name.clone(), value);
                }
            }
        }
    }
    for cookie in v
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::from_str) {
            h.append("set-cookie", value);
        }
    }
    if !h.contains_key("content-type") {
        h.insert("content-type", HeaderValue::from_static("application/json"));
    }
    response
}

fn bad_gateway(why: &str) -> Response {
    tracing::warn!("Function URL: {why}");
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({"Message": "Internal Server Error"})),
    )
        .into_response()
}

async fn function_url(
    State(rt): State<Arc<Runtime>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Function URLs accept payloads up to 6 MB.
    let Ok(body) = axum::body::to_bytes(body, 6 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body over 6 MB").into_response();
    };
    let event = function_url_event(
        parts.method.as_str(),
        &parts.uri,
        &parts.headers,
        &body,
        &peer.ip().to_string(),
        &rt.spec.region,
    );
    match rt.invoke(Bytes::from(event.to_string())).await {
        Ok(Outcome::Response { body, streaming }) => {
            let body = if streaming {
                streamed_body(&body).unwrap_or(body)
            } else {
                body
            };
            function_url_response(&body)
        }
        Ok(Outcome::Error {
            error_type,
            message,
        }) => bad_gateway(&format!("function error {error_type}: {message}")),
        Err(e) => bad_gateway(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_event_is_payload_2_0() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let uri: axum::http::Uri = "/status?require=ready&x=1&x=2".parse().unwrap();
        let e = function_url_event(
            "POST",
            &uri,
            &headers,
            b"{\"k\":1}",
            "127.0.0.1",
            "us-east-1",
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/status");
        assert_eq!(e["rawQueryString"], "require=ready&x=1&x=2");
        assert_eq!(e["queryStringParameters"]["require"], "ready");
        assert_eq!(e["queryStringParameters"]["x"], "1,2");
        assert_eq!(e["headers"]["x-multi"], "a,b");
        assert!(
            e["headers"].get("cookie").is_none(),
            "cookies move to `cookies`"
        );
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(e["body"], "{\"k\":1}");
        assert_eq!(e["isBase64Encoded"], false);

        let mut bin = HeaderMap::new();
        bin.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let e = function_url_event(
            "PUT",
            &"/b".parse().unwrap(),
            &bin,
            &[0xff, 0, 1],
            "::1",
            "us-east-1",
        );
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(
            B64.decode(e["body"].as_str().unwrap()).unwrap(),
            [0xff, 0, 1]
        );
        assert!(e.get("queryStringParameters").is_none());
    }

    async fn parts(r: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn function_url_response_mapping() {
        // No statusCode: the whole payload is the JSON body.
        let (s, h, b) = parts(function_url_response(br#"{"status":"ready"}"#)).await;
        assert_eq!(
            (s, h["content-type"].to_str().unwrap()),
            (StatusCode::OK, "application/json")
        );
        assert_eq!(b, br#"{"status":"ready"}"#);

        let payload = json!({
            "statusCode": 503,
            "headers": {"content-type": "text/plain", "etag": "\"abc\""},
            "multiValueHeaders": {"vary": ["accept", "origin"]},
            "cookies": ["a=1", "b=2"],
            "body": B64.encode("not ready"),
            "isBase64Encoded": true,
        });
        let (s, h, b) = parts(function_url_response(payload.to_string().as_bytes())).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["etag"], "\"abc\"");
        assert_eq!(h.get_all("vary").iter().count(), 2);
        assert_eq!(
            h.get_all("set-cookie").iter().collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(b, b"not ready");

        for bad in [
            &b"not json"[..],
            br#"{"statusCode": 99999}"#,
            br#"{"statusCode": 200, "body": "%%", "isBase64Encoded": true}"#,
        ] {
            let (s, _, _) = parts(function_url_response(bad)).await;
            assert_eq!(s, StatusCode::BAD_GATEWAY);
        }
    }

    #[test]
    fn streamed_responses_are_buffered() {
        let mut raw = br#"{"statusCode":201,"headers":{"x":"y"}}"#.to_vec();
        raw.extend([0u8; 8]);
        raw.extend(b"hello");
        let v: Value = serde_json::from_slice(&streamed_body(&raw).unwrap()).unwrap();
        assert_eq!(v["statusCode"], 201);
        assert_eq!(v["body"], "hello");
        assert!(streamed_body(b"no separator").is_none());
    }
}
