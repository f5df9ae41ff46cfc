//! The Lambda Runtime API the binary polls (`/2018-06-01/runtime/…`) and the Invoke API
//! (`/2015-03-31/functions/{name}/invocations`) on the same listener.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::LambdaError;
use super::sandbox::{Outcome, Runtime, now_ms};

pub(super) fn runtime_router(runtime: Arc<Runtime>) -> Router {
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

pub(super) fn trace_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        now_ms() / 1000,
        &hex[..24],
        &hex[16..32]
    )
}

/// `GET /next`: long-polls until an invocation is queued.
pub(super) async fn next(State(rt): State<Arc<Runtime>>) -> Response {
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

pub(super) async fn respond(
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

pub(super) async fn invocation_error(
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

pub(super) fn complete(rt: &Runtime, id: &str, outcome: Outcome) -> Response {
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
pub(super) fn diagnostic(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (
        v["errorType"].as_str().unwrap_or("Unknown").to_owned(),
        v["errorMessage"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    )
}

pub(super) async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> Response {
    let (error_type, message) = diagnostic(&body);
    tracing::warn!(function = %rt.spec.name, %error_type, %message, "init error");
    rt.lock_state().init_error = Some((error_type, message));
    rt.polled.notify_waiters();
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

/// The Lambda Invoke API (RequestResponse): 200 with the payload, or 200 with
/// `X-Amz-Function-Error: Unhandled` and the error document.
pub(super) async fn invoke_api(
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
pub(super) fn streamed_body(raw: &[u8]) -> Option<Bytes> {
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
