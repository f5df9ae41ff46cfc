//! The `/_kiln/` control API: the fault knobs, the clock and the resources of the Rust
//! convenience methods, over HTTP (for `kiln dev` and the standalone binary).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult, parse, query_param};
use crate::imagebuilder::{
    BuildPlan, EventFaults, ImageView, ListOrder, PipelineSpec, Shared, SinkTarget, Timing,
};

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_kiln/images", get(ctl_images))
        .route("/_kiln/events", get(ctl_events))
        .route("/_kiln/pipelines", post(ctl_register))
        .route("/_kiln/pipelines/{name}/start", post(ctl_start))
        .route("/_kiln/pipelines/{name}/next-build", post(ctl_next_build))
        .route(
            "/_kiln/pipelines/{name}/event-faults",
            put(ctl_pipeline_faults),
        )
        .route(
            "/_kiln/pipelines/{name}/list-order",
            put(ctl_pipeline_order),
        )
        .route("/_kiln/event-faults", put(ctl_faults))
        .route("/_kiln/list-order", put(ctl_order))
        .route("/_kiln/timing", put(ctl_timing))
        .route("/_kiln/step", post(ctl_step))
        .route("/_kiln/cancel", post(ctl_cancel))
        .route("/_kiln/sinks", post(ctl_sink))
        .route("/_kiln/unavailable", post(ctl_unavailable))
        .route("/_kiln/reset", post(ctl_reset))
}

fn json_ok(v: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

async fn ctl_images(State(s): State<Arc<Shared>>) -> ApiResult {
    let images: Vec<ImageView> = s.lock().images.iter().map(ImageView::from).collect();
    json_ok(images)
}

async fn ctl_events(State(s): State<Arc<Shared>>) -> ApiResult {
    json_ok(s.lock().log.clone())
}

async fn ctl_register(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let spec: PipelineSpec = parse(&body)?;
    let arn = s.register_pipeline(spec)?;
    json_ok(json!({"arn": arn}))
}

async fn ctl_start(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> ApiResult {
    let pipeline = s.pipeline_arn_by_name(&name)?;
    let arn = s.start_build(&pipeline, true)?;
    json_ok(json!({"arn": arn}))
}

async fn ctl_next_build(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let plan: BuildPlan = parse(&body)?;
    s.pipeline_arn_by_name(&name)?;
    s.knobs(&name, |k| k.next_builds.push_back(plan));
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn ctl_pipeline_faults(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let faults: Option<EventFaults> = parse(&body)?;
    s.knobs(&name, |k| k.events = faults);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn ctl_faults(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let faults: EventFaults = parse(&body)?;
    s.lock().global_events = faults;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    order: Option<ListOrder>,
}

async fn ctl_pipeline_order(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: OrderBody = parse(&body)?;
    s.knobs(&name, |k| k.list_order = req.order);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn ctl_order(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: OrderBody = parse(&body)?;
    s.lock().global_list_order = req.order.unwrap_or_default();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn ctl_timing(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let timing: Timing = parse(&body)?;
    s.lock().timing = timing;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn ctl_step(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let arn = query_param(&q, "arn")?;
    let state = s.advance(arn)?;
    json_ok(json!({"state": state}))
}

async fn ctl_cancel(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let arn = query_param(&q, "arn")?;
    s.cancel(arn)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkBody {
    url: String,
}

async fn ctl_sink(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: SinkBody = parse(&body)?;
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| ApiError::invalid(format!("sink url '{}': {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::invalid("sink url must be http(s)"));
    }
    s.add_sink(SinkTarget::Http(req.url));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnavailableBody {
    calls: u32,
}

async fn ctl_unavailable(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: UnavailableBody = parse(&body)?;
    s.lock().unavailable_calls = req.calls;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn ctl_reset(State(s): State<Arc<Shared>>) -> ApiResult {
    s.reset();
    Ok(StatusCode::NO_CONTENT.into_response())
}
