//! What `reconcile` observes about a preset beyond its builds' events: the pipeline's
//! state, the current AMIs as EC2 sees them in each region, the newest success Image
//! Builder lists, and which warnings were last announced (alerts go out once per
//! transition, never once per run).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::AmiRecord;
use crate::time;

/// The default of the preset field `max_age_days`.
pub use crate::preset::DEFAULT_MAX_AGE_DAYS;

/// How a region's current AMI looks to EC2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmiProblem {
    /// DescribeImages does not return it (deregistered, or never copied there).
    Missing,
    /// The runner config's region has no AMI of the current build at all.
    NotDistributed,
    Deregistered,
    Disabled,
    Deprecated,
}

impl AmiProblem {
    pub fn describe(self) -> &'static str {
        match self {
            AmiProblem::Missing => "not found",
            AmiProblem::NotDistributed => "not distributed",
            AmiProblem::Deregistered => "deregistered",
            AmiProblem::Disabled => "disabled",
            AmiProblem::Deprecated => "deprecated",
        }
    }
}

/// One region's problem, about one AMI (a newer AMI in that region clears it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionProblem {
    /// The AMI that was checked (`None` for `not_distributed`).
    #[serde(default)]
    pub ami: Option<String>,
    pub problem: AmiProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[serde(with = "time::serde_secs")]
    pub observed_at: DateTime<Utc>,
    /// The preset's `max_age_days` when observed.
    pub max_age_days: u32,
    /// Image Builder reports the pipeline `DISABLED` (by an operator, or by its
    /// AutoDisablePolicy after consecutive failed scheduled builds).
    #[serde(default)]
    pub pipeline_disabled: bool,
    /// Region → what is wrong with the current AMI there.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionProblem>,
    /// Newest AVAILABLE image of the pipeline (a success whose event was lost counts).
    #[serde(default, with = "time::serde_secs_opt")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// Warning keys (`code` or `code:region`) last announced on the alerts topic.
    #[serde(default)]
    pub announced: Vec<String>,
}

impl Health {
    pub fn new(observed_at: DateTime<Utc>, max_age_days: u32) -> Self {
        Health {
            observed_at: time::truncate(observed_at),
            max_age_days,
            pipeline_disabled: false,
            regions: BTreeMap::new(),
            last_success_at: None,
            announced: Vec::new(),
        }
    }
}

impl AmiRecord {
    /// The preset's `max_age_days` as last observed (the default before that).
    pub fn max_age_days(&self) -> u32 {
        self.health
            .as_ref()
            .map_or(DEFAULT_MAX_AGE_DAYS, |h| h.max_age_days)
    }

    /// The newest successful build known: the AMI register or Image Builder's list.
    pub fn last_success_at(&self) -> Option<DateTime<Utc>> {
        let listed = self.health.as_ref().and_then(|h| h.last_success_at);
        match (self.ami_updated_at, listed) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The record with `health` observed (announcements kept), or `None` when that is
    /// what is stored already. Bumps the revision, like every write that is not an
    /// observation.
    pub fn with_health(&self, mut health: Health) -> Option<AmiRecord> {
        if let Some(old) = &self.health {
            health.announced = old.announced.clone();
            let mut same = old.clone();
            same.observed_at = health.observed_at;
            if same == health {
                return None;
            }
        }
        let mut next = self.clone();
        next.health = Some(health);
        next.rev = self.rev + 1;
        Some(next)
    }

    /// The record with `announced` as the warnings last announced, or `None` if so.
    pub fn with_announced(&self, announced: Vec<String>, now: DateTime<Utc>) -> Option<AmiRecord> {
        let mut health = self
            .health
            .clone()
            .unwrap_or_else(|| Health::new(now, DEFAULT_MAX_AGE_DAYS));
        if health.announced == announced {
            return None;
        }
        health.announced = announced;
        let mut next = self.clone();
        next.health = Some(health);
        next.rev = self.rev + 1;
        Some(next)
    }
}
