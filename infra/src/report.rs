//! The build report of `kiln build --wait`: each step as it happens (base image
//! resolved, build instance and setup, each validation test by name, AMI created,
//! distribution per region) with its duration, then a summary with the AMIs per region
//! and the total time. `--json` prints the same as JSON lines.
//!
//! Steps are derived from the Image Builder states a poll sees. A state skipped between
//! two polls still gets its step, without a duration. Image Builder reports no per-test
//! results: a build that leaves TESTING for DISTRIBUTING passed every test (the TEST
//! phase fails the build on any failure); a build that fails in TESTING names the test
//! in its reason when it can, and the others are reported as not known.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln_shared::ImageState;
use serde::Serialize;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub preset: String,
    /// `base-image`, `setup`, `test`, `ami`, `distribution`, `summary`.
    pub step: &'static str,
    /// The step's own name: the test's name, the region, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `done`, `passed`, `failed`, `unknown`, `timed-out`.
    pub outcome: &'static str,
    /// Seconds the step took; `None` when two polls saw it start and end.
    pub seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub amis: BTreeMap<String, String>,
}

impl Event {
    fn new(preset: &str, step: &'static str, outcome: &'static str) -> Self {
        Event {
            preset: preset.to_owned(),
            step,
            name: None,
            outcome,
            seconds: None,
            detail: None,
            amis: BTreeMap::new(),
        }
    }

    /// The human line.
    pub fn render(&self, width: usize) -> String {
        let mark = match self.outcome {
            "done" | "passed" => "ok  ",
            "failed" => "FAIL",
            "timed-out" => "TIME",
            _ => "?   ",
        };
        let what = match (self.step, &self.name) {
            ("base-image", _) => "base image resolved".to_owned(),
            ("setup", _) => "build instance launched, setup script run".to_owned(),
            ("test", Some(n)) => format!("validation test \"{n}\""),
            ("ami", _) => "AMI created".to_owned(),
            ("distribution", Some(r)) => format!("distributed to {r}"),
            ("summary", _) => "total".to_owned(),
            (s, _) => s.to_owned(),
        };
        let time = self.seconds.map_or_else(|| "-".to_owned(), human);
        let mut line = format!("{:<width$}  {mark} {what:<44} {time:>8}", self.preset);
        if let Some(d) = &self.detail {
            line.push_str(&format!("  {d}"));
        }
        if !self.amis.is_empty() {
            let amis: Vec<String> = self.amis.iter().map(|(r, a)| format!("{r}={a}")).collect();
            line.push_str(&format!("  {}", amis.join(" ")));
        }
        line
    }
}

fn human(secs: u64) -> String {
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The phases before AVAILABLE, in order.
const PHASES: [ImageState; 4] = [
    ImageState::Pending,
    ImageState::Building,
    ImageState::Testing,
    ImageState::Distributing,
];

fn phase_of(state: ImageState) -> Option<usize> {
    match state {
        ImageState::Pending | ImageState::Creating => Some(0),
        ImageState::Building => Some(1),
        ImageState::Testing => Some(2),
        ImageState::Distributing | ImageState::Integrating => Some(3),
        ImageState::Available => Some(4),
        _ => None,
    }
}

/// Turns the states one build goes through into report events.
pub struct Tracker {
    preset: String,
    tests: Vec<String>,
    phase: usize,
    phase_started: Instant,
    started: Instant,
}

impl Tracker {
    pub fn new(preset: &str, tests: Vec<String>) -> Self {
        let now = Instant::now();
        Tracker {
            preset: preset.to_owned(),
            tests,
            phase: 0,
            phase_started: now,
            started: now,
        }
    }

    /// The events a newly seen state completes.
    pub fn observe(
        &mut self,
        state: &str,
        reason: Option<&str>,
        amis: &BTreeMap<String, String>,
    ) -> Vec<Event> {
        self.observe_at(state, reason, amis, Instant::now())
    }

    fn observe_at(
        &mut self,
        state: &str,
        reason: Option<&str>,
        amis: &BTreeMap<String, String>,
        now: Instant,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(parsed) = ImageState::parse(state) else {
            return out;
        };
        if let Some(next) = phase_of(parsed) {
            if next <= self.phase {
                return out;
            }
            for (phase, state) in PHASES.iter().enumerate().take(next).skip(self.phase) {
                // Only the phase we saw begin has a measured duration.
                let seconds =
                    (phase == self.phase).then(|| now.duration_since(self.phase_started).as_secs());
                out.extend(self.completed(*state, seconds, amis));
            }
            self.phase = next;
            self.phase_started = now;
            return out;
        }
        // FAILED / CANCELLED: the current phase failed.
        let seconds = Some(now.duration_since(self.phase_started).as_secs());
        let reason = reason.unwrap_or("Image Builder gave no reason").to_owned();
        if PHASES.get(self.phase) == Some(&ImageState::Testing) && !self.tests.is_empty() {
            let named: Vec<&String> = self
                .tests
                .iter()
                .filter(|t| reason.contains(t.as_str()))
                .collect();
            for t in &self.tests {
                let mut e = Event::new(
                    &self.preset,
                    "test",
                    if named.contains(&t) {
                        "failed"
                    } else {
                        "unknown"
                    },
                );
                e.name = Some(t.clone());
                if named.contains(&t) {
                    e.detail = Some(reason.clone());
                }
                out.push(e);
            }
            if named.is_empty() {
                let mut e = Event::new(&self.preset, "test", "failed");
                e.seconds = seconds;
                e.detail = Some(reason);
                out.push(e);
            }
        } else {
            let step = self.step_name(self.phase);
            let mut e = Event::new(&self.preset, step, "failed");
            e.seconds = seconds;
            e.detail = Some(format!("{}: {reason}", state.to_ascii_lowercase()));
            out.push(e);
        }
        self.phase = PHASES.len() + 1;
        out
    }

    fn step_name(&self, phase: usize) -> &'static str {
        match phase {
            0 => "base-image",
            1 => "setup",
            2 => "test",
            _ => "distribution",
        }
    }

    fn completed(
        &self,
        phase: ImageState,
        seconds: Option<u64>,
        amis: &BTreeMap<String, String>,
    ) -> Vec<Event> {
        let p = &self.preset;
        match phase {
            ImageState::Pending => vec![Event {
                seconds,
                ..Event::new(p, "base-image", "done")
            }],
            ImageState::Building => vec![Event {
                seconds,
                ..Event::new(p, "setup", "done")
            }],
            ImageState::Testing => {
                let mut out: Vec<Event> = self
                    .tests
                    .iter()
                    .map(|t| Event {
                        name: Some(t.clone()),
                        ..Event::new(p, "test", "passed")
                    })
                    .collect();
                if out.is_empty() {
                    out.push(Event {
                        detail: Some("no validation tests".into()),
                        ..Event::new(p, "test", "done")
                    });
                }
                // The phase's time, on the last test (Image Builder runs them in one go).
                if let Some(last) = out.last_mut() {
                    last.seconds = seconds;
                }
                out.push(Event::new(p, "ami", "done"));
                out
            }
            _ => {
                let mut out: Vec<Event> = amis
                    .iter()
                    .map(|(region, ami)| Event {
                        name: Some(region.clone()),
                        detail: Some(ami.clone()),
                        ..Event::new(p, "distribution", "done")
                    })
                    .collect();
                if let Some(first) = out.first_mut() {
                    first.seconds = seconds;
                }
                out
            }
        }
    }

    /// The closing line: total time, AMIs per region (empty unless it succeeded).
    pub fn summary(&self, outcome: &'static str, amis: &BTreeMap<String, String>) -> Event {
        Event {
            seconds: Some(self.started.elapsed().as_secs()),
            amis: amis.clone(),
            ..Event::new(&self.preset, "summary", outcome)
        }
    }

    #[cfg(test)]
    fn shift(&mut self, by: Duration) {
        self.started -= by;
        self.phase_started -= by;
    }
}

/// Follows the started builds (preset, image ARN) at once, emitting each step as it
/// happens and a summary per build. `tests`: preset → its validation test names.
pub async fn follow_reported(
    images: &dyn kiln_aws::images::ImageBuilderApi,
    started: Vec<(String, String)>,
    tests: &BTreeMap<String, Vec<String>>,
    timeout: Duration,
    interval: Duration,
    emit: &(dyn Fn(&Event) + Sync),
) -> Vec<crate::build::Followed> {
    use crate::build::{Followed, Outcome, follow};
    let tasks = started.into_iter().map(|(preset, image_arn)| async move {
        let tracker = std::sync::Mutex::new(Tracker::new(
            &preset,
            tests.get(&preset).cloned().unwrap_or_default(),
        ));
        let outcome = follow(images, &image_arn, timeout, interval, |s| {
            let events = tracker.lock().expect("tracker lock").observe(
                &s.state,
                s.reason.as_deref(),
                &s.amis,
            );
            events.iter().for_each(emit);
        })
        .await;
        let t = tracker.into_inner().expect("tracker lock");
        let summary = match &outcome {
            Outcome::Available { amis } => t.summary("done", amis),
            Outcome::Failed { .. } => t.summary("failed", &BTreeMap::new()),
            Outcome::TimedOut { last_state } => Event {
                detail: Some(format!("still {last_state}")),
                ..t.summary("timed-out", &BTreeMap::new())
            },
        };
        emit(&summary);
        Followed {
            preset,
            image_arn,
            outcome,
        }
    });
    futures::future::join_all(tasks).await
}

/// Clock used by the tests to place a state change `secs` after the tracker started.
#[cfg(test)]
fn at(t: &Tracker, secs: u64) -> Instant {
    t.started + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amis() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("us-east-1".to_owned(), "ami-1".to_owned()),
            ("us-west-2".to_owned(), "ami-2".to_owned()),
        ])
    }

    #[test]
    fn a_good_build_reports_every_step_with_durations() {
        let mut t = Tracker::new("r-x64", vec!["RStudio Server running".into(), "r".into()]);
        let none = BTreeMap::new();
        let mut events = Vec::new();
        events.extend(t.observe_at("BUILDING", None, &none, at(&t, 5)));
        events.extend(t.observe_at("TESTING", None, &none, at(&t, 65)));
        events.extend(t.observe_at("DISTRIBUTING", None, &none, at(&t, 95)));
        events.extend(t.observe_at("AVAILABLE", None, &amis(), at(&t, 125)));
        let steps: Vec<(&str, Option<&str>, &str, Option<u64>)> = events
            .iter()
            .map(|e| (e.step, e.name.as_deref(), e.outcome, e.seconds))
            .collect();
        assert_eq!(
            steps,
            [
                ("base-image", None, "done", Some(5)),
                ("setup", None, "done", Some(60)),
                ("test", Some("RStudio Server running"), "passed", None),
                ("test", Some("r"), "passed", Some(30)),
                ("ami", None, "done", None),
                ("distribution", Some("us-east-1"), "done", Some(30)),
                ("distribution", Some("us-west-2"), "done", None),
            ]
        );
        t.shift(Duration::from_secs(125));
        let s = t.summary("done", &amis());
        assert_eq!(s.seconds, Some(125));
        assert!(
            s.render(6).contains("us-east-1=ami-1 us-west-2=ami-2"),
            "{}",
            s.render(6)
        );
        let json = serde_json::to_value(&events[2]).unwrap();
        assert_eq!(json["name"], "RStudio Server running");
        assert_eq!(json["outcome"], "passed");
    }

    #[test]
    fn skipped_states_still_report_their_steps() {
        let mut t = Tracker::new("p", vec![]);
        let events = t.observe_at("AVAILABLE", None, &amis(), at(&t, 40));
        let steps: Vec<&str> = events.iter().map(|e| e.step).collect();
        assert_eq!(
            steps,
            [
                "base-image",
                "setup",
                "test",
                "ami",
                "distribution",
                "distribution"
            ]
        );
        assert_eq!(events[0].seconds, Some(40));
        assert_eq!(events[1].seconds, None);
        // A state seen again changes nothing.
        assert!(
            t.observe_at("AVAILABLE", None, &amis(), at(&t, 41))
                .is_empty()
        );
    }

    #[test]
    fn a_failed_test_is_named_and_the_others_unknown() {
        let mut t = Tracker::new("p", vec!["docker".into(), "git".into()]);
        let none = BTreeMap::new();
        t.observe_at("TESTING", None, &none, at(&t, 10));
        let events = t.observe_at(
            "FAILED",
            Some("validation test 'docker' failed: exit status 1"),
            &none,
            at(&t, 20),
        );
        let tests: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.name.as_deref().unwrap_or(""), e.outcome))
            .collect();
        assert_eq!(tests, [("docker", "failed"), ("git", "unknown")]);
        let mut t = Tracker::new("p", vec!["docker".into()]);
        t.observe_at("BUILDING", None, &none, at(&t, 1));
        let events = t.observe_at("FAILED", Some("setup script exited 1"), &none, at(&t, 30));
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].step, events[0].outcome), ("setup", "failed"));
        assert!(events[0].render(1).contains("setup script exited 1"));
    }
}
