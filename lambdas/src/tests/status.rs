use super::*;
use crate::status::{OriginRequest, handle_request, status};
use http::HeaderMap;
use kiln_shared::signing::{self, RESPONSE_METHOD, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use kiln_shared::{OverallStatus, PresetStatus, StatusReport};

const SECRET: &str = EDGE_SECRET;
/// What the edge requests: its nonce is part of the signed target.
const TARGET: &str = "/status?nonce=edge-nonce-0001";

fn req(headers: &HeaderMap) -> OriginRequest<'_> {
    at(TARGET, headers)
}

pub(super) fn at<'a>(path: &'a str, headers: &'a HeaderMap) -> OriginRequest<'a> {
    OriginRequest {
        method: "GET",
        path,
        headers,
        body: b"",
    }
}

fn signed_headers(now: i64, secret: &str) -> HeaderMap {
    signed_for(now, secret, TARGET)
}

pub(super) fn signed_for(now: i64, secret: &str, target: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(TIMESTAMP_HEADER, now.to_string().parse().unwrap());
    h.insert(
        SIGNATURE_HEADER,
        signing::sign(secret.as_bytes(), now, "GET", target, b"")
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
    building(&w).await;
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
    building(&w).await;
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config(), w.fakes.clients().with_edge(w.edge.clone()))
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
    let config = config();
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
            path: TARGET,
            body: ok.body().as_bytes(),
        },
        now.timestamp(),
        60,
    );
    assert!(verified.is_ok());
    let report: StatusReport = serde_json::from_str::<kiln_shared::feeds::Published>(ok.body())
        .unwrap()
        .report;
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
    let admin = signed_for(now.timestamp(), SECRET, "/admin");
    assert_eq!(
        handle_request(&w.deps, at("/admin", &admin), now)
            .await
            .status(),
        404
    );
    let no_secret = world(Config::new("t", EAST)); // no KILN_EDGE_SECRET_ARN
    assert_eq!(
        handle_request(&no_secret.deps, req(&headers), now)
            .await
            .status(),
        500
    );
}

#[tokio::test]
async fn status_origin_answers_503_json_when_the_table_is_unavailable() {
    let config = config();
    let w = world(config.clone());
    let plan = Arc::new(FaultPlan::new());
    plan.add(Rule::new(Some("dynamodb:Query"), Fault::Throttle).forever());
    let deps =
        crate::Deps::new(config, w.fakes.clients().with_edge(w.edge.clone())).with_faults(plan);
    let now = t("2026-01-27T12:00:00Z");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        kiln_shared::signing::TIMESTAMP_HEADER,
        now.timestamp().to_string().parse().unwrap(),
    );
    let sig =
        kiln_shared::signing::sign(SECRET.as_bytes(), now.timestamp(), "GET", TARGET, b"").unwrap();
    headers.insert(kiln_shared::signing::SIGNATURE_HEADER, sig.parse().unwrap());
    let req = crate::status::OriginRequest {
        method: "GET",
        path: TARGET,
        headers: &headers,
        body: b"",
    };
    let resp = crate::status::handle_request(&deps, req, now).await;
    assert_eq!(resp.status(), 503);
    let body: Value = serde_json::from_str(resp.body()).unwrap();
    assert_eq!(body, json!({"error": "status temporarily unavailable"}));
    assert!(!resp.body().contains("Throttl"), "no internals leak");
}
