use super::*;
use kiln_aws::ec2::{Ec2Image, Ec2Images};

fn ec2_image(id: &str) -> Ec2Image {
    Ec2Image {
        id: id.into(),
        name: id.into(),
        tags: BTreeMap::new(),
        created: "2026-01-27T11:00:00.000Z".into(),
        snapshots: vec![],
        size_gb: None,
    }
}

fn alerting() -> World {
    let mut c = config();
    c.alerts_topic_arn = Some("arn:aws:sns:us-east-1:123456789012:alerts".into());
    let w = world(c);
    let p = preset(X64);
    w.store.presets.lock().unwrap().insert(
        p.name.clone(),
        PresetItem::new(&p, "spot-runner", EAST, t("2026-01-27T10:00:00Z"))
            .with_pipeline_arn("arn:pipeline/linux-x64"),
    );
    w
}

fn sent(w: &World) -> Vec<(String, String)> {
    w.fakes.alerts.0.lock().unwrap().clone()
}

#[tokio::test]
async fn warnings_are_announced_once_per_transition_never_per_run() {
    let w = alerting();
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &w.deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    w.fakes.ec2.add(EAST, ec2_image(&ami(3, EAST)));
    w.fakes.ec2.add(WEST, ec2_image(&ami(3, WEST)));
    let now = t("2026-01-27T12:05:00Z");
    crate::reconcile::reconcile(&w.deps, now).await.unwrap();
    assert!(sent(&w).is_empty(), "healthy: nothing to announce");

    // The pipeline is disabled and the west AMI deregistered: one alert naming both.
    w.images
        .disabled
        .lock()
        .unwrap()
        .push("arn:pipeline/linux-x64".into());
    w.fakes
        .ec2
        .deregister_image(WEST, &ami(3, WEST))
        .await
        .unwrap();
    let report = crate::reconcile::reconcile(&w.deps, now).await.unwrap();
    assert_eq!(report.health_changed, ["linux-x64"]);
    let alerts = sent(&w);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].0.contains("linux-x64"), "{alerts:?}");
    assert!(alerts[0].1.contains("pipeline is disabled"), "{alerts:?}");
    assert!(alerts[0].1.contains("eu-west-1"), "{alerts:?}");
    assert!(!alerts[0].1.contains("arn:") && !alerts[0].1.contains("123456789012"));
    let s = crate::snapshot::snapshot(&w.deps, now).await.unwrap();
    assert_eq!(s.status, kiln_shared::OverallStatus::Degraded, "{s:?}");

    // Runs with nothing new: no alert.
    for _ in 0..3 {
        crate::reconcile::reconcile(&w.deps, now).await.unwrap();
    }
    assert_eq!(sent(&w).len(), 1);

    // Re-enabled: one "cleared" alert.
    w.images.disabled.lock().unwrap().clear();
    crate::reconcile::reconcile(&w.deps, now).await.unwrap();
    let alerts = sent(&w);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(
        alerts[1].1.contains("cleared: pipeline_disabled"),
        "{alerts:?}"
    );

    // A failed send is retried by the next run, not lost.
    w.images
        .disabled
        .lock()
        .unwrap()
        .push("arn:pipeline/linux-x64".into());
    let plan = Arc::new(FaultPlan::new());
    let faulty =
        crate::Deps::new(w.deps.config.clone(), w.deps.clients()).with_faults(plan.clone());
    plan.add(Rule::new(Some("sns:Publish"), Fault::Server));
    assert!(
        crate::reconcile::reconcile(&faulty, now)
            .await
            .unwrap()
            .errors
            .len()
            == 1
    );
    assert_eq!(sent(&w).len(), 2);
    crate::reconcile::reconcile(&faulty, now).await.unwrap();
    assert_eq!(sent(&w).len(), 3);
    assert!(sent(&w)[2].1.contains("raised"), "{:?}", sent(&w));
}
