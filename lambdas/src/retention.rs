//! The stack's opt-in scheduled retention: the reconcile function, invoked by its own
//! schedule with `{"kiln": "retention", "keepLatest": N, "graceDays": D}`, runs the
//! same plan as `kiln cleanup --keep-latest N --grace Dd` over every region a preset
//! distributes to, and deletes what the plan deletes (never an AMI that is current,
//! pinned, a rollback target, referenced, or within the grace period).

use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_aws::retention::{CleanupError, execute, plan_for};
use kiln_shared::retention::{Policy, unique_regions};
use serde::Deserialize;

use crate::Deps;

/// The schedule's input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionRequest {
    /// Always `"retention"`: what tells this input from a plain schedule's event.
    pub kiln: String,
    /// Newest AMIs kept per preset and region (at least 1).
    pub keep_latest: usize,
    pub grace_days: u32,
}

impl RetentionRequest {
    /// The request, when `event` is one (anything else is a reconcile run).
    pub fn from_event(event: &serde_json::Value) -> Option<Self> {
        if event.get("kiln").and_then(|k| k.as_str()) != Some("retention") {
            return None;
        }
        match serde_json::from_value::<RetentionRequest>(event.clone()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "retention input refused; nothing deleted");
                None
            }
        }
    }
}

/// What one scheduled run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub regions: Vec<String>,
    pub kept: usize,
    pub deleted: Vec<String>,
    pub failures: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention keeps at least the newest AMI per preset and region (keepLatest >= 1)")]
    KeepNone,
    #[error(transparent)]
    Read(#[from] CleanupError),
    #[error("reading the presets: {0}")]
    Presets(#[from] kiln_aws::AwsError),
}

/// Plans over every preset's regions and deletes what the plan deletes.
pub async fn run(
    deps: &Deps,
    request: &RetentionRequest,
    now: DateTime<Utc>,
) -> Result<RetentionReport, RetentionError> {
    if request.keep_latest == 0 {
        return Err(RetentionError::KeepNone);
    }
    let presets = deps.store.list_presets().await?;
    let all: Vec<String> = presets.iter().flat_map(|p| p.regions.clone()).collect();
    let regions = unique_regions(&all);
    let policy = Policy {
        keep_latest: request.keep_latest,
        grace: Duration::from_secs(u64::from(request.grace_days) * 86_400),
        now,
    };
    let plan = plan_for(
        deps.store.as_ref(),
        deps.configs.as_ref(),
        deps.ec2.as_ref(),
        &deps.config.prefix,
        &regions,
        &policy,
    )
    .await?;
    for (image, why) in &plan.keep {
        tracing::debug!(ami = image.id, region = image.region, reason = ?why, "kept");
    }
    let failures = execute(deps.ec2.as_ref(), &plan, |line| tracing::info!("{line}")).await;
    let report = RetentionReport {
        regions,
        kept: plan.keep.len(),
        deleted: plan
            .delete
            .iter()
            .filter(|i| !failures.iter().any(|f| f.image == i.id))
            .map(|i| i.id.clone())
            .collect(),
        failures: failures
            .iter()
            .map(|f| format!("{} {}: {}", f.region, f.image, f.message))
            .collect(),
    };
    tracing::info!(
        kept = report.kept,
        deleted = report.deleted.len(),
        failures = report.failures.len(),
        "retention finished"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_retention_input_is_a_request_and_it_is_read_strictly() {
        let ok = json!({"kiln": "retention", "keepLatest": 3, "graceDays": 7});
        assert_eq!(
            RetentionRequest::from_event(&ok),
            Some(RetentionRequest {
                kiln: "retention".into(),
                keep_latest: 3,
                grace_days: 7
            })
        );
        // A plain scheduled event is a reconcile run.
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(RetentionRequest::from_event(&scheduled), None);
        // A malformed retention input deletes nothing (logged; the run is a reconcile).
        for bad in [
            json!({"kiln": "retention", "keepLatest": -1, "graceDays": 7}),
            json!({"kiln": "retention", "keepLatest": 3}),
            json!({"kiln": "retention", "keepLatest": 3, "graceDays": 7, "dryRun": false}),
        ] {
            assert_eq!(RetentionRequest::from_event(&bad), None, "{bad}");
        }
    }
}
