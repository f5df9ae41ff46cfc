use super::*;
use crate::build::RECORD_TYPE_BUILD;
use crate::state::BuildStatus;

fn at(s: &str) -> DateTime<Utc> {
    time::parse(s).unwrap()
}

fn build(
    version: &str,
    start: &str,
    end: Option<&str>,
    outcome: Option<ImageState>,
) -> BuildRecord {
    BuildRecord {
        job_id: format!("BUILD#p#{version}"),
        record_type: RECORD_TYPE_BUILD.into(),
        preset: "p".into(),
        architecture: None,
        build_version: version.into(),
        build_id: format!("arn:aws:imagebuilder:us-east-1:123456789012:image/p/{version}"),
        status: match outcome {
            Some(ImageState::Available) => BuildStatus::Ready,
            Some(_) => BuildStatus::Failed,
            None => BuildStatus::Building,
        },
        last_state: outcome.unwrap_or(ImageState::Building),
        started_at: at(start),
        ended_at: end.map(at),
        outcome,
        amis: BTreeMap::from([("us-east-1".into(), format!("ami-{}", version.len()))]),
        reason: Some("secret reason arn:aws:iam::123456789012:role/x".into()),
        validated: outcome == Some(ImageState::Available),
        size_gb: None,
        tests: vec![],
        tested: None,
    }
}

/// Success on day 1 at noon, failure on day 3 at 00:00, recovery on day 3 at 12:00.
fn sequence() -> Vec<BuildRecord> {
    vec![
        build(
            "1.0.0/3",
            "2026-11-03T00:00:00Z",
            Some("2026-11-03T12:00:00Z"),
            Some(ImageState::Available),
        ),
        build(
            "1.0.0/1",
            "2026-11-01T10:00:00Z",
            Some("2026-11-01T12:00:00Z"),
            Some(ImageState::Available),
        ),
        build(
            "1.0.0/2",
            "2026-11-02T20:00:00Z",
            Some("2026-11-03T00:00:00Z"),
            Some(ImageState::Failed),
        ),
        build("1.0.0/4", "2026-11-04T00:00:00Z", None, None),
    ]
}

#[test]
fn days_and_uptime_follow_success_failure_recovery() {
    let now = at("2026-11-04T06:00:00Z");
    let r = Rollup::from_builds("p", &sequence(), 2, now);
    assert_eq!(r.since, Some(at("2026-11-01T10:00:00Z")));
    assert_eq!(
        r.transitions.iter().map(|t| t.ready).collect::<Vec<_>>(),
        [true, false, true],
        "{r:?}"
    );
    let h = r.public(now);
    assert_eq!(h.days.len(), DAYS);
    assert_eq!(h.days.last().unwrap().date, "2026-11-04");
    let day = |d: &str| h.days.iter().find(|x| x.date == d).unwrap().ready;
    assert_eq!(day("2026-10-31"), None, "before the first build: null");
    // Existed from 10:00, ready from 12:00: 12 of 14 hours.
    assert_eq!(day("2026-11-01"), Some(round4(12.0 / 14.0)));
    assert_eq!(day("2026-11-02"), Some(1.0));
    assert_eq!(day("2026-11-03"), Some(0.5));
    // Today so far (6 h, rebuild in progress on the old AMI): ready.
    assert_eq!(day("2026-11-04"), Some(1.0));
    assert!(h.days.iter().take(DAYS - 5).all(|d| d.ready.is_none()));
    // Last 24 h: 2026-11-03T06:00 .. 11-04T06:00, not ready until 12:00: 18 of 24 h.
    assert_eq!(h.uptime.h24, Some(0.75));
    // 7 d: the preset existed 68 h, of which ready 66 - 12 = 54 h... computed exactly:
    let existed = (now - at("2026-11-01T10:00:00Z")).num_seconds() as f64;
    let down = (2.0 + 12.0) * 3600.0;
    assert_eq!(h.uptime.d7, Some(round4((existed - down) / existed)));
    assert_eq!(h.uptime.d30, h.uptime.d7);
    assert_eq!(h.uptime.d90, h.uptime.d7);
}

#[test]
fn a_kiln_test_run_gives_the_build_its_own_test_counts() {
    let mut builds = sequence();
    let results = vec![
        crate::registry::TestResult {
            name: "a".into(),
            passed: true,
            output: Some("ok".into()),
        },
        crate::registry::TestResult {
            name: "b".into(),
            passed: false,
            output: Some("inactive".into()),
        },
    ];
    let run =
        crate::validation::TestRun::new(at("2026-11-04T00:00:00Z"), "us-east-1", "ami-1", &results);
    builds[0].record_test_run(run, results);
    let r = Rollup::from_builds("p", &builds, 2, at("2026-11-04T06:00:00Z"));
    let tested = r.builds.iter().find(|b| b.version == "1.0.0/3").unwrap();
    assert_eq!(
        tested.tests,
        Tests {
            passed: Some(1),
            failed: Some(1)
        }
    );
}

#[test]
fn builds_are_newest_first_bounded_and_allow_listed() {
    let now = at("2026-11-04T06:00:00Z");
    let r = Rollup::from_builds("p", &sequence(), 2, now);
    let versions: Vec<&str> = r.builds.iter().map(|b| b.version.as_str()).collect();
    assert_eq!(versions, ["1.0.0/4", "1.0.0/3", "1.0.0/2", "1.0.0/1"]);
    assert_eq!(r.builds[0].outcome, Outcome::Building);
    assert_eq!(r.builds[0].finished_at, None);
    assert_eq!(
        r.builds[1].tests,
        Tests {
            passed: Some(2),
            failed: Some(0)
        }
    );
    assert_eq!(r.builds[2].outcome, Outcome::Failed);
    assert_eq!(
        r.builds[2].tests,
        Tests::default(),
        "a failed build's tests are unknown"
    );
    assert!(
        r.builds[2].amis.is_empty(),
        "a failed build's AMIs are not public"
    );
    let json = serde_json::to_string(&r.public(now)).unwrap();
    assert!(
        !json.contains("arn:") && !json.contains("123456789012") && !json.contains("secret"),
        "{json}"
    );

    let many: Vec<BuildRecord> = (0..30)
        .map(|i| {
            build(
                &format!("1.0.{i:02}/1"),
                &format!("2026-10-{:02}T00:00:00Z", i + 1),
                Some(&format!("2026-10-{:02}T01:00:00Z", i + 1)),
                Some(ImageState::Available),
            )
        })
        .collect();
    let r = Rollup::from_builds("p", &many, 0, now);
    assert_eq!(r.builds.len(), MAX_BUILDS);
    assert_eq!(r.builds[0].version, "1.0.29/1");
}

#[test]
fn order_independent_and_trimmed_to_the_window() {
    let now = at("2026-11-04T06:00:00Z");
    let mut b = sequence();
    let a = Rollup::from_builds("p", &b, 2, now);
    b.reverse();
    assert_eq!(Rollup::from_builds("p", &b, 2, now), a);
    // 200 days later: only the last transition (ready) is kept; every day and window ready.
    let later = now + Duration::days(200);
    let r = Rollup::from_builds("p", &b, 2, later);
    assert_eq!(r.transitions.len(), 1);
    let h = r.public(later);
    assert!(h.days.iter().all(|d| d.ready == Some(1.0)));
    assert_eq!(h.uptime.d90, Some(1.0));
}

#[test]
fn a_preset_never_built_has_null_history() {
    let now = at("2026-11-04T06:00:00Z");
    let h = public_histories(&["q"], &[], now);
    assert_eq!(h[0].name, "q");
    assert!(h[0].days.iter().all(|d| d.ready.is_none()));
    assert_eq!(h[0].uptime.d30, None);
    // First build still running: exists, not ready.
    let r = Rollup::from_builds(
        "p",
        &[build("1/1", "2026-11-04T00:00:00Z", None, None)],
        0,
        now,
    );
    assert_eq!(r.public(now).uptime.h24, Some(0.0));
}
