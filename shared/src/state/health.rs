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
    /// Warning keys as of the newest entry of `transitions` (kept whether or not alerts
    /// are configured).
    #[serde(default)]
    pub logged: Vec<String>,
    /// Warnings raised and cleared, newest last (at most [`MAX_TRANSITIONS`]): the feed's
    /// warning entries.
    #[serde(default)]
    pub transitions: Vec<WarningTransition>,
}

/// Warning transitions kept per preset.
pub const MAX_TRANSITIONS: usize = 20;

/// A warning raised or cleared, as reconcile observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningTransition {
    #[serde(with = "time::serde_secs")]
    pub at: DateTime<Utc>,
    /// `code` or `code:region`.
    pub key: String,
    pub raised: bool,
    /// The warning's plain message (for a cleared warning: the one it was raised with).
    pub message: String,
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
            logged: Vec::new(),
            transitions: Vec::new(),
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
            health.logged = old.logged.clone();
            health.transitions = old.transitions.clone();
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

    /// The record with the transitions from the logged warnings to `current` (each a
    /// warning's key and message) appended to its log, raised ones first, or `None` when
    /// nothing moved.
    pub fn with_transitions(
        &self,
        current: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Option<AmiRecord> {
        let mut health = self
            .health
            .clone()
            .unwrap_or_else(|| Health::new(now, DEFAULT_MAX_AGE_DAYS));
        let keys: Vec<String> = current.iter().map(|(k, _)| k.clone()).collect();
        if health.logged == keys {
            return None;
        }
        let at = time::truncate(now);
        let mut added: Vec<WarningTransition> = current
            .iter()
            .filter(|(k, _)| !health.logged.contains(k))
            .map(|(key, message)| WarningTransition {
                at,
                key: key.clone(),
                raised: true,
                message: message.clone(),
            })
            .collect();
        for key in health.logged.iter().filter(|k| !keys.contains(k)) {
            let message = health
                .transitions
                .iter()
                .rev()
                .find(|t| t.raised && &t.key == key)
                .map_or_else(|| key.replace('_', " "), |t| t.message.clone());
            added.push(WarningTransition {
                at,
                key: key.clone(),
                raised: false,
                message,
            });
        }
        health.transitions.extend(added);
        let excess = health.transitions.len().saturating_sub(MAX_TRANSITIONS);
        health.transitions.drain(..excess);
        health.logged = keys;
        let mut next = self.clone();
        next.health = Some(health);
        next.rev = self.rev + 1;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str) -> (String, String) {
        (key.to_owned(), format!("{key} message"))
    }

    #[test]
    fn transitions_are_logged_once_per_change_and_bounded() {
        let t0 = crate::time::parse("2026-12-01T00:00:00Z").unwrap();
        let r = AmiRecord::initial("p", None, t0);
        assert!(r.with_transitions(&[], t0).is_none(), "nothing to log");

        let raised = r
            .with_transitions(&[w("pipeline_disabled"), w("ami_missing:us-east-2")], t0)
            .unwrap();
        assert_eq!(raised.rev, r.rev + 1);
        let h = raised.health.as_ref().unwrap();
        assert_eq!(h.logged, ["pipeline_disabled", "ami_missing:us-east-2"]);
        assert_eq!(h.transitions.len(), 2);
        assert!(h.transitions.iter().all(|t| t.raised && t.at == t0));
        assert!(
            raised
                .with_transitions(&[w("pipeline_disabled"), w("ami_missing:us-east-2")], t0)
                .is_none(),
            "the same warnings again log nothing"
        );

        let t1 = t0 + chrono::Duration::hours(1);
        let cleared = raised
            .with_transitions(&[w("ami_missing:us-east-2")], t1)
            .unwrap();
        let last = cleared.health.as_ref().unwrap().transitions.last().unwrap();
        assert_eq!(
            (
                last.key.as_str(),
                last.raised,
                last.message.as_str(),
                last.at
            ),
            ("pipeline_disabled", false, "pipeline_disabled message", t1),
            "a cleared warning carries the message it was raised with"
        );
        // Observed health does not drop the log.
        let observed = cleared.with_health(Health::new(t1, 7)).unwrap();
        assert_eq!(observed.health.as_ref().unwrap().transitions.len(), 3);

        let mut flapping = cleared;
        for i in 0..30 {
            let at = t1 + chrono::Duration::minutes(i + 1);
            let now: &[(String, String)] = if i % 2 == 0 { &[] } else { &[w("revoked")][..] };
            flapping = flapping.with_transitions(now, at).unwrap_or(flapping);
        }
        assert_eq!(
            flapping.health.unwrap().transitions.len(),
            MAX_TRANSITIONS,
            "the log keeps the newest entries only"
        );
    }
}
