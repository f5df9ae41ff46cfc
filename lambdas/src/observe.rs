//! The one code path every observation takes, whether it came from an event
//! (`ami-update`) or from Image Builder itself (`reconcile`, `status-origin`): the state
//! machine and its conditional write, the runner configs when the observation is the
//! current AMI's source, and the build history.

use chrono::{DateTime, Utc};
use kiln_aws::AwsError;
use kiln_aws::images::ImageInfo;
use kiln_aws::release::{BuildWrite, update_build};
use kiln_aws::store::{Cas, PresetItem};
use kiln_shared::build::{apply_build, build_job_id};
use kiln_shared::state::{self, AmiRecord, NoOp, Transition};
use kiln_shared::{ImageArn, ImageState, Observation};

use crate::Deps;

/// Conditional-write attempts before giving up (and letting Lambda retry).
const MAX_CAS_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{what} kept changing during {MAX_CAS_ATTEMPTS} conditional writes; will retry")]
    Contention { what: String },
}

/// What processing one observation did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub preset: String,
    /// The AMI record was written (it changed).
    pub record_written: bool,
    /// Why nothing was written, if so.
    pub noop: Option<NoOp>,
    /// The record as stored afterwards.
    pub record: Option<AmiRecord>,
    /// Regions whose runner config was rewritten.
    pub configs_updated: Vec<String>,
    /// Regions whose runner config was unreadable and left alone.
    pub configs_refused: Vec<String>,
    pub build_written: bool,
}

/// The one constructor of an observation: `image` in `state`, seen at `at`, for
/// `preset`. AMIs count only for AVAILABLE (a failed build's partial AMIs never do).
pub fn observation(
    preset: &PresetItem,
    image: &ImageInfo,
    state: ImageState,
    at: DateTime<Utc>,
    reason: Option<String>,
) -> Observation {
    Observation {
        preset: preset.name.clone(),
        architecture: Some(preset.architecture),
        state,
        at,
        build_id: image.arn.clone(),
        amis: if state == ImageState::Available {
            image.amis.clone()
        } else {
            Default::default()
        },
        home_region: preset.home_region.clone(),
        reason,
        started: image.date_created,
    }
}

/// The one code path for every observation: state machine + conditional write, runner
/// configs when this observation is the current AMI's source, build history.
pub async fn observe(
    deps: &Deps,
    preset: &PresetItem,
    obs: &Observation,
) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome {
        preset: obs.preset.clone(),
        ..Outcome::default()
    };
    // Stored keys further ahead than the allowed skew came from a forged or broken
    // event: not trusted, so this observation heals the record instead of losing to it.
    let trust_until = deps.config.trust_until(Utc::now());
    let mut stored = None;
    for attempt in 1..=MAX_CAS_ATTEMPTS {
        let current = deps.store.get_ami(&obs.preset).await?;
        match state::apply_trusting_until(current.as_ref(), obs, Some(trust_until)) {
            Transition::NoOp(why) => {
                tracing::info!(preset = obs.preset, ?why, "no change to the AMI record");
                outcome.noop = Some(why);
                stored = Some(current);
                break;
            }
            Transition::Write { mut record, .. } => {
                // AMIs are kept per region (one-off builds); a region the preset no
                // longer distributes to goes.
                record.keep_regions(&preset.regions);
                match deps.store.put_ami(&record, current.as_ref()).await? {
                    Cas::Written => {
                        tracing::info!(
                            preset = obs.preset,
                            status = record.status.as_str(),
                            ami = record.ami_id.as_deref().unwrap_or(""),
                            "AMI record written"
                        );
                        outcome.record_written = true;
                        stored = Some(Some(*record));
                        break;
                    }
                    Cas::Conflict => {
                        tracing::info!(
                            preset = obs.preset,
                            attempt,
                            "AMI record changed concurrently; re-reading"
                        );
                    }
                }
            }
        }
    }
    let Some(stored) = stored else {
        return Err(HandlerError::Contention {
            what: format!("AMI record of {}", obs.preset),
        });
    };
    // The configs follow the record's AMI whenever this observation is its source: on
    // first delivery and on a retry after a failure between the two writes alike.
    // A release (pin, rollback, fallback after a revoke) holds the configs: the new
    // build is recorded, runners stay.
    if let Some(record) = &stored
        && obs.state == ImageState::Available
        && record.ami_order_key.as_deref() == Some(obs.order_key().as_str())
        && record.release.is_none()
    {
        sync_configs(deps, preset, record, &mut outcome).await?;
        // A concurrent newer AVAILABLE (or a pin) may have synced before we did and
        // been overwritten by our AMIs: re-read, and follow the record until it stands
        // still.
        let mut synced = (record.ami_order_key.clone(), record.rev);
        for _ in 0..3 {
            let Some(latest) = deps.store.get_ami(&obs.preset).await? else {
                break;
            };
            if (latest.ami_order_key.clone(), latest.rev) == synced {
                break;
            }
            sync_configs(deps, preset, &latest, &mut outcome).await?;
            synced = (latest.ami_order_key.clone(), latest.rev);
        }
    }
    outcome.record = stored;
    outcome.build_written = record_build(deps, obs, preset).await?;
    if outcome.build_written {
        crate::history::refresh(deps, preset, Utc::now()).await?;
    }
    Ok(outcome)
}

/// Points every region's runner config and AMI parameter at what runners use (the
/// record's release, else its newest AMI); unchanged values are not rewritten,
/// unreadable configs are logged and left alone.
pub async fn sync_configs(
    deps: &Deps,
    preset: &PresetItem,
    record: &AmiRecord,
    outcome: &mut Outcome,
) -> Result<(), AwsError> {
    let synced = kiln_aws::release::sync_current(
        deps.configs.as_ref(),
        preset,
        record,
        &deps.config.parameter_name(&record.preset),
        &deps.config.ami_parameter_name(&record.preset),
    )
    .await?;
    outcome.configs_updated.extend(synced.configs_updated);
    outcome.configs_refused.extend(synced.configs_refused);
    Ok(())
}

/// Folds the observation into the build's history item (conditional, retried). A
/// build past its TEST phase passed each of the preset's validation tests.
async fn record_build(
    deps: &Deps,
    obs: &Observation,
    preset: &PresetItem,
) -> Result<bool, HandlerError> {
    let tests = || -> Vec<String> {
        preset
            .preset()
            .map(|p| p.validation_tests.into_iter().map(|t| t.name).collect())
            .unwrap_or_default()
    };
    let Some(arn) = ImageArn::parse(&obs.build_id) else {
        return Ok(false);
    };
    let version = arn.build_version();
    let job_id = build_job_id(&obs.preset, &version);
    let written = update_build(deps.store.as_ref(), &job_id, MAX_CAS_ATTEMPTS, |current| {
        let mut next = apply_build(current, obs, &version)?;
        next.infer_passed_tests(tests);
        Some(next)
    })
    .await?;
    match written {
        BuildWrite::Written => Ok(true),
        BuildWrite::Unchanged => Ok(false),
        BuildWrite::Contention => Err(HandlerError::Contention {
            what: format!("build history {job_id}"),
        }),
    }
}
