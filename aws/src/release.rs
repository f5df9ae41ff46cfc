//! Writes of the AMI record decided by something other than an observation (release
//! control, health), and the runner-config sync that follows the record.
//!
//! Both sit here because the Lambdas and the CLI share them: [`update_ami`] is the
//! same compare-and-swap loop observations take (the caller's pure function decides
//! what to write, re-run on every conflict), and [`sync_current`] points every region's
//! runner config and AMI parameter at what runners should use. [`update_build`] is the
//! same loop for a BUILD item (observations in `ami-update`, `kiln test`'s results).

use chrono::{DateTime, Utc};
use kiln_shared::build::BuildRecord;
use kiln_shared::runner_config::{self, ConfigError};
use kiln_shared::state::AmiRecord;
use serde_json::Value;

use crate::error::AwsError;
use crate::ssm::RunnerConfigs;
use crate::store::{Cas, PresetItem, StateStore};

/// Conditional-write attempts before giving up.
pub const MAX_CAS_ATTEMPTS: usize = 8;

/// `/<prefix>/ami/<preset>`: the current AMI id, data type `aws:ec2:image`, per region.
pub fn ami_parameter_name(prefix: &str, preset: &str) -> String {
    format!("/{prefix}/ami/{preset}")
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Refused(E),
    #[error("preset {0} has no AMI record")]
    NoRecord(String),
    #[error(
        "the AMI record of {0} kept changing during {MAX_CAS_ATTEMPTS} conditional writes; try again"
    )]
    Contention(String),
}

/// Reads the record, asks `decide` what to write (`None`: nothing), writes it on the
/// condition that the record is unchanged, and on a conflict reads and decides again.
/// Returns the record as stored afterwards and whether this call wrote it.
pub async fn update_ami<E, F>(
    store: &dyn StateStore,
    preset: &str,
    mut decide: F,
) -> Result<(AmiRecord, bool), UpdateError<E>>
where
    E: std::error::Error + 'static,
    F: FnMut(&AmiRecord) -> Result<Option<AmiRecord>, E>,
{
    for attempt in 1..=MAX_CAS_ATTEMPTS {
        let Some(current) = store.get_ami(preset).await? else {
            return Err(UpdateError::NoRecord(preset.to_owned()));
        };
        let Some(next) = decide(&current).map_err(UpdateError::Refused)? else {
            return Ok((current, false));
        };
        match store.put_ami(&next, Some(&current)).await? {
            Cas::Written => return Ok((next, true)),
            Cas::Conflict => {
                tracing::info!(
                    preset,
                    attempt,
                    "AMI record changed concurrently; re-reading"
                );
            }
        }
    }
    Err(UpdateError::Contention(preset.to_owned()))
}

/// How [`update_build`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildWrite {
    Written,
    /// `decide` had nothing to write.
    Unchanged,
    /// Every attempt met a concurrent write.
    Contention,
}

/// Reads the BUILD item `job_id`, asks `decide` what to write given it (absent: `None`;
/// nothing to write: `None`), writes it on the item's revision, and on a conflict reads
/// and decides again, at most `attempts` times.
pub async fn update_build<F>(
    store: &dyn StateStore,
    job_id: &str,
    attempts: usize,
    mut decide: F,
) -> Result<BuildWrite, AwsError>
where
    F: FnMut(Option<&BuildRecord>) -> Option<BuildRecord>,
{
    for _ in 0..attempts {
        let current = store.get_build(job_id).await?;
        let Some(next) = decide(current.as_ref().map(|c| &c.record)) else {
            return Ok(BuildWrite::Unchanged);
        };
        if store.put_build(&next, current.map(|c| c.rev)).await? == Cas::Written {
            return Ok(BuildWrite::Written);
        }
    }
    Ok(BuildWrite::Contention)
}

/// What [`sync_current`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Regions whose runner config was rewritten.
    pub configs_updated: Vec<String>,
    /// Regions whose runner config was unreadable and left alone.
    pub configs_refused: Vec<String>,
    /// Regions whose `/<prefix>/ami/<preset>` parameter was rewritten.
    pub parameters_updated: Vec<String>,
}

/// Points every region's runner config (`config_name`) and AMI parameter (`ami_name`)
/// at what runners should use ([`AmiRecord::current`]): read-merge-write that keeps
/// every other key; unchanged values are not rewritten, unreadable configs are logged
/// and left alone.
pub async fn sync_current(
    configs: &dyn RunnerConfigs,
    preset: &PresetItem,
    record: &AmiRecord,
    config_name: &str,
    ami_name: &str,
) -> Result<Synced, AwsError> {
    let mut out = Synced::default();
    let current = record.current();
    let at: DateTime<Utc> = record
        .release
        .as_ref()
        .map(|r| r.at)
        .or(record.ami_updated_at)
        .unwrap_or(record.updated_at);
    for (region, ami) in current.amis {
        let existing = configs.get(region, config_name).await?;
        // A missing config (never initialised in this region) starts from the preset's
        // settings, so runners there get a complete config.
        let base = match existing {
            Some(text) => Some(text),
            None => preset.preset().ok().map(|p| {
                serde_json::to_string(&Value::Object(runner_config::initial(&p, region)))
                    .expect("map serialises")
            }),
        };
        match runner_config::merge_ami(base.as_deref(), ami, at) {
            Ok(merged) if merged.changed => {
                configs.put(region, config_name, &merged.json).await?;
                tracing::info!(preset = record.preset, region, ami, "runner config updated");
                out.configs_updated.push(region.clone());
            }
            Ok(_) => {}
            Err(ConfigError::NotAnObject(why)) => {
                tracing::error!(
                    preset = record.preset,
                    region,
                    parameter = config_name,
                    reason = why,
                    "runner config unreadable; not overwritten"
                );
                out.configs_refused.push(region.clone());
            }
        }
        if configs.get(region, ami_name).await?.as_deref() != Some(ami.as_str()) {
            configs.put_image_id(region, ami_name, ami).await?;
            tracing::info!(preset = record.preset, region, ami, "AMI parameter updated");
            out.parameters_updated.push(region.clone());
        }
    }
    Ok(out)
}
