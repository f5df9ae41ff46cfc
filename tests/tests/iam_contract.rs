//! IAM contract between the Lambdas' code and the template `kiln synth` renders.
//!
//! Each handler runs over the in-memory fakes behind the call-counting fault wrapper
//! (which names every call by its IAM action), through scenarios that take every code
//! path that reaches AWS. The test fails when a function calls an action its role in
//! the synthesized template does not grant, and when a role grants an action that no
//! code path of its function calls, unless the action is listed in [`REQUIRED_BESIDE`]
//! with the reason AWS needs it. No emulators: it runs in well under a second.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use kiln_aws::images::{ImageInfo, ImageSummary};
use kiln_aws::mock::fakes::{self, Fakes};
use kiln_aws::mock::faults::FaultPlan;
use kiln_aws::store::PresetItem;
use kiln_lambdas::preset_init::{PipelineArns, handle_custom_resource};
use kiln_lambdas::status::{OriginRequest, handle_request};
use kiln_lambdas::{Config, Deps, ami_update, reconcile};
use kiln_shared::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use kiln_shared::state::AmiRecord;
use kiln_shared::{ImageState, Preset, time};
use serde_json::{Value, json};

/// Actions a role needs although no kiln code path calls them, with the reason.
const REQUIRED_BESIDE: &[(&str, &str, &str)] = &[
    // Lambda's runtime ships stdout to the function's log group with the execution
    // role's credentials; the group is created by the template, so no CreateLogGroup.
    (
        "*",
        "logs:CreateLogStream",
        "Lambda writes the function's logs",
    ),
    (
        "*",
        "logs:PutLogEvents",
        "Lambda writes the function's logs",
    ),
    // The on-failure destination (EventInvokeConfig) of the two functions EventBridge
    // invokes asynchronously sends failed invocations to the DLQ as the function's role.
    (
        "ami-update",
        "sqs:SendMessage",
        "on-failure destination of asynchronous invocations",
    ),
    (
        "reconcile",
        "sqs:SendMessage",
        "on-failure destination of asynchronous invocations",
    ),
    // DescribeImageReferences reads the referencing resources as the caller; where the
    // API is unavailable, retention makes the same checks by hand (ec2/refs.rs).
    (
        "reconcile",
        "ec2:DescribeInstances",
        "DescribeImageReferences checks instances as the caller",
    ),
    (
        "reconcile",
        "ec2:DescribeLaunchTemplates",
        "DescribeImageReferences checks launch templates as the caller",
    ),
    (
        "reconcile",
        "ec2:DescribeLaunchTemplateVersions",
        "DescribeImageReferences checks launch template versions as the caller",
    ),
    // Service Authorization Reference: StartImagePipelineExecution lists
    // GetImagePipeline as a dependent action (the service reads the pipeline as the
    // caller).
    (
        "preset-init",
        "imagebuilder:GetImagePipeline",
        "dependent action of imagebuilder:StartImagePipelineExecution",
    ),
    // SSM validates a parameter of data type `aws:ec2:image` (`/<prefix>/ami/<preset>`)
    // by describing its AMI as the caller of PutParameter.
    (
        "ami-update",
        "ec2:DescribeImages",
        "SSM checks aws:ec2:image parameters as the caller",
    ),
    (
        "status-origin",
        "ec2:DescribeImages",
        "SSM checks aws:ec2:image parameters as the caller",
    ),
];

const REGION: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";
/// The fakes' edge secret (at `fakes::EDGE_SECRET_ARN`).
const SECRET: &str = fakes::EDGE_SECRET;
const PRESET: &str = "linux-x64";

fn repo_presets() -> Vec<Preset> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets");
    kiln_infra::presets::load(&dir).expect("the repository's presets load")
}

fn t(s: &str) -> DateTime<Utc> {
    time::parse(s).unwrap()
}

fn pipeline_arn(preset: &str) -> String {
    format!("arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/spot-runner-{preset}")
}

fn image_arn(build: u32) -> String {
    format!("arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/spot-runner-{PRESET}/1.0.0/{build}")
}

/// The handlers' dependencies over fresh fakes, every call counted by `plan`.
fn world(config: Config) -> (Deps, Fakes, Arc<FaultPlan>) {
    let (deps, fakes) = kiln_lambdas::deps::fake(config);
    let plan = Arc::new(FaultPlan::new());
    (deps.with_faults(plan.clone()), fakes, plan)
}

fn config() -> Config {
    let mut c = Config::new("spot-runner-state", REGION);
    c.edge_secret_arn = Some(fakes::EDGE_SECRET_ARN.into());
    c.alerts_topic_arn = Some(format!("arn:aws:sns:{REGION}:{ACCOUNT}:alerts"));
    c
}

/// The PRESET item preset-init would have written, and Image Builder's view of one build.
fn deployed(fakes: &Fakes, presets: &[Preset]) {
    let p = presets.iter().find(|p| p.name == PRESET).unwrap();
    let item = PresetItem::new(p, "spot-runner", REGION, t("2026-01-27T10:00:00Z"))
        .with_pipeline_arn(pipeline_arn(PRESET));
    fakes
        .store
        .presets
        .lock()
        .unwrap()
        .insert(PRESET.into(), item);
    // One region's runner config exists, the other's does not (it starts from the preset).
    fakes.configs.set(
        REGION,
        "/spot-runner/configs/linux-x64",
        r#"{"amiId":null,"maxRunners":4}"#,
    );
}

fn image_info(build: u32, state: ImageState, created: &str, pipeline: &str) -> ImageInfo {
    let amis = if state == ImageState::Available {
        BTreeMap::from([
            (REGION.into(), format!("ami-{build}e")),
            (WEST.into(), format!("ami-{build}w")),
        ])
    } else {
        BTreeMap::new()
    };
    ImageInfo {
        arn: image_arn(build),
        state: Some(state),
        reason: None,
        date_created: Some(t(created)),
        source_pipeline_name: Some(pipeline.into()),
        amis,
    }
}

/// Build `build` of the linux-x64 pipeline, in GetImage and in the pipeline's list.
fn put_image(fakes: &Fakes, build: u32, state: ImageState, created: &str) {
    let info = image_info(build, state, created, "spot-runner-linux-x64");
    fakes
        .images
        .images
        .lock()
        .unwrap()
        .insert(image_arn(build), info);
    let mut lists = fakes.images.lists.lock().unwrap();
    let list = lists.entry(pipeline_arn(PRESET)).or_default();
    list.retain(|s| s.arn != image_arn(build));
    list.push(ImageSummary {
        arn: image_arn(build),
        date_created: Some(t(created)),
        state: Some(state),
    });
}

fn event(state: ImageState, at: &str, image: &str) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Image Builder Image State Change",
        "source": "aws.imagebuilder",
        "account": ACCOUNT,
        "time": at,
        "region": REGION,
        "resources": [image],
        "detail": { "state": { "status": state.as_str() } },
    })
}

/// Every action the calls recorded by `plan` need (the edge push is no AWS call).
fn actions(plan: &FaultPlan) -> BTreeSet<String> {
    plan.calls()
        .into_keys()
        .filter(|op| !op.starts_with("edge:"))
        .collect()
}

async fn ami_update_actions(presets: &[Preset]) -> BTreeSet<String> {
    let (deps, fakes, plan) = world(config());
    deployed(&fakes, presets);
    let now = Utc::now();
    let at = |secs: i64| time::format(now - chrono::Duration::seconds(secs));
    // Malformed, unknown image, foreign pipeline: acknowledged without writes.
    let acks = [
        json!({ "source": "aws.imagebuilder" }),
        event(ImageState::Building, &at(60), &image_arn(99)),
    ];
    for e in acks {
        ami_update::handle_event(&deps, e).await.unwrap();
    }
    let foreign = format!("arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/other-stack-x/1.0.0/7");
    let mut info = image_info(1, ImageState::Building, &at(100), "other-stack-x");
    info.arn = foreign.clone();
    fakes
        .images
        .images
        .lock()
        .unwrap()
        .insert(foreign.clone(), info);
    ami_update::handle_event(&deps, event(ImageState::Building, &at(50), &foreign))
        .await
        .unwrap();
    // A build of ours: BUILDING, then AVAILABLE (runner configs follow), then a
    // duplicate (no-op), each pushing the snapshot to the edge.
    put_image(&fakes, 1, ImageState::Building, &at(100));
    for (state, secs) in [
        (ImageState::Building, 40),
        (ImageState::Available, 20),
        (ImageState::Available, 20),
    ] {
        put_image(&fakes, 1, state, &at(100));
        ami_update::handle_event(&deps, event(state, &at(secs), &image_arn(1)))
            .await
            .unwrap();
    }
    assert!(healed(&fakes), "the scenario reached AVAILABLE");
    actions(&plan)
}

async fn reconcile_actions(presets: &[Preset]) -> BTreeSet<String> {
    let (deps, fakes, plan) = world(config());
    deployed(&fakes, presets);
    let now = Utc::now();
    // A record stuck in building for two hours whose AVAILABLE event was lost.
    let long_ago = now - chrono::Duration::hours(2);
    stuck_building(&fakes, long_ago);
    put_image(&fakes, 1, ImageState::Available, &time::format(long_ago));
    let report = reconcile::reconcile(&deps, now).await.unwrap();
    assert_eq!(report.corrected, vec![PRESET], "{report:?}");
    // Config drift: the runner config lost its AMI; the next run repairs it.
    fakes.configs.set(
        REGION,
        "/spot-runner/configs/linux-x64",
        r#"{"amiId":null}"#,
    );
    let report = reconcile::reconcile(&deps, now).await.unwrap();
    assert!(!report.configs_repaired.is_empty(), "{report:?}");
    // The opt-in scheduled retention (same function, its own schedule): three old
    // AMIs of the preset, the newest kept, the others deregistered with their snapshots.
    for (i, created) in ["2026-01-01", "2026-01-02", "2026-01-03"]
        .iter()
        .enumerate()
    {
        fakes.ec2.add(
            REGION,
            kiln_aws::ec2::Ec2Image {
                id: format!("ami-old{i}"),
                name: format!("old-{i}"),
                tags: [("kiln:prefix", "spot-runner"), ("kiln:preset", PRESET)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                created: format!("{created}T00:00:00.000Z"),
                snapshots: vec![format!("snap-old{i}")],
                size_gb: Some(8),
            },
        );
    }
    let request = kiln_lambdas::retention::RetentionRequest::from_event(&json!({
        "kiln": "retention", "keepLatest": 1, "graceDays": 0,
    }))
    .unwrap();
    let report = kiln_lambdas::retention::run(&deps, &request, now)
        .await
        .unwrap();
    assert!(!report.deleted.is_empty(), "{report:?}");
    actions(&plan)
}

/// The record preset-init wrote at `at`, still building: its events were lost.
fn stuck_building(fakes: &Fakes, at: DateTime<Utc>) {
    let record = AmiRecord::initial(PRESET, Some(kiln_shared::Architecture::X86_64), at);
    fakes
        .store
        .ami
        .lock()
        .unwrap()
        .insert(PRESET.into(), record);
}

fn healed(fakes: &Fakes) -> bool {
    fakes.store.ami.lock().unwrap()[PRESET].ami_id.as_deref() == Some("ami-1e")
}

async fn status_origin_actions(presets: &[Preset]) -> BTreeSet<String> {
    let (deps, fakes, plan) = world(config());
    deployed(&fakes, presets);
    let now = Utc::now();
    let long_ago = now - chrono::Duration::hours(2);
    stuck_building(&fakes, long_ago);
    put_image(&fakes, 1, ImageState::Available, &time::format(long_ago));
    let ts = now.timestamp();
    let target = signing::origin_status_target("iam-contract");
    let sig = signing::sign(SECRET.as_bytes(), ts, "GET", &target, b"").unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
    headers.insert(SIGNATURE_HEADER, sig.parse().unwrap());
    let req = OriginRequest {
        method: "GET",
        path: &target,
        headers: &headers,
        body: b"",
    };
    let response = handle_request(&deps, req, now).await;
    assert_eq!(response.status(), 200, "{}", response.body());
    assert!(
        healed(&fakes),
        "the stale record healed inline: the reconcile path ran"
    );
    actions(&plan)
}

/// A stand-in for the pre-signed S3 URL CloudFormation waits on.
async fn response_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/cloudformation-response")
}

async fn preset_init_actions(presets: &[Preset]) -> BTreeSet<String> {
    let (deps, fakes, plan) = world(config());
    let http = reqwest::Client::new();
    let url = response_url().await;
    let pipelines: PipelineArns = presets
        .iter()
        .map(|p| (p.name.clone(), pipeline_arn(&p.name)))
        .collect();
    let request = |kind: &str, presets: &[Preset]| {
        json!({
            "RequestType": kind,
            "ResponseURL": url,
            "StackId": format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/kiln/1"),
            "RequestId": format!("{kind}-1"),
            "LogicalResourceId": "PresetInit",
            "PhysicalResourceId": "spot-runner-presets",
            "ResourceProperties": {
                "Prefix": "spot-runner",
                "Presets": kiln_infra::template::presets_property(presets),
                "Pipelines": pipelines,
            },
        })
    };
    // An operator's config exists: a changed preset merges its settings into it.
    fakes.configs.set(
        REGION,
        "/spot-runner/configs/linux-x64",
        r#"{"amiId":null}"#,
    );
    let mut changed = presets.to_vec();
    changed[0].labels.push("contract-test".into());
    for (kind, presets) in [
        ("Create", presets.to_vec()),
        ("Update", changed.clone()),
        // One preset removed: its PRESET item is deleted.
        ("Update", changed[..1].to_vec()),
        ("Delete", Vec::new()),
    ] {
        let r = handle_custom_resource(
            &deps,
            &http,
            request(kind, &presets),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(r.status, "SUCCESS", "{kind}: {}", r.reason);
    }
    assert!(!fakes.images.started.lock().unwrap().is_empty());
    actions(&plan)
}

/// Function name suffix (`ami-update`) → the actions its role grants.
fn granted(template: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let resources = template["Resources"].as_object().unwrap();
    let mut out = BTreeMap::new();
    for f in resources
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::Function")
    {
        let name = f["Properties"]["FunctionName"]["Fn::Sub"].as_str().unwrap();
        let name = name.strip_prefix("${Prefix}-").unwrap().to_owned();
        let role_id = f["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
        let role = &resources[role_id]["Properties"];
        assert!(
            role["ManagedPolicyArns"].is_null(),
            "{name}: managed policies cannot be checked against the code; use inline statements"
        );
        let mut actions = BTreeSet::new();
        for policy in role["Policies"].as_array().unwrap() {
            for s in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                // A statement under a condition (`Fn::If` [cond, statement, NoValue])
                // counts as granted: its code path runs only when the condition holds.
                let s = match s.get("Fn::If") {
                    Some(branches) => {
                        assert_eq!(branches[2], json!({ "Ref": "AWS::NoValue" }), "{name}: {s}");
                        &branches[1]
                    }
                    None => s,
                };
                assert_eq!(s["Effect"], "Allow", "{name}: {s}");
                for a in s["Action"].as_array().unwrap() {
                    actions.insert(a.as_str().unwrap().to_owned());
                }
            }
        }
        out.insert(name, actions);
    }
    out
}

fn required_beside(function: &str) -> BTreeSet<String> {
    REQUIRED_BESIDE
        .iter()
        .filter(|(f, _, _)| *f == "*" || *f == function)
        .map(|(_, a, _)| a.to_string())
        .collect()
}

#[tokio::test]
async fn every_role_grants_exactly_what_its_function_calls() {
    let presets = repo_presets();
    let template = kiln_infra::template::synth(&presets, &Default::default())
        .unwrap()
        .core;
    let grants = granted(&template);
    let called: BTreeMap<&str, BTreeSet<String>> = BTreeMap::from([
        ("ami-update", ami_update_actions(&presets).await),
        ("reconcile", reconcile_actions(&presets).await),
        ("status-origin", status_origin_actions(&presets).await),
        ("preset-init", preset_init_actions(&presets).await),
    ]);
    assert_eq!(
        grants.keys().map(String::as_str).collect::<Vec<_>>(),
        called.keys().copied().collect::<Vec<_>>(),
        "every function of the template has scenarios here"
    );
    let mut problems = Vec::new();
    for (function, calls) in &called {
        let granted = &grants[*function];
        let beside = required_beside(function);
        for a in calls.difference(granted) {
            problems.push(format!(
                "{function} calls {a}, which its role does not grant"
            ));
        }
        for a in beside.difference(granted) {
            problems.push(format!(
                "{function} needs {a} beside its calls, not granted"
            ));
        }
        for a in granted.difference(calls).filter(|a| !beside.contains(*a)) {
            problems.push(format!(
                "{function}'s role grants {a}, which none of its code paths calls"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "IAM contract broken:\n  {}",
        problems.join("\n  ")
    );
}
