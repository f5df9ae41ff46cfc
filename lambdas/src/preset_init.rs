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
//! The handler always answers the pre-signed `ResponseURL`, SUCCESS or FAILED, with a
//! `Data` of counts only (CloudFormation refuses answers over 4,096 bytes).
//!
//! Each nested stack of presets has its own custom resource (property `Group`) carrying
//! only its presets, so a group never touches another group's PRESET items:
//! - Create applies the group's presets and removes nothing;
//! - Update applies the new presets and removes those of `OldResourceProperties` no
//!   longer in the group (a rollback is an Update back to the old list, the same way);
//! - Delete (the group's nested stack goes: its last preset was removed, or the whole
//!   deployment is destroyed) removes the PRESET items of the group's presets.
//!   Without `Group` (a single-stack template of an older kiln) Delete removes nothing.
//!
//! Removal deletes only the PRESET item: AMI records, build history and runner
//! configs stay.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use kiln_shared::Preset;
use kiln_shared::runner_config::{self, ConfigError};
use kiln_shared::state::AmiRecord;
use serde::Serialize;
use serde_json::Value;

use crate::Deps;
use kiln_aws::AwsError;
use kiln_aws::store::PresetItem;

mod custom_resource;

pub use custom_resource::{
    CfnRequest, CfnResponse, CustomResourceError, handle_custom_resource, respond, summary,
};

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

/// What applying presets did (CloudFormation gets its counts: [`summary`]).
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

/// Which existing PRESET items a run may remove.
#[derive(Debug, Clone, Copy)]
pub enum Removal<'a> {
    /// Every one not applied: all presets of the deployment are applied at once
    /// (`kiln dev`).
    AllOthers,
    /// Only these, when not applied: the group's presets before this run.
    Only(&'a BTreeSet<String>),
}

/// Applies all presets of a deployment at once (library entry point; `kiln dev` calls
/// it directly) whose pipelines have the given ARNs; removes every other PRESET item.
pub async fn apply_presets(
    deps: &Deps,
    presets: &[Preset],
    pipelines: &PipelineArns,
    now: DateTime<Utc>,
) -> Result<ApplyReport, InitError> {
    apply(deps, presets, pipelines, Removal::AllOthers, now).await
}

/// Applies one group's presets; of the PRESET items, removes only those of `previous`
/// (the group's presets before) that are no longer in it.
pub async fn apply_group(
    deps: &Deps,
    presets: &[Preset],
    pipelines: &PipelineArns,
    previous: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<ApplyReport, InitError> {
    apply(deps, presets, pipelines, Removal::Only(previous), now).await
}

/// Removes the PRESET items of a group that is gone (its nested stack is deleted).
pub async fn remove_group(deps: &Deps, names: &BTreeSet<String>) -> Result<ApplyReport, InitError> {
    let existing: BTreeSet<String> = deps
        .store
        .list_presets()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut report = ApplyReport::default();
    for name in names.intersection(&existing) {
        deps.store.delete_preset(name).await?;
        report.removed.push(name.clone());
    }
    tracing::info!(removed = report.removed.len(), "group removed");
    Ok(report)
}

async fn apply(
    deps: &Deps,
    presets: &[Preset],
    pipelines: &PipelineArns,
    removal: Removal<'_>,
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
    let removable = |n: &str| match removal {
        Removal::AllOthers => true,
        Removal::Only(previous) => previous.contains(n),
    };
    for name in existing
        .keys()
        .filter(|n| !wanted.contains(n.as_str()) && removable(n))
    {
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
