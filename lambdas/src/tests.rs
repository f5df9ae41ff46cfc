//! Handler logic against in-process fakes (the integration tests in `tests/` run the
//! same scenarios against real emulators over HTTP).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kiln_shared::preset::{PresetSource, parse_one};
use kiln_shared::state::{BuildStatus, NoOp};
use kiln_shared::{ImageState, Preset, time};
use serde_json::{Value, json};

use crate::ami_update::{EventAck, Ignored, handle_event};
use crate::config::Config;
use crate::fakes::{World, world};
use crate::faults::{Fault, FaultPlan, Rule};
use crate::images::{ImageInfo, ImageSummary};
use crate::store::{PresetItem, StateStore};

const EVENT: &str = include_str!("../tests/fixtures/events/state-change.json");
const NOT_IMAGEBUILDER: &str = include_str!("../tests/fixtures/events/not-imagebuilder.json");
const MALFORMED: &str = include_str!("../../shared/tests/fixtures/events/malformed.json");
const X64: &str = include_str!("../tests/fixtures/presets/linux-x64.yaml");
const ARM64: &str = include_str!("../tests/fixtures/presets/linux-arm64.yaml");

const PARAM: &str = "/spot-runner/configs/linux-x64";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";

fn preset(yaml: &str) -> Preset {
    parse_one(&PresetSource {
        file: "p.yaml".into(),
        text: yaml.into(),
    })
    .unwrap()
    .remove(0)
}

fn t(s: &str) -> DateTime<Utc> {
    time::parse(s).unwrap()
}

fn arn(build: u32) -> String {
    format!("arn:aws:imagebuilder:us-east-1:123456789012:image/linux-x64/1.0.42/{build}")
}

fn event(state: ImageState, at: &str, build: u32) -> Value {
    let mut v: Value = serde_json::from_str(EVENT).unwrap();
    v["time"] = at.into();
    v["resources"] = json!([arn(build)]);
    v["detail"]["state"] = json!({ "status": state.as_str() });
    if matches!(state, ImageState::Failed | ImageState::Cancelled) {
        v["detail"]["state"]["reason"] = "validation test docker failed".into();
    }
    v
}

fn ami(build: u32, region: &str) -> String {
    format!(
        "ami-{build:02}{}",
        if region == EAST { "east" } else { "west" }
    )
}

/// An image of build `build` in Image Builder, in `state`.
fn put_image(w: &World, build: u32, state: ImageState, created: &str) {
    let amis = if state == ImageState::Available {
        BTreeMap::from([
            (EAST.into(), ami(build, EAST)),
            (WEST.into(), ami(build, WEST)),
        ])
    } else {
        BTreeMap::new()
    };
    let info = ImageInfo {
        arn: arn(build),
        state: Some(state),
        reason: None,
        date_created: Some(t(created)),
        source_pipeline_name: Some("spot-runner-linux-x64".into()),
        amis,
    };
    w.images.images.lock().unwrap().insert(arn(build), info);
    let mut lists = w.images.lists.lock().unwrap();
    let list = lists.entry("arn:pipeline/linux-x64".into()).or_default();
    list.retain(|s| s.arn != arn(build));
    // Newest first would be the intuitive order: insert at the end to mislead.
    list.push(ImageSummary {
        arn: arn(build),
        date_created: Some(t(created)),
        state: Some(state),
    });
    list.reverse();
}

fn setup() -> World {
    let w = world(Config::new("t", EAST));
    let p = preset(X64);
    w.store.presets.lock().unwrap().insert(
        p.name.clone(),
        PresetItem::new(&p, "spot-runner", EAST, t("2026-01-27T10:00:00Z")),
    );
    w.images.pipelines.lock().unwrap().insert(
        "spot-runner-linux-x64".into(),
        "arn:pipeline/linux-x64".into(),
    );
    w.configs.set(
        EAST,
        PARAM,
        r#"{"amiId":null,"maxRunners":4,"labels":["operator"]}"#,
    );
    w
}

async fn record(w: &World) -> kiln_shared::AmiRecord {
    w.store.get_ami("linux-x64").await.unwrap().unwrap()
}

fn processed(ack: EventAck) -> crate::ami_update::Outcome {
    match ack {
        EventAck::Processed(o) => *o,
        other => panic!("expected processing, got {other:?}"),
    }
}

#[tokio::test]
async fn first_build_available_updates_ssm_in_both_regions_keeping_other_keys() {
    let w = setup();
    put_image(&w, 3, ImageState::Building, "2026-01-27T11:00:00Z");
    handle_event(
        &w.deps,
        event(ImageState::Building, "2026-01-27T11:00:05Z", 3),
    )
    .await
    .unwrap();
    assert_eq!(record(&w).await.status, BuildStatus::Building);
    assert!(w.configs.value(EAST, PARAM).unwrap()["amiId"].is_null());

    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    let o = processed(
        handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert!(o.record_written && o.build_written);
    assert_eq!(o.configs_updated, vec![WEST.to_owned(), EAST.to_owned()]);
    let r = record(&w).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(r.ami_id.as_deref(), Some("ami-03east"), "home region AMI");
    assert_eq!(
        time::format(r.updated_at),
        "2026-01-27T12:00:00Z",
        "event time, not the clock"
    );
    let east = w.configs.value(EAST, PARAM).unwrap();
    assert_eq!(east["amiId"], "ami-03east");
    assert_eq!(east["maxRunners"], 4, "operator keys survive");
    assert_eq!(east["labels"], json!(["operator"]));
    let west = w.configs.value(WEST, PARAM).unwrap();
    assert_eq!(west["amiId"], "ami-03west");
    assert_eq!(
        west["instanceTypes"],
        json!(["m7i", "c7i"]),
        "a missing config starts from the preset"
    );
    let builds = w.store.list_builds().await.unwrap();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].status, BuildStatus::Ready);
    assert_eq!(builds[0].amis.len(), 2);
    // Every record write pushed a snapshot; the last one is ready.
    let pushes = w.edge.0.lock().unwrap().clone();
    assert_eq!(pushes.len(), 2);
    assert!(pushes[1].is_ready(), "{:?}", pushes[1]);
}

#[tokio::test]
async fn rebuild_keeps_previous_ami_and_failure_or_cancel_leave_ssm_alone() {
    for bad in [ImageState::Failed, ImageState::Cancelled] {
        let w = setup();
        put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
        handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        )
        .await
        .unwrap();
        let ssm_before = w.configs.0.lock().unwrap().clone();

        put_image(&w, 4, ImageState::Building, "2026-01-28T00:00:00Z");
        handle_event(
            &w.deps,
            event(ImageState::Building, "2026-01-28T00:00:10Z", 4),
        )
        .await
        .unwrap();
        let r = record(&w).await;
        assert_eq!(r.status, BuildStatus::Building);
        assert_eq!(
            r.ami_id.as_deref(),
            Some("ami-03east"),
            "rebuild keeps the old AMI"
        );

        put_image(&w, 4, bad, "2026-01-28T00:00:00Z");
        let o = processed(
            handle_event(&w.deps, event(bad, "2026-01-28T00:30:00Z", 4))
                .await
                .unwrap(),
        );
        assert!(o.configs_updated.is_empty());
        let r = record(&w).await;
        assert_eq!(r.status, BuildStatus::Failed);
        assert_eq!(r.reason.as_deref(), Some("validation test docker failed"));
        assert_eq!(r.ami_id.as_deref(), Some("ami-03east"));
        assert_eq!(
            *w.configs.0.lock().unwrap(),
            ssm_before,
            "{bad}: SSM untouched"
        );
        let b4 = w
            .store
            .get_build("BUILD#linux-x64#1.0.42/4")
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(b4.outcome, Some(bad));
    }
}

#[tokio::test]
async fn out_of_order_and_duplicate_events_converge_with_no_extra_writes() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(
        Config::new("t", EAST),
        w.store.clone(),
        w.configs.clone(),
        w.images.clone(),
        w.edge.clone(),
    )
    .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    let after_available = record(&w).await;
    for (state, at) in [
        (ImageState::Testing, "2026-01-27T11:30:00Z"),
        (ImageState::Building, "2026-01-27T11:00:05Z"),
        (ImageState::Available, "2026-01-27T12:00:00Z"),
    ] {
        plan.reset_counts();
        let o = processed(handle_event(&deps, event(state, at, 3)).await.unwrap());
        assert!(!o.record_written, "{state} changed the record");
        let expected = if state == ImageState::Available {
            NoOp::Duplicate
        } else {
            NoOp::OutOfOrder
        };
        assert_eq!(o.noop, Some(expected));
        // A late earlier event may still teach the history its start time; a
        // duplicate writes nothing at all.
        let puts = plan.calls().get("dynamodb:PutItem").copied().unwrap_or(0);
        assert_eq!(
            puts,
            u64::from(o.build_written),
            "{state}: only history writes"
        );
        if state == ImageState::Available {
            assert_eq!(puts, 0);
        }
        assert_eq!(
            plan.calls().get("ssm:PutParameter"),
            None,
            "{state}: no SSM write"
        );
        assert_eq!(
            plan.calls().get("edge:Ingest"),
            None,
            "{state}: nothing to push"
        );
    }
    assert_eq!(record(&w).await, after_available);
}

#[tokio::test]
async fn available_event_cost_is_counted() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(
        Config::new("t", EAST),
        w.store.clone(),
        w.configs.clone(),
        w.images.clone(),
        w.edge.clone(),
    )
    .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    let calls = plan.calls();
    let expect = BTreeMap::from([
        ("dynamodb:GetItem".to_owned(), 4), // PRESET, AMI, AMI re-check after SSM, BUILD
        ("dynamodb:PutItem".to_owned(), 2), // AMI, BUILD
        ("dynamodb:Query".to_owned(), 2),   // snapshot: AMI records, PRESET items
        ("edge:Ingest".to_owned(), 1),
        ("imagebuilder:GetImage".to_owned(), 1),
        ("ssm:GetParameter".to_owned(), 2), // per region
        ("ssm:PutParameter".to_owned(), 2),
    ]);
    assert_eq!(calls, expect);
    assert_eq!(plan.aws_calls(), 13);
}

#[tokio::test]
async fn malformed_events_and_unknown_pipelines_are_acknowledged_without_writes() {
    let w = setup();
    for raw in [MALFORMED, NOT_IMAGEBUILDER] {
        let ack = handle_event(&w.deps, serde_json::from_str(raw).unwrap())
            .await
            .unwrap();
        assert!(
            matches!(ack, EventAck::Ignored(Ignored::Malformed(_))),
            "{ack:?}"
        );
    }
    // GetImage knows nothing of the image.
    let ack = handle_event(
        &w.deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 9),
    )
    .await
    .unwrap();
    assert!(matches!(ack, EventAck::Ignored(Ignored::UnknownImage(_))));
    // An image from someone else's pipeline (and one with our prefix but no preset).
    for pipeline in ["team-b-builder", "spot-runner-gone"] {
        put_image(&w, 5, ImageState::Available, "2026-01-27T11:00:00Z");
        w.images
            .images
            .lock()
            .unwrap()
            .get_mut(&arn(5))
            .unwrap()
            .source_pipeline_name = Some(pipeline.into());
        let ack = handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 5),
        )
        .await
        .unwrap();
        assert_eq!(
            ack,
            EventAck::Ignored(Ignored::UnknownPipeline(pipeline.into()))
        );
    }
    assert!(w.store.ami.lock().unwrap().is_empty());
    assert!(w.store.builds.lock().unwrap().is_empty());
    assert_eq!(
        w.configs.0.lock().unwrap().len(),
        1,
        "only the seeded config"
    );
}

#[tokio::test]
async fn lost_race_rereads_and_an_older_event_becomes_a_clean_noop() {
    let w = setup();
    put_image(&w, 3, ImageState::Testing, "2026-01-27T11:00:00Z");
    let newer = {
        let mut r = kiln_shared::AmiRecord::initial("linux-x64", None, t("2026-01-27T10:00:00Z"));
        r.status = BuildStatus::Building;
        r.order_key = "2026-01-27T11:59:00Z#05#other".into();
        r.updated_at = t("2026-01-27T11:59:00Z");
        r
    };
    let mut once = Some(newer.clone());
    *w.store.before_put_ami.lock().unwrap() = Some(Box::new(move |map| {
        if let Some(r) = once.take() {
            map.insert(r.preset.clone(), r);
        }
    }));
    let o = processed(
        handle_event(
            &w.deps,
            event(ImageState::Testing, "2026-01-27T11:30:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert_eq!(o.noop, Some(NoOp::OutOfOrder));
    assert_eq!(record(&w).await, newer);
}

#[tokio::test]
async fn fault_between_dynamodb_and_ssm_converges_on_retry() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(
        Config::new("t", EAST),
        w.store.clone(),
        w.configs.clone(),
        w.images.clone(),
        w.edge.clone(),
    )
    .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    plan.add(Rule::new(Some("ssm:PutParameter"), Fault::Server));
    let err = handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ssm:PutParameter"), "{err}");
    assert_eq!(
        record(&w).await.status,
        BuildStatus::Ready,
        "DynamoDB step landed"
    );
    assert!(w.configs.value(EAST, PARAM).unwrap()["amiId"].is_null());
    // Lambda retries the same event: the record is a duplicate, the configs catch up.
    let o = processed(
        handle_event(
            &deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert_eq!(o.noop, Some(NoOp::Duplicate));
    assert_eq!(w.configs.value(EAST, PARAM).unwrap()["amiId"], "ami-03east");
    assert_eq!(w.configs.value(WEST, PARAM).unwrap()["amiId"], "ami-03west");
}

#[tokio::test]
async fn fault_between_writes_is_repaired_by_reconcile_when_the_event_is_not_retried() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(
        Config::new("t", EAST),
        w.store.clone(),
        w.configs.clone(),
        w.images.clone(),
        w.edge.clone(),
    )
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
    put_image(&w, 4, ImageState::Building, "2026-01-27T13:00:00Z");
    handle_event(
        &w.deps,
        event(ImageState::Building, "2026-01-27T13:00:05Z", 4),
    )
    .await
    .unwrap();
    assert_eq!(record(&w).await.status, BuildStatus::Building);
}

mod status {
    use super::*;
    use crate::status::{OriginRequest, handle_request, status};
    use http::HeaderMap;
    use kiln_shared::signing::{self, RESPONSE_METHOD, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    use kiln_shared::{OverallStatus, PresetStatus, StatusReport};

    const SECRET: &str = "origin-secret";

    fn req(headers: &HeaderMap) -> OriginRequest<'_> {
        OriginRequest {
            method: "GET",
            path: "/status",
            headers,
            body: b"",
        }
    }

    fn signed_headers(now: i64, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP_HEADER, now.to_string().parse().unwrap());
        h.insert(
            SIGNATURE_HEADER,
            signing::sign(secret.as_bytes(), now, "GET", "/status", b"")
                .unwrap()
                .parse()
                .unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn not_built_presets_show_not_configured_and_stale_records_heal_inline_once() {
        let w = setup();
        let arm = preset(ARM64);
        w.store.presets.lock().unwrap().insert(
            arm.name.clone(),
            PresetItem::new(&arm, "spot-runner", EAST, t("2026-01-27T10:00:00Z")),
        );
        put_image(&w, 3, ImageState::Building, "2026-01-27T11:00:00Z");
        handle_event(
            &w.deps,
            event(ImageState::Building, "2026-01-27T11:00:05Z", 3),
        )
        .await
        .unwrap();
        put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");

        let fresh = status(&w.deps, t("2026-01-27T11:10:00Z")).await.unwrap();
        assert_eq!(fresh.status, OverallStatus::Building);
        let arm_report = fresh
            .presets
            .iter()
            .find(|p| p.name == "linux-arm64")
            .unwrap();
        assert_eq!(arm_report.status, PresetStatus::NotConfigured);

        let healed = status(&w.deps, t("2026-01-27T12:00:00Z")).await.unwrap();
        let x64 = healed
            .presets
            .iter()
            .find(|p| p.name == "linux-x64")
            .unwrap();
        assert_eq!(x64.status, PresetStatus::Ready, "{healed:?}");
        assert_eq!(x64.ami_id.as_deref(), Some("ami-03east"));
        assert_eq!(
            record(&w).await.status,
            BuildStatus::Ready,
            "written through, not just shown"
        );
    }

    #[tokio::test]
    async fn inline_reconcile_is_memoised_per_container() {
        let w = setup();
        put_image(&w, 3, ImageState::Building, "2026-01-27T11:00:00Z");
        handle_event(
            &w.deps,
            event(ImageState::Building, "2026-01-27T11:00:05Z", 3),
        )
        .await
        .unwrap();
        let plan = Arc::new(FaultPlan::new());
        let deps = crate::Deps::new(
            Config::new("t", EAST),
            w.store.clone(),
            w.configs.clone(),
            w.images.clone(),
            w.edge.clone(),
        )
        .with_faults(plan.clone());
        // Still building in Image Builder: nothing to heal, and not retried per request.
        status(&deps, t("2026-01-27T12:00:00Z")).await.unwrap();
        assert_eq!(plan.calls()["imagebuilder:GetImage"], 1);
        plan.reset_counts();
        status(&deps, t("2026-01-27T12:00:01Z")).await.unwrap();
        assert_eq!(
            plan.calls(),
            BTreeMap::from([("dynamodb:Query".to_owned(), 2)]),
            "per /status: two queries"
        );
    }

    #[tokio::test]
    async fn origin_verifies_the_edge_and_signs_its_answer() {
        let mut config = Config::new("t", EAST);
        config.origin_secret = Some(SECRET.into());
        let w = world(config);
        let now = t("2026-01-27T12:00:00Z");
        let headers = signed_headers(now.timestamp(), SECRET);
        let ok = handle_request(&w.deps, req(&headers), now).await;
        assert_eq!(ok.status(), 200);
        let ts: i64 = ok.headers()[TIMESTAMP_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let sig = ok.headers()[SIGNATURE_HEADER].to_str().unwrap().to_owned();
        let verified = signing::verify(
            SECRET.as_bytes(),
            &signing::SignedRequest {
                timestamp: Some(&ts.to_string()),
                signature: Some(&sig),
                method: RESPONSE_METHOD,
                path: "/status",
                body: ok.body().as_bytes(),
            },
            now.timestamp(),
            60,
        );
        assert!(verified.is_ok());
        let report: StatusReport = serde_json::from_str(ok.body()).unwrap();
        assert_eq!(report.status, OverallStatus::NotConfigured);

        for bad in [
            HeaderMap::new(),
            signed_headers(now.timestamp(), "wrong"),
            signed_headers(now.timestamp() - 3600, SECRET),
        ] {
            let r = handle_request(&w.deps, req(&bad), now).await;
            assert_eq!(r.status(), 401);
            assert_eq!(r.headers()["content-type"], "application/json");
            let body: Value = serde_json::from_str(r.body()).unwrap();
            assert_eq!(body, json!({"error": "invalid or missing signature"}));
        }
        let other = OriginRequest {
            method: "GET",
            path: "/admin",
            headers: &headers,
            body: b"",
        };
        assert_eq!(handle_request(&w.deps, other, now).await.status(), 404);
        let no_secret = world(Config::new("t", EAST));
        assert_eq!(
            handle_request(&no_secret.deps, req(&headers), now)
                .await
                .status(),
            500
        );
    }
}

mod preset_init {
    use super::*;
    use crate::preset_init::{InitError, apply_presets, parse_properties};

    #[tokio::test]
    async fn create_update_remove() {
        let w = setup();
        w.store.presets.lock().unwrap().clear();
        w.images.pipelines.lock().unwrap().insert(
            "spot-runner-linux-arm64".into(),
            "arn:pipeline/linux-arm64".into(),
        );
        let x64 = preset(X64);
        let arm = preset(ARM64);
        let now = t("2026-01-27T10:00:00Z");

        let r = apply_presets(&w.deps, &[x64.clone(), arm.clone()], now)
            .await
            .unwrap();
        assert_eq!(r.created, vec!["linux-x64", "linux-arm64"]);
        assert_eq!(r.started.len(), 2);
        let rec = record(&w).await;
        assert_eq!(
            (rec.status, rec.ami_id.clone()),
            (BuildStatus::Building, None)
        );
        // Placeholder created where absent, the operator's existing config untouched.
        let west = w.configs.value(WEST, PARAM).unwrap();
        assert!(west["amiId"].is_null());
        assert_eq!(west["region"], WEST);
        assert_eq!(w.configs.value(EAST, PARAM).unwrap()["maxRunners"], 4);

        // Same presets again: nothing started, records not reset.
        w.store
            .ami
            .lock()
            .unwrap()
            .get_mut("linux-x64")
            .unwrap()
            .ami_id = Some("ami-keep".into());
        let again = apply_presets(&w.deps, &[x64.clone(), arm.clone()], now)
            .await
            .unwrap();
        assert_eq!(again.unchanged.len(), 2);
        assert!(again.started.is_empty());
        assert_eq!(record(&w).await.ami_id.as_deref(), Some("ami-keep"));

        // A changed preset rebuilds and refreshes settings, keeping the AMI and extra keys.
        let mut changed = x64.clone();
        changed.labels = vec!["gpu".into()];
        w.configs
            .set(EAST, PARAM, r#"{"amiId":"ami-keep","maxRunners":4}"#);
        let upd = apply_presets(&w.deps, &[changed], now).await.unwrap();
        assert_eq!(upd.changed, vec!["linux-x64"]);
        assert_eq!(upd.removed, vec!["linux-arm64"]);
        assert_eq!(upd.started.keys().collect::<Vec<_>>(), vec!["linux-x64"]);
        let east = w.configs.value(EAST, PARAM).unwrap();
        assert_eq!(
            (
                east["amiId"].clone(),
                east["maxRunners"].clone(),
                east["labels"].clone()
            ),
            (json!("ami-keep"), json!(4), json!(["gpu"]))
        );
        assert!(
            w.store.get_ami("linux-arm64").await.unwrap().is_some(),
            "removal keeps records"
        );
        assert!(w.store.get_preset("linux-arm64").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_input_and_missing_pipelines_write_nothing() {
        let w = setup();
        w.store.presets.lock().unwrap().clear();
        let x64 = preset(X64);
        let arm = preset(ARM64); // no pipeline for it
        let err = apply_presets(&w.deps, &[x64.clone(), arm], t("2026-01-27T10:00:00Z"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, InitError::PipelineMissing(ref p) if p == "spot-runner-linux-arm64"),
            "{err}"
        );
        let err = apply_presets(
            &w.deps,
            &[x64.clone(), x64.clone()],
            t("2026-01-27T10:00:00Z"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("duplicate preset name"), "{err}");
        assert!(w.store.ami.lock().unwrap().is_empty());
        assert!(w.store.presets.lock().unwrap().is_empty());
        assert!(w.images.started.lock().unwrap().is_empty());
        assert_eq!(w.configs.0.lock().unwrap().len(), 1);

        assert!(parse_properties(&json!({"Presets": "[{]"}), "spot-runner").is_err());
        assert!(
            parse_properties(&json!({}), "spot-runner")
                .unwrap_err()
                .to_string()
                .contains("Presets is missing")
        );
        let e = parse_properties(&json!({"Presets": "[]", "Prefix": "other"}), "spot-runner")
            .unwrap_err();
        assert!(e.to_string().contains("KILN_PREFIX"), "{e}");
        let text = serde_json::to_string(std::slice::from_ref(&x64)).unwrap();
        assert_eq!(
            parse_properties(&json!({"Presets": text}), "spot-runner").unwrap(),
            vec![x64.clone()]
        );
        assert_eq!(
            parse_properties(&json!({"Presets": [x64.clone()]}), "spot-runner").unwrap(),
            vec![x64]
        );
    }
}

/// Refuses the first push as the edge does a same-second replay.
struct ReplayRefusingEdge(std::sync::Mutex<Vec<kiln_shared::StatusReport>>);

impl crate::edge::EdgePusher for ReplayRefusingEdge {
    fn push<'a>(
        &'a self,
        report: &'a kiln_shared::StatusReport,
    ) -> crate::BoxFut<'a, Result<(), crate::edge::PushError>> {
        Box::pin(async move {
            let mut seen = self.0.lock().unwrap();
            seen.push(report.clone());
            if seen.len() == 1 {
                Err(crate::edge::PushError::Status(401))
            } else {
                Ok(())
            }
        })
    }
}

#[tokio::test]
async fn a_refused_push_is_retried_once_with_a_fresh_snapshot() {
    let w = setup();
    let edge = Arc::new(ReplayRefusingEdge(Default::default()));
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(
        Config::new("t", EAST),
        w.store.clone(),
        w.configs.clone(),
        w.images.clone(),
        edge.clone(),
    )
    .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    assert_eq!(edge.0.lock().unwrap().len(), 2);
    assert_eq!(
        plan.calls()["dynamodb:Query"],
        4,
        "the snapshot is read again"
    );
    assert_eq!(plan.calls()["edge:Ingest"], 2);
}

#[tokio::test]
async fn any_delivery_order_of_two_builds_converges_to_the_same_state() {
    // Build 3 succeeds, build 4 (a later rebuild) fails: the end state is "failed, AMI
    // of build 3" however the eight events arrive, duplicates included.
    let events: Vec<Value> = vec![
        event(ImageState::Building, "2026-01-27T11:00:05Z", 3),
        event(ImageState::Testing, "2026-01-27T11:20:00Z", 3),
        event(ImageState::Distributing, "2026-01-27T11:40:00Z", 3),
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        event(ImageState::Building, "2026-01-28T00:00:10Z", 4),
        event(ImageState::Testing, "2026-01-28T00:20:00Z", 4),
        event(ImageState::Failed, "2026-01-28T00:30:00Z", 4),
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    ];
    let orders: Vec<Vec<usize>> = vec![
        (0..8).collect(),
        (0..8).rev().collect(),
        vec![6, 3, 0, 7, 5, 1, 4, 2],
        vec![3, 6, 4, 0, 5, 2, 1, 7],
        vec![4, 5, 6, 0, 1, 2, 3, 7],
    ];
    let mut outcomes = Vec::new();
    for order in orders {
        let w = setup();
        put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
        put_image(&w, 4, ImageState::Failed, "2026-01-28T00:00:00Z");
        for i in &order {
            handle_event(&w.deps, events[*i].clone()).await.unwrap();
        }
        let r = record(&w).await;
        assert_eq!(r.status, BuildStatus::Failed, "{order:?}");
        assert_eq!(r.ami_id.as_deref(), Some("ami-03east"), "{order:?}");
        let configs = w.configs.0.lock().unwrap().clone();
        let mut builds = w.store.list_builds().await.unwrap();
        builds.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        outcomes.push((r, configs, builds));
    }
    for o in &outcomes[1..] {
        assert_eq!(*o, outcomes[0]);
    }
}

#[tokio::test]
async fn status_origin_answers_503_json_when_the_table_is_unavailable() {
    let mut config = Config::new("t", EAST);
    config.origin_secret = Some("s".into());
    let w = world(config.clone());
    let plan = Arc::new(FaultPlan::new());
    plan.add(Rule::new(Some("dynamodb:Query"), Fault::Throttle).forever());
    let deps = crate::Deps::new(
        config,
        w.store.clone(),
        w.configs.clone(),
        w.images.clone(),
        w.edge.clone(),
    )
    .with_faults(plan);
    let now = t("2026-01-27T12:00:00Z");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        kiln_shared::signing::TIMESTAMP_HEADER,
        now.timestamp().to_string().parse().unwrap(),
    );
    let sig = kiln_shared::signing::sign(b"s", now.timestamp(), "GET", "/status", b"").unwrap();
    headers.insert(kiln_shared::signing::SIGNATURE_HEADER, sig.parse().unwrap());
    let req = crate::status::OriginRequest {
        method: "GET",
        path: "/status",
        headers: &headers,
        body: b"",
    };
    let resp = crate::status::handle_request(&deps, req, now).await;
    assert_eq!(resp.status(), 503);
    let body: Value = serde_json::from_str(resp.body()).unwrap();
    assert_eq!(body, json!({"error": "status temporarily unavailable"}));
    assert!(!resp.body().contains("Throttl"), "no internals leak");
}

#[tokio::test]
async fn an_unreadable_runner_config_is_left_alone_and_the_rest_proceeds() {
    let w = setup();
    w.configs
        .set(EAST, PARAM, "maxRunners = 4 # someone wrote TOML");
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    let o = processed(
        handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert_eq!(o.configs_refused, vec![EAST.to_owned()]);
    assert_eq!(o.configs_updated, vec![WEST.to_owned()]);
    let raw = w.configs.0.lock().unwrap()[&(EAST.to_owned(), PARAM.to_owned())].clone();
    assert_eq!(
        raw, "maxRunners = 4 # someone wrote TOML",
        "not overwritten"
    );
    assert_eq!(record(&w).await.status, BuildStatus::Ready);
}

#[tokio::test]
async fn reconcile_waits_when_the_image_list_lags_behind_the_record() {
    let w = setup();
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &w.deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
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
    assert_eq!(record(&w).await, before);
}
