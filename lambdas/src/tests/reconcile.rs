use super::*;
#[tokio::test]
async fn fault_between_writes_is_repaired_by_reconcile_when_the_event_is_not_retried() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config(), w.fakes.clients().with_edge(w.edge.clone()))
        .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    plan.add(
        Rule::new(
            Some("ssm:PutParameter"),
            Fault::Timeout(std::time::Duration::from_millis(1)),
        )
        .forever(),
    );
    assert!(
        handle_event(
            &deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3)
        )
        .await
        .is_err()
    );
    plan.clear_rules();
    let report = crate::reconcile::reconcile(&deps, t("2026-01-27T12:05:00Z"))
        .await
        .unwrap();
    assert!(report.checked.is_empty(), "the record is ready, not stale");
    assert_eq!(report.configs_repaired.len(), 2);
    assert_eq!(w.configs.value(WEST, PARAM).unwrap()["amiId"], "ami-03west");
    // A second run finds nothing to do.
    let again = crate::reconcile::reconcile(&deps, t("2026-01-27T12:10:00Z"))
        .await
        .unwrap();
    assert!(again.configs_repaired.is_empty());
}

#[tokio::test]
async fn reconcile_heals_a_lost_available_and_late_events_stay_noops() {
    let w = setup();
    // An older image, listed first, and the real newest one.
    put_image(&w, 2, ImageState::Available, "2026-01-20T11:00:00Z");
    put_image(&w, 3, ImageState::Building, "2026-01-27T11:00:00Z");
    handle_event(
        &w.deps,
        event(ImageState::Distributing, "2026-01-27T11:40:00Z", 3),
    )
    .await
    .unwrap();
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    // The AVAILABLE event is lost. Not yet stale at 12:00 (threshold 30 min):
    let early = crate::reconcile::reconcile(&w.deps, t("2026-01-27T12:00:00Z"))
        .await
        .unwrap();
    assert!(early.checked.is_empty());
    let report = crate::reconcile::reconcile(&w.deps, t("2026-01-27T12:15:00Z"))
        .await
        .unwrap();
    assert_eq!(report.corrected, vec!["linux-x64".to_owned()]);
    let r = record(&w).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(
        r.ami_id.as_deref(),
        Some("ami-03east"),
        "newest by dateCreated, not list order"
    );
    assert_eq!(w.configs.value(WEST, PARAM).unwrap()["amiId"], "ami-03west");
    // The lost event finally arrives: older than reconcile's observation, a no-op.
    let o = processed(
        handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert!(!o.record_written);
    assert_eq!(record(&w).await, r);
    // A newer build's events still win over the reconciled state.
    deliver(
        &w,
        4,
        ImageState::Building,
        "2026-01-27T13:00:00Z",
        "2026-01-27T13:00:05Z",
    )
    .await;
    assert_eq!(record(&w).await.status, BuildStatus::Building);
}

#[tokio::test]
async fn reconcile_waits_when_the_image_list_lags_behind_the_record() {
    let w = setup();
    deliver(
        &w,
        3,
        ImageState::Available,
        "2026-01-27T11:00:00Z",
        "2026-01-27T12:00:00Z",
    )
    .await;
    // Build 4 started and its BUILDING arrived, but the list does not show it yet.
    put_image(&w, 4, ImageState::Building, "2026-01-28T00:00:00Z");
    w.images
        .lists
        .lock()
        .unwrap()
        .values_mut()
        .for_each(|l| l.retain(|s| s.arn != arn(4)));
    handle_event(
        &w.deps,
        event(ImageState::Building, "2026-01-28T00:00:10Z", 4),
    )
    .await
    .unwrap();
    let before = record(&w).await;
    let report = crate::reconcile::reconcile(&w.deps, t("2026-01-28T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(report.checked, vec!["linux-x64".to_owned()]);
    assert!(
        report.corrected.is_empty(),
        "build 3's AVAILABLE must not mask build 4"
    );
    // Health (the fakes' EC2 has no AMIs) is recorded; the event registers are not
    // touched.
    let mut after = record(&w).await;
    assert!(after.health.is_some());
    after.health = None;
    after.rev = before.rev;
    assert_eq!(after, before);
}

/// `kiln build --region`: a CreateImage build, no source pipeline, distributed to one
/// region, so it is in no pipeline's image list.
fn one_off(w: &World, build: u32, state: ImageState, created: &str) {
    put_image(w, build, state, created);
    let mut images = w.images.images.lock().unwrap();
    let image = images.get_mut(&arn(build)).unwrap();
    image.source_pipeline_name = None;
    image.amis.retain(|r, _| r == WEST);
    drop(images);
    w.images
        .lists
        .lock()
        .unwrap()
        .values_mut()
        .for_each(|l| l.retain(|s| s.arn != arn(build)));
}

#[tokio::test]
async fn a_one_off_build_whose_available_was_lost_is_reconciled_not_waited_for() {
    let w = setup();
    deliver(
        &w,
        3,
        ImageState::Available,
        "2026-01-27T11:00:00Z",
        "2026-01-27T11:30:00Z",
    )
    .await;
    one_off(&w, 4, ImageState::Building, "2026-01-27T12:00:00Z");
    handle_event(
        &w.deps,
        event(ImageState::Building, "2026-01-27T12:00:10Z", 4),
    )
    .await
    .unwrap();
    // It finishes; its AVAILABLE is lost. The pipeline's list never shows it: that is
    // not a lagging list.
    one_off(&w, 4, ImageState::Available, "2026-01-27T12:00:00Z");
    let report = crate::reconcile::reconcile(&w.deps, t("2026-01-27T13:00:00Z"))
        .await
        .unwrap();
    assert_eq!(report.corrected, vec!["linux-x64".to_owned()]);
    let r = record(&w).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(r.amis[WEST], "ami-04west");
    assert_eq!(r.amis[EAST], "ami-03east", "the other region keeps its AMI");
    assert_eq!(w.configs.value(WEST, PARAM).unwrap()["amiId"], "ami-04west");
    assert_eq!(w.configs.value(EAST, PARAM).unwrap()["amiId"], "ami-03east");
    let build = w
        .store
        .get_build(&kiln_shared::build::build_job_id("linux-x64", "1.0.42/4"))
        .await
        .unwrap()
        .expect("BUILD item");
    assert_eq!(build.record.outcome, Some(ImageState::Available));

    // Nothing left to do; the pipeline's older image does not win by being listed.
    let again = crate::reconcile::reconcile(&w.deps, t("2026-01-27T14:00:00Z"))
        .await
        .unwrap();
    assert!(again.corrected.is_empty(), "{again:?}");
    assert_eq!(record(&w).await.amis, r.amis);

    // A pipeline build created after the one-off supersedes it everywhere.
    deliver(
        &w,
        5,
        ImageState::Available,
        "2026-01-27T15:00:00Z",
        "2026-01-27T15:30:00Z",
    )
    .await;
    assert_eq!(record(&w).await.amis[WEST], "ami-05west");
}
