//! The per-preset AMI state record and the pure state machine that advances it.
//!
//! A record holds two last-writer-wins registers, each guarded by an ordering key
//! derived from the event (never the handler's clock):
//!
//! - the **status** register (`status`, `updatedAt`, `buildId`, `reason`), advanced by
//!   any newer observation;
//! - the **AMI** register (`amiId`, `amis`, `amiBuildId`, `amiUpdatedAt`), advanced
//!   only by a newer AVAILABLE observation.
//!
//! Each register is the maximum of what has been observed, so any permutation or
//! duplication of a build's events converges to the record the sorted stream gives.
//! A rebuild's BUILDING therefore keeps the previous AMI, and a late AVAILABLE of an
//! older build can still fill in an AMI without rolling the status back.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::preset::Architecture;
use crate::time;

pub mod health;
pub mod release;

/// Status of an AMI record (`status` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Building,
    Ready,
    Failed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Building => "building",
            BuildStatus::Ready => "ready",
            BuildStatus::Failed => "failed",
        }
    }
}

/// EC2 Image Builder image status (`ImageStatus` in the API, `state.status` in events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageState {
    Pending,
    Creating,
    Building,
    Testing,
    Distributing,
    Integrating,
    Available,
    Failed,
    Cancelled,
    Deprecated,
    Deleted,
    Disabled,
}

impl ImageState {
    pub const ALL: [ImageState; 12] = [
        ImageState::Pending,
        ImageState::Creating,
        ImageState::Building,
        ImageState::Testing,
        ImageState::Distributing,
        ImageState::Integrating,
        ImageState::Available,
        ImageState::Failed,
        ImageState::Cancelled,
        ImageState::Deprecated,
        ImageState::Deleted,
        ImageState::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Pending => "PENDING",
            ImageState::Creating => "CREATING",
            ImageState::Building => "BUILDING",
            ImageState::Testing => "TESTING",
            ImageState::Distributing => "DISTRIBUTING",
            ImageState::Integrating => "INTEGRATING",
            ImageState::Available => "AVAILABLE",
            ImageState::Failed => "FAILED",
            ImageState::Cancelled => "CANCELLED",
            ImageState::Deprecated => "DEPRECATED",
            ImageState::Deleted => "DELETED",
            ImageState::Disabled => "DISABLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What the record's status becomes; `None` for lifecycle states after the build
    /// (deprecation, deletion) that say nothing about readiness.
    pub fn build_status(self) -> Option<BuildStatus> {
        match self {
            ImageState::Pending
            | ImageState::Creating
            | ImageState::Building
            | ImageState::Testing
            | ImageState::Distributing
            | ImageState::Integrating => Some(BuildStatus::Building),
            ImageState::Available => Some(BuildStatus::Ready),
            ImageState::Failed | ImageState::Cancelled => Some(BuildStatus::Failed),
            ImageState::Deprecated | ImageState::Deleted | ImageState::Disabled => None,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ImageState::Available | ImageState::Failed | ImageState::Cancelled
        )
    }

    /// Lifecycle position: breaks ties between events of the same second (EventBridge
    /// `time` has second precision), so TESTING and AVAILABLE in one second order right.
    pub fn rank(self) -> u8 {
        match self {
            ImageState::Pending => 1,
            ImageState::Creating => 2,
            ImageState::Building => 3,
            ImageState::Testing => 4,
            ImageState::Distributing => 5,
            ImageState::Integrating => 6,
            ImageState::Available | ImageState::Failed | ImageState::Cancelled => 9,
            ImageState::Deprecated | ImageState::Deleted | ImageState::Disabled => 10,
        }
    }
}

impl fmt::Display for ImageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kiln learnt about one build at one moment: from an event plus GetImage, or
/// from reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub preset: String,
    pub architecture: Option<Architecture>,
    pub state: ImageState,
    /// Event time (EventBridge `time`) or the image's `dateCreated`/last-seen time.
    pub at: DateTime<Utc>,
    /// Image build version ARN.
    pub build_id: String,
    /// Region → AMI; only meaningful for AVAILABLE.
    pub amis: BTreeMap<String, String>,
    /// Region whose AMI becomes `amiId`.
    pub home_region: String,
    pub reason: Option<String>,
    /// When Image Builder created the image (`dateCreated`), if known: the build's real
    /// start, also when the first observation of it is its end (events lost, healed
    /// by reconcile). Build history only; never part of the ordering.
    pub started: Option<DateTime<Utc>>,
}

impl Observation {
    /// Total order of observations of one preset: time, then lifecycle rank, then the
    /// build id (two builds in one second still order the same way everywhere). Fixed
    /// width, so string comparison — in DynamoDB conditions too — is the same order.
    pub fn order_key(&self) -> String {
        format!(
            "{}#{:02}#{}",
            time::format(time::truncate(self.at)),
            self.state.rank(),
            self.build_id
        )
    }
}

/// The AMI state item (`jobId = AMI#<preset>`, `sk = LATEST`, `recordType = AMI`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmiRecord {
    pub job_id: String,
    pub sk: String,
    pub record_type: String,
    pub preset: String,
    #[serde(default)]
    pub architecture: Option<Architecture>,
    pub status: BuildStatus,
    /// Home-region AMI, or null before the first successful build.
    pub ami_id: Option<String>,
    #[serde(default)]
    pub amis: BTreeMap<String, String>,
    /// Image build version ARN of the build the status is about.
    pub build_id: Option<String>,
    /// The event's time, not the handler's clock.
    #[serde(with = "time::serde_secs")]
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Guard of the status register (see module docs).
    pub order_key: String,
    /// Guard of the AMI register; null until the first AVAILABLE.
    #[serde(default)]
    pub ami_order_key: Option<String>,
    #[serde(default)]
    pub ami_build_id: Option<String>,
    #[serde(default, with = "time::serde_secs_opt")]
    pub ami_updated_at: Option<DateTime<Utc>>,
    /// Per-region guard of `amis`: the key of the observation each region's AMI came
    /// from. A one-off build distributed to some regions (`kiln build --region`) moves
    /// those alone; absent (records before it existed) means `amiOrderKey`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ami_keys: BTreeMap<String, String>,
    /// The build runners are held on instead of the newest (see [`release`]).
    #[serde(default)]
    pub release: Option<release::Release>,
    /// Revoked builds (image build version ARNs): never pointed at again.
    #[serde(default)]
    pub revoked: Vec<String>,
    /// Revision of release control and health: bumped by every write that is not an
    /// observation, and part of every write's condition (observations change a key).
    #[serde(default)]
    pub rev: u64,
    /// What `reconcile` last observed about the preset's health.
    #[serde(default)]
    pub health: Option<health::Health>,
    /// Release-control history, newest last (at most [`release::MAX_CHANGES`]).
    #[serde(default)]
    pub changes: Vec<release::ReleaseChange>,
}

pub use crate::table::{RECORD_TYPE_AMI, SK_LATEST, ami_job_id};

impl AmiRecord {
    /// The record `preset-init` creates before any build: building, no AMI. Its order
    /// key sorts before every real observation of the same second (rank 00).
    pub fn initial(preset: &str, architecture: Option<Architecture>, now: DateTime<Utc>) -> Self {
        let now = time::truncate(now);
        AmiRecord {
            job_id: ami_job_id(preset),
            sk: SK_LATEST.into(),
            record_type: RECORD_TYPE_AMI.into(),
            preset: preset.into(),
            architecture,
            status: BuildStatus::Building,
            ami_id: None,
            amis: BTreeMap::new(),
            build_id: None,
            updated_at: now,
            reason: None,
            order_key: format!("{}#00#init", time::format(now)),
            ami_order_key: None,
            ami_build_id: None,
            ami_updated_at: None,
            ami_keys: BTreeMap::new(),
            release: None,
            revoked: Vec::new(),
            rev: 0,
            health: None,
            changes: Vec::new(),
        }
    }
}

impl AmiRecord {
    /// Forgets the AMIs of regions not in `regions` (a preset's distribution regions;
    /// empty: keep all). `amiId` stays the home region's.
    pub fn keep_regions(&mut self, regions: &[String]) {
        if regions.is_empty() {
            return;
        }
        self.amis.retain(|r, _| regions.contains(r));
        self.ami_keys.retain(|r, _| regions.contains(r));
    }
}

/// Why an observation changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoOp {
    /// Same ordering key as what is stored: a duplicate delivery.
    Duplicate,
    /// Older than what is stored (and, for AVAILABLE, older than the stored AMI).
    OutOfOrder,
    /// A state that says nothing about readiness (DEPRECATED, DELETED, DISABLED).
    Irrelevant,
}

/// The outcome of applying an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Store this record (conditionally on the previous one being unchanged).
    Write {
        record: Box<AmiRecord>,
        /// The AMI register advanced: SSM configs must point at the new AMIs.
        ami_changed: bool,
    },
    NoOp(NoOp),
}

/// The state machine: (current record, observation) → new record or no-op.
pub fn apply(current: Option<&AmiRecord>, obs: &Observation) -> Transition {
    apply_trusting_until(current, obs, None)
}

/// Whether an ordering key's time lies after `limit` (keys start with the fixed-width
/// time, so the first 20 characters compare like times).
pub fn key_after(key: &str, limit: DateTime<Utc>) -> bool {
    key.get(..20).unwrap_or(key) > time::format(time::truncate(limit)).as_str()
}

/// [`apply`] with stored ordering keys dated after `trust_until` (the handler's clock
/// plus the allowed skew) treated as absent: such a key came from a forged or broken
/// event and would otherwise make every real observation out of order for ever. This is
/// how reconciliation heals a future-dated record.
pub fn apply_trusting_until(
    current: Option<&AmiRecord>,
    obs: &Observation,
    trust_until: Option<DateTime<Utc>>,
) -> Transition {
    let Some(status) = obs.state.build_status() else {
        return Transition::NoOp(NoOp::Irrelevant);
    };
    let key = obs.order_key();
    let trusted = |k: &str| trust_until.is_none_or(|limit| !key_after(k, limit));
    let status_advances = current.is_none_or(|c| !trusted(&c.order_key) || key > c.order_key);
    // A revoked build is never pointed at again, even by its own late AVAILABLE.
    let usable = obs.state == ImageState::Available
        && !obs.amis.is_empty()
        && current.is_none_or(|c| !c.is_revoked(&obs.build_id));
    // The newest build: every register it carries moves (build id, time, the guard).
    let newest_advances = usable
        && current.is_none_or(|c| {
            c.ami_order_key
                .as_ref()
                .is_none_or(|k| !trusted(k) || key > *k)
        });
    // Each region is its own register: a one-off build to one region moves only that
    // region's AMI, and an older full build still fills regions it is newest for.
    let regions: Vec<&String> = if usable {
        obs.amis
            .keys()
            .filter(|r| {
                current.is_none_or(|c| {
                    !c.amis.contains_key(*r)
                        || c.ami_keys
                            .get(*r)
                            .or(c.ami_order_key.as_ref())
                            .is_none_or(|k| !trusted(k) || key > *k)
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let ami_advances = !regions.is_empty();
    if !status_advances && !ami_advances {
        let duplicate =
            current.is_some_and(|c| c.order_key == key || c.ami_order_key.as_deref() == Some(&key));
        return Transition::NoOp(if duplicate {
            NoOp::Duplicate
        } else {
            NoOp::OutOfOrder
        });
    }
    let mut record = match current {
        Some(c) => c.clone(),
        None => AmiRecord::initial(&obs.preset, obs.architecture, obs.at),
    };
    if record.architecture.is_none() {
        record.architecture = obs.architecture;
    }
    if status_advances {
        record.status = status;
        record.updated_at = time::truncate(obs.at);
        record.build_id = Some(obs.build_id.clone());
        record.order_key = key.clone();
        record.reason = match status {
            BuildStatus::Failed => Some(
                obs.reason
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| {
                        format!("image build {}", obs.state.as_str().to_lowercase())
                    }),
            ),
            _ => None,
        };
    }
    for region in &regions {
        record
            .amis
            .insert((*region).clone(), obs.amis[*region].clone());
        record.ami_keys.insert((*region).clone(), key.clone());
    }
    if ami_advances {
        record.ami_id = record
            .amis
            .get(&obs.home_region)
            .or_else(|| record.amis.values().next())
            .cloned();
    }
    if newest_advances {
        record.ami_build_id = Some(obs.build_id.clone());
        record.ami_updated_at = Some(time::truncate(obs.at));
        record.ami_order_key = Some(key);
        // A fallback after a revoke lasts until a newer good build; a pin is held.
        if record.release.as_ref().is_some_and(|r| !r.kind.held()) {
            record.release = None;
        }
    } else if ami_advances && current.is_some() {
        // Only region registers moved, not the guard the store's condition checks:
        // the revision serialises this write against a concurrent one.
        record.rev += 1;
    }
    Transition::Write {
        record: Box::new(record),
        ami_changed: ami_advances,
    }
}

#[cfg(test)]
mod tests;
