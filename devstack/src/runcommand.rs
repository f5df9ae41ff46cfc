//! A local SSM endpoint for `kiln test`: SSM Run Command on the instances of the local
//! EC2 (moto), which launches them but runs nothing.
//!
//! It answers the four Run Command operations `kiln test` (and the AWS CLI) use —
//! DescribeInstanceInformation, SendCommand, GetCommandInvocation, CancelCommand — in
//! the SSM JSON protocol, and forwards every other SSM call to moto, so one
//! `AWS_ENDPOINT_URL_SSM` serves parameters and commands alike. An instance is online
//! while moto says it runs. A command "runs" the outcome registered for its shell line
//! (the stack registers each preset's validation tests with their expected output);
//! fault knobs fail chosen tests, hang every command or keep agents offline (Rust
//! methods, or `PUT /_kiln/faults`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a command line does when run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The validation test's name (what [`Faults::fail_tests`] names).
    pub name: String,
    pub exit_code: i32,
    pub stdout: String,
}

/// Fault knobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// These tests (by name) print something else and exit 1.
    pub fail_tests: Vec<String>,
    /// Commands never finish (SSM then times them out at their `executionTimeout`).
    pub hang: bool,
    /// No instance's agent registers.
    pub agent_offline: bool,
}

struct Command {
    instance: String,
    outcome: Option<Outcome>,
    hang: bool,
    sent: Instant,
    execution_timeout: Duration,
    cancelled: bool,
}

struct Shared {
    moto: String,
    http: reqwest::Client,
    /// How long a command takes.
    run_time: Duration,
    outcomes: Mutex<BTreeMap<String, Outcome>>,
    faults: Mutex<Faults>,
    commands: Mutex<BTreeMap<String, Command>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running local SSM endpoint; dropping it stops it.
pub struct LocalRunCommand {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: crate::serve::Server,
}

impl LocalRunCommand {
    /// In front of moto at `moto` (its SSM for everything else, its EC2 for instances).
    pub async fn start(moto: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            moto: moto.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            run_time: Duration::from_millis(300),
            outcomes: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults::default()),
            commands: Mutex::new(BTreeMap::new()),
        });
        let router = Router::new()
            .route("/_kiln/faults", put(put_faults).get(get_faults))
            .fallback(any(ssm))
            .with_state(shared.clone());
        let server = crate::serve::Server::spawn(listener, router, "local SSM Run Command");
        Ok(LocalRunCommand {
            shared,
            addr,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What running `line` does.
    pub fn register(&self, line: &str, outcome: Outcome) {
        lock(&self.shared.outcomes).insert(line.to_owned(), outcome);
    }

    /// Each preset's validation tests, as `kiln test` sends them, pass.
    pub fn register_presets(&self, presets: &[kiln_shared::Preset]) {
        for test in presets.iter().flat_map(|p| &p.validation_tests) {
            let stdout = test
                .expected
                .clone()
                .or_else(|| test.expected_contains.clone())
                .unwrap_or_default();
            self.register(
                &kiln_shared::validation::remote_command(test),
                Outcome {
                    name: test.name.clone(),
                    exit_code: 0,
                    stdout: format!("{stdout}\n"),
                },
            );
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Instances commands were sent to, in the order of the commands.
    pub fn commanded_instances(&self) -> Vec<String> {
        lock(&self.shared.commands)
            .values()
            .map(|c| c.instance.clone())
            .collect()
    }
}

async fn put_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            *lock(&s.faults) = f;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&s.faults).clone()).into_response()
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        json!({ "__type": kind, "message": message }).to_string(),
    )
        .into_response()
}

fn answer(v: Value) -> Response {
    (
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

/// The region of a SigV4-signed request (its credential scope).
fn region_of(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or(crate::emulators::DEFAULT_REGION)
        .to_owned()
}

async fn ssm(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let region = region_of(&headers);
    match target.as_str() {
        "AmazonSSM.DescribeInstanceInformation" => describe(&s, &region, &request).await,
        "AmazonSSM.SendCommand" => send(&s, &region, &request).await,
        "AmazonSSM.GetCommandInvocation" => invocation(&s, &request),
        "AmazonSSM.CancelCommand" => cancel(&s, &request),
        _ => forward(&s, method, &uri, &headers, body).await,
    }
}

/// moto's EC2 state of each instance in `region`.
async fn running(s: &Shared, region: &str, ids: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for id in ids {
        let params = [
            ("Action", "DescribeInstances"),
            ("Version", "2016-11-15"),
            ("InstanceId.1", id.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let xml = match crate::imagebuilder::ec2::call(&s.http, &s.moto, region, &params).await {
            Ok(xml) => xml,
            Err(e) if e.contains("InvalidInstanceID") => continue,
            Err(e) => return Err(e),
        };
        if xml.contains("<name>running</name>") {
            out.push(id.clone());
        }
    }
    Ok(out)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn describe(s: &Shared, region: &str, request: &Value) -> Response {
    let ids: Vec<String> = request["Filters"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            request["InstanceInformationFilterList"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter(|f| f["Key"] == "InstanceIds" || f["key"] == "InstanceIds")
        .flat_map(|f| {
            strings(if f["Values"].is_null() {
                &f["valueSet"]
            } else {
                &f["Values"]
            })
        })
        .collect();
    if lock(&s.faults).agent_offline {
        return answer(json!({ "InstanceInformationList": [] }));
    }
    match running(s, region, &ids).await {
        Ok(online) => answer(json!({
            "InstanceInformationList": online.iter().map(|id| json!({
                "InstanceId": id,
                "PingStatus": "Online",
                "PlatformType": "Linux",
                "AgentVersion": "3.3.0.0",
                "LastPingDateTime": chrono::Utc::now().timestamp() as f64,
            })).collect::<Vec<_>>()
        })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &e),
    }
}

async fn send(s: &Shared, region: &str, request: &Value) -> Response {
    if request["DocumentName"] != "AWS-RunShellScript" {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidDocument",
            "the local SSM endpoint runs AWS-RunShellScript only",
        );
    }
    let ids = strings(&request["InstanceIds"]);
    let online = match running(s, region, &ids).await {
        Ok(online) => online,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &e),
    };
    let faults = lock(&s.faults).clone();
    if ids.is_empty() || online.len() != ids.len() || faults.agent_offline {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInstanceId",
            "Instances [[...]] not in a valid state for account 123456789012",
        );
    }
    let line = strings(&request["Parameters"]["commands"]).join("\n");
    let execution_timeout = strings(&request["Parameters"]["executionTimeout"])
        .first()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3600);
    let outcome = lock(&s.outcomes).get(&line).cloned().map(|mut o| {
        if faults.fail_tests.contains(&o.name) {
            o.exit_code = 1;
            o.stdout = format!("kiln dev: simulated failure of '{}'\n", o.name);
        }
        o
    });
    let id = uuid::Uuid::new_v4().to_string();
    let mut commands = lock(&s.commands);
    for instance in &ids {
        commands.insert(
            format!("{id}/{instance}"),
            Command {
                instance: instance.clone(),
                outcome: outcome.clone(),
                hang: faults.hang,
                sent: Instant::now(),
                execution_timeout: Duration::from_secs(execution_timeout),
                cancelled: false,
            },
        );
    }
    answer(json!({ "Command": {
        "CommandId": id,
        "DocumentName": "AWS-RunShellScript",
        "InstanceIds": ids,
        "Parameters": request["Parameters"],
        "Status": "Pending",
        "RequestedDateTime": chrono::Utc::now().timestamp() as f64,
        "TargetCount": ids.len(),
    }}))
}

fn invocation(s: &Shared, request: &Value) -> Response {
    let command_id = request["CommandId"].as_str().unwrap_or_default();
    let instance = request["InstanceId"].as_str().unwrap_or_default();
    let commands = lock(&s.commands);
    let Some(c) = commands.get(&format!("{command_id}/{instance}")) else {
        return error(StatusCode::BAD_REQUEST, "InvocationDoesNotExist", "");
    };
    let elapsed = c.sent.elapsed();
    let (status, code, stdout) = if c.cancelled {
        ("Cancelled", -1, String::new())
    } else if c.hang || elapsed < s.run_time {
        if c.hang && elapsed >= c.execution_timeout {
            ("TimedOut", -1, String::new())
        } else {
            ("InProgress", -1, String::new())
        }
    } else {
        match &c.outcome {
            Some(o) if o.exit_code == 0 => ("Success", 0, o.stdout.clone()),
            Some(o) => ("Failed", o.exit_code, o.stdout.clone()),
            None => ("Failed", 127, String::new()),
        }
    };
    let stderr = if c.outcome.is_none() && status == "Failed" {
        "bash: line 1: command not found (the local SSM endpoint runs only registered commands)\n"
    } else {
        ""
    };
    answer(json!({
        "CommandId": command_id,
        "InstanceId": instance,
        "DocumentName": "AWS-RunShellScript",
        "Status": status,
        "StatusDetails": status,
        "ResponseCode": code,
        "StandardOutputContent": stdout,
        "StandardErrorContent": stderr,
        "ExecutionElapsedTime": format!("PT{:.3}S", elapsed.as_secs_f64()),
    }))
}

fn cancel(s: &Shared, request: &Value) -> Response {
    let command_id = request["CommandId"].as_str().unwrap_or_default();
    for (key, c) in lock(&s.commands).iter_mut() {
        if key.starts_with(&format!("{command_id}/")) {
            c.cancelled = true;
        }
    }
    answer(json!({}))
}

/// Any other SSM operation: moto's answer, as it gave it.
async fn forward(
    s: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!(
        "{}{}",
        s.moto,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = s.http.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(r) => {
            let status = r.status();
            let content_type =
                r.headers().get("content-type").cloned().unwrap_or_else(|| {
                    http::HeaderValue::from_static("application/x-amz-json-1.1")
                });
            let body = r.bytes().await.unwrap_or_default();
            (status, [("content-type", content_type)], body).into_response()
        }
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            "InternalServerError",
            &format!("moto unreachable: {e}"),
        ),
    }
}
