//! The four unmodified Lambda binaries under devstack's local Lambda runtime (Runtime
//! API, Invoke API, Function URL front), against moto + the local Image Builder, whose
//! events go straight to the running `ami-update` like an EventBridge target.
//! The binaries come from the workspace build ([`kiln_tests::bins`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::put;
use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, PipelineSpec, Timing};
use kiln_devstack::lambda::{FunctionSpec, LocalLambda};
use kiln_devstack::{DynamoBackend, LocalAws, started_or_skip};
use kiln_shared::preset::{PresetSource, parse_one};
use kiln_shared::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use kiln_shared::{Architecture, OverallStatus, StatusReport};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const SECRET: &str = "binaries-test-secret-of-at-least-32-bytes";
const ROTATED: &str = "binaries-test-secret-rotated-32-bytes-min";
const X64: &str = include_str!("../../lambdas/tests/fixtures/presets/linux-x64.yaml");
const CREATE: &str =
    include_str!("../../lambdas/tests/fixtures/events/custom-resource-create.json");

async fn response_url() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/r",
        put(move |body: String| async move {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap());
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/r", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_run_under_the_local_lambda_runtime() {
    let Some(aws) = started_or_skip(
        "AWS emulators",
        LocalAws::start(DynamoBackend::Moto, REGION).await,
    ) else {
        return;
    };
    let ib = LocalImageBuilder::start(Options {
        timing: Timing::total(Duration::from_millis(1500)),
        ..Options::default()
    })
    .await
    .unwrap();
    let pipeline = ib
        .register_pipeline(
            PipelineSpec::new("spot-runner-linux-x64", [REGION, "eu-west-1"])
                .architecture(Architecture::X86_64),
        )
        .unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&aws.dynamodb_config());
    kiln_aws::store::create_table(&ddb, "kiln").await.unwrap();

    // As `kiln deploy` does: the secret in Secrets Manager, only its ARN in the env.
    let secret_name = "kiln/binaries/edge-secret";
    let secret = kiln_tests::lambdas_kit::edge_secret(&aws, secret_name, SECRET).await;
    let env: Vec<(String, String)> = aws
        .env()
        .into_iter()
        .chain([
            ("KILN_TABLE".to_owned(), "kiln".to_owned()),
            ("KILN_EDGE_SECRET_ARN".to_owned(), secret.arn.clone()),
            // Short, so the rotation below reaches the warm container within the test.
            ("KILN_EDGE_SECRET_TTL_SECS".to_owned(), "1".to_owned()),
            ("AWS_ENDPOINT_URL_IMAGEBUILDER".to_owned(), ib.endpoint()),
        ])
        .collect();
    let function =
        |name: &str, bin: std::path::PathBuf| FunctionSpec::new(name, bin).envs(env.clone());
    let ami_update =
        LocalLambda::start(function("ami-update", kiln_tests::bins::bin("ami-update")))
            .await
            .unwrap();
    ib.add_http_sink(&ami_update.invoke_url());

    // preset-init (custom resource) stores the preset and starts the first build.
    let preset = parse_one(&PresetSource {
        file: "x.yaml".into(),
        text: X64.into(),
    })
    .unwrap();
    let (url, answers) = response_url().await;
    let mut create: Value = serde_json::from_str(CREATE).unwrap();
    create["ResponseURL"] = url.into();
    create["ResourceProperties"]["Presets"] = serde_json::to_string(&preset).unwrap().into();
    create["ResourceProperties"]["Pipelines"] = serde_json::json!({ "linux-x64": pipeline });
    let init = LocalLambda::start(function(
        "preset-init",
        kiln_tests::bins::bin("preset-init"),
    ))
    .await
    .unwrap();
    let out = init.invoke(&create).await.unwrap();
    assert_eq!(out["status"], "SUCCESS", "{out}");
    assert_eq!(answers.lock().unwrap()[0]["Status"], "SUCCESS");

    // The build runs; its events reach ami-update over HTTP; the table follows.
    let image = ib.images().pop().expect("a build was started");
    ib.wait_terminal(&image.arn, Duration::from_secs(20))
        .await
        .unwrap();
    let store = kiln_aws::store::DynamoStore::new(ddb.clone(), "kiln");
    use kiln_aws::store::StateStore;
    let mut ready = None;
    for _ in 0..100 {
        let r = store.get_ami("linux-x64").await.unwrap().unwrap();
        if r.ami_id.is_some() {
            ready = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = ready.expect("ami-update made the record ready");
    let image = ib.image(&image.arn).unwrap();
    assert_eq!(ready.amis, image.amis);
    // The record is written first, then the runner configs: the config follows shortly.
    let ssm = aws_sdk_ssm::Client::new(&aws.moto_config("eu-west-1"));
    let want = image.amis.get("eu-west-1").cloned();
    let mut west = Value::Null;
    for _ in 0..100 {
        let out = ssm
            .get_parameter()
            .name("/spot-runner/configs/linux-x64")
            .send()
            .await
            .unwrap();
        west = serde_json::from_str(out.parameter.unwrap().value().unwrap()).unwrap();
        if west["amiId"].as_str() == want.as_deref() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(west["amiId"].as_str(), want.as_deref(), "{west}");
    assert!(
        ami_update.invocation_count() >= 4,
        "BUILDING, TESTING, DISTRIBUTING, AVAILABLE"
    );

    // status-origin behind a Function URL: signed requests only, signed answers.
    let origin = LocalLambda::start(function(
        "status-origin",
        kiln_tests::bins::bin("status-origin"),
    ))
    .await
    .unwrap();
    let front = origin.serve_function_url(None).await.unwrap();
    let http = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    // The edge's form: the whole target (path and nonce) is signed, once.
    let target = signing::origin_status_target("binaries-1");
    let sig = signing::sign(SECRET.as_bytes(), now, "GET", &target, b"").unwrap();
    let signed_get = || {
        http.get(format!("{}{target}", front.url().trim_end_matches('/')))
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, sig.clone())
    };
    let resp = signed_get().send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key(SIGNATURE_HEADER));
    let report: StatusReport = resp
        .json::<kiln_shared::feeds::Published>()
        .await
        .unwrap()
        .report;
    assert_eq!(report.status, OverallStatus::Ready, "{report:?}");
    let unsigned = http
        .get(format!("{}/status", front.url().trim_end_matches('/')))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let body: Value = unsigned.json().await.unwrap();
    assert_eq!(body, json!({"error": "invalid or missing signature"}));
    let replayed = signed_get().send().await.unwrap();
    assert_eq!(
        replayed.status(),
        401,
        "a captured signed request is answered once"
    );
    assert!(
        env.iter().all(|(_, v)| !v.contains(SECRET)),
        "no secret value in any Lambda environment variable"
    );

    // Rotation (`kiln secret rotate`'s step b): the warm container picks the new value up
    // after its TTL, signs with it, and still accepts the edge's pulls signed with the
    // old one (the edge switches later).
    use kiln_aws::secrets::{SdkSecrets, SecretValue, Secrets};
    SdkSecrets::from_conf(&aws.moto_config(REGION))
        .put_value(secret_name, &SecretValue::new(ROTATED))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (n, with) in [(2, SECRET), (3, ROTATED)] {
        let now = chrono::Utc::now().timestamp();
        let target = signing::origin_status_target(&format!("binaries-{n}"));
        let sig = signing::sign(with.as_bytes(), now, "GET", &target, b"").unwrap();
        let resp = http
            .get(format!("{}{target}", front.url().trim_end_matches('/')))
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, sig)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "a pull signed with {n}");
        let ts = resp.headers()[TIMESTAMP_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let answer_sig = resp.headers()[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let body = resp.bytes().await.unwrap();
        let answer = signing::SignedRequest {
            timestamp: Some(&ts),
            signature: Some(&answer_sig),
            method: signing::RESPONSE_METHOD,
            path: &target,
            body: &body,
        };
        assert!(
            signing::verify(ROTATED.as_bytes(), &answer, now, 60).is_ok(),
            "answers are signed with the new AWSCURRENT"
        );
        assert!(signing::verify(SECRET.as_bytes(), &answer, now, 60).is_err());
    }

    // reconcile on its schedule: nothing stale.
    let reconcile = LocalLambda::start(function("reconcile", kiln_tests::bins::bin("reconcile")))
        .await
        .unwrap();
    let out = reconcile
        .invoke(&json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
        .unwrap();
    assert_eq!(out["checked"], json!([]), "{out}");
    assert_eq!(out["errors"], 0);

    // A malformed event is acknowledged (no function error, so no retry).
    let out = ami_update.invoke(&json!({"hello": "world"})).await.unwrap();
    assert!(
        out["ignored"].as_str().unwrap().contains("Malformed"),
        "{out}"
    );
}
