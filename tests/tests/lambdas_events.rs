//! ami-update end to end: real SDK clients against DynamoDB Local + moto (SSM) + the
//! local Image Builder endpoint; events as the endpoint emits them.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kiln_aws::mock::faults::{Fault, Rule};
use kiln_devstack::DynamoBackend;
use kiln_lambdas::ami_update::{EventAck, Ignored, handle_event};
use kiln_shared::signing::{self, SIGNATURE_HEADER, SignedRequest, TIMESTAMP_HEADER};
use kiln_shared::state::{BuildStatus, NoOp};
use kiln_shared::{ImageState, StatusReport};
use kiln_tests::lambdas_kit::*;
use serde_json::json;

const INGEST_SECRET: &str = kiln_tests::lambdas_kit::EDGE_SECRET;

type Pushes = Arc<Mutex<Vec<StatusReport>>>;

/// A stand-in for the Worker's `/ingest`: verifies the signature like the edge does.
async fn ingest_server() -> (String, Pushes) {
    let pushes: Pushes = Arc::default();
    async fn ingest(
        State(p): State<Pushes>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let req = SignedRequest {
            timestamp: h(TIMESTAMP_HEADER),
            signature: h(SIGNATURE_HEADER),
            method: "POST",
            path: "/ingest",
            body: &body,
        };
        let now = chrono::Utc::now().timestamp();
        if signing::verify(INGEST_SECRET.as_bytes(), &req, now, 60).is_err() {
            return StatusCode::UNAUTHORIZED;
        }
        p.lock().unwrap().push(
            serde_json::from_slice::<kiln_shared::feeds::Published>(&body)
                .unwrap()
                .report,
        );
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/ingest", post(ingest))
        .with_state(pushes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, pushes)
}

fn processed(ack: EventAck) -> kiln_lambdas::observe::Outcome {
    match ack {
        EventAck::Processed(o) => *o,
        other => panic!("expected processing, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_lifecycle_against_emulators() {
    let (edge_url, pushes) = ingest_server().await;
    let Some(mut w) = LambdaWorld::start(DynamoBackend::DynamoDbLocal, |c| {
        c.edge_url = Some(edge_url.clone());
    })
    .await
    else {
        return;
    };
    let started = w.apply_presets(&presets()).await;
    let x64 = started[X64].clone();
    // An operator's key in the deployed placeholder must survive every kiln write.
    let mut east = w.config(REGION, X64).await.expect("placeholder");
    assert!(east["amiId"].is_null());
    east["maxRunners"] = json!(4);
    w.put_config(REGION, X64, &east).await;

    // First build: BUILDING … DISTRIBUTING keep the record building without an AMI.
    w.step_to(&x64, ImageState::Pending);
    let (building_event, _) = w.step_and_deliver(&x64).await;
    assert_eq!(w.record(X64).await.status, BuildStatus::Building);
    w.step_and_deliver(&x64).await; // TESTING
    w.step_and_deliver(&x64).await; // DISTRIBUTING
    assert_eq!(w.record(X64).await.ami_id, None);

    // AVAILABLE: AMIs from GetImage, SSM in both regions, one signed push.
    w.plan.reset_counts();
    let pushes_before = pushes.lock().unwrap().len();
    let (available_event, ack) = w.step_and_deliver(&x64).await;
    let calls = w.plan.calls();
    let o = processed(ack);
    let image = w.ib.image(&x64).unwrap();
    let r = w.record(X64).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(r.ami_id.as_ref(), image.amis.get(REGION));
    assert_eq!(r.amis, image.amis);
    let east = w.config(REGION, X64).await.unwrap();
    let west = w.config(WEST, X64).await.unwrap();
    assert_eq!(
        east["amiId"].as_str(),
        image.amis.get(REGION).map(String::as_str)
    );
    assert_eq!(
        west["amiId"].as_str(),
        image.amis.get(WEST).map(String::as_str)
    );
    assert_eq!(east["maxRunners"], 4, "other keys kept");
    assert_eq!(west["instanceTypes"], json!(["m7i", "c7i"]));
    assert!(o.build_written);
    // The cost of an AVAILABLE event, counted by the wrapper around the real clients.
    eprintln!("AWS calls for one AVAILABLE event (2 regions): {calls:?}");
    let aws: u64 = calls
        .iter()
        .filter(|(op, _)| !op.starts_with("edge:"))
        .map(|(_, n)| n)
        .sum();
    // 13, plus per region a read and a write of `/<prefix>/ami/<preset>`, plus the
    // history rollup: its GetItem, the preset's BUILD items, its PutItem, and the
    // snapshot's query of every rollup.
    assert_eq!(aws, 21, "{calls:?}");
    assert_eq!(calls["edge:Ingest"], 1);
    let pushed = pushes.lock().unwrap()[pushes_before..].to_vec();
    assert_eq!(pushed.len(), 1);
    let x64_report = pushed[0].presets.iter().find(|p| p.name == X64).unwrap();
    assert_eq!(x64_report.ami_id, r.ami_id);

    // Duplicate and out-of-order deliveries: clean no-ops, no writes at all.
    w.plan.reset_counts();
    let again = processed(
        handle_event(&w.deps, available_event.clone())
            .await
            .unwrap(),
    );
    assert_eq!(again.noop, Some(NoOp::Duplicate));
    let late = processed(handle_event(&w.deps, building_event.clone()).await.unwrap());
    assert_eq!(late.noop, Some(NoOp::OutOfOrder));
    let calls = w.plan.calls();
    assert_eq!(calls.get("dynamodb:PutItem"), None, "{calls:?}");
    assert_eq!(calls.get("ssm:PutParameter"), None, "{calls:?}");
    assert_eq!(w.record(X64).await, r);
    let ssm_ready = (east.clone(), west.clone());

    // A rebuild's BUILDING keeps the previous AMI; its FAILED leaves SSM alone.
    next_second().await;
    w.ib.fail_next_build(
        X64_PIPELINE,
        ImageState::Testing,
        "validation test docker failed",
    );
    let rebuild = w.ib.start_build(X64_PIPELINE).unwrap();
    w.step_to(&rebuild, ImageState::Pending);
    w.step_and_deliver(&rebuild).await; // BUILDING
    let r2 = w.record(X64).await;
    assert_eq!(r2.status, BuildStatus::Building);
    assert_eq!(r2.ami_id, r.ami_id, "jobs keep running on the old image");
    w.step_and_deliver(&rebuild).await; // TESTING
    w.step_and_deliver(&rebuild).await; // FAILED
    let r3 = w.record(X64).await;
    assert_eq!(r3.status, BuildStatus::Failed);
    assert!(
        r3.reason.as_deref().unwrap_or("").contains("validation"),
        "{r3:?}"
    );
    assert_eq!(r3.ami_id, r.ami_id);
    assert_eq!(
        (
            w.config(REGION, X64).await.unwrap(),
            w.config(WEST, X64).await.unwrap()
        ),
        ssm_ready
    );

    // CANCELLED: failed with a reason, SSM untouched.
    next_second().await;
    let cancelled = w.ib.start_build(X64_PIPELINE).unwrap();
    w.step_to(&cancelled, ImageState::Pending);
    w.step_and_deliver(&cancelled).await; // BUILDING
    w.ib.cancel(&cancelled).unwrap();
    let ev = w.recv(1).await;
    assert_eq!(ev[0]["detail"]["state"]["status"], "CANCELLED");
    w.deliver(&ev).await.remove(0).unwrap();
    let r4 = w.record(X64).await;
    assert_eq!(r4.status, BuildStatus::Failed);
    assert_eq!(r4.ami_id, r.ami_id);
    assert_eq!(
        (
            w.config(REGION, X64).await.unwrap(),
            w.config(WEST, X64).await.unwrap()
        ),
        ssm_ready
    );

    // History: one item per build, with outcomes.
    let builds = w.deps.store.list_builds().await.unwrap();
    let outcomes: Vec<_> = builds
        .iter()
        .filter(|b| b.preset == X64)
        .map(|b| b.outcome)
        .collect();
    assert_eq!(outcomes.len(), 3, "{builds:?}");
    for o in [
        ImageState::Available,
        ImageState::Failed,
        ImageState::Cancelled,
    ] {
        assert!(outcomes.contains(&Some(o)), "{outcomes:?}");
    }

    // Unknown pipeline and malformed events: acknowledged, nothing written.
    w.ib.register_pipeline(kiln_devstack::imagebuilder::PipelineSpec::new(
        "team-b-golden",
        [REGION],
    ))
    .unwrap();
    let foreign = w.ib.start_build("team-b-golden").unwrap();
    w.step_to(&foreign, ImageState::Pending);
    w.ib.step(&foreign).unwrap();
    let ev = w.recv(1).await;
    w.plan.reset_counts();
    let ack = w.deliver(&ev).await.remove(0).unwrap();
    // Not `<prefix>-<preset>`: acknowledged from the event alone, before any
    // Image Builder call (GetImage would be AccessDenied under the scoped IAM).
    assert_eq!(
        ack,
        EventAck::Ignored(Ignored::NotOurs("team-b-golden".into()))
    );
    assert_eq!(w.plan.calls().get("imagebuilder:GetImage"), None);
    let ack = handle_event(&w.deps, json!({"source": "aws.imagebuilder", "detail": 1}))
        .await
        .unwrap();
    assert!(matches!(ack, EventAck::Ignored(Ignored::Malformed(_))));
    let calls = w.plan.calls();
    assert_eq!(calls.get("dynamodb:PutItem"), None);
    assert_eq!(calls.get("ssm:PutParameter"), None);
    let records = w.deps.store.list_ami().await.unwrap();
    assert_eq!(records.len(), 2, "only the two presets: {records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_between_dynamodb_and_ssm_converges() {
    let Some(mut w) = LambdaWorld::start(DynamoBackend::DynamoDbLocal, |_| {}).await else {
        return;
    };
    let started = w.apply_presets(&presets()).await;
    let x64 = started[X64].clone();
    w.step_to(&x64, ImageState::Distributing);
    w.ib.step(&x64).unwrap(); // AVAILABLE
    // Drain BUILDING, TESTING, DISTRIBUTING, AVAILABLE.
    let events = w.recv(4).await;
    for r in w.deliver(&events[..3]).await {
        r.unwrap();
    }
    let available = events[3].clone();

    // Image Builder itself unavailable (HTTP 503 through the real SDK, which retries
    // first): the handler fails so Lambda retries, and nothing was written.
    w.plan.reset_counts();
    w.ib.fail_next_api_calls(10);
    let err = handle_event(&w.deps, available.clone()).await.unwrap_err();
    assert!(err.to_string().contains("imagebuilder:GetImage"), "{err}");
    assert!(
        err.to_string().contains("Server"),
        "classified as a server error: {err}"
    );
    assert_eq!(w.plan.calls().get("dynamodb:PutItem"), None);
    w.ib.fail_next_api_calls(0);

    // The emulator fails the first SSM write after the DynamoDB write landed.
    w.plan
        .add(Rule::new(Some("ssm:PutParameter"), Fault::Server));
    let err = handle_event(&w.deps, available.clone()).await.unwrap_err();
    assert!(err.to_string().contains("ssm:PutParameter"), "{err}");
    assert_eq!(w.record(X64).await.status, BuildStatus::Ready);
    let image = w.ib.image(&x64).unwrap();
    let placeholders_left = [REGION, WEST].len()
        - [w.config(REGION, X64).await, w.config(WEST, X64).await]
            .iter()
            .filter(|c| c.as_ref().is_some_and(|c| !c["amiId"].is_null()))
            .count();
    assert!(
        placeholders_left >= 1,
        "the failed write left a region behind"
    );
    // Lambda retries the event: it converges.
    let o = processed(handle_event(&w.deps, available.clone()).await.unwrap());
    assert_eq!(o.noop, Some(NoOp::Duplicate));
    assert_eq!(
        w.config(REGION, X64).await.unwrap()["amiId"].as_str(),
        image.amis.get(REGION).map(String::as_str)
    );
    assert_eq!(
        w.config(WEST, X64).await.unwrap()["amiId"].as_str(),
        image.amis.get(WEST).map(String::as_str)
    );

    // Second build: SSM keeps timing out, the event is never retried (DLQ); the
    // scheduled reconcile repairs the configs from the record.
    next_second().await;
    let second = w.ib.start_build(X64_PIPELINE).unwrap();
    w.step_to(&second, ImageState::Distributing);
    w.ib.step(&second).unwrap();
    let events = w.recv(4).await;
    for r in w.deliver(&events[..3]).await {
        r.unwrap();
    }
    w.plan.add(
        Rule::new(
            Some("ssm:PutParameter"),
            Fault::Timeout(std::time::Duration::from_millis(50)),
        )
        .forever(),
    );
    assert!(handle_event(&w.deps, events[3].clone()).await.is_err());
    w.plan.clear_rules();
    let report = kiln_lambdas::reconcile::reconcile(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    let repaired: Vec<_> = report
        .configs_repaired
        .iter()
        .filter(|(p, _)| p == X64)
        .collect();
    assert_eq!(repaired.len(), 2, "{report:?}");
    let image2 = w.ib.image(&second).unwrap();
    assert_eq!(
        w.config(WEST, X64).await.unwrap()["amiId"].as_str(),
        image2.amis.get(WEST).map(String::as_str)
    );
    assert_eq!(w.record(X64).await.ami_id.as_ref(), image2.amis.get(REGION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicated_reordered_deliveries_converge() {
    let Some(mut w) = LambdaWorld::start(DynamoBackend::DynamoDbLocal, |_| {}).await else {
        return;
    };
    w.ib.set_event_faults(kiln_devstack::imagebuilder::EventFaults {
        duplicate: kiln_devstack::imagebuilder::RULE_STATES.to_vec(),
        ..Default::default()
    });
    let started = w.apply_presets(&presets()).await;
    let x64 = started[X64].clone();
    w.step_to(&x64, ImageState::Available);
    let mut events = w.recv(8).await;
    events.reverse();
    // All at once, newest first, every event twice: each delivery retried like Lambda
    // would if it lost too many conditional-write races.
    let deliveries = events.iter().map(|e| {
        let deps = &w.deps;
        async move {
            for _ in 0..3 {
                if handle_event(deps, e.clone()).await.is_ok() {
                    return true;
                }
            }
            false
        }
    });
    let ok = futures::future::join_all(deliveries).await;
    assert!(ok.iter().all(|b| *b));
    let r = w.record(X64).await;
    let image = w.ib.image(&x64).unwrap();
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(r.amis, image.amis);
    assert_eq!(
        w.config(WEST, X64).await.unwrap()["amiId"].as_str(),
        image.amis.get(WEST).map(String::as_str)
    );
    let build = w.deps.store.list_builds().await.unwrap();
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].outcome, Some(ImageState::Available));
    assert!(build[0].validated);
}
