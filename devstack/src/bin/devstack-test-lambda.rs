//! A tiny Lambda for kiln-devstack's own tests of its local Lambda runtime, so they do not
//! depend on kiln's real functions. Built on the same crates (`lambda_runtime`,
//! `lambda_http`) as kiln's Lambdas.
//!
//! `TEST_LAMBDA_MODE`: unset → JSON echo (`{"fail": true}` returns an error,
//! `{"exit": true}` crashes, `{"sleepMs": n}` sleeps); `http` → a Function URL handler that
//! echoes the request; `exit-at-init` → exits before polling.

use base64::Engine;
use lambda_http::RequestExt;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::var("TEST_LAMBDA_MODE").as_deref() {
        Ok("http") => lambda_http::run(lambda_http::service_fn(http_handler)).await,
        Ok("exit-at-init") => {
            eprintln!("configuration missing: exiting during init on purpose");
            std::process::exit(4)
        }
        _ => lambda_runtime::run(service_fn(echo)).await,
    }
}

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if let Some(ms) = payload["sleepMs"].as_u64() {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if payload["fail"] == true {
        return Err("failure requested by the event".into());
    }
    if payload["exit"] == true {
        eprintln!("crashing on purpose");
        std::process::exit(3);
    }
    let env = |k: &str| std::env::var(k).ok();
    Ok(json!({
        "echo": payload,
        "requestId": ctx.request_id,
        "functionArn": ctx.invoked_function_arn,
        "deadlineMs": ctx.deadline,
        "functionName": env("AWS_LAMBDA_FUNCTION_NAME"),
        "memory": env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "custom": env("KILN_TEST_VALUE"),
        "pid": std::process::id(),
    }))
}

async fn http_handler(
    req: lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, Error> {
    let status: u16 = req
        .query_string_parameters()
        .first("status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.query_string_parameters().first("q"),
        "bodyBase64": base64::engine::general_purpose::STANDARD.encode(req.body().as_ref()),
        "xTest": header("x-test"),
        "cookie": header("cookie"),
    });
    Ok(lambda_http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-from-lambda", "yes")
        .header("set-cookie", "session=abc; Path=/")
        .body(lambda_http::Body::from(body.to_string()))?)
}
