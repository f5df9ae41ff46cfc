//! `kiln build` / `kiln build-all` through the real SDK client against devstack's local
//! Image Builder endpoint (builds progress on a short clock; faults injected per test).

mod common;

use std::time::Duration;

use common::*;
use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, PipelineSpec, Timing};
use kiln_shared::ImageState;

async fn image_builder() -> LocalImageBuilder {
    let ib = LocalImageBuilder::start(Options {
        timing: Timing::total(Duration::from_millis(1200)),
        ..Options::default()
    })
    .await
    .expect("local Image Builder starts");
    ib.register_pipeline(PipelineSpec::new("ci-alpha", ["us-east-1", "eu-west-1"]))
        .unwrap();
    ib.register_pipeline(PipelineSpec::new("ci-beta", ["us-east-1"]))
        .unwrap();
    // Another deployment's pipeline: build-all must leave it alone.
    ib.register_pipeline(PipelineSpec::new("other-gamma", ["us-east-1"]))
        .unwrap();
    ib
}

async fn run_kiln(ib: &LocalImageBuilder, args: &[&str]) -> std::process::Output {
    let mut cmd = kiln();
    cmd.args([
        "--endpoint-url",
        &ib.endpoint(),
        "--region",
        "us-east-1",
        "--prefix",
        "ci",
    ])
    .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Pipeline names of every image the endpoint has built (its control API).
async fn built_pipelines(ib: &LocalImageBuilder) -> Vec<String> {
    let body: serde_json::Value = reqwest::get(format!("{}/_kiln/images", ib.endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pipelineName"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn build_wait_follows_the_states_to_the_amis() {
    let ib = image_builder().await;
    let out = run_kiln(&ib, &["build", "alpha", "--wait", "--interval", "50ms"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("started ci-alpha: arn:aws:imagebuilder:us-east-1:"),
        "{stdout}"
    );
    let done = stdout
        .lines()
        .find(|l| l.starts_with("alpha: available:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        done.contains("us-east-1=ami-") && done.contains("eu-west-1=ami-"),
        "{done}"
    );
    // The report: every step, in order, each on its own line as it happens.
    let steps: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("alpha  "))
        .collect();
    let expected = [
        "base image resolved",
        "build instance launched, setup script run",
        "AMI created",
        "distributed to eu-west-1",
        "distributed to us-east-1",
        "total",
    ];
    let mut at = 0;
    for want in expected {
        let found = steps[at..]
            .iter()
            .position(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no {want:?} after line {at} in\n{stdout}"));
        at += found + 1;
    }
    assert!(steps.iter().all(|l| l.contains("ok  ")), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn build_wait_fails_with_the_reason() {
    let ib = image_builder().await;
    ib.fail_next_build(
        "ci-beta",
        ImageState::Testing,
        "validation test 'docker' failed",
    );
    let out = run_kiln(&ib, &["build", "beta", "--wait", "--interval", "50ms"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("beta: failed: validation test 'docker' failed"),
        "{err}"
    );
    assert!(err.contains("1 of 1 build did not succeed"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn build_wait_times_out_with_exit_2() {
    let ib = image_builder().await;
    ib.set_timing(Timing::manual());
    let out = run_kiln(
        &ib,
        &[
            "build",
            "alpha",
            "--wait",
            "--interval",
            "50ms",
            "--timeout",
            "400ms",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("alpha: still PENDING when the wait timed out"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_without_wait_returns_at_once_and_unknown_presets_are_named() {
    let ib = image_builder().await;
    ib.set_timing(Timing::manual());
    let out = run_kiln(&ib, &["build", "alpha"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("started ci-alpha"),
        "{}",
        describe(&out)
    );
    let out = run_kiln(&ib, &["build", "gamma"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("no pipeline 'ci-gamma' for preset 'gamma'"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_all_starts_every_pipeline_of_the_prefix_and_reports_each() {
    let ib = image_builder().await;
    ib.fail_next_build("ci-beta", ImageState::Building, "setup script exited 1");
    // Transient API failures are retried by the SDK, not reported.
    ib.fail_next_api_calls(1);
    let out = run_kiln(&ib, &["build-all", "--wait", "--interval", "50ms"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("started ci-alpha") && stdout.contains("started ci-beta"),
        "{stdout}"
    );
    assert!(!stdout.contains("gamma"), "{stdout}");
    let err = text(&out.stderr);
    assert!(err.contains("alpha: available: "), "{err}");
    assert!(err.contains("beta: failed: setup script exited 1"), "{err}");
    assert_eq!(built_pipelines(&ib).await, vec!["ci-alpha", "ci-beta"]);
}
