use std::collections::BTreeMap;

use super::*;
use crate::build::BuildRecord;
use crate::state::{Observation, Transition, apply};
use crate::{Architecture, BuildStatus};

const HOME: &str = "us-east-1";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn arn(build: u32) -> String {
    format!("arn:aws:imagebuilder:us-east-1:123456789012:image/p/1.0.0/{build}")
}

fn amis(build: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (HOME.to_owned(), format!("ami-{build:017x}")),
        ("eu-west-1".to_owned(), format!("ami-e{build:016x}")),
    ])
}

fn build(n: u32, outcome: ImageState) -> BuildRecord {
    BuildRecord {
        job_id: format!("BUILD#p#1.0.0/{n}"),
        record_type: "BUILD".into(),
        preset: "p".into(),
        architecture: Some(Architecture::X86_64),
        build_version: format!("1.0.0/{n}"),
        build_id: arn(n),
        status: outcome.build_status().unwrap(),
        last_state: outcome,
        started_at: at(i64::from(n) * 1000),
        ended_at: Some(at(i64::from(n) * 1000 + 600)),
        outcome: Some(outcome),
        amis: if outcome == ImageState::Available {
            amis(n)
        } else {
            BTreeMap::new()
        },
        reason: None,
        validated: true,
        size_gb: None,
        tests: vec![],
        tested: None,
    }
}

fn available(n: u32) -> Observation {
    Observation {
        preset: "p".into(),
        architecture: Some(Architecture::X86_64),
        state: ImageState::Available,
        at: at(i64::from(n) * 1000 + 600),
        build_id: arn(n),
        amis: amis(n),
        home_region: HOME.into(),
        reason: None,
        started: None,
    }
}

fn observe(r: Option<&AmiRecord>, o: &Observation) -> AmiRecord {
    match apply(r, o) {
        Transition::Write { record, .. } => *record,
        Transition::NoOp(_) => r.unwrap().clone(),
    }
}

/// Builds 1..=3 available (3 newest, runners on it), 4 failed.
fn world() -> (AmiRecord, Vec<BuildRecord>) {
    let mut r = None;
    for n in 1..=3 {
        r = Some(observe(r.as_ref(), &available(n)));
    }
    let builds = vec![
        build(1, ImageState::Available),
        build(2, ImageState::Available),
        build(3, ImageState::Available),
        build(4, ImageState::Failed),
    ];
    (r.unwrap(), builds)
}

fn written(c: Result<Control, ControlError>) -> AmiRecord {
    match c.unwrap() {
        Control::Write(r) => *r,
        Control::Unchanged => panic!("expected a write"),
    }
}

#[test]
fn pin_points_runners_at_the_build_and_new_builds_do_not_move_them() {
    let (r, builds) = world();
    let pinned = written(pin(&r, &builds, "1.0.0/1", HOME, at(9000)));
    assert!(pinned.is_pinned());
    assert_eq!(pinned.current().ami_id, Some("ami-00000000000000001"));
    assert_eq!(pinned.current().amis, &amis(1));
    assert_eq!(pinned.rev, r.rev + 1);
    let change = pinned.changes.last().unwrap();
    assert_eq!(
        (
            change.op.as_str(),
            change.from.as_deref(),
            change.to.as_deref()
        ),
        ("pin", Some("1.0.0/3"), Some("1.0.0/1"))
    );
    // A newer build is recorded (status, AMI register) but runners stay pinned.
    let after = observe(Some(&pinned), &available(5));
    assert_eq!(after.status, BuildStatus::Ready);
    assert_eq!(after.ami_build_id.as_deref(), Some(arn(5).as_str()));
    assert_eq!(after.current().ami_id, Some("ami-00000000000000001"));
    assert!(after.is_pinned());
    // Pinning again is a no-op; unpin follows the newest again.
    assert_eq!(
        pin(&after, &builds, "1.0.0/1", HOME, at(9100)).unwrap(),
        Control::Unchanged
    );
    let unpinned = written(unpin(&after, &builds, HOME, at(9200)));
    assert!(!unpinned.is_pinned());
    assert_eq!(unpinned.current().ami_id, Some("ami-00000000000000005"));
    assert_eq!(
        unpin(&unpinned, &builds, HOME, at(9300)).unwrap(),
        Control::Unchanged
    );
}

#[test]
fn pin_refuses_unknown_failed_and_revoked_builds() {
    let (r, builds) = world();
    assert!(matches!(
        pin(&r, &builds, "9.9.9/9", HOME, at(9000)),
        Err(ControlError::UnknownBuild { .. })
    ));
    let e = pin(&r, &builds, "1.0.0/4", HOME, at(9000)).unwrap_err();
    assert!(e.to_string().contains("failed"), "{e}");
    let revoked = written(revoke(&r, &builds, "1.0.0/2", HOME, at(9000)));
    assert!(matches!(
        pin(&revoked, &builds, "1.0.0/2", HOME, at(9100)),
        Err(ControlError::Revoked { .. })
    ));
}

#[test]
fn rollback_pins_the_previous_good_build_and_then_the_one_before() {
    let (r, builds) = world();
    let once = written(rollback(&r, &builds, HOME, at(9000)));
    assert_eq!(once.release.as_ref().unwrap().kind, ReleaseKind::RolledBack);
    assert_eq!(once.current().ami_id, Some("ami-00000000000000002"));
    assert!(once.is_pinned());
    let twice = written(rollback(&once, &builds, HOME, at(9100)));
    assert_eq!(twice.current().ami_id, Some("ami-00000000000000001"));
    assert!(matches!(
        rollback(&twice, &builds, HOME, at(9200)),
        Err(ControlError::NoRollbackTarget { .. })
    ));
}

#[test]
fn revoking_the_current_build_falls_back_until_a_newer_good_build() {
    let (r, builds) = world();
    let revoked = written(revoke(&r, &builds, "1.0.0/3", HOME, at(9000)));
    assert_eq!(revoked.current().ami_id, Some("ami-00000000000000002"));
    assert_eq!(revoked.release.as_ref().unwrap().kind, ReleaseKind::Revoked);
    assert!(!revoked.is_pinned(), "a fallback is not an operator's pin");
    // The revoked build's own late AVAILABLE never points runners back at it.
    let late = observe(
        Some(&revoked),
        &Observation {
            at: at(9500),
            ..available(3)
        },
    );
    assert_eq!(late.current().ami_id, Some("ami-00000000000000002"));
    // A newer good build replaces the fallback by itself.
    let newer = observe(Some(&late), &available(5));
    assert_eq!(newer.release, None);
    assert_eq!(newer.current().ami_id, Some("ami-00000000000000005"));
    // Revoking twice changes nothing.
    assert_eq!(
        revoke(&newer, &builds, "1.0.0/3", HOME, at(9600)).unwrap(),
        Control::Unchanged
    );
}

#[test]
fn revoking_a_pinned_build_or_unpinning_onto_a_revoked_one_falls_back() {
    let (r, builds) = world();
    let pinned = written(pin(&r, &builds, "1.0.0/2", HOME, at(9000)));
    let revoked = written(revoke(&pinned, &builds, "1.0.0/2", HOME, at(9100)));
    assert_eq!(revoked.current().ami_id, Some("ami-00000000000000003"));
    // Pinned to 1 while 3 (newest) is revoked: unpin must not go back to 3.
    let p1 = written(pin(&r, &builds, "1.0.0/1", HOME, at(9000)));
    let r3 = written(revoke(&p1, &builds, "1.0.0/3", HOME, at(9100)));
    assert_eq!(r3.current().ami_id, Some("ami-00000000000000001"));
    let un = written(unpin(&r3, &builds, HOME, at(9200)));
    assert_eq!(un.current().ami_id, Some("ami-00000000000000002"));
    assert_eq!(un.release.as_ref().unwrap().kind, ReleaseKind::Revoked);
}

#[test]
fn revoking_the_only_good_build_is_refused() {
    let r = observe(None, &available(1));
    let builds = vec![build(1, ImageState::Available)];
    assert!(matches!(
        revoke(&r, &builds, "1.0.0/1", HOME, at(9000)),
        Err(ControlError::NoFallback { .. })
    ));
}

#[test]
fn history_is_bounded_and_records_each_change() {
    let (mut r, builds) = world();
    for i in 0..(MAX_CHANGES as i64 + 5) {
        let v = if i % 2 == 0 { "1.0.0/1" } else { "1.0.0/2" };
        r = written(pin(&r, &builds, v, HOME, at(10_000 + i)));
    }
    assert_eq!(r.changes.len(), MAX_CHANGES);
    assert_eq!(
        r.changes.last().unwrap().at,
        at(10_000 + MAX_CHANGES as i64 + 4)
    );
}

#[test]
fn records_stored_before_release_control_still_decode() {
    let (r, _) = world();
    let mut json = serde_json::to_value(&r).unwrap();
    for k in ["release", "revoked", "rev", "health", "changes"] {
        json.as_object_mut().unwrap().remove(k);
    }
    let old: AmiRecord = serde_json::from_value(json).unwrap();
    assert_eq!(old.rev, 0);
    assert_eq!(old.current().ami_id, r.current().ami_id);
}

#[test]
fn builds_finished_in_the_same_second_still_have_a_before_and_after() {
    // Builds 9 and 10 end in the same second; "1.0.0/10" sorts before "1.0.0/9" as text.
    let mut b9 = build(9, ImageState::Available);
    let mut b10 = build(10, ImageState::Available);
    b9.ended_at = Some(at(20_000));
    b10.ended_at = Some(at(20_000));
    let builds = vec![b9, b10];
    let r = observe(None, &available(9));
    let r = observe(Some(&r), &available(10));
    assert_eq!(r.current().ami_id, Some(amis(10)[HOME].as_str()));
    let back = written(rollback(&r, &builds, HOME, at(21_000)));
    assert_eq!(back.current().ami_id, Some(amis(9)[HOME].as_str()));
    // And revoking 10 falls back to 9, not to nothing.
    let revoked = written(revoke(&r, &builds, "1.0.0/10", HOME, at(21_000)));
    assert_eq!(revoked.current().ami_id, Some(amis(9)[HOME].as_str()));
}

#[test]
fn the_current_build_without_an_end_in_the_history_finished_when_the_record_saw_it() {
    // Build 3 started before build 2 ended (a manual start beside a scheduled one); its
    // AVAILABLE reached the record but its history write was lost (no end yet).
    let (r, mut builds) = world();
    builds[2].started_at = at(2_100);
    builds[2].ended_at = None;
    builds[2].outcome = None;
    builds[2].amis.clear();
    assert_eq!(r.current().ami_id, Some(amis(3)[HOME].as_str()));
    let back = written(rollback(&r, &builds, HOME, at(9_000)));
    assert_eq!(back.current().ami_id, Some(amis(2)[HOME].as_str()));
    // Revoking it (it is found by version) falls back to build 2, not to build 1.
    let revoked = written(revoke(&r, &builds, "1.0.0/3", HOME, at(9_000)));
    assert_eq!(revoked.current().ami_id, Some(amis(2)[HOME].as_str()));
}
