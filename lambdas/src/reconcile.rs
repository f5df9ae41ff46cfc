//! Reconciliation: events are best effort, so `building` records older than the
//! threshold are checked against Image Builder and corrected through
//! [`observe`](crate::observe::observe), the event handler's own code path.
//!
//! Observation time: a non-terminal image is observed at its `dateCreated` (it can only
//! confirm what events already said). A terminal image is observed at *now*: its state
//! is final, so no event of that build can be newer (older, delayed events become
//! no-ops), while a newer build's events carry later times and still win. Using
//! `dateCreated` there would never heal: the lost AVAILABLE's own BUILDING event is
//! already stored with a later time.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kiln_shared::state::{AmiRecord, BuildStatus, key_after};

use crate::Deps;
use crate::observe::{HandlerError, Outcome, observation, observe, sync_configs};
use crate::snapshot::push_snapshot;
use kiln_aws::images::{ImageSummary, newest};

/// What a reconciliation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Stale presets checked against Image Builder.
    pub checked: Vec<String>,
    /// Presets whose AMI record changed.
    pub corrected: Vec<String>,
    /// (preset, region) runner configs repaired to follow their record.
    pub configs_repaired: Vec<(String, String)>,
    /// (preset, error) for presets that could not be checked; retried next run.
    pub errors: Vec<(String, String)>,
    /// Presets whose health (pipeline, AMIs per region, max age) changed.
    pub health_changed: Vec<String>,
}

/// A `building` record whose last change is older than the threshold, or any record
/// whose ordering key lies in the future (its age would be negative, so it would
/// otherwise never be checked and, ordered after every real event, never heal).
pub fn is_stale(record: &AmiRecord, now: DateTime<Utc>, threshold: std::time::Duration) -> bool {
    let threshold = chrono::Duration::from_std(threshold).unwrap_or(chrono::Duration::MAX);
    future_dated(record, now)
        || (record.status == BuildStatus::Building && now - record.updated_at >= threshold)
}

/// Either register's ordering key is dated after `limit`.
pub fn future_dated(record: &AmiRecord, limit: DateTime<Utc>) -> bool {
    key_after(&record.order_key, limit)
        || record
            .ami_order_key
            .as_deref()
            .is_some_and(|k| key_after(k, limit))
}

/// The scheduled run: stale records checked (bounded concurrency), then every runner
/// config checked against its record (repairs a failure between the DynamoDB and SSM
/// writes when the event was not retried), then one push if anything changed.
pub async fn reconcile(deps: &Deps, now: DateTime<Utc>) -> Result<ReconcileReport, HandlerError> {
    let records = deps.store.list_ami().await?;
    let stale: Vec<&AmiRecord> = records
        .iter()
        .filter(|r| is_stale(r, now, deps.config.stale_after))
        .collect();
    let mut report = ReconcileReport::default();
    let results: Vec<(String, Result<Option<Outcome>, HandlerError>)> =
        futures::stream::iter(stale)
            .map(|r| async move { (r.preset.clone(), reconcile_preset(deps, r, now).await) })
            .buffer_unordered(deps.config.reconcile_concurrency.max(1))
            .collect()
            .await;
    let mut corrected_records = std::collections::BTreeMap::new();
    for (preset, result) in results {
        report.checked.push(preset.clone());
        match result {
            Ok(Some(o)) if o.record_written => {
                report.corrected.push(preset.clone());
                if let Some(r) = o.record {
                    corrected_records.insert(preset, r);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(preset, error = %e, "reconcile failed for preset");
                report.errors.push((preset, e.to_string()));
            }
        }
    }
    // Config drift and health: every record, as it stands after the corrections.
    for r in &records {
        let record = corrected_records.get(&r.preset).unwrap_or(r);
        let repaired = async {
            let Some(preset) = deps.store.get_preset(&record.preset).await? else {
                return Ok((Vec::new(), false));
            };
            let mut o = Outcome::default();
            if !record.current().amis.is_empty() {
                sync_configs(deps, &preset, record, &mut o).await?;
            }
            let checked = crate::health::check(deps, &preset, record, now).await?;
            // A transition changes the feed even when the health it derives from did not
            // (a warning that comes with age).
            let moved = crate::alerts::warning_transitions(deps, &record.preset, now).await?;
            let changed = checked || moved;
            Ok::<_, HandlerError>((o.configs_updated, changed))
        }
        .await;
        match repaired {
            Ok((regions, health_changed)) => {
                if health_changed {
                    report.health_changed.push(record.preset.clone());
                }
                report
                    .configs_repaired
                    .extend(regions.into_iter().map(|g| (record.preset.clone(), g)))
            }
            Err(e) => {
                tracing::error!(preset = record.preset, error = %e, "runner config check failed");
                report.errors.push((record.preset.clone(), e.to_string()));
            }
        }
    }
    report.checked.sort();
    report.corrected.sort();
    if !report.corrected.is_empty() || !report.health_changed.is_empty() {
        push_snapshot(deps, now).await;
    }
    tracing::info!(
        checked = report.checked.len(),
        corrected = report.corrected.len(),
        configs_repaired = report.configs_repaired.len(),
        health_changed = report.health_changed.len(),
        errors = report.errors.len(),
        "reconcile finished"
    );
    Ok(report)
}

/// Checks one preset (its stored record) against its pipeline's newest image. `Ok(None)` when there is
/// nothing to check (no preset item, no pipeline ARN, no image).
pub async fn reconcile_preset(
    deps: &Deps,
    record: &AmiRecord,
    now: DateTime<Utc>,
) -> Result<Option<Outcome>, HandlerError> {
    let preset_name = record.preset.as_str();
    let Some(preset) = deps.store.get_preset(preset_name).await? else {
        tracing::warn!(
            preset = preset_name,
            "stale record without a PRESET item; skipped"
        );
        return Ok(None);
    };
    // The ARN preset-init stored: no role lists pipelines (ListImagePipelines has no
    // resource-level permissions).
    let Some(pipeline) = preset.pipeline_arn.as_deref() else {
        tracing::warn!(
            preset = preset_name,
            pipeline = preset.pipeline_name,
            "PRESET item has no pipeline ARN yet (written before kiln stored it; the next deploy adds it); skipped"
        );
        return Ok(None);
    };
    let mut images = deps.images.list_pipeline_images(pipeline).await?;
    // The list is eventually consistent: if it does not show the build the record is
    // about yet, its "newest" is older than what events already said. Wait for it —
    // unless the record is dated beyond the allowed skew: its build may never exist —
    // or the build is a one-off (`kiln build --region`: CreateImage, no source
    // pipeline), which no pipeline lists: it competes with the list by dateCreated.
    let mut one_off = None;
    if let Some(current) = &record.build_id
        && !future_dated(record, deps.config.trust_until(now))
        && !images.iter().any(|i| &i.arn == current)
    {
        match deps.images.get_image(current).await? {
            Some(image)
                if image
                    .source_pipeline_name
                    .as_deref()
                    .is_none_or(str::is_empty) =>
            {
                images.push(ImageSummary {
                    arn: image.arn.clone(),
                    date_created: image.date_created,
                    state: image.state,
                });
                one_off = Some(image);
            }
            _ => {
                tracing::info!(
                    preset = preset_name,
                    build = current,
                    "image list lags behind the record; skipped"
                );
                return Ok(None);
            }
        }
    }
    let Some(latest) = newest(&images) else {
        tracing::info!(preset = preset_name, "pipeline has no images yet");
        return Ok(None);
    };
    // The one-off was just read: no second GetImage when it is the newest.
    let image = match one_off.filter(|i| i.arn == latest.arn) {
        Some(image) => image,
        None => match deps.images.get_image(&latest.arn).await? {
            Some(image) => image,
            None => return Ok(None),
        },
    };
    let Some(state) = image.state else {
        return Ok(None);
    };
    let at = if state.is_terminal() {
        now
    } else {
        match image.date_created.or(latest.date_created) {
            Some(t) => t,
            None => return Ok(None),
        }
    };
    let obs = observation(&preset, &image, state, at, image.reason.clone());
    tracing::info!(preset = preset_name, state = %state, image = image.arn, "reconciling from Image Builder");
    observe(deps, &preset, &obs).await.map(Some)
}
