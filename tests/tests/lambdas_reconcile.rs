//! Lost events healed by `reconcile` and inline by `status-origin`, against moto
//! (DynamoDB and SSM) and the local Image Builder listing images oldest first.

use std::time::Duration;

use http::HeaderMap;
use kiln_devstack::DynamoBackend;
use kiln_devstack::imagebuilder::{EventFaults, ListOrder};
use kiln_lambdas::status::{OriginRequest, handle_request};
use kiln_shared::signing::{
    self, RESPONSE_METHOD, SIGNATURE_HEADER, SignedRequest, TIMESTAMP_HEADER,
};
use kiln_shared::state::BuildStatus;
use kiln_shared::{ImageState, OverallStatus, PresetStatus, StatusReport};
use kiln_tests::lambdas_kit::*;

const SECRET: &str = kiln_tests::lambdas_kit::EDGE_SECRET;

/// The edge's pull targets: each carries its own nonce (the origin answers a signature
/// once, and signs its answer over the same target).
const PULL_1: &str = "/status?nonce=reconcile-pull-1";
const PULL_2: &str = "/status?nonce=reconcile-pull-2";
const PULL_3: &str = "/status?nonce=reconcile-pull-3";

fn signed(now: i64, target: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(TIMESTAMP_HEADER, now.to_string().parse().unwrap());
    let sig = signing::sign(SECRET.as_bytes(), now, "GET", target, b"").unwrap();
    h.insert(SIGNATURE_HEADER, sig.parse().unwrap());
    h
}

/// Runs a build to the end; every event but AVAILABLE is delivered.
async fn build_losing_available(w: &mut LambdaWorld, arn: &str) {
    w.step_to(arn, ImageState::Pending);
    for _ in 0..3 {
        w.step_and_deliver(arn).await;
    }
    w.ib.step(arn).unwrap();
    assert_eq!(w.ib.image(arn).unwrap().state, ImageState::Available);
    w.assert_no_events().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_available_is_healed_by_reconcile_and_by_status_origin() {
    // AMIs registered in moto's EC2: reconcile's health check finds them.
    let Some(mut w) = LambdaWorld::start_with_ec2(DynamoBackend::Moto, 3, |c| {
        // Everything building counts as stale, so the test need not wait 30 minutes.
        c.stale_after = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    w.ib.set_event_faults(EventFaults {
        drop: vec![ImageState::Available],
        ..Default::default()
    });
    w.ib.set_list_order(ListOrder::OldestFirst);
    let started = w.apply_presets(&presets()).await;

    // linux-x64: two builds, both AVAILABLE events lost; the list says the old one first.
    build_losing_available(&mut w, &started[X64]).await;
    next_second().await;
    let newest = w.ib.start_build(X64_PIPELINE).unwrap();
    build_losing_available(&mut w, &newest).await;
    assert_eq!(w.record(X64).await.status, BuildStatus::Building);

    let report = kiln_lambdas::reconcile::reconcile(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    assert!(report.corrected.contains(&X64.to_owned()), "{report:?}");
    let image = w.ib.image(&newest).unwrap();
    let r = w.record(X64).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(
        r.amis, image.amis,
        "the newest image by dateCreated, not the list's first"
    );
    assert_eq!(
        w.config(WEST, X64).await.unwrap()["amiId"].as_str(),
        image.amis.get(WEST).map(String::as_str)
    );
    // linux-arm64 was still building when reconcile looked: still building.
    assert_eq!(w.record(ARM64).await.status, BuildStatus::Building);

    // linux-arm64 loses its AVAILABLE too; the next /status heals it inline.
    build_losing_available(&mut w, &started[ARM64]).await;
    let now = chrono::Utc::now();
    let headers = signed(now.timestamp(), PULL_1);
    let req = OriginRequest {
        method: "GET",
        path: PULL_1,
        headers: &headers,
        body: b"",
    };
    w.plan.reset_counts();
    let resp = handle_request(&w.deps, req, now).await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    let sig = resp.headers()[SIGNATURE_HEADER].to_str().unwrap();
    let ts = resp.headers()[TIMESTAMP_HEADER].to_str().unwrap();
    let check = SignedRequest {
        timestamp: Some(ts),
        signature: Some(sig),
        method: RESPONSE_METHOD,
        path: PULL_1,
        body: resp.body().as_bytes(),
    };
    signing::verify(SECRET.as_bytes(), &check, now.timestamp(), 60).expect("signed response");
    let report: StatusReport = serde_json::from_str::<kiln_shared::feeds::Published>(resp.body())
        .unwrap()
        .report;
    assert_eq!(report.status, OverallStatus::Ready, "{report:?}");
    let arm = report.presets.iter().find(|p| p.name == ARM64).unwrap();
    assert_eq!(arm.status, PresetStatus::Ready);
    let arm_image = w.ib.image(&started[ARM64]).unwrap();
    assert_eq!(arm.ami_id.as_ref(), arm_image.amis.get(REGION));
    assert_eq!(
        w.record(ARM64).await.status,
        BuildStatus::Ready,
        "healed in the table too"
    );
    assert_eq!(
        w.config(REGION, ARM64).await.unwrap()["amiId"].as_str(),
        arm_image.amis.get(REGION).map(String::as_str)
    );

    // Nothing stale any more: a /status is exactly three queries (AMI records, PRESET
    // items, history rollups).
    w.plan.reset_counts();
    let headers = signed(now.timestamp(), PULL_2);
    let req = OriginRequest {
        method: "GET",
        path: PULL_2,
        headers: &headers,
        body: b"",
    };
    assert_eq!(handle_request(&w.deps, req, now).await.status(), 200);
    let calls = w.plan.calls();
    eprintln!("AWS calls per /status: {calls:?}");
    assert_eq!(
        calls,
        [("dynamodb:Query".to_owned(), 3)].into_iter().collect()
    );

    // A bad signature: 401 JSON, nothing read.
    w.plan.reset_counts();
    let mut bad = signed(now.timestamp(), PULL_3);
    bad.insert(SIGNATURE_HEADER, "v1=00".parse().unwrap());
    let req = OriginRequest {
        method: "GET",
        path: PULL_3,
        headers: &bad,
        body: b"",
    };
    let resp = handle_request(&w.deps, req, now).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.body().contains("signature"));
    // Nothing but the secret, read again once: a mismatch may mean a rotation (at most
    // once per 30 s per container).
    let calls = w.plan.calls();
    assert!(
        calls.keys().all(|op| op == "secretsmanager:GetSecretValue"),
        "{calls:?}"
    );
}

/// Every event of a build lost: reconcile records it with its real start (the image's
/// `dateCreated`), not the time reconcile happened to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_every_event_was_lost_keeps_its_real_start() {
    let Some(mut w) = LambdaWorld::start_with_ec2(DynamoBackend::Moto, 2, |c| {
        c.stale_after = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    w.ib.set_event_faults(EventFaults::drop_all());
    let started = w.apply_presets(&presets()).await;
    let arn = &started[X64];
    let created = w.ib.image(arn).unwrap().date_created;
    // Reconcile looks at least two seconds after the build started.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.step_to(arn, ImageState::Available);
    w.assert_no_events().await;
    let now = chrono::Utc::now();
    let report = kiln_lambdas::reconcile::reconcile(&w.deps, now)
        .await
        .unwrap();
    assert!(report.corrected.contains(&X64.to_owned()), "{report:?}");
    let builds = w.deps.store.list_builds_of(X64).await.unwrap().items;
    assert_eq!(builds.len(), 1, "{builds:?}");
    let b = &builds[0];
    assert_eq!(b.outcome, Some(ImageState::Available));
    assert_eq!(
        kiln_shared::time::format(b.started_at),
        kiln_shared::time::format(kiln_shared::time::truncate(
            kiln_shared::time::parse(&created).unwrap()
        )),
        "the start is the image's dateCreated"
    );
    let ended = b.ended_at.unwrap();
    assert!(
        (ended - b.started_at).num_seconds() >= 2,
        "{} .. {ended}",
        b.started_at
    );
}
