//! The preset-init custom resource: Create/Update/Delete against the emulators, always
//! answering a local stand-in for CloudFormation's pre-signed ResponseURL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::put;
use kiln_devstack::DynamoBackend;
use kiln_lambdas::preset_init::{CfnResponse, PipelineArns, handle_custom_resource};
use kiln_shared::state::BuildStatus;
use kiln_tests::lambdas_kit::*;
use serde_json::{Value, json};

const CREATE: &str =
    include_str!("../../lambdas/tests/fixtures/events/custom-resource-create.json");

#[derive(Clone, Default)]
struct Answers(Arc<Mutex<Vec<Answer>>>);

/// Content type and body of one PUT.
type Answer = (Option<String>, CfnResponse);

/// Records each PUT (its content type and body) like S3 behind a pre-signed URL.
async fn response_url() -> (String, Answers) {
    let answers = Answers::default();
    async fn answer(State(a): State<Answers>, headers: HeaderMap, body: String) -> StatusCode {
        let ct = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        a.0.lock()
            .unwrap()
            .push((ct, serde_json::from_str(&body).unwrap()));
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/cfn-response", put(answer))
        .with_state(answers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn-response", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, answers)
}

fn request(pipelines: &PipelineArns, kind: &str, url: &str, presets: Value) -> Value {
    let mut e: Value = serde_json::from_str(CREATE).unwrap();
    e["RequestType"] = kind.into();
    e["ResponseURL"] = url.into();
    e["ResourceProperties"]["Presets"] = presets;
    // As the template resolves them (`Fn::GetAtt <Pipeline>.Arn`).
    e["ResourceProperties"]["Pipelines"] = serde_json::to_value(pipelines).unwrap();
    if kind != "Create" {
        e["PhysicalResourceId"] = "spot-runner-presets".into();
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_create_update_delete_always_answer() {
    let Some(w) = LambdaWorld::start(DynamoBackend::Moto, |_| {}).await else {
        return;
    };
    let (url, answers) = response_url().await;
    let http = reqwest::Client::new();
    let budget = Duration::from_secs(30);
    let all = presets();
    let x64_only = serde_json::to_string(&all[..1]).unwrap();

    // Create: PRESET item, initial record, placeholders in both regions, a build started.
    let r = handle_custom_resource(
        &w.deps,
        &http,
        request(&w.pipelines, "Create", &url, x64_only.clone().into()),
        budget,
    )
    .await
    .unwrap();
    assert_eq!(r.status, "SUCCESS", "{}", r.reason);
    assert_eq!(r.physical_resource_id, "spot-runner-presets");
    // Counts only: the answer must stay under CloudFormation's 4,096 bytes.
    let data = r.data.clone().unwrap();
    assert_eq!(data["Created"], 1);
    assert_eq!(data["Started"], 1);
    let images = w.ib.images();
    assert_eq!(images.len(), 1, "execution started on Image Builder");
    assert!(
        images[0].pipeline_name.ends_with(X64),
        "{}",
        images[0].pipeline_name
    );
    let rec = w.record(X64).await;
    assert_eq!(
        (rec.status, rec.ami_id.clone()),
        (BuildStatus::Building, None)
    );
    for region in [REGION, WEST] {
        let c = w.config(region, X64).await.unwrap();
        assert!(c["amiId"].is_null());
        assert_eq!(c["region"], region);
    }
    {
        let got = answers.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, r, "the answer PUT is what the handler returned");
        assert!(
            got[0].0.as_deref().is_none_or(str::is_empty),
            "no content type: {:?}",
            got[0].0
        );
        assert_eq!(got[0].1.request_id, "5b3f3a6c-1111-4222-8333-444455556666");
    }

    // An operator edits the config; a deploy that changes nothing starts nothing.
    let mut east = w.config(REGION, X64).await.unwrap();
    east["maxRunners"] = json!(8);
    w.put_config(REGION, X64, &east).await;
    let same = handle_custom_resource(
        &w.deps,
        &http,
        request(&w.pipelines, "Update", &url, x64_only.clone().into()),
        budget,
    )
    .await
    .unwrap();
    assert_eq!(same.status, "SUCCESS");
    assert_eq!(same.data.clone().unwrap()["Started"], 0);

    // Update with a changed x64 and a new arm64 (as a JSON array this time).
    let mut changed = all.clone();
    changed[0].labels = vec!["self-hosted".into(), "gpu".into()];
    let upd = handle_custom_resource(
        &w.deps,
        &http,
        request(
            &w.pipelines,
            "Update",
            &url,
            serde_json::to_value(&changed).unwrap(),
        ),
        budget,
    )
    .await
    .unwrap();
    assert_eq!(upd.status, "SUCCESS", "{}", upd.reason);
    let data = upd.data.clone().unwrap();
    assert_eq!(data["Changed"], 1);
    assert_eq!(data["Created"], 1);
    assert_eq!(data["Started"], 2);
    let east = w.config(REGION, X64).await.unwrap();
    assert_eq!(
        east["labels"],
        json!(["self-hosted", "gpu"]),
        "settings refreshed"
    );
    assert_eq!(east["maxRunners"], 8, "operator key kept");

    // Bad input: FAILED with a reason, nothing written.
    let before = w.deps.store.list_presets().await.unwrap();
    for (props, expect) in [(json!("[{\"name\": "), "Presets"), (json!(42), "Presets")] {
        let bad = handle_custom_resource(
            &w.deps,
            &http,
            request(&w.pipelines, "Update", &url, props),
            budget,
        )
        .await
        .unwrap();
        assert_eq!(bad.status, "FAILED");
        assert!(bad.reason.contains(expect), "{}", bad.reason);
    }
    let mut wrong_prefix = request(&w.pipelines, "Update", &url, x64_only.clone().into());
    wrong_prefix["ResourceProperties"]["Prefix"] = "other".into();
    let bad = handle_custom_resource(&w.deps, &http, wrong_prefix, budget)
        .await
        .unwrap();
    assert_eq!(bad.status, "FAILED");
    assert!(bad.reason.contains("KILN_PREFIX"), "{}", bad.reason);
    // A preset the template passed no pipeline for: FAILED before any write.
    let mut ghost = all[1].clone();
    ghost.name = "ghost".into();
    let bad = handle_custom_resource(
        &w.deps,
        &http,
        request(
            &w.pipelines,
            "Update",
            &url,
            serde_json::to_string(&[ghost]).unwrap().into(),
        ),
        budget,
    )
    .await
    .unwrap();
    assert_eq!(bad.status, "FAILED");
    assert!(
        bad.reason.contains("no pipeline ARN for preset 'ghost'"),
        "{}",
        bad.reason
    );
    assert_eq!(w.deps.store.list_presets().await.unwrap(), before);
    assert!(w.deps.store.get_ami("ghost").await.unwrap().is_none());

    // Work that would outlive the Lambda's deadline is cut off and answered FAILED.
    w.plan.add(kiln_aws::mock::faults::Rule::new(
        Some("dynamodb:Query"),
        kiln_aws::mock::faults::Fault::Timeout(Duration::from_secs(2)),
    ));
    let slow = handle_custom_resource(
        &w.deps,
        &http,
        request(&w.pipelines, "Update", &url, x64_only.clone().into()),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    assert_eq!(slow.status, "FAILED");
    assert!(slow.reason.contains("timed out"), "{}", slow.reason);

    // Delete keeps everything and answers SUCCESS.
    let del = handle_custom_resource(
        &w.deps,
        &http,
        request(&w.pipelines, "Delete", &url, x64_only.into()),
        budget,
    )
    .await
    .unwrap();
    assert_eq!(del.status, "SUCCESS");
    assert_eq!(w.deps.store.list_presets().await.unwrap().len(), 2);
    assert!(w.config(REGION, X64).await.is_some());
    assert_eq!(answers.0.lock().unwrap().len(), 9, "every request answered");

    // An unreachable ResponseURL is the one case the handler reports as an error.
    let lost = request(
        &w.pipelines,
        "Delete",
        "http://127.0.0.1:9/cfn-response",
        json!("[]"),
    );
    let err = handle_custom_resource(&w.deps, &http, lost, budget)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CloudFormation"), "{err}");
}
