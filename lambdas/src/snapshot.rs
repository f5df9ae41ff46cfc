//! The public snapshot: the allow-listed [`StatusReport`] built from the table, and
//! its push to the edge after every state change.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use kiln_aws::AwsError;
use kiln_aws::edge::PushError;
use kiln_aws::store::PresetItem;
use kiln_shared::StatusReport;
use kiln_shared::feeds::Published;
use kiln_shared::state::AmiRecord;
use kiln_shared::status::KnownPreset;

use crate::Deps;

/// The report from the table as it is (no reconciliation).
pub async fn snapshot(deps: &Deps, now: DateTime<Utc>) -> Result<StatusReport, AwsError> {
    let (records, presets) = futures::try_join!(deps.store.list_ami(), deps.store.list_presets())?;
    Ok(report(&presets, &records, now))
}

/// The report and its documents (history, feeds): what pushes carry. Three queries.
pub async fn published(deps: &Deps, now: DateTime<Utc>) -> Result<Published, AwsError> {
    let (records, presets, rollups) = futures::try_join!(
        deps.store.list_ami(),
        deps.store.list_presets(),
        crate::history::rollups(deps)
    )?;
    let report = report(&presets, &records, now);
    Ok(crate::history::published(report, &rollups, &records, now))
}

pub fn report(presets: &[PresetItem], records: &[AmiRecord], now: DateTime<Utc>) -> StatusReport {
    let known: Vec<KnownPreset> = presets
        .iter()
        .map(|p| KnownPreset {
            name: p.name.clone(),
            architecture: Some(p.architecture),
            display_name: p.preset().ok().and_then(|p| p.display_name),
        })
        .collect();
    let names: BTreeSet<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    // Without PRESET items (a table written by hand) every record is shown.
    let shown: Vec<AmiRecord> = records
        .iter()
        .filter(|r| names.is_empty() || names.contains(r.preset.as_str()))
        .cloned()
        .collect();
    StatusReport::build(&known, &shown, now)
}

/// Pushes the current public status to the edge; failures are logged, never returned.
///
/// The edge refuses a push whose (second-precision) timestamp is not newer than the
/// last one it accepted, so two pushes in one second lose one. A refused push is
/// retried once in the next second with a freshly read snapshot — never the old body,
/// which a concurrent, newer push may already have superseded.
pub async fn push_snapshot(deps: &Deps, now: DateTime<Utc>) {
    if !deps.edge.enabled() {
        return;
    }
    for attempt in 0..2 {
        // Read per attempt: a refused push may mean the secret was just rotated.
        let keys = match deps.edge_secret.keys().await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "no edge secret to sign the push with (the edge will pull)");
                return;
            }
        };
        let published = match published(deps, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the status snapshot to push");
                return;
            }
        };
        match deps
            .edge
            .push(&published, keys.current.expose().as_bytes())
            .await
        {
            Ok(()) => {
                tracing::info!(
                    status = published.report.status.as_str(),
                    "snapshot pushed to the edge"
                );
                return;
            }
            Err(PushError::Status(401)) if attempt == 0 => {
                let into_second = Utc::now().timestamp_subsec_millis();
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(
                    1000 - into_second.min(999),
                )))
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "snapshot push to the edge failed (the edge will pull)");
                return;
            }
        }
    }
}
