//! HTTP routes: the Image Builder REST-JSON operations (methods, paths and shapes as in
//! the service model, botocore's `imagebuilder/2019-12-02/service-2.json`, and
//! aws-sdk-imagebuilder's serializers) and the `/_kiln/` control API.
//!
//! - [`resources`]: recipes, infrastructure and distribution configurations, pipelines.
//! - [`images`]: images and builds (list, get, start, cancel).
//! - [`control`]: the `/_kiln/` knobs.

mod control;
mod images;
mod resources;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::arn::ArnKind;
use super::{ImageBuilderError, Shared};

/// An error as the AWS SDKs parse it: `x-amzn-ErrorType` header plus `{"message"}`, with
/// the HTTP status the service model gives the error shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidRequestException",
            message: message.into(),
        }
    }
}

impl From<ImageBuilderError> for ApiError {
    fn from(e: ImageBuilderError) -> Self {
        let (status, kind) = match &e {
            ImageBuilderError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            // 400 in the model (not 409).
            ImageBuilderError::AlreadyExists(_) => {
                (StatusCode::BAD_REQUEST, "ResourceAlreadyExistsException")
            }
            ImageBuilderError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidRequestException"),
            ImageBuilderError::InUse(_) => (StatusCode::BAD_REQUEST, "ResourceInUseException"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException"),
        };
        ApiError {
            status,
            kind,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(json!({"message": self.message}))).into_response();
        let h = r.headers_mut();
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(self.kind));
        request_id_header(h, &uuid::Uuid::new_v4().to_string());
        r
    }
}

fn request_id_header(h: &mut axum::http::HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert("x-amzn-RequestId", v);
    }
}

type ApiResult = Result<Response, ApiError>;

/// A successful answer: `requestId` in the body and the `x-amzn-RequestId` header, and
/// no `null` members (the service leaves absent members out, e.g. `nextToken` on the
/// last page).
fn ok(mut body: Value) -> ApiResult {
    let id = uuid::Uuid::new_v4().to_string();
    body["requestId"] = id.clone().into();
    strip_nulls(&mut body);
    let mut r = axum::Json(body).into_response();
    request_id_header(r.headers_mut(), &id);
    Ok(r)
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Operations whose input is all optional may arrive with an empty body.
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
}

fn unavailable(shared: &Shared) -> Result<(), ApiError> {
    if shared.take_unavailable() {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "ServiceUnavailableException",
            message: "injected fault: service unavailable".into(),
        });
    }
    Ok(())
}

fn query_param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    q.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("the query parameter {name} is required")))
}

/// An ARN parameter checked against its model pattern; a mismatch is
/// `InvalidParameterValueException` worded as the service words it.
fn arn_param<'a>(param: &str, value: &'a str, kind: ArnKind) -> Result<&'a str, ApiError> {
    if kind.matches(value) {
        return Ok(value);
    }
    Err(ApiError {
        status: StatusCode::BAD_REQUEST,
        kind: "InvalidParameterValueException",
        message: format!(
            "The value supplied for parameter '{param}' is not valid. '{param}' must match pattern {}",
            kind.pattern()
        ),
    })
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let aws = Router::new()
        .route("/CreateImageRecipe", put(resources::create_image_recipe))
        .route("/GetImageRecipe", get(resources::get_image_recipe))
        .route("/ListImageRecipes", post(resources::list_image_recipes))
        .route(
            "/CreateInfrastructureConfiguration",
            put(resources::create_infrastructure),
        )
        .route(
            "/GetInfrastructureConfiguration",
            get(resources::get_infrastructure),
        )
        .route(
            "/ListInfrastructureConfigurations",
            post(resources::list_infrastructures),
        )
        .route(
            "/CreateDistributionConfiguration",
            put(resources::create_distribution),
        )
        .route(
            "/GetDistributionConfiguration",
            get(resources::get_distribution),
        )
        .route(
            "/ListDistributionConfigurations",
            post(resources::list_distributions),
        )
        .route(
            "/CreateImagePipeline",
            put(resources::create_image_pipeline),
        )
        .route("/GetImagePipeline", get(resources::get_image_pipeline))
        .route("/ListImagePipelines", post(resources::list_image_pipelines))
        .route(
            "/ListImagePipelineImages",
            post(images::list_image_pipeline_images),
        )
        .route("/ListImages", post(images::list_images))
        .route(
            "/ListImageBuildVersions",
            post(images::list_image_build_versions),
        )
        .route("/GetImage", get(images::get_image))
        .route("/StartImagePipelineExecution", put(images::start_execution))
        .route("/CreateImage", put(images::create_image))
        .route("/CancelImageCreation", put(images::cancel_image_creation));
    aws.merge(control::router())
        .fallback(any(unknown_operation))
        .with_state(shared)
}

async fn unknown_operation(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "UnknownOperationException",
        message: format!(
            "{} is not an operation kiln's local Image Builder implements (see devstack/README.md)",
            uri.path()
        ),
    }
}

#[derive(Deserialize)]
struct Filter {
    name: String,
    #[serde(default)]
    values: Vec<String>,
}

/// Rejects filter names the operation does not document.
fn check_filters(filters: &[Filter], allowed: &[&str]) -> Result<(), ApiError> {
    match filters.iter().find(|f| !allowed.contains(&f.name.as_str())) {
        Some(f) => Err(ApiError::invalid(format!(
            "unsupported filter name '{}' ({})",
            f.name,
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Whether every filter holds, `field` giving the item's value for a filter name.
fn filters_match<'a>(filters: &[Filter], field: impl Fn(&str) -> Option<&'a str>) -> bool {
    filters
        .iter()
        .all(|f| field(&f.name).is_some_and(|v| f.values.iter().any(|want| want == v)))
}

/// `owner` of ListImages / ListImageRecipes: the model's `Ownership` enum. Only `Self`
/// (the default) has resources here.
fn own_resources(owner: Option<&str>) -> Result<bool, ApiError> {
    match owner {
        None | Some("Self") => Ok(true),
        Some("Shared" | "Amazon" | "ThirdParty" | "AWSMarketplace") => Ok(false),
        Some(other) => Err(ApiError::invalid(format!(
            "owner '{other}' is not one of Self, Shared, Amazon, ThirdParty, AWSMarketplace"
        ))),
    }
}

/// Offset pagination with an opaque-looking token; page size 1..=25 as the API
/// reference documents for these lists. The last page has no `nextToken`.
fn page<T>(
    items: Vec<T>,
    max: Option<i64>,
    token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let size = match max {
        None => 25,
        Some(n) if (1..=25).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "maxResults {n} is outside 1..25"
            )));
        }
    };
    let start = match token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("kiln-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or(ApiError {
                status: StatusCode::BAD_REQUEST,
                kind: "InvalidPaginationTokenException",
                message: format!("invalid nextToken '{t}'"),
            })?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("kiln-page-{end}"));
    Ok((
        items.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

/// The common input of the List* operations.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    #[serde(default)]
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

/// One page of `items` as `{<list_member>: [...], nextToken?}`.
fn list_page(list_member: &str, items: Vec<Value>, req: &ListInput) -> ApiResult {
    let (items, next) = page(items, req.max_results, req.next_token.as_deref())?;
    ok(json!({list_member: items, "nextToken": next}))
}
