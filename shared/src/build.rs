//! Build history items (`jobId = BUILD#<preset>#<buildVersion>`, `recordType = BUILD`):
//! one per image build, feeding `kiln list` and the registry export.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::preset::Architecture;
use crate::state::{BuildStatus, ImageState, Observation};
use crate::time;

pub use crate::table::{RECORD_TYPE_BUILD, build_job_id};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    pub job_id: String,
    pub record_type: String,
    pub preset: String,
    #[serde(default)]
    pub architecture: Option<Architecture>,
    /// `1.0.42/3`.
    pub build_version: String,
    /// Image build version ARN.
    pub build_id: String,
    pub status: BuildStatus,
    /// Last Image Builder state seen (by order, not arrival).
    pub last_state: ImageState,
    #[serde(with = "time::serde_secs")]
    pub started_at: DateTime<Utc>,
    #[serde(default, with = "time::serde_secs_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    /// AVAILABLE | FAILED | CANCELLED once finished.
    #[serde(default)]
    pub outcome: Option<ImageState>,
    #[serde(default)]
    pub amis: BTreeMap<String, String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The TEST phase passed (validation tests ran and succeeded).
    #[serde(default)]
    pub validated: bool,
    #[serde(default)]
    pub size_gb: Option<u32>,
    /// Each validation test's outcome, when known (`kiln test`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<crate::registry::TestResult>,
    /// The latest `kiln test` run against one of its AMIs (`tests` are its results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested: Option<crate::validation::TestRun>,
}

impl BuildRecord {
    /// Validated as far as kiln knows: the latest `kiln test` run when there is one,
    /// else the pipeline's TEST phase.
    pub fn validated_now(&self) -> bool {
        self.tested.as_ref().map_or(self.validated, |t| t.passed)
    }

    /// A build whose TEST phase passed passed each of `tests` (Image Builder fails the
    /// phase on the first failing one and reports no per-test outcome of its own); kept
    /// until a `kiln test` run gives results with output. `tests` (the names) is only
    /// asked for then: the caller need not decode the preset for every event.
    pub fn infer_passed_tests(&mut self, tests: impl FnOnce() -> Vec<String>) {
        if self.validated && self.tests.is_empty() && self.tested.is_none() {
            self.tests = tests()
                .into_iter()
                .map(|name| crate::registry::TestResult {
                    name,
                    passed: true,
                    output: None,
                })
                .collect();
        }
    }

    /// Records a `kiln test` run: its results replace the build's per-test results.
    pub fn record_test_run(
        &mut self,
        run: crate::validation::TestRun,
        results: Vec<crate::registry::TestResult>,
    ) {
        self.tested = Some(run);
        self.tests = results;
    }
}

/// Folds one observation into a build's history item. Order-independent: start is the
/// earliest time seen, the state is the highest-ranked one, AMIs come from AVAILABLE.
///
/// Same ordering rule as the AMI record: an observation cannot be older than what it
/// follows. A build starts in a non-terminal state, so a terminal observation dated
/// before the build's start is out of order and changes nothing, and only a
/// non-terminal observation moves the start earlier.
pub fn apply_build(
    current: Option<&BuildRecord>,
    obs: &Observation,
    build_version: &str,
) -> Option<BuildRecord> {
    let status = obs.state.build_status()?;
    let at = time::truncate(obs.at);
    let mut r = current.cloned().unwrap_or_else(|| BuildRecord {
        job_id: build_job_id(&obs.preset, build_version),
        record_type: RECORD_TYPE_BUILD.into(),
        preset: obs.preset.clone(),
        architecture: obs.architecture,
        build_version: build_version.into(),
        build_id: obs.build_id.clone(),
        status,
        last_state: obs.state,
        started_at: at,
        ended_at: None,
        outcome: None,
        amis: BTreeMap::new(),
        reason: None,
        validated: false,
        size_gb: None,
        tests: Vec::new(),
        tested: None,
    });
    if current.is_some() && obs.state.is_terminal() && at < r.started_at {
        return None;
    }
    let before = r.clone();
    if at < r.started_at && !obs.state.is_terminal() {
        r.started_at = at;
    }
    if let Some(created) = obs.started.map(time::truncate)
        && created < r.started_at
    {
        r.started_at = created;
    }
    if (obs.state.rank(), obs.state) > (r.last_state.rank(), r.last_state) {
        r.last_state = obs.state;
        r.status = status;
    }
    if obs.state.rank() > ImageState::Testing.rank()
        && obs.state != ImageState::Failed
        && obs.state != ImageState::Cancelled
    {
        // Reaching DISTRIBUTING or AVAILABLE means the TEST phase passed.
        r.validated = true;
    }
    if obs.state.is_terminal() {
        r.ended_at = Some(r.ended_at.map_or(at, |e| e.max(at)));
        r.outcome = Some(r.last_state);
        if obs.state == ImageState::Available && !obs.amis.is_empty() {
            r.amis = obs.amis.clone();
        }
        if obs.state != ImageState::Available {
            r.reason = obs.reason.clone().or(r.reason);
        }
    }
    (r != before || current.is_none()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(state: ImageState, at: &str) -> Observation {
        Observation {
            preset: "p".into(),
            architecture: Some(Architecture::X86_64),
            state,
            at: time::parse(at).unwrap(),
            build_id: "arn:aws:imagebuilder:us-east-1:123456789012:image/p/1.0.0/1".into(),
            amis: if state == ImageState::Available {
                BTreeMap::from([("us-east-1".into(), "ami-1".into())])
            } else {
                BTreeMap::new()
            },
            home_region: "us-east-1".into(),
            reason: None,
            started: None,
        }
    }

    #[test]
    fn history_is_order_independent() {
        let events = [
            obs(ImageState::Building, "2026-01-01T00:00:00Z"),
            obs(ImageState::Testing, "2026-01-01T00:10:00Z"),
            obs(ImageState::Distributing, "2026-01-01T00:20:00Z"),
            obs(ImageState::Available, "2026-01-01T00:30:00Z"),
        ];
        let fold = |order: &[usize]| {
            let mut r: Option<BuildRecord> = None;
            for &i in order {
                if let Some(n) = apply_build(r.as_ref(), &events[i], "1.0.0/1") {
                    r = Some(n);
                }
            }
            r.unwrap()
        };
        let sorted = fold(&[0, 1, 2, 3]);
        assert_eq!(sorted.status, BuildStatus::Ready);
        assert!(sorted.validated);
        assert_eq!(time::format(sorted.started_at), "2026-01-01T00:00:00Z");
        assert_eq!(
            sorted.ended_at.map(time::format).as_deref(),
            Some("2026-01-01T00:30:00Z")
        );
        assert_eq!(fold(&[3, 1, 0, 2, 3]), sorted);
        assert_eq!(fold(&[2, 3, 0, 1]), sorted);
        // Duplicate delivery changes nothing.
        assert!(apply_build(Some(&sorted), &events[3], "1.0.0/1").is_none());
    }

    #[test]
    fn an_out_of_order_terminal_event_does_not_rewrite_the_history() {
        let building = obs(ImageState::Building, "2026-01-01T00:00:00Z");
        let r = apply_build(None, &building, "v").unwrap();
        for state in [ImageState::Available, ImageState::Failed] {
            let ancient = obs(state, "0000-01-01T00:00:00Z");
            assert_eq!(apply_build(Some(&r), &ancient, "v"), None, "{state}");
        }
        // A terminal first, its BUILDING after: the start still comes from BUILDING.
        let done = apply_build(
            None,
            &obs(ImageState::Available, "2026-01-01T00:30:00Z"),
            "v",
        );
        let r = apply_build(done.as_ref(), &building, "v").unwrap();
        assert_eq!(time::format(r.started_at), "2026-01-01T00:00:00Z");
        assert_eq!(r.status, BuildStatus::Ready);
    }

    #[test]
    fn a_build_past_its_test_phase_passed_each_test_and_a_test_run_wins() {
        let names = ["a".to_owned(), "b".to_owned()];
        let mut r = apply_build(
            None,
            &obs(ImageState::Testing, "2026-01-01T00:01:00Z"),
            "1.0.0/1",
        )
        .unwrap();
        r.infer_passed_tests(|| names.to_vec());
        assert!(r.tests.is_empty(), "not past TESTING yet");
        let mut r = apply_build(
            Some(&r),
            &obs(ImageState::Distributing, "2026-01-01T00:02:00Z"),
            "1.0.0/1",
        )
        .unwrap();
        r.infer_passed_tests(|| names.to_vec());
        assert_eq!(r.tests.len(), 2);
        assert!(r.tests.iter().all(|t| t.passed && t.output.is_none()));
        let failed = vec![crate::registry::TestResult {
            name: "a".into(),
            passed: false,
            output: Some("inactive".into()),
        }];
        let at = time::parse("2026-01-02T00:00:00Z").unwrap();
        r.record_test_run(
            crate::validation::TestRun::new(at, "us-east-1", "ami-1", &failed),
            failed.clone(),
        );
        r.infer_passed_tests(|| names.to_vec());
        assert_eq!(
            r.tests, failed,
            "a later event does not overwrite a test run"
        );
        assert!(!r.validated_now() && r.validated);
    }

    #[test]
    fn failure_in_test_is_not_validated() {
        let mut r =
            apply_build(None, &obs(ImageState::Testing, "2026-01-01T00:10:00Z"), "v").unwrap();
        let mut failed = obs(ImageState::Failed, "2026-01-01T00:11:00Z");
        failed.reason = Some("test failed".into());
        r = apply_build(Some(&r), &failed, "v").unwrap();
        assert_eq!(r.status, BuildStatus::Failed);
        assert!(!r.validated);
        assert_eq!(r.reason.as_deref(), Some("test failed"));
        assert_eq!(r.outcome, Some(ImageState::Failed));
    }

    #[test]
    fn a_build_first_seen_finished_starts_at_the_images_creation() {
        // Every event lost; reconcile sees the image AVAILABLE, with its dateCreated.
        let mut seen = obs(ImageState::Available, "2026-01-01T01:00:00Z");
        seen.started = Some(time::parse("2026-01-01T00:20:00Z").unwrap());
        let r = apply_build(None, &seen, "1.0.0/1").unwrap();
        assert_eq!(time::format(r.started_at), "2026-01-01T00:20:00Z");
        assert_eq!(time::format(r.ended_at.unwrap()), "2026-01-01T01:00:00Z");
        // A later BUILDING event with the real start time changes nothing more.
        let late = obs(ImageState::Building, "2026-01-01T00:25:00Z");
        assert!(apply_build(Some(&r), &late, "1.0.0/1").is_none());
    }
}
