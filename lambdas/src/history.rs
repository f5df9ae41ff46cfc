//! History rollups: kept by the build write path ([`refresh`], after every BUILD write),
//! read by the snapshot (one item per preset) and rendered into the documents the edge
//! serves beside `/status` ([`published`]).

use chrono::{DateTime, Utc};
use kiln_aws::AwsError;
use kiln_aws::store::{Cas, PresetItem};
use kiln_shared::StatusReport;
use kiln_shared::feeds::{Feeds, Published};
use kiln_shared::history::{Rollup, public_histories};
use kiln_shared::state::AmiRecord;
use kiln_shared::state::health::WarningTransition;

use crate::Deps;
use crate::observe::HandlerError;

/// Conditional-write attempts before giving up (and letting Lambda retry).
const MAX_CAS_ATTEMPTS: usize = 5;

/// Recomputes `preset`'s rollup from all of its BUILD items and writes it if it changed.
///
/// Compare-and-swap on the rollup's revision, read *before* the builds: a concurrent
/// writer whose build this read missed either finds our revision and recomputes, or
/// makes our write fail and we recompute; either way the last rollup written has seen
/// every build write that finished before it.
pub async fn refresh(
    deps: &Deps,
    preset: &PresetItem,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let test_count = preset
        .preset()
        .map(|p| p.validation_tests.len() as u32)
        .unwrap_or(0);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = deps.store.get_history(&preset.name).await?;
        let builds = deps.store.list_builds_of(&preset.name).await?;
        let next = Rollup::from_builds(&preset.name, &builds.items, test_count, now);
        if current.as_ref().is_some_and(|c| c.rollup == next) {
            return Ok(false);
        }
        let rev = current.map(|c| c.rev);
        if deps.store.put_history(&next, rev).await? == Cas::Written {
            tracing::info!(
                preset = preset.name,
                builds = next.builds.len(),
                "history rollup written"
            );
            return Ok(true);
        }
    }
    Err(HandlerError::Contention {
        what: format!("history rollup of {}", preset.name),
    })
}

/// The report and its documents, as the origin answers and the Lambdas push; `records`
/// give the warning transitions of the presets the report shows.
pub fn published(
    report: StatusReport,
    rollups: &[Rollup],
    records: &[AmiRecord],
    now: DateTime<Utc>,
) -> Published {
    let names: Vec<&str> = report.presets.iter().map(|p| p.name.as_str()).collect();
    let histories = public_histories(&names, rollups, now);
    let transitions: Vec<(String, WarningTransition)> = records
        .iter()
        .filter(|r| names.contains(&r.preset.as_str()))
        .filter_map(|r| r.health.as_ref().map(|h| (r, h)))
        .flat_map(|(r, h)| h.transitions.iter().map(|t| (r.preset.clone(), t.clone())))
        .collect();
    let mut feeds = Feeds::build(&report, &histories, &transitions);
    feeds.page = kiln_web::render_history(&histories, now);
    feeds.retag();
    Published { report, feeds }
}

/// Every rollup (one paginated query), for the snapshot.
pub async fn rollups(deps: &Deps) -> Result<Vec<Rollup>, AwsError> {
    Ok(deps.store.list_history().await?.items)
}
