//! `preset-init`: the CloudFormation custom resource that applies presets.
//!
//! Input (ResourceProperties): `Presets` — JSON text (or a JSON array) of
//! `Vec<kiln_shared::Preset>` —, `Pipelines` — preset name → pipeline ARN, resolved by
//! the template (`Fn::GetAtt <Pipeline>.Arn`), so no role needs to list pipelines — and
//! optional `Prefix` (must equal `KILN_PREFIX`). Everything is validated before the
//! first write. Per preset, in this order: initial
//! AMI record and SSM placeholders only where absent, settings refresh and a pipeline
//! execution (not awaited) when the content hash changed, and the PRESET item last —
//! it is the "applied" marker, so a failure part way is redone by the next deploy.
//! The handler always answers the pre-signed `ResponseURL`, SUCCESS or FAILED.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_shared::Preset;
use kiln_shared::runner_config::{self, ConfigError};
use kiln_shared::state::AmiRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Deps;
use kiln_aws::AwsError;
use kiln_aws::store::PresetItem;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("invalid ResourceProperties: {0}")]
    Invalid(String),
    #[error(
        "no pipeline ARN for preset '{0}' (the custom resource's Pipelines property must name every preset's pipeline)"
    )]
    PipelineMissing(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("timed out before finishing; nothing more was written")]
    TimedOut,
}

/// Errors of the handler itself (as opposed to the deploy it reports on).
#[derive(Debug, thiserror::Error)]
pub enum CustomResourceError {
    #[error("not a CloudFormation custom resource event: {0}")]
    BadEvent(String),
    #[error("could not deliver the response to CloudFormation: {0}")]
    Respond(String),
}

/// What applying presets did (also returned to CloudFormation as `Data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// preset → image build version ARN of the started execution.
    pub started: BTreeMap<String, String>,
    /// `preset@region` configs that were unreadable and left alone.
    pub configs_refused: Vec<String>,
}

/// Preset name → ARN of its image pipeline.
pub type PipelineArns = BTreeMap<String, String>;

/// What the custom resource's properties carry.
#[derive(Debug, Clone, PartialEq)]
pub struct InitProperties {
    pub presets: Vec<Preset>,
    pub pipelines: PipelineArns,
}

fn validate(presets: &[Preset], pipelines: &PipelineArns) -> Result<(), InitError> {
    for (name, arn) in pipelines {
        // The shape StartImagePipelineExecution accepts; anything else is a template bug.
        let ok = arn.starts_with("arn:") && arn.contains(":image-pipeline/");
        if !ok {
            return Err(InitError::Invalid(format!(
                "pipeline ARN of preset '{name}' is not an image pipeline ARN: '{arn}'"
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for p in presets {
        let ok = !p.name.is_empty()
            && p.name.len() <= 40
            && p.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(InitError::Invalid(format!(
                "preset name '{}' must match [a-z0-9-]{{1,40}}",
                p.name
            )));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(InitError::Invalid(format!(
                "duplicate preset name '{}'",
                p.name
            )));
        }
        if !pipelines.contains_key(&p.name) {
            return Err(InitError::PipelineMissing(p.name.clone()));
        }
    }
    Ok(())
}

/// Applies presets (library entry point; `kiln dev` calls it directly) whose pipelines
/// have the given ARNs.
pub async fn apply_presets(
    deps: &Deps,
    presets: &[Preset],
    pipelines: &PipelineArns,
    now: DateTime<Utc>,
) -> Result<ApplyReport, InitError> {
    validate(presets, pipelines)?;
    let cfg = &deps.config;
    let existing: BTreeMap<String, PresetItem> = deps
        .store
        .list_presets()
        .await?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let items: Vec<PresetItem> = presets
        .iter()
        .map(|p| PresetItem {
            // Present for every preset: validated above.
            pipeline_arn: pipelines.get(&p.name).cloned(),
            ..PresetItem::new(p, &cfg.prefix, &cfg.stack_region, now)
        })
        .collect();
    let changed = |item: &PresetItem| {
        existing
            .get(&item.name)
            .is_none_or(|old| old.content_hash != item.content_hash)
    };
    // Items written before kiln stored the pipeline ARN get it without a rebuild.
    let arn_changed = |item: &PresetItem| {
        existing
            .get(&item.name)
            .is_some_and(|old| old.pipeline_arn != item.pipeline_arn)
    };
    let mut report = ApplyReport::default();
    for (preset, item) in presets.iter().zip(&items) {
        let is_new = !existing.contains_key(&item.name);
        let is_changed = changed(item);
        // Absent only: an existing record (with its AMI) is never reset.
        let initial = AmiRecord::initial(&preset.name, Some(preset.architecture), now);
        deps.store.put_ami(&initial, None).await?;
        for region in &item.regions {
            let name = cfg.parameter_name(&preset.name);
            let current = deps.configs.get(region, &name).await?;
            let mut fresh = runner_config::settings(preset);
            fresh.insert("region".into(), Value::from(region.as_str()));
            let next = match &current {
                None => Some(Value::Object(runner_config::initial(preset, region)).to_string()),
                Some(text) if is_changed => match runner_config::merge_settings(Some(text), &fresh)
                {
                    Ok(m) if m.changed => Some(m.json),
                    Ok(_) => None,
                    Err(ConfigError::NotAnObject(why)) => {
                        tracing::error!(
                            preset = preset.name,
                            region,
                            reason = why,
                            "runner config unreadable; not overwritten"
                        );
                        report
                            .configs_refused
                            .push(format!("{}@{region}", preset.name));
                        None
                    }
                },
                Some(_) => None,
            };
            if let Some(json) = next {
                deps.configs.put(region, &name, &json).await?;
            }
        }
        if is_changed && let Some(arn) = &item.pipeline_arn {
            let image = deps.images.start_pipeline(arn).await?;
            tracing::info!(preset = item.name, image, "pipeline execution started");
            report.started.insert(item.name.clone(), image);
        }
        if is_changed || arn_changed(item) {
            deps.store.put_preset(item).await?;
        }
        let list = if is_new {
            &mut report.created
        } else if is_changed {
            &mut report.changed
        } else {
            &mut report.unchanged
        };
        list.push(item.name.clone());
    }
    let wanted: BTreeSet<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    for name in existing.keys().filter(|n| !wanted.contains(n.as_str())) {
        // Records, history and configs are kept; the preset just stops being listed.
        deps.store.delete_preset(name).await?;
        report.removed.push(name.clone());
    }
    tracing::info!(
        created = report.created.len(),
        changed = report.changed.len(),
        unchanged = report.unchanged.len(),
        removed = report.removed.len(),
        "presets applied"
    );
    Ok(report)
}

/// The parts of a CloudFormation custom resource request kiln reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CfnRequest {
    pub request_type: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CfnResponse {
    pub status: String,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// `Presets` (JSON text or array), `Pipelines` and `Prefix` from ResourceProperties.
pub fn parse_properties(props: &Value, expected_prefix: &str) -> Result<InitProperties, InitError> {
    if let Some(prefix) = props.get("Prefix").and_then(Value::as_str)
        && prefix != expected_prefix
    {
        return Err(InitError::Invalid(format!(
            "Prefix '{prefix}' differs from the function's KILN_PREFIX '{expected_prefix}'"
        )));
    }
    let presets = match props.get("Presets") {
        Some(Value::String(text)) => serde_json::from_str::<Vec<Preset>>(text),
        Some(v @ Value::Array(_)) => serde_json::from_value::<Vec<Preset>>(v.clone()),
        Some(_) => {
            return Err(InitError::Invalid(
                "Presets must be a JSON array or JSON text of one".into(),
            ));
        }
        None => return Err(InitError::Invalid("Presets is missing".into())),
    };
    let presets = presets.map_err(|e| InitError::Invalid(format!("Presets: {e}")))?;
    let pipelines = match props.get("Pipelines") {
        None => PipelineArns::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            InitError::Invalid(format!("Pipelines must map preset names to ARNs: {e}"))
        })?,
    };
    Ok(InitProperties { presets, pipelines })
}

/// Handles one custom resource event and answers CloudFormation. `budget` bounds the
/// work so the answer goes out before Lambda's own timeout. `Err` only when no answer
/// could be delivered (or the event has no ResponseURL).
pub async fn handle_custom_resource(
    deps: &Deps,
    http: &reqwest::Client,
    event: Value,
    budget: Duration,
) -> Result<CfnResponse, CustomResourceError> {
    let req: CfnRequest =
        serde_json::from_value(event).map_err(|e| CustomResourceError::BadEvent(e.to_string()))?;
    let physical = req
        .physical_resource_id
        .clone()
        .unwrap_or_else(|| format!("{}-presets", deps.config.prefix));
    tracing::info!(
        request_type = req.request_type,
        stack = req.stack_id,
        "custom resource request"
    );
    let result: Result<Option<ApplyReport>, InitError> = match req.request_type.as_str() {
        // Delete retains every record, config and history item.
        "Delete" => Ok(None),
        "Create" | "Update" => {
            let work = async {
                let props = parse_properties(&req.resource_properties, &deps.config.prefix)?;
                apply_presets(deps, &props.presets, &props.pipelines, Utc::now())
                    .await
                    .map(Some)
            };
            match tokio::time::timeout(budget, work).await {
                Ok(r) => r,
                Err(_) => Err(InitError::TimedOut),
            }
        }
        other => Err(InitError::Invalid(format!("unknown RequestType '{other}'"))),
    };
    let (status, reason, data) = match result {
        Ok(report) => (
            "SUCCESS",
            format!("{} done", req.request_type),
            report.map(|r| serde_json::to_value(r).expect("report serialises")),
        ),
        Err(e) => {
            tracing::error!(error = %e, "custom resource failed");
            ("FAILED", truncate(&e.to_string(), 1000), None)
        }
    };
    let response = CfnResponse {
        status: status.into(),
        reason,
        physical_resource_id: physical,
        stack_id: req.stack_id.clone(),
        request_id: req.request_id.clone(),
        logical_resource_id: req.logical_resource_id.clone(),
        data,
    };
    send_response(http, &req.response_url, &response).await?;
    Ok(response)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// PUTs the answer to the pre-signed URL; a few attempts, because a lost answer leaves
/// the stack waiting for an hour.
async fn send_response(
    http: &reqwest::Client,
    url: &str,
    response: &CfnResponse,
) -> Result<(), CustomResourceError> {
    let body = serde_json::to_string(response).expect("response serialises");
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        // Pre-signed S3 URLs are signed without a content type: send none.
        match http.put(url).body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(status = response.status, "answered CloudFormation");
                return Ok(());
            }
            Ok(r) => last = format!("ResponseURL answered {}", r.status()),
            // The URL is pre-signed: whoever reads it can answer for this stack.
            Err(e) => last = e.without_url().to_string(),
        }
        tracing::warn!(attempt, error = last, "answering CloudFormation failed");
    }
    Err(CustomResourceError::Respond(last))
}
