//! The local Lambda runtime with a real `lambda_runtime` / `lambda_http` binary.

use std::time::Duration;

use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, PipelineSpec, Timing};
use kiln_devstack::lambda::{FunctionSpec, LambdaError, LocalLambda};
use kiln_devstack::process::{ProcessError, pid_alive};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_devstack-test-lambda");

fn echo(name: &str) -> FunctionSpec {
    FunctionSpec::new(name, BIN).env("KILN_TEST_VALUE", "from-spec")
}

async fn wait_dead(pid: u32) -> bool {
    for _ in 0..50 {
        if !pid_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_an_unmodified_lambda_binary() {
    let lambda = LocalLambda::start(echo("echo")).await.unwrap();
    let out = lambda.invoke(&json!({"hello": "world"})).await.unwrap();
    assert_eq!(out["echo"], json!({"hello": "world"}));
    assert_eq!(out["functionName"], "echo");
    assert_eq!(
        out["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:echo"
    );
    assert_eq!(out["memory"], "128");
    assert_eq!(out["custom"], "from-spec");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = out["deadlineMs"].as_u64().unwrap();
    assert!(
        deadline > now_ms && deadline <= now_ms + 30_000,
        "{deadline} vs {now_ms}"
    );

    // A warm sandbox serves the next request; each request has its own id.
    let again = lambda.invoke(&json!({"n": 2})).await.unwrap();
    assert_eq!(again["pid"], out["pid"]);
    assert_ne!(again["requestId"], out["requestId"]);
    assert_eq!(lambda.invocation_count(), 2);

    // Function errors are reported with the runtime's error document; the sandbox lives on.
    let err = lambda.invoke(&json!({"fail": true})).await.unwrap_err();
    match &err {
        LambdaError::Function { message, .. } => {
            assert!(message.contains("failure requested"), "{err}")
        }
        other => panic!("expected a function error, got {other}"),
    }
    let after = lambda.invoke(&json!({})).await.unwrap();
    assert_eq!(after["pid"], out["pid"]);

    let pid = lambda.pid().unwrap();
    drop(lambda);
    assert!(wait_dead(pid).await, "Lambda process {pid} survived drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_timeout_replace_the_sandbox() {
    let lambda = LocalLambda::start(echo("fragile").timeout(Duration::from_millis(700)))
        .await
        .unwrap();
    let first = lambda.invoke(&json!({})).await.unwrap()["pid"].clone();

    let err = lambda.invoke(&json!({"exit": true})).await.unwrap_err();
    assert!(
        matches!(&err, LambdaError::Crashed { tail, .. } if tail.contains("crashing on purpose")),
        "{err}"
    );
    let second = lambda.invoke(&json!({})).await.unwrap()["pid"].clone();
    assert_ne!(first, second, "a crashed sandbox is replaced");

    let err = lambda.invoke(&json!({"sleepMs": 5000})).await.unwrap_err();
    assert!(matches!(err, LambdaError::Timeout { .. }), "{err}");
    let stale = second.as_u64().unwrap() as u32;
    assert!(
        wait_dead(stale).await,
        "timed-out sandbox {stale} still running"
    );
    let third = lambda.invoke(&json!({"ok": 1})).await.unwrap();
    assert_ne!(third["pid"], second);
    assert_eq!(third["echo"]["ok"], 1);
}

#[tokio::test]
async fn startup_failures_are_clear() {
    let err = LocalLambda::start(FunctionSpec::new("nope", "/nonexistent/bootstrap"))
        .await
        .unwrap_err();
    assert!(matches!(err, LambdaError::BinaryMissing(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/bootstrap"));

    let err = LocalLambda::start(echo("broken").env("TEST_LAMBDA_MODE", "exit-at-init"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LambdaError::Process(ProcessError::ExitedEarly { tail, .. }) if tail.contains("exiting during init")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_over_http() {
    let lambda = LocalLambda::start(echo("api")).await.unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(lambda.invoke_url())
        .json(&json!({"x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-amz-function-error").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["echo"]["x"], 1);

    let r = http
        .post(lambda.invoke_url())
        .json(&json!({"fail": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-amz-function-error"], "Unhandled");
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["errorMessage"]
            .as_str()
            .unwrap()
            .contains("failure requested")
    );

    let r = http
        .post(format!(
            "{}/2015-03-31/functions/other/invocations",
            lambda.endpoint()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_front_round_trips_http() {
    let lambda = LocalLambda::start(echo("web").env("TEST_LAMBDA_MODE", "http"))
        .await
        .unwrap();
    let url = lambda.serve_function_url(None).await.unwrap();
    let http = reqwest::Client::new();

    let r = http
        .get(format!(
            "{}/status/deep?q=hello%20world&status=201",
            url.url()
        ))
        .header("x-test", "t1")
        .header("cookie", "a=1; b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-from-lambda"], "yes");
    assert_eq!(r.headers()["set-cookie"], "session=abc; Path=/");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/status/deep");
    assert_eq!(v["query"], "hello world");
    assert_eq!(v["xTest"], "t1");
    assert_eq!(v["cookie"], "a=1; b=2");

    // Binary bodies travel base64-encoded and arrive intact.
    let body = vec![0u8, 159, 146, 150, 255];
    let r = http
        .post(format!("{}/ingest", url.url()))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["bodyBase64"].as_str().unwrap())
            .unwrap(),
        body
    );
    assert_eq!(v["method"], "POST");
}

/// A dropped Function URL front stops answering even on a client's kept-alive
/// connection (a "stopped origin"), and can be served again on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_stops_and_restarts_on_the_same_port() {
    let lambda = LocalLambda::start(echo("origin").env("TEST_LAMBDA_MODE", "http"))
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let front = lambda.serve_function_url(None).await.unwrap();
    let (url, port) = (front.url(), front.port());
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);

    drop(front);
    // Graceful shutdown closes the idle connection shortly after the drop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        http.get(&url).send().await.is_err(),
        "a stopped front must not answer"
    );

    let again = lambda.serve_function_url(Some(port)).await.unwrap();
    assert_eq!(again.url(), url);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
}

/// The local Image Builder's events reach a real Lambda binary through its invoke URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_builder_events_reach_the_lambda() {
    let lambda = LocalLambda::start(echo("ami-update-stand-in"))
        .await
        .unwrap();
    let ib = LocalImageBuilder::start(Options {
        timing: Timing::total(Duration::from_millis(600)),
        ..Default::default()
    })
    .await
    .unwrap();
    ib.add_http_sink(&lambda.invoke_url());
    ib.register_pipeline(PipelineSpec::new("spot-runner-x", ["us-east-1"]))
        .unwrap();
    let arn = ib.start_build("spot-runner-x").unwrap();
    ib.wait_terminal(&arn, Duration::from_secs(20))
        .await
        .unwrap();
    // BUILDING, TESTING, DISTRIBUTING, AVAILABLE (PENDING is not matched by the rule).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while lambda.invocation_count() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lambda.invocation_count(), 4);
}
