//! Per-preset history: the rollup kept beside the build records, and the public
//! `/history.json` entry derived from it (DESIGN.md, "History and feeds").
//!
//! The rollup is a pure function of a preset's BUILD items ([`Rollup::from_builds`]),
//! recomputed by the write path after every build write, so a read costs one item per
//! preset whatever the length of the history. What is time-dependent (the 90 days, the
//! uptime windows) is derived at read time from the rollup's readiness transitions
//! ([`Rollup::public`]).
//!
//! *Ready* means runners have a good image: from a successful build's end until the end
//! of a later failed or cancelled build. A rebuild in progress keeps the preset ready
//! (runners keep the previous AMI); a preset before its first success is not ready.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::build::BuildRecord;
use crate::state::ImageState;
use crate::time;

pub use crate::table::{RECORD_TYPE_HISTORY, history_job_id};

/// Daily entries in `/history.json` (oldest first, today last).
pub const DAYS: usize = 90;
/// Builds kept per preset (newest first).
pub const MAX_BUILDS: usize = 20;

/// How a build ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Available,
    Failed,
    Cancelled,
    Building,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Available => "available",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Building => "building",
        }
    }

    /// Failed or cancelled: runners lost nothing, but the build did not deliver.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Cancelled)
    }
}

/// Validation tests of a build. `null` where Image Builder does not say (a build that
/// failed in its TEST phase reports that the phase failed, not which test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Tests {
    pub passed: Option<u32>,
    pub failed: Option<u32>,
}

/// One build, public: built field by field from the BUILD item (no ARN, no reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildSummary {
    /// `1.0.42/3`.
    pub version: String,
    pub outcome: Outcome,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub amis: BTreeMap<String, String>,
    pub tests: Tests,
}

impl BuildSummary {
    /// The allow-list. `test_count` is the preset's number of validation tests.
    pub fn of(b: &BuildRecord, test_count: u32) -> BuildSummary {
        let outcome = match b.outcome {
            Some(ImageState::Available) => Outcome::Available,
            Some(ImageState::Cancelled) => Outcome::Cancelled,
            Some(_) => Outcome::Failed,
            None => Outcome::Building,
        };
        let tests = if b.tested.is_some() {
            // A `kiln test` run: its own per-test outcome.
            let passed = b.tests.iter().filter(|t| t.passed).count() as u32;
            Tests {
                passed: Some(passed),
                failed: Some(b.tests.len() as u32 - passed),
            }
        } else if b.validated {
            Tests {
                passed: Some(test_count),
                failed: Some(0),
            }
        } else if outcome.is_failure() {
            // A failed build's record keeps the terminal state, not the phase it failed
            // in, and Image Builder does not report which tests ran: unknown, not 0/0.
            Tests::default()
        } else {
            // Not (yet) tested.
            Tests {
                passed: Some(0),
                failed: Some(0),
            }
        };
        BuildSummary {
            version: b.build_version.clone(),
            outcome,
            started_at: time::format(b.started_at),
            finished_at: b.ended_at.map(time::format),
            amis: if outcome == Outcome::Available {
                b.amis.clone()
            } else {
                BTreeMap::new()
            },
            tests,
        }
    }

    pub fn finished(&self) -> Option<DateTime<Utc>> {
        self.finished_at
            .as_deref()
            .and_then(|t| time::parse(t).ok())
    }
}

/// A change of readiness at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    #[serde(with = "time::serde_secs")]
    pub at: DateTime<Utc>,
    pub ready: bool,
}

/// The stored rollup (`jobId = HISTORY#<preset>`, `recordType = HISTORY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollup {
    pub job_id: String,
    pub record_type: String,
    pub preset: String,
    /// When the preset's first build started: days before it are `null`.
    #[serde(default, with = "time::serde_secs_opt")]
    pub since: Option<DateTime<Utc>>,
    /// Readiness changes, oldest first, trimmed to the window (plus the one before it).
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// Newest first, at most [`MAX_BUILDS`].
    #[serde(default)]
    pub builds: Vec<BuildSummary>,
}

/// Uptime over the standard windows (`null` when the preset did not exist in it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uptime {
    #[serde(rename = "24h")]
    pub h24: Option<f64>,
    #[serde(rename = "7d")]
    pub d7: Option<f64>,
    #[serde(rename = "30d")]
    pub d30: Option<f64>,
    #[serde(rename = "90d")]
    pub d90: Option<f64>,
}

/// One UTC day: the fraction of it (of its elapsed part, today) the preset was ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Day {
    pub date: String,
    pub ready: Option<f64>,
}

/// One preset in `/history.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetHistory {
    pub name: String,
    pub days: Vec<Day>,
    pub uptime: Uptime,
    pub builds: Vec<BuildSummary>,
}

impl Rollup {
    /// An empty rollup (no builds yet).
    pub fn empty(preset: &str) -> Rollup {
        Rollup {
            job_id: history_job_id(preset),
            record_type: RECORD_TYPE_HISTORY.into(),
            preset: preset.into(),
            since: None,
            transitions: vec![],
            builds: vec![],
        }
    }

    /// The rollup of `builds` (every BUILD item of `preset`, any order), as of `now`
    /// (only for trimming: transitions older than the window are dropped, except the
    /// last one before it, which gives the state at the window's start).
    pub fn from_builds(
        preset: &str,
        builds: &[BuildRecord],
        test_count: u32,
        now: DateTime<Utc>,
    ) -> Rollup {
        let mut r = Rollup::empty(preset);
        let mine: Vec<&BuildRecord> = builds.iter().filter(|b| b.preset == preset).collect();
        r.since = mine.iter().map(|b| b.started_at).min();
        let mut finished: Vec<(DateTime<Utc>, bool, &str)> = mine
            .iter()
            .filter_map(|b| {
                let end = b.ended_at?;
                Some((
                    end,
                    b.outcome == Some(ImageState::Available),
                    b.build_version.as_str(),
                ))
            })
            .collect();
        // Same-second ends: the version breaks the tie, so any input order gives one result.
        finished.sort();
        for (at, ready, _) in finished {
            if r.transitions.last().map(|t| t.ready) != Some(ready) {
                r.transitions.push(Transition { at, ready });
            }
        }
        let window_start = now - Duration::days(DAYS as i64 + 1);
        let first_kept = r
            .transitions
            .iter()
            .rposition(|t| t.at <= window_start)
            .unwrap_or(0);
        r.transitions.drain(..first_kept);

        let mut summaries: Vec<BuildSummary> = mine
            .iter()
            .map(|b| BuildSummary::of(b, test_count))
            .collect();
        summaries.sort_by(|a, b| {
            (b.started_at.as_str(), b.version.as_str()).cmp(&(a.started_at.as_str(), &a.version))
        });
        summaries.truncate(MAX_BUILDS);
        r.builds = summaries;
        r
    }

    /// Ready at `t` (after [`Rollup::since`]).
    fn ready_at(&self, t: DateTime<Utc>) -> bool {
        self.transitions
            .iter()
            .rev()
            .find(|x| x.at <= t)
            .is_some_and(|x| x.ready)
    }

    /// Fraction of `[from, to)` ∩ `[since, now]` the preset was ready; `None` when the
    /// preset did not exist in it.
    pub fn ready_fraction(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<f64> {
        let since = self.since?;
        let start = from.max(since);
        let end = to.min(now);
        if end <= start {
            return None;
        }
        let mut ready_secs = 0i64;
        let mut cursor = start;
        let mut ready = self.ready_at(start);
        for t in self
            .transitions
            .iter()
            .filter(|t| t.at > start && t.at < end)
        {
            if ready {
                ready_secs += (t.at - cursor).num_seconds();
            }
            cursor = t.at;
            ready = t.ready;
        }
        if ready {
            ready_secs += (end - cursor).num_seconds();
        }
        let total = (end - start).num_seconds();
        Some(round4(ready_secs as f64 / total as f64))
    }

    /// The `/history.json` entry as of `now`.
    pub fn public(&self, now: DateTime<Utc>) -> PresetHistory {
        let today = now.date_naive();
        let days = (0..DAYS as i64)
            .rev()
            .map(|back| {
                let date = today - Duration::days(back);
                let from = day_start(date);
                Day {
                    date: date.format("%Y-%m-%d").to_string(),
                    ready: self.ready_fraction(from, from + Duration::days(1), now),
                }
            })
            .collect();
        let window = |d: Duration| self.ready_fraction(now - d, now, now);
        PresetHistory {
            name: self.preset.clone(),
            days,
            uptime: Uptime {
                h24: window(Duration::hours(24)),
                d7: window(Duration::days(7)),
                d30: window(Duration::days(30)),
                d90: window(Duration::days(90)),
            },
            builds: self.builds.clone(),
        }
    }
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// Four decimals (0.01 %): stable output, so unchanged history keeps its ETag longer.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The `/history.json` entries of every preset shown in `/status`, in that order; a
/// preset without a rollup has an empty history.
pub fn public_histories(
    names: &[&str],
    rollups: &[Rollup],
    now: DateTime<Utc>,
) -> Vec<PresetHistory> {
    names
        .iter()
        .map(|n| match rollups.iter().find(|r| r.preset == *n) {
            Some(r) => r.public(now),
            None => Rollup::empty(n).public(now),
        })
        .collect()
}

#[cfg(test)]
mod tests;
