//! HTTP routes: the Image Builder REST-JSON operations (methods and paths as in
//! aws-sdk-imagebuilder's request serializers) and the `/_kiln/` control API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    BuildPlan, EventFaults, ImageBuilderError, ImageView, ListOrder, PipelineSpec, Shared, Timing,
};

/// An error as the AWS SDK parses it: `x-amzn-ErrorType` header plus `{"message"}`.
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
            ImageBuilderError::AlreadyExists(_) => {
                (StatusCode::CONFLICT, "ResourceAlreadyExistsException")
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
        r.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.kind));
        r
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(mut body: Value) -> ApiResult {
    body["requestId"] = uuid::Uuid::new_v4().to_string().into();
    Ok(axum::Json(body).into_response())
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

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/CreateImageRecipe", put(create_image_recipe))
        .route("/GetImageRecipe", get(get_image_recipe))
        .route(
            "/CreateInfrastructureConfiguration",
            put(create_infrastructure),
        )
        .route("/GetInfrastructureConfiguration", get(get_infrastructure))
        .route("/CreateDistributionConfiguration", put(create_distribution))
        .route("/GetDistributionConfiguration", get(get_distribution))
        .route("/CreateImagePipeline", put(create_image_pipeline))
        .route("/GetImagePipeline", get(get_image_pipeline))
        .route("/ListImagePipelines", post(list_image_pipelines))
        .route("/ListImagePipelineImages", post(list_image_pipeline_images))
        .route("/GetImage", get(get_image))
        .route("/StartImagePipelineExecution", put(start_execution))
        .route("/CancelImageCreation", put(cancel_image_creation))
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
#[serde(rename_all = "camelCase")]
struct ComponentRef {
    component_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateImageRecipe {
    name: String,
    semantic_version: String,
    parent_image: String,
    components: Vec<ComponentRef>,
    #[serde(default)]
    description: Option<String>,
    client_token: Option<String>,
}

async fn create_image_recipe(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateImageRecipe = parse(&body)?;
    if req.components.is_empty() {
        return Err(ApiError::invalid(
            "components must name at least one component",
        ));
    }
    let arn = s.create_recipe(
        &req.name,
        &req.semantic_version,
        &req.parent_image,
        req.components
            .into_iter()
            .map(|c| c.component_arn)
            .collect(),
        req.description,
    )?;
    ok(json!({"clientToken": req.client_token, "imageRecipeArn": arn}))
}

async fn get_image_recipe(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = query_param(&q, "imageRecipeArn")?;
    let recipe = s.lock().recipes.get(arn).map(|r| r.to_json());
    match recipe {
        Some(r) => ok(json!({"imageRecipe": r})),
        None => {
            Err(ImageBuilderError::NotFound(format!("image recipe {arn} does not exist")).into())
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInfrastructure {
    name: String,
    #[serde(default)]
    instance_types: Vec<String>,
    instance_profile_name: String,
    client_token: Option<String>,
}

async fn create_infrastructure(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateInfrastructure = parse(&body)?;
    let arn = s.create_infrastructure(&req.name, req.instance_types, &req.instance_profile_name)?;
    ok(json!({"clientToken": req.client_token, "infrastructureConfigurationArn": arn}))
}

async fn get_infrastructure(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = query_param(&q, "infrastructureConfigurationArn")?;
    let found = s.lock().infrastructures.get(arn).map(|r| r.to_json());
    match found {
        Some(r) => ok(json!({"infrastructureConfiguration": r})),
        None => Err(ImageBuilderError::NotFound(format!(
            "infrastructure configuration {arn} does not exist"
        ))
        .into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmiDistribution {
    #[serde(default)]
    ami_tags: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegionRef {
    region: String,
    #[serde(default)]
    ami_distribution_configuration: Option<AmiDistribution>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateDistribution {
    name: String,
    distributions: Vec<RegionRef>,
    client_token: Option<String>,
}

async fn create_distribution(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateDistribution = parse(&body)?;
    // kiln tags every region alike; the union keeps any region's tags.
    let mut tags = std::collections::BTreeMap::new();
    let mut regions = Vec::new();
    for d in req.distributions {
        if let Some(ami) = d.ami_distribution_configuration {
            tags.extend(ami.ami_tags);
        }
        regions.push(d.region);
    }
    let arn = s.create_distribution(&req.name, regions, tags)?;
    ok(json!({"clientToken": req.client_token, "distributionConfigurationArn": arn}))
}

async fn get_distribution(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = query_param(&q, "distributionConfigurationArn")?;
    let found = s.lock().distributions.get(arn).map(|r| r.to_json());
    match found {
        Some(r) => ok(json!({"distributionConfiguration": r})),
        None => Err(ImageBuilderError::NotFound(format!(
            "distribution configuration {arn} does not exist"
        ))
        .into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateImagePipeline {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    image_recipe_arn: Option<String>,
    #[serde(default)]
    container_recipe_arn: Option<String>,
    infrastructure_configuration_arn: String,
    #[serde(default)]
    distribution_configuration_arn: Option<String>,
    #[serde(default)]
    schedule: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    client_token: Option<String>,
}

async fn create_image_pipeline(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateImagePipeline = parse(&body)?;
    if req.container_recipe_arn.is_some() {
        return Err(ApiError::invalid(
            "container recipes are not supported by kiln's local Image Builder",
        ));
    }
    let recipe = req
        .image_recipe_arn
        .ok_or_else(|| ApiError::invalid("imageRecipeArn is required"))?;
    let enabled = match req.status.as_deref() {
        None | Some("ENABLED") => true,
        Some("DISABLED") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "status '{other}' is not ENABLED or DISABLED"
            )));
        }
    };
    let arn = s.create_pipeline(
        &req.name,
        req.description,
        &recipe,
        &req.infrastructure_configuration_arn,
        req.distribution_configuration_arn.as_deref(),
        req.schedule,
        enabled,
    )?;
    ok(json!({"clientToken": req.client_token, "imagePipelineArn": arn}))
}

async fn get_image_pipeline(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = query_param(&q, "imagePipelineArn")?;
    let found = s.lock().pipelines.get(arn).map(|p| p.to_json());
    match found {
        Some(p) => ok(json!({"imagePipeline": p})),
        None => {
            Err(ImageBuilderError::NotFound(format!("image pipeline {arn} does not exist")).into())
        }
    }
}

#[derive(Deserialize)]
struct Filter {
    name: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListImagePipelines {
    #[serde(default)]
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// Offset pagination with an opaque-looking token; page size 1..=25 as in the API model.
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

async fn list_image_pipelines(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListImagePipelines = parse(&body)?;
    for f in &req.filters {
        if ![
            "name",
            "status",
            "imageRecipeArn",
            "infrastructureConfigurationArn",
            "distributionConfigurationArn",
            "description",
        ]
        .contains(&f.name.as_str())
        {
            return Err(ApiError::invalid(format!(
                "unsupported filter name '{}'",
                f.name
            )));
        }
    }
    let pipelines: Vec<Value> = s
        .lock()
        .pipelines
        .values()
        .filter(|p| {
            req.filters.iter().all(|f| {
                let value = match f.name.as_str() {
                    "name" => Some(p.name.clone()),
                    "status" => Some(if p.enabled { "ENABLED" } else { "DISABLED" }.to_owned()),
                    "imageRecipeArn" => Some(p.recipe_arn.clone()),
                    "infrastructureConfigurationArn" => Some(p.infrastructure_arn.clone()),
                    "distributionConfigurationArn" => p.distribution_arn.clone(),
                    _ => p.description.clone(),
                };
                value.is_some_and(|v| f.values.contains(&v))
            })
        })
        .map(|p| p.to_json())
        .collect();
    let (items, next) = page(pipelines, req.max_results, req.next_token.as_deref())?;
    ok(json!({"imagePipelineList": items, "nextToken": next}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListImagePipelineImages {
    image_pipeline_arn: String,
    #[serde(default)]
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

async fn list_image_pipeline_images(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListImagePipelineImages = parse(&body)?;
    for f in &req.filters {
        if !["name", "version"].contains(&f.name.as_str()) {
            return Err(ApiError::invalid(format!(
                "unsupported filter name '{}' (name, version)",
                f.name
            )));
        }
    }
    let summaries = {
        let st = s.lock();
        let pipeline = st.pipelines.get(&req.image_pipeline_arn).ok_or_else(|| {
            ImageBuilderError::NotFound(format!(
                "image pipeline {} does not exist",
                req.image_pipeline_arn
            ))
        })?;
        let order = s.list_order(&st, &pipeline.name);
        let mut images: Vec<_> = st
            .images
            .iter()
            .filter(|i| i.pipeline_arn == req.image_pipeline_arn)
            .filter(|i| {
                req.filters.iter().all(|f| match f.name.as_str() {
                    "name" => f.values.contains(&i.recipe.name),
                    _ => f.values.contains(&i.version()) || f.values.contains(&i.recipe.version),
                })
            })
            .collect();
        // `images` is in creation order (oldest first).
        if order == ListOrder::NewestFirst {
            images.reverse();
        }
        images
            .into_iter()
            .map(|i| i.summary_json())
            .collect::<Vec<_>>()
    };
    let (items, next) = page(summaries, req.max_results, req.next_token.as_deref())?;
    ok(json!({"imageSummaryList": items, "nextToken": next}))
}

async fn get_image(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = query_param(&q, "imageBuildVersionArn")?;
    if kiln_shared::ImageArn::parse(arn).is_none() {
        return Err(ApiError::invalid(format!(
            "'{arn}' is not an image build version ARN"
        )));
    }
    let found = s
        .lock()
        .images
        .iter()
        .find(|i| i.arn == arn)
        .map(|i| i.image_json());
    match found {
        Some(image) => ok(json!({"image": image})),
        None => Err(ImageBuilderError::NotFound(format!("image {arn} does not exist")).into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartExecution {
    image_pipeline_arn: String,
    client_token: String,
}

async fn start_execution(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: StartExecution = parse(&body)?;
    // Idempotency: a retried request with the same token gets the same build.
    let key = format!("start:{}:{}", req.image_pipeline_arn, req.client_token);
    let known = s.lock().client_tokens.get(&key).cloned();
    let arn = match known {
        Some(arn) => arn,
        None => {
            let arn = s.start_build(&req.image_pipeline_arn, true)?;
            s.lock().client_tokens.insert(key, arn.clone());
            arn
        }
    };
    ok(json!({"clientToken": req.client_token, "imageBuildVersionArn": arn}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelImage {
    image_build_version_arn: String,
    client_token: String,
}

async fn cancel_image_creation(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CancelImage = parse(&body)?;
    s.cancel(&req.image_build_version_arn)?;
    ok(
        json!({"clientToken": req.client_token, "imageBuildVersionArn": req.image_build_version_arn}),
    )
}

// ---- control API -------------------------------------------------------------------

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
    s.add_sink(super::SinkTarget::Http(req.url));
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
