//! Health, observed by `reconcile` on its schedule: is the pipeline enabled, does every
//! distribution region still have the current AMI (not deregistered, disabled or
//! deprecated), what is the preset's `max_age_days`. Stored on the AMI record through
//! the same compare-and-swap as everything else, and only when it changed, so
//! `/status` derives its warnings (`kiln_shared::status::warnings`) from the record.

use chrono::{DateTime, Utc};
use kiln_aws::AwsError;
use kiln_aws::release::{UpdateError, update_ami};
use kiln_aws::store::PresetItem;
use kiln_shared::state::AmiRecord;
use kiln_shared::state::health::{AmiProblem, DEFAULT_MAX_AGE_DAYS, Health, RegionProblem};

use crate::Deps;
use crate::observe::HandlerError;

/// What EC2 and Image Builder say about one preset now.
pub async fn observe_health(
    deps: &Deps,
    preset: &PresetItem,
    record: &AmiRecord,
    now: DateTime<Utc>,
) -> Result<Health, AwsError> {
    let max_age = preset
        .preset()
        .map_or(DEFAULT_MAX_AGE_DAYS, |p| p.max_age_days);
    let mut health = Health::new(now, max_age);
    if let Some(arn) = &preset.pipeline_arn {
        health.pipeline_disabled = deps.images.pipeline_enabled(arn).await? == Some(false);
    }
    let current = record.current();
    if current.amis.is_empty() {
        return Ok(health);
    }
    for region in &preset.regions {
        let Some(ami) = current.amis.get(region) else {
            health.regions.insert(
                region.clone(),
                RegionProblem {
                    ami: None,
                    problem: AmiProblem::NotDistributed,
                },
            );
            continue;
        };
        let states = deps
            .ec2
            .image_states(region, std::slice::from_ref(ami))
            .await?;
        let problem = match states.get(ami) {
            None => Some(AmiProblem::Missing),
            Some(s) if s.state == "deregistered" => Some(AmiProblem::Deregistered),
            Some(s) if s.state == "disabled" => Some(AmiProblem::Disabled),
            Some(s) if s.deprecated => Some(AmiProblem::Deprecated),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            health.regions.insert(
                region.clone(),
                RegionProblem {
                    ami: Some(ami.clone()),
                    problem,
                },
            );
        }
    }
    Ok(health)
}

/// Observes one preset's health and stores it when it changed. `Ok(true)`: written.
pub async fn check(
    deps: &Deps,
    preset: &PresetItem,
    record: &AmiRecord,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let health = observe_health(deps, preset, record, now).await?;
    let (_, written) =
        update_ami::<std::convert::Infallible, _>(deps.store.as_ref(), &record.preset, |current| {
            Ok(current.with_health(health.clone()))
        })
        .await
        .map_err(|e| match e {
            UpdateError::Aws(e) => HandlerError::Aws(e),
            other => HandlerError::Contention {
                what: other.to_string(),
            },
        })?;
    if written {
        tracing::info!(
            preset = record.preset,
            pipeline_disabled = health.pipeline_disabled,
            regions_with_problems = health.regions.len(),
            "health changed"
        );
    }
    Ok(written)
}
