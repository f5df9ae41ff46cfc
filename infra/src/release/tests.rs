//! Release control over the in-memory fakes: which builds a decision reads, and the
//! refusals a person sees. The racing cases are `tests/tests/model_faults.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use kiln_aws::mock::fakes::Fakes;
use kiln_aws::store::{PresetItem, StateStore};
use kiln_shared::build::apply_build;
use kiln_shared::preset::{PresetSource, parse_one};
use kiln_shared::state::release::ReleaseKind;
use kiln_shared::state::{AmiRecord, Observation, Transition, apply};
use kiln_shared::{ImageState, time};

use super::*;

fn t0() -> DateTime<Utc> {
    time::parse("2026-12-01T00:00:00Z").unwrap()
}

fn arn(preset: &str, n: u32) -> String {
    format!("arn:aws:imagebuilder:us-east-1:123456789012:image/kiln-{preset}/1.0.0/{n}")
}

/// `preset` deployed with `builds` good builds (`1.0.0/1` …), runners on the newest.
async fn deployed(fakes: &Fakes, preset: &str, builds: u32) {
    let p = parse_one(&PresetSource {
        file: format!("{preset}.yaml"),
        text: format!(
            "name: {preset}\narchitecture: x86_64\nbase_image: ubuntu-22.04\n\
             regions: [us-east-1]\nsetup_script: echo hi\n"
        ),
    })
    .unwrap()
    .remove(0);
    let store = &fakes.store;
    store
        .put_preset(&PresetItem::new(&p, "kiln", "us-east-1", t0()))
        .await
        .unwrap();
    let mut record = AmiRecord::initial(preset, Some(p.architecture), t0());
    for n in 1..=builds {
        let obs = Observation {
            preset: preset.into(),
            architecture: Some(p.architecture),
            state: ImageState::Available,
            at: t0() + Duration::hours(n.into()),
            build_id: arn(preset, n),
            amis: BTreeMap::from([("us-east-1".to_owned(), format!("ami-{preset}{n}"))]),
            home_region: "us-east-1".into(),
            reason: None,
            started: None,
        };
        let build = apply_build(None, &obs, &format!("1.0.0/{n}")).unwrap();
        store.put_build(&build, None).await.unwrap();
        if let Transition::Write { record: next, .. } = apply(Some(&record), &obs) {
            record = *next;
        }
    }
    store.ami.lock().unwrap().insert(preset.into(), record);
}

async fn run_op(fakes: &Fakes, op: Op) -> Result<Done, ReleaseError> {
    run(&fakes.clients(), "kiln", &op, t0() + Duration::days(1)).await
}

#[tokio::test]
async fn rollback_goes_to_the_presets_previous_build_whatever_other_presets_hold() {
    let fakes = Fakes::new();
    deployed(&fakes, "a", 2).await;
    // Another preset with newer builds in between changes nothing for `a`.
    deployed(&fakes, "b", 3).await;
    let done = run_op(&fakes, Op::Rollback { preset: "a".into() })
        .await
        .unwrap();
    let release = done.record.release.clone().expect("held");
    assert_eq!(
        (release.kind, release.build_id.as_str()),
        (ReleaseKind::RolledBack, arn("a", 1).as_str())
    );
    assert_eq!(done.record.current().ami_id, Some("ami-a1"));
    let b = fakes.store.get_ami("b").await.unwrap().unwrap();
    assert!(b.release.is_none(), "{b:?}");

    // From the oldest build there is nowhere to go back to.
    let err = run_op(&fakes, Op::Rollback { preset: "a".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ReleaseError::Refused(ControlError::NoRollbackTarget { current, .. }) if current == "1.0.0/1"
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_revoke_names_its_preset_when_the_version_is_ambiguous() {
    let fakes = Fakes::new();
    deployed(&fakes, "a", 2).await;
    deployed(&fakes, "b", 2).await;
    let revoke = |preset: Option<&str>, version: &str| Op::Revoke {
        version: version.into(),
        preset: preset.map(str::to_owned),
        disable_ami: false,
    };

    let err = run_op(&fakes, revoke(None, "1.0.0/2")).await.unwrap_err();
    assert!(
        matches!(&err, ReleaseError::AmbiguousVersion { presets, .. } if presets == "a, b"),
        "{err:?}"
    );
    let err = run_op(&fakes, revoke(Some("a"), "1.0.0/7"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReleaseError::UnknownVersion(v) if v == "1.0.0/7"),
        "{err:?}"
    );
    let err = run_op(&fakes, revoke(None, "1.0.0/7")).await.unwrap_err();
    assert!(matches!(&err, ReleaseError::UnknownVersion(_)), "{err:?}");

    let done = run_op(&fakes, revoke(Some("b"), "1.0.0/2")).await.unwrap();
    assert_eq!(done.preset, "b");
    assert_eq!(done.record.revoked, vec![arn("b", 2)]);
    assert_eq!(done.record.current().ami_id, Some("ami-b1"));
    let a = fakes.store.get_ami("a").await.unwrap().unwrap();
    assert!(a.revoked.is_empty() && a.release.is_none(), "{a:?}");
}
