//! Images and their builds: ListImagePipelineImages, ListImages, ListImageBuildVersions,
//! GetImage (build version or wildcard version ARN), StartImagePipelineExecution,
//! CancelImageCreation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, Filter, arn_param, check_filters, filters_match, list_page, ok,
    own_resources, page, parse, query_param, unavailable,
};
use crate::imagebuilder::arn::ArnKind;
use crate::imagebuilder::model::Image;
use crate::imagebuilder::{ImageBuilderError, ListOrder, Shared};

/// Filters of ListImages and ListImageBuildVersions.
const IMAGE_FILTERS: [&str; 5] = ["name", "osVersion", "platform", "type", "version"];

fn image_field<'a>(i: &'a Image, name: &str, version: &'a str) -> Option<&'a str> {
    match name {
        "name" => Some(i.recipe.name.as_str()),
        "osVersion" | "platform" => Some("Linux"),
        "type" => Some("AMI"),
        _ => Some(version),
    }
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

pub(super) async fn list_image_pipeline_images(
    State(s): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult {
    unavailable(&s)?;
    let req: ListImagePipelineImages = parse(&body)?;
    arn_param(
        "imagePipelineArn",
        &req.image_pipeline_arn,
        ArnKind::ImagePipeline,
    )?;
    check_filters(&req.filters, &["name", "version"])?;
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListImages {
    #[serde(flatten)]
    list: super::ListInput,
    #[serde(default)]
    by_name: bool,
    #[serde(default)]
    #[allow(dead_code)] // accepted; there are no deprecated Amazon images here
    include_deprecated: bool,
}

/// ListImages: one `ImageVersion` per image version (`<name>/<x.y.z>`), or per name
/// with `byName` (ARN `…/x.x.x`, the newest version).
pub(super) async fn list_images(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: ListImages = parse(&body)?;
    check_filters(&req.list.filters, &IMAGE_FILTERS)?;
    if req.by_name && req.list.filters.iter().any(|f| f.name == "version") {
        return Err(ApiError::invalid(
            "byName cannot be combined with the version filter",
        ));
    }
    let own = own_resources(req.list.owner.as_deref())?;
    let versions: Vec<Value> = {
        let st = s.lock();
        // Keyed by version ARN (or name ARN): the first build made the version.
        let mut first: BTreeMap<String, &Image> = BTreeMap::new();
        for i in st.images.iter().filter(|_| own) {
            if !filters_match(&req.list.filters, |n| {
                image_field(i, n, i.recipe.version.as_str())
            }) {
                continue;
            }
            let key = if req.by_name {
                i.name_arn()
            } else {
                i.version_arn()
            };
            let entry = first.entry(key).or_insert(i);
            if req.by_name && semver(&i.recipe.version) > semver(&entry.recipe.version) {
                *entry = i;
            }
        }
        first
            .into_iter()
            .map(|(arn, i)| {
                let mut v = i.version_json();
                v["arn"] = arn.into();
                v
            })
            .collect()
    };
    list_page("imageVersionList", versions, &req.list)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListImageBuildVersions {
    #[serde(flatten)]
    list: super::ListInput,
    #[serde(default)]
    image_version_arn: Option<String>,
}

/// ListImageBuildVersions: the builds of one image version, or of every image when no
/// ARN is given; an unknown version is an empty list, not an error (API reference).
pub(super) async fn list_image_build_versions(
    State(s): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult {
    unavailable(&s)?;
    let req: ListImageBuildVersions = parse(&body)?;
    if let Some(arn) = &req.image_version_arn {
        arn_param("imageVersionArn", arn, ArnKind::ImageVersion)?;
    }
    check_filters(&req.list.filters, &IMAGE_FILTERS)?;
    let builds: Vec<Value> = s
        .lock()
        .images
        .iter()
        .filter(|i| {
            req.image_version_arn
                .as_ref()
                .is_none_or(|arn| *arn == i.version_arn())
        })
        .filter(|i| version_filter_matches(&req.list.filters, i))
        .map(|i| i.summary_json())
        .collect();
    list_page("imageSummaryList", builds, &req.list)
}

/// `version` filters on a build match `x.y.z` or `x.y.z/n`; the other filters as usual.
fn version_filter_matches(filters: &[Filter], i: &Image) -> bool {
    let full = i.version();
    filters.iter().all(|f| match f.name.as_str() {
        "version" => f
            .values
            .iter()
            .any(|v| *v == full || *v == i.recipe.version),
        name => image_field(i, name, &full).is_some_and(|got| f.values.iter().any(|v| v == got)),
    })
}

/// `x.y.z` as numbers; wildcards (`x`) as `None`.
fn semver(v: &str) -> Vec<Option<u64>> {
    v.split('.').map(|p| p.parse().ok()).collect()
}

pub(super) async fn get_image(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    unavailable(&s)?;
    let arn = arn_param(
        "imageBuildVersionArn",
        query_param(&q, "imageBuildVersionArn")?,
        ArnKind::ImageVersionOrBuildVersion,
    )?;
    let found = {
        let st = s.lock();
        if arn.matches('/').count() == 3 {
            st.images
                .iter()
                .find(|i| i.arn == arn)
                .map(Image::image_json)
        } else {
            // A version ARN, with or without wildcards: the newest matching AVAILABLE build.
            let (prefix, pattern) = arn.rsplit_once('/').unwrap_or((arn, ""));
            let want = semver(pattern);
            st.images
                .iter()
                .filter(|i| i.state == kiln_shared::ImageState::Available)
                .filter(|i| i.name_arn().rsplit_once('/').map(|(p, _)| p) == Some(prefix))
                .filter(|i| {
                    let have = semver(&i.recipe.version);
                    have.len() == want.len()
                        && want.iter().zip(&have).all(|(w, h)| w.is_none() || w == h)
                })
                .max_by_key(|i| (semver(&i.recipe.version), i.build))
                .map(Image::image_json)
        }
    };
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

pub(super) async fn start_execution(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: StartExecution = parse(&body)?;
    arn_param(
        "imagePipelineArn",
        &req.image_pipeline_arn,
        ArnKind::ImagePipeline,
    )?;
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
struct CreateImage {
    image_recipe_arn: String,
    infrastructure_configuration_arn: String,
    #[serde(default)]
    distribution_configuration_arn: Option<String>,
    client_token: String,
}

/// CreateImage: a build of a recipe with no pipeline (a one-off distribution).
pub(super) async fn create_image(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CreateImage = parse(&body)?;
    arn_param(
        "imageRecipeArn",
        &req.image_recipe_arn,
        ArnKind::ImageRecipe,
    )?;
    let key = format!("create:{}:{}", req.image_recipe_arn, req.client_token);
    let known = s.lock().client_tokens.get(&key).cloned();
    let arn = match known {
        Some(arn) => arn,
        None => {
            let arn = s.start_image(
                &req.image_recipe_arn,
                &req.infrastructure_configuration_arn,
                req.distribution_configuration_arn.as_deref(),
                None,
                true,
            )?;
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

pub(super) async fn cancel_image_creation(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    unavailable(&s)?;
    let req: CancelImage = parse(&body)?;
    arn_param(
        "imageBuildVersionArn",
        &req.image_build_version_arn,
        ArnKind::ImageBuildVersion,
    )?;
    s.cancel(&req.image_build_version_arn)?;
    ok(
        json!({"clientToken": req.client_token, "imageBuildVersionArn": req.image_build_version_arn}),
    )
}
