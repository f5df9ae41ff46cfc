//! Recipes, infrastructure and distribution configurations, pipelines: Create, Get and
//! List operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ListInput, arn_param, check_filters, filters_match, list_page, ok,
    own_resources, parse, query_param, unavailable,
};
use crate::imagebuilder::arn::ArnKind;
use crate::imagebuilder::{ImageBuilderError, Shared};

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

pub(super) async fn create_image_recipe(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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

pub(super) async fn get_image_recipe(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = arn_param(
        "imageRecipeArn",
        query_param(&q, "imageRecipeArn")?,
        ArnKind::ImageRecipe,
    )?;
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

pub(super) async fn create_infrastructure(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateInfrastructure = parse(&body)?;
    let arn = s.create_infrastructure(&req.name, req.instance_types, &req.instance_profile_name)?;
    ok(json!({"clientToken": req.client_token, "infrastructureConfigurationArn": arn}))
}

pub(super) async fn get_infrastructure(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = arn_param(
        "infrastructureConfigurationArn",
        query_param(&q, "infrastructureConfigurationArn")?,
        ArnKind::InfrastructureConfiguration,
    )?;
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
    ami_tags: BTreeMap<String, String>,
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

pub(super) async fn create_distribution(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateDistribution = parse(&body)?;
    // kiln tags every region alike; the union keeps any region's tags.
    let mut tags = BTreeMap::new();
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

pub(super) async fn get_distribution(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = arn_param(
        "distributionConfigurationArn",
        query_param(&q, "distributionConfigurationArn")?,
        ArnKind::DistributionConfiguration,
    )?;
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

pub(super) async fn create_image_pipeline(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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
    arn_param("imageRecipeArn", &recipe, ArnKind::ImageRecipe)?;
    arn_param(
        "infrastructureConfigurationArn",
        &req.infrastructure_configuration_arn,
        ArnKind::InfrastructureConfiguration,
    )?;
    if let Some(d) = &req.distribution_configuration_arn {
        arn_param(
            "distributionConfigurationArn",
            d,
            ArnKind::DistributionConfiguration,
        )?;
    }
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

pub(super) async fn get_image_pipeline(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = arn_param(
        "imagePipelineArn",
        query_param(&q, "imagePipelineArn")?,
        ArnKind::ImagePipeline,
    )?;
    let found = s.lock().pipelines.get(arn).map(|p| p.to_json());
    match found {
        Some(p) => ok(json!({"imagePipeline": p})),
        None => {
            Err(ImageBuilderError::NotFound(format!("image pipeline {arn} does not exist")).into())
        }
    }
}

pub(super) async fn list_image_pipelines(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListInput = parse(&body)?;
    check_filters(
        &req.filters,
        &[
            "name",
            "status",
            "imageRecipeArn",
            "infrastructureConfigurationArn",
            "distributionConfigurationArn",
            "description",
        ],
    )?;
    let pipelines: Vec<Value> = s
        .lock()
        .pipelines
        .values()
        .filter(|p| {
            filters_match(&req.filters, |name| match name {
                "name" => Some(p.name.as_str()),
                "status" => Some(if p.enabled { "ENABLED" } else { "DISABLED" }),
                "imageRecipeArn" => Some(p.recipe_arn.as_str()),
                "infrastructureConfigurationArn" => Some(p.infrastructure_arn.as_str()),
                "distributionConfigurationArn" => p.distribution_arn.as_deref(),
                _ => p.description.as_deref(),
            })
        })
        .map(|p| p.to_json())
        .collect();
    list_page("imagePipelineList", pipelines, &req)
}

pub(super) async fn list_image_recipes(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListInput = parse(&body)?;
    check_filters(&req.filters, &["name", "parentImage", "platform"])?;
    let own = own_resources(req.owner.as_deref())?;
    let recipes: Vec<Value> = s
        .lock()
        .recipes
        .values()
        .filter(|_| own)
        .filter(|r| {
            filters_match(&req.filters, |name| match name {
                "name" => Some(r.name.as_str()),
                "parentImage" => Some(r.parent_image.as_str()),
                _ => Some("Linux"),
            })
        })
        .map(|r| r.summary_json())
        .collect();
    list_page("imageRecipeSummaryList", recipes, &req)
}

pub(super) async fn list_infrastructures(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListInput = parse(&body)?;
    check_filters(&req.filters, &["name"])?;
    let items: Vec<Value> = s
        .lock()
        .infrastructures
        .values()
        .filter(|i| filters_match(&req.filters, |_| Some(i.name.as_str())))
        .map(|i| i.summary_json())
        .collect();
    list_page("infrastructureConfigurationSummaryList", items, &req)
}

pub(super) async fn list_distributions(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListInput = parse(&body)?;
    check_filters(&req.filters, &["name"])?;
    let items: Vec<Value> = s
        .lock()
        .distributions
        .values()
        .filter(|d| filters_match(&req.filters, |_| Some(d.name.as_str())))
        .map(|d| d.summary_json())
        .collect();
    list_page("distributionConfigurationSummaryList", items, &req)
}
