//! Figures for `make bench` (scripts/bench-lambdas.sh), not a timed test: the AWS calls
//! one event and one `/status` cost, counted by the call-counting fault wrapper around
//! the real `aws-sdk-*` clients against DynamoDB Local + moto SSM + the local Image
//! Builder. Ignored by default; run with
//! `cargo test -p kiln-tests --test bench_lambdas -- --ignored --nocapture`.
//! Every figure is printed on a line starting with `bench-lambdas:`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use kiln_aws::mock::faults::FaultPlan;
use kiln_devstack::DynamoBackend;
use kiln_lambdas::ami_update::handle_event;
use kiln_lambdas::{Config, Deps, Endpoints};
use kiln_shared::ImageState;
use kiln_tests::lambdas_kit::*;

/// An `/ingest` that accepts every push (signatures are tested elsewhere).
async fn accepting_edge() -> String {
    let app = axum::Router::new().route("/ingest", post(|| async { StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn line(what: &str, calls: &BTreeMap<String, u64>) {
    let aws: u64 = calls
        .iter()
        .filter(|(op, _)| !op.starts_with("edge:"))
        .map(|(_, n)| n)
        .sum();
    let edge = calls.get("edge:Ingest").copied().unwrap_or(0);
    let detail: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
    println!(
        "bench-lambdas: {what:<52} {aws:>3} AWS calls, {edge} edge push(es)  [{}]",
        detail.join(", ")
    );
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for make bench (scripts/bench-lambdas.sh)"]
async fn aws_calls_per_event_and_status() {
    let edge_url = accepting_edge().await;
    let Some(mut w) = LambdaWorld::start(DynamoBackend::DynamoDbLocal, |c| {
        c.edge_url = Some(edge_url.clone());
    })
    .await
    else {
        println!("bench-lambdas: skipped (emulators unavailable)");
        return;
    };
    // The same table and emulators without an edge: pushes (and their snapshot reads)
    // are off.
    let quiet_plan = Arc::new(FaultPlan::new());
    let quiet = Deps::from_sdk(
        Config::new(TABLE, REGION),
        &w.aws.moto_config(REGION),
        &Endpoints {
            dynamodb: Some(w.aws.dynamodb_endpoint()),
            ssm: None,
            imagebuilder: Some(w.ib.endpoint()),
            ec2: None,
            secretsmanager: None,
        },
    )
    .with_faults(quiet_plan.clone());

    let started = w.apply_presets(&presets()).await;
    let x64 = started[X64].clone();
    let arm = started[ARM64].clone();

    // linux-x64 (2 regions), with an edge configured.
    w.step_to(&x64, ImageState::Pending);
    w.plan.reset_counts();
    w.step_and_deliver(&x64).await;
    line("BUILDING event (record written), edge on", &w.plan.calls());
    w.step_and_deliver(&x64).await; // TESTING
    w.step_and_deliver(&x64).await; // DISTRIBUTING
    w.ib.step(&x64).unwrap();
    let available = w.recv(1).await.remove(0);
    w.plan.reset_counts();
    let t = Instant::now();
    handle_event(&w.deps, available.clone()).await.unwrap();
    let available_ms = t.elapsed().as_secs_f64() * 1000.0;
    line("AVAILABLE event, 2 regions, edge on", &w.plan.calls());
    w.plan.reset_counts();
    handle_event(&w.deps, available.clone()).await.unwrap();
    line("AVAILABLE duplicate (no-op), 2 regions", &w.plan.calls());

    // linux-arm64 (1 region), no edge.
    w.step_to(&arm, ImageState::Distributing);
    let _ = w.recv(3).await;
    w.ib.step(&arm).unwrap();
    let available = w.recv(1).await.remove(0);
    quiet_plan.reset_counts();
    handle_event(&quiet, available).await.unwrap();
    line("AVAILABLE event, 1 region, no edge", &quiet_plan.calls());

    // /status: nothing stale, then with one stale record reconciled inline.
    let now = chrono::Utc::now();
    w.plan.reset_counts();
    // What the origin answers: the report and the history documents (one query more,
    // for every preset's rollup, however many builds each has).
    let published = kiln_lambdas::status::published(&w.deps, now).await.unwrap();
    let builds: usize =
        serde_json::from_str::<Vec<kiln_shared::history::PresetHistory>>(&published.feeds.history)
            .unwrap()
            .iter()
            .map(|h| h.builds.len())
            .sum();
    line(
        &format!("/status + history ({builds} builds), nothing stale"),
        &w.plan.calls(),
    );
    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        kiln_lambdas::status::published(&w.deps, now).await.unwrap();
        samples.push(t.elapsed());
    }
    let status_ms = median_ms(samples);
    let rebuild = {
        next_second().await;
        let arn = w.ib.start_build(X64_PIPELINE).unwrap();
        w.step_to(&arn, ImageState::Pending);
        w.step_and_deliver(&arn).await; // BUILDING: the record is building again
        w.step_to(&arn, ImageState::Available); // …and its later events are lost
        arn
    };
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    w.plan.reset_counts();
    let report = kiln_lambdas::status::published(&w.deps, later)
        .await
        .unwrap()
        .report;
    line(
        "/status + history, 1 stale record reconciled inline",
        &w.plan.calls(),
    );
    let healed = report.presets.iter().find(|p| p.name == X64).unwrap();
    assert_eq!(
        healed.ami_id.as_ref(),
        w.ib.image(&rebuild).unwrap().amis.get(REGION),
        "the inline reconcile healed the lost AVAILABLE"
    );

    // The scheduled reconcile when nothing is stale: list + config drift check.
    w.plan.reset_counts();
    kiln_lambdas::reconcile::reconcile(&w.deps, later)
        .await
        .unwrap();
    line("reconcile run, 2 presets, nothing stale", &w.plan.calls());

    println!(
        "bench-lambdas: latency against the local emulators: AVAILABLE event {available_ms:.1} ms, \
         /status median {status_ms:.1} ms (50 runs)"
    );
}
