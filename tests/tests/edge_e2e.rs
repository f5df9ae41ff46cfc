//! The built Worker under `wrangler dev`, against a local signed origin, over HTTP.

use std::time::{Duration, Instant};

use kiln_devstack::started_or_skip;
use kiln_devstack::wrangler::{EdgeVars, WranglerDev, find_wrangler};
use kiln_shared::StatusReport;
use kiln_tests::fixtures;
use kiln_tests::test_origin::{Mode, TestOrigin, ingest_headers};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

const SECRET: &str = "e2e-shared-secret-b9d04c-0123456789abcdef";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn status(
    c: &Client,
    edge: &WranglerDev,
) -> (StatusCode, reqwest::header::HeaderMap, StatusReport) {
    let r = c
        .get(format!("{}/status", edge.url()))
        .send()
        .await
        .unwrap();
    let (code, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {code} {text}"));
    (code, headers, report)
}

/// Lets the one-second TTL lapse so the next request consults the origin.
async fn past_ttl() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_routes_caching_and_last_known_good() {
    if started_or_skip("edge e2e", find_wrangler()).is_none() {
        return;
    }
    // Fixtures carry "now"-relative times: keep the exact reports handed to the origin.
    let (ready, building) = (fixtures::ready(), fixtures::building());
    let mut origin = TestOrigin::start(SECRET, ready.clone()).await.unwrap();
    let vars = EdgeVars {
        cache_ttl_secs: 1,
        stale_while_revalidate_secs: 0,
        origin_timeout_ms: 1_000,
        ..EdgeVars::new(&origin.url(), SECRET)
    };
    let edge = WranglerDev::start_edge(&vars, None).await.unwrap();
    let c = client();
    let url = |p: &str| format!("{}{p}", edge.url());

    // Fresh pull: body, caching headers, CORS.
    let (code, h, report) = status(&c, &edge).await;
    assert_eq!(code, 200);
    assert_eq!(report.presets, ready.presets);
    assert!(!report.stale);
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    assert_eq!(
        h["cache-control"],
        "public, max-age=1, stale-while-revalidate=0"
    );
    assert_eq!(h["access-control-allow-origin"], "*");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert!(origin.served() >= 1);
    assert_eq!(
        origin.refused(),
        0,
        "the edge signs its origin requests correctly"
    );

    // Conditional GET, HEAD, preflight.
    let r = c
        .get(url("/status"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    if r.status() == 200 {
        // The TTL lapsed between the two requests: same data, same ETag, so retry once.
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    } else {
        assert_eq!(r.status(), 304);
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = c.head(url("/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = c
        .request(Method::OPTIONS, url("/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-methods"],
        "GET, HEAD, OPTIONS"
    );

    // Readiness gate, badges, page, health.
    assert_eq!(
        c.get(url("/status?require=ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c.get(url("/badge.svg")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml; charset=utf-8");
    assert!(r.text().await.unwrap().contains(">ready</text>"));
    let badge: Value = c
        .get(url("/badge.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (badge["schemaVersion"].as_i64(), badge["message"].as_str()),
        (Some(1), Some("ready"))
    );
    let r = c.get(url("/")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(r.text().await.unwrap().contains("All 3 presets ready"));
    let health: Value = c
        .get(url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    // Errors are JSON; wrong methods name what is allowed.
    let r = c.get(url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    let r = c.delete(url("/status")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "GET, HEAD, OPTIONS")
    );
    let r = c.get(url("/ingest")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "POST")
    );
    assert_eq!(
        c.get(url("/status?require=soon"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    // A new state at the origin shows after the TTL; the gate now fails with the body.
    origin.set_report(building.clone());
    past_ttl().await;
    let (_, h, report) = status(&c, &edge).await;
    assert_eq!(report.status, kiln_shared::OverallStatus::Building);
    assert_ne!(h["etag"].to_str().unwrap(), etag);
    let r = c.get(url("/status?require=ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<StatusReport>().await.unwrap().presets,
        building.presets
    );

    // Origin down, erroring, forging, hanging: last known good, stale, never a 5xx.
    let failures: [(&str, Option<Mode>); 5] = [
        ("stopped", None),
        ("500", Some(Mode::Error(500))),
        ("unsigned", Some(Mode::Unsigned)),
        ("wrong key", Some(Mode::WrongKey)),
        ("hanging", Some(Mode::Hang)),
    ];
    for (what, mode) in failures {
        match mode {
            None => origin.stop(),
            Some(m) => {
                origin.restart().await.unwrap();
                origin.set_mode(m);
            }
        }
        past_ttl().await;
        let started = Instant::now();
        let (code, h, report) = status(&c, &edge).await;
        assert_eq!(code, 200, "{what}");
        assert!(report.stale, "{what}");
        assert_eq!(report.presets, building.presets, "{what}");
        assert_eq!(h["cache-control"], "no-cache", "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: origin timeout honoured"
        );
    }
    let page = c.get(url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Stale: the status origin is not answering"));
    assert!(
        c.get(url("/badge.svg"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("building (stale)")
    );

    // Back to normal.
    origin.set_mode(Mode::Serve);
    origin.set_report(fixtures::ready());
    past_ttl().await;
    let (_, _, report) = status(&c, &edge).await;
    assert!(!report.stale);
    assert_eq!(report.status, kiln_shared::OverallStatus::Ready);

    let log = edge.log();
    assert!(
        log.contains("origin pull failed"),
        "failures are logged:\n{log}"
    );
    assert!(!log.contains(SECRET), "the secret never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_ingest_accepts_signed_pushes_and_refuses_the_rest() {
    if started_or_skip("edge e2e", find_wrangler()).is_none() {
        return;
    }
    let origin = TestOrigin::start(SECRET, fixtures::ready()).await.unwrap();
    origin.set_mode(Mode::Error(502));
    let vars = EdgeVars {
        cache_ttl_secs: 60,
        ..EdgeVars::new(&origin.url(), SECRET)
    };
    let edge = WranglerDev::start_edge(&vars, None).await.unwrap();
    let c = client();
    let url = |p: &str| format!("{}{p}", edge.url());

    // Nothing known yet and the origin failing: 503 JSON and the unavailable page.
    let r = c.get(url("/status")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unavailable");
    let r = c.get(url("/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Status unavailable"));

    let push = |body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut req = c.post(url("/ingest")).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let now = chrono::Utc::now().timestamp();
    let degraded_report = fixtures::degraded();
    let degraded = serde_json::to_vec(&degraded_report).unwrap();
    let r = push(
        degraded.clone(),
        ingest_headers(SECRET, now, &degraded).to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let (code, _, report) = status(&c, &edge).await;
    assert_eq!(code, 200);
    assert_eq!(report.presets, degraded_report.presets);
    assert!(!report.stale);

    type Push = (&'static str, Vec<u8>, Vec<(&'static str, String)>);
    let refusals: Vec<Push> = vec![
        (
            "replayed",
            degraded.clone(),
            ingest_headers(SECRET, now, &degraded).to_vec(),
        ),
        (
            "replayed",
            degraded.clone(),
            ingest_headers(SECRET, now - 5, &degraded).to_vec(),
        ),
        ("missing", degraded.clone(), vec![]),
        (
            "does not match",
            degraded.clone(),
            ingest_headers("guess", now + 1, &degraded).to_vec(),
        ),
        (
            "outside the accepted window",
            degraded.clone(),
            ingest_headers(SECRET, now - 3_600, &degraded).to_vec(),
        ),
        (
            "does not match",
            b"{\"status\":\"ready\"}".to_vec(),
            ingest_headers(SECRET, now + 1, &degraded).to_vec(),
        ),
    ];
    for (why, body, headers) in refusals {
        let r = push(body, headers).await.unwrap();
        assert_eq!(r.status(), 401, "{why}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized", "{why}");
        assert!(v["message"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let junk = b"not a report".to_vec();
    let r = push(
        junk.clone(),
        ingest_headers(SECRET, now + 1, &junk).to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let (_, _, report) = status(&c, &edge).await;
    assert_eq!(
        report.presets, degraded_report.presets,
        "refused pushes change nothing"
    );

    // A newer push replaces the snapshot at once.
    let ready = serde_json::to_vec(&fixtures::ready()).unwrap();
    let r = push(
        ready.clone(),
        ingest_headers(SECRET, now + 2, &ready).to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let (_, _, report) = status(&c, &edge).await;
    assert_eq!(report.status, kiln_shared::OverallStatus::Ready);
    assert_eq!(
        c.get(url("/status?require=ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!edge.log().contains(SECRET));
}
