use super::*;
use proptest::prelude::*;

const HOME: &str = "us-east-1";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn arn(build: u32) -> String {
    format!("arn:aws:imagebuilder:us-east-1:123456789012:image/linux-x64/1.0.0/{build}")
}

fn obs(build: u32, state: ImageState, secs: i64) -> Observation {
    Observation {
        preset: "linux-x64".into(),
        architecture: Some(Architecture::X86_64),
        state,
        at: at(secs),
        build_id: arn(build),
        amis: if state == ImageState::Available {
            BTreeMap::from([
                (HOME.to_owned(), format!("ami-{build:017x}")),
                ("eu-west-1".to_owned(), format!("ami-e{build:016x}")),
            ])
        } else {
            BTreeMap::new()
        },
        home_region: HOME.into(),
        reason: (state == ImageState::Failed).then(|| "component failed".to_owned()),
        started: None,
    }
}

fn fold(events: &[Observation]) -> Option<AmiRecord> {
    let mut rec: Option<AmiRecord> = None;
    for e in events {
        if let Transition::Write { record, .. } = apply(rec.as_ref(), e) {
            rec = Some(*record);
        }
    }
    rec
}

#[test]
fn first_build_available_sets_home_ami_and_regions() {
    let rec = fold(&[
        obs(1, ImageState::Building, 0),
        obs(1, ImageState::Available, 60),
    ])
    .unwrap();
    assert_eq!(rec.status, BuildStatus::Ready);
    assert_eq!(rec.ami_id.as_deref(), Some("ami-00000000000000001"));
    assert_eq!(rec.amis.len(), 2);
    assert_eq!(rec.updated_at, at(60));
    assert_eq!(rec.build_id.as_deref(), Some(arn(1).as_str()));
    assert_eq!(rec.job_id, "AMI#linux-x64");
    assert_eq!(rec.sk, "LATEST");
}

#[test]
fn rebuild_building_keeps_previous_ami() {
    let rec = fold(&[
        obs(1, ImageState::Available, 60),
        obs(2, ImageState::Building, 120),
    ])
    .unwrap();
    assert_eq!(rec.status, BuildStatus::Building);
    assert_eq!(rec.ami_id.as_deref(), Some("ami-00000000000000001"));
    assert_eq!(rec.build_id.as_deref(), Some(arn(2).as_str()));
}

#[test]
fn failed_and_cancelled_keep_ami_and_record_reason() {
    let rec = fold(&[
        obs(1, ImageState::Available, 60),
        obs(2, ImageState::Failed, 120),
    ])
    .unwrap();
    assert_eq!(rec.status, BuildStatus::Failed);
    assert_eq!(rec.ami_id.as_deref(), Some("ami-00000000000000001"));
    assert_eq!(rec.reason.as_deref(), Some("component failed"));
    let rec = fold(&[
        obs(1, ImageState::Available, 60),
        obs(3, ImageState::Cancelled, 120),
    ])
    .unwrap();
    assert_eq!(rec.status, BuildStatus::Failed);
    assert_eq!(rec.reason.as_deref(), Some("image build cancelled"));
    // A later success clears the reason.
    let rec = fold(&[
        obs(2, ImageState::Failed, 120),
        obs(3, ImageState::Available, 180),
    ])
    .unwrap();
    assert_eq!(rec.reason, None);
}

#[test]
fn older_event_is_a_noop_and_duplicate_is_idempotent() {
    let rec = fold(&[obs(1, ImageState::Testing, 100)]).unwrap();
    assert_eq!(
        apply(Some(&rec), &obs(1, ImageState::Building, 50)),
        Transition::NoOp(NoOp::OutOfOrder)
    );
    assert_eq!(
        apply(Some(&rec), &obs(1, ImageState::Testing, 100)),
        Transition::NoOp(NoOp::Duplicate)
    );
    let ready = fold(&[obs(1, ImageState::Available, 100)]).unwrap();
    assert_eq!(
        apply(Some(&ready), &obs(1, ImageState::Available, 100)),
        Transition::NoOp(NoOp::Duplicate)
    );
}

#[test]
fn same_second_orders_by_lifecycle() {
    let rec = fold(&[
        obs(1, ImageState::Available, 10),
        obs(1, ImageState::Distributing, 10),
    ])
    .unwrap();
    assert_eq!(rec.status, BuildStatus::Ready);
}

#[test]
fn late_available_of_older_build_fills_ami_without_rolling_status_back() {
    let rec = fold(&[
        obs(2, ImageState::Building, 200),
        obs(1, ImageState::Available, 100),
    ])
    .unwrap();
    assert_eq!(rec.status, BuildStatus::Building);
    assert_eq!(rec.build_id.as_deref(), Some(arn(2).as_str()));
    assert_eq!(rec.ami_id.as_deref(), Some("ami-00000000000000001"));
    // …but never replaces a newer AMI.
    let rec = fold(&[
        obs(2, ImageState::Available, 200),
        obs(1, ImageState::Available, 100),
    ])
    .unwrap();
    assert_eq!(rec.ami_id.as_deref(), Some("ami-00000000000000002"));
}

#[test]
fn lifecycle_states_after_build_are_ignored() {
    let rec = fold(&[obs(1, ImageState::Available, 100)]).unwrap();
    assert_eq!(
        apply(Some(&rec), &obs(1, ImageState::Deprecated, 500)),
        Transition::NoOp(NoOp::Irrelevant)
    );
}

#[test]
fn initial_record_is_superseded_by_any_event_of_the_same_second() {
    let init = AmiRecord::initial("linux-x64", Some(Architecture::X86_64), at(0));
    assert_eq!(init.status, BuildStatus::Building);
    assert_eq!(init.ami_id, None);
    assert!(matches!(
        apply(Some(&init), &obs(1, ImageState::Pending, 0)),
        Transition::Write { .. }
    ));
}

#[test]
fn record_serialises_with_dynamodb_attribute_names() {
    let rec = fold(&[obs(1, ImageState::Available, 60)]).unwrap();
    let v = serde_json::to_value(&rec).unwrap();
    for key in [
        "jobId",
        "sk",
        "recordType",
        "status",
        "amiId",
        "amis",
        "buildId",
        "updatedAt",
        "reason",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["status"], "ready");
    assert_eq!(v["updatedAt"], "2027-01-15T08:01:00Z");
    let back: AmiRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, rec);
}

/// A build's lifecycle: a few progress states then a terminal one, at increasing times.
fn build_events() -> impl Strategy<Value = Vec<Observation>> {
    let terminal = prop_oneof![
        3 => Just(ImageState::Available),
        1 => Just(ImageState::Failed),
        1 => Just(ImageState::Cancelled),
    ];
    (
        1usize..4,
        proptest::collection::vec((terminal, 1u32..4, 0i64..3), 1..5),
    )
        .prop_map(|(_, builds)| {
            let mut events = Vec::new();
            let mut t = 0;
            for (i, (end, progress, gap)) in builds.into_iter().enumerate() {
                let build = i as u32 + 1;
                let states = [
                    ImageState::Pending,
                    ImageState::Building,
                    ImageState::Testing,
                    ImageState::Distributing,
                ];
                for s in states.iter().take(progress as usize + 1) {
                    events.push(obs(build, *s, t));
                    t += gap; // gap 0 puts several states in one second
                }
                events.push(obs(build, end, t));
                t += 1;
            }
            events
        })
}

proptest! {
    #[test]
    fn any_permutation_and_duplication_converges_to_the_sorted_result(
        events in build_events(),
        shuffle_seed in any::<u64>(),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut sorted = events.clone();
        sorted.sort_by_key(Observation::order_key);
        let expected = fold(&sorted);

        let mut delivered = events.clone();
        for d in &dups {
            delivered.push(events[d.index(events.len())].clone());
        }
        // Deterministic Fisher–Yates from the seed.
        let mut s = shuffle_seed | 1;
        for i in (1..delivered.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            delivered.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(fold(&delivered), expected);
    }

    #[test]
    fn ami_only_ever_comes_from_available(events in build_events()) {
        let rec = fold(&events).unwrap();
        let last_available = events.iter().filter(|e| e.state == ImageState::Available).max_by_key(|e| e.order_key());
        prop_assert_eq!(rec.ami_id, last_available.map(|e| e.amis[HOME].clone()));
    }
}

#[test]
fn a_future_dated_key_is_overwritten_by_a_heal_but_not_by_plain_apply() {
    let mut forged = obs(1, ImageState::Available, 0);
    forged.at = time::parse("9999-01-01T00:00:00Z").unwrap();
    let Transition::Write { record, .. } = apply(None, &forged) else {
        panic!("first write");
    };
    let heal = obs(2, ImageState::Available, 100);
    assert_eq!(
        apply(Some(&record), &heal),
        Transition::NoOp(NoOp::OutOfOrder),
        "without a clock the future key wins (the bug)"
    );
    let Transition::Write {
        record: healed,
        ami_changed,
    } = apply_trusting_until(Some(&record), &heal, Some(at(400)))
    else {
        panic!("the heal must write");
    };
    assert!(ami_changed);
    assert_eq!(healed.updated_at, at(100));
    assert_eq!(healed.ami_updated_at, Some(at(100)));
    assert_eq!(healed.ami_build_id.as_deref(), Some(arn(2).as_str()));
    // Keys within the trusted window keep the ordinary rule.
    let newer = obs(3, ImageState::Building, 200);
    let Transition::Write { record: r, .. } = apply(Some(&healed), &newer) else {
        panic!("newer");
    };
    assert_eq!(
        apply_trusting_until(Some(&r), &heal, Some(at(400))),
        Transition::NoOp(NoOp::Duplicate),
        "the healed AMI key is trusted now"
    );
    assert!(key_after(&r.order_key, at(199)) && !key_after(&r.order_key, at(200)));
}

/// `obs(build, AVAILABLE, secs)` distributed to `region` only (`kiln build --region`).
fn one_off(build: u32, region: &str, secs: i64) -> Observation {
    let mut o = obs(build, ImageState::Available, secs);
    o.amis.retain(|r, _| r == region);
    o
}

#[test]
fn a_one_off_build_to_one_region_keeps_the_other_regions_ami() {
    let full = obs(1, ImageState::Available, 0);
    let partial = one_off(2, "eu-west-1", 10);
    let rec = fold(&[full.clone(), partial.clone()]).unwrap();
    assert_eq!(rec.amis[HOME], full.amis[HOME], "home keeps build 1");
    assert_eq!(rec.amis["eu-west-1"], partial.amis["eu-west-1"]);
    assert_eq!(rec.ami_id.as_deref(), Some(full.amis[HOME].as_str()));
    assert_eq!(rec.ami_build_id.as_deref(), Some(arn(2).as_str()), "newest");
    // Delivered the other way round: the late full build fills only the region it is
    // newest for, and the write bumps the revision (the store's guard did not move).
    let first = fold(std::slice::from_ref(&partial)).unwrap();
    let Transition::Write {
        record,
        ami_changed,
    } = apply(Some(&first), &full)
    else {
        panic!("the older full build still fills us-east-1")
    };
    assert!(ami_changed);
    assert_eq!(record.rev, first.rev + 1);
    assert_eq!(record.amis, rec.amis);
    assert_eq!(record.ami_order_key, rec.ami_order_key);
    // A newer full build moves every region again.
    let rec = fold(&[full, partial, obs(3, ImageState::Available, 20)]).unwrap();
    assert!(
        rec.amis.values().all(|a| a.ends_with('3')),
        "{:?}",
        rec.amis
    );
}

proptest! {
    #[test]
    fn one_off_builds_converge_in_any_order(
        builds in proptest::collection::vec((0u8..3, 0i64..4), 1..6),
        shuffle_seed in any::<u64>(),
    ) {
        // Each build: full, or a one-off to HOME or to eu-west-1; times may tie.
        let mut events = Vec::new();
        let mut t = 0;
        for (i, (kind, gap)) in builds.into_iter().enumerate() {
            t += gap;
            let build = i as u32 + 1;
            events.push(match kind {
                0 => obs(build, ImageState::Available, t),
                1 => one_off(build, HOME, t),
                _ => one_off(build, "eu-west-1", t),
            });
        }
        let mut sorted = events.clone();
        sorted.sort_by_key(Observation::order_key);
        let without_rev = |r: Option<AmiRecord>| r.map(|r| AmiRecord { rev: 0, ..r });
        let expected = without_rev(fold(&sorted));
        let mut delivered = events.clone();
        let mut s = shuffle_seed | 1;
        for i in (1..delivered.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            delivered.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(without_rev(fold(&delivered)), expected.clone());
        // Each region holds the AMI of the newest build that reached it.
        let rec = expected.unwrap();
        for region in [HOME, "eu-west-1"] {
            let newest = events
                .iter()
                .filter(|e| e.amis.contains_key(region))
                .max_by_key(|e| e.order_key())
                .map(|e| e.amis[region].clone());
            prop_assert_eq!(rec.amis.get(region).cloned(), newest);
        }
    }
}
