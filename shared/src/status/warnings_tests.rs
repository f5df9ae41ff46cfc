use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::state::health::{Health, RegionProblem};
use crate::state::{AmiRecord, ImageState, Observation, Transition, apply};
use crate::status::{OverallStatus, StatusReport};
use crate::{Architecture, time};

fn t0() -> DateTime<Utc> {
    time::parse("2026-01-01T00:00:00Z").unwrap()
}

fn ready(build: u32, at: DateTime<Utc>, base: Option<&AmiRecord>) -> AmiRecord {
    let obs = Observation {
        preset: "linux-x64".into(),
        architecture: Some(Architecture::X86_64),
        state: ImageState::Available,
        at,
        build_id: format!("arn:aws:imagebuilder:us-east-1:123456789012:image/p/1.0.0/{build}"),
        amis: BTreeMap::from([
            ("us-east-1".to_owned(), format!("ami-{build:017}")),
            ("eu-west-1".to_owned(), format!("ami-e{build:016}")),
        ]),
        home_region: "us-east-1".into(),
        reason: None,
        started: None,
    };
    match apply(base, &obs) {
        Transition::Write { record, .. } => *record,
        Transition::NoOp(_) => panic!("no write"),
    }
}

fn codes(w: &[Warning]) -> Vec<String> {
    w.iter().map(Warning::key).collect()
}

#[test]
fn a_fresh_healthy_record_has_no_warnings() {
    let r = ready(1, t0(), None);
    assert!(warnings(&r, t0() + Duration::days(3)).is_empty());
    let report = StatusReport::build(&[], &[r], t0() + Duration::days(3));
    assert_eq!(report.status, OverallStatus::Ready);
    assert_eq!(
        report.presets[0].built_at.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
}

#[test]
fn age_limits_come_from_the_observed_max_age() {
    let mut r = ready(1, t0(), None);
    let at = t0() + Duration::days(31);
    assert_eq!(
        codes(&warnings(&r, at)),
        ["ami_too_old", "no_recent_success"]
    );
    r.health = Some(Health::new(at, 45));
    assert!(warnings(&r, at).is_empty());
    let w = warnings(&r, t0() + Duration::days(46));
    assert!(
        w[0].message.contains("46 days ago (limit: 45 days)"),
        "{w:?}"
    );
}

#[test]
fn a_missing_ami_is_named_with_its_region_until_a_newer_ami_replaces_it() {
    let r = ready(1, t0(), None);
    let mut health = Health::new(t0(), 30);
    health.regions.insert(
        "eu-west-1".into(),
        RegionProblem {
            ami: Some("ami-e0000000000000001".into()),
            problem: crate::state::health::AmiProblem::Deregistered,
        },
    );
    health.pipeline_disabled = true;
    let r = r.with_health(health).unwrap();
    let now = t0() + Duration::hours(1);
    let w = warnings(&r, now);
    assert_eq!(codes(&w), ["pipeline_disabled", "ami_missing:eu-west-1"]);
    assert_eq!(w[1].region.as_deref(), Some("eu-west-1"));
    assert!(w[1].message.contains("deregistered"), "{w:?}");
    let report = StatusReport::build(&[], std::slice::from_ref(&r), now);
    assert_eq!(report.status, OverallStatus::Degraded);
    assert_eq!(
        report.message,
        "1 preset ready; linux-x64: pipeline disabled, AMI missing in eu-west-1"
    );
    // A newer build's AMI in that region: the stored problem no longer applies.
    let newer = ready(2, now, Some(&r));
    assert_eq!(codes(&warnings(&newer, now)), ["pipeline_disabled"]);
}

#[test]
fn warnings_never_carry_arns_or_account_ids() {
    let r = ready(1, t0(), None);
    let json = serde_json::to_string(&warnings(&r, t0() + Duration::days(400))).unwrap();
    assert!(
        !json.contains("arn:") && !json.contains("123456789012"),
        "{json}"
    );
}
