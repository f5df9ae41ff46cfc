//! The full loop through every real component, assembled exactly as `kiln dev` does:
//! presets → preset-init → simulated Image Builder builds → EventBridge-shaped events →
//! the real `ami-update` binary → DynamoDB Local + moto SSM → the real `status-origin`
//! binary behind a Function URL → the Worker under `wrangler dev` → `/status` JSON and the
//! page in headless Chromium.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln_devstack::imagebuilder::Fate;
use kiln_devstack::stack::{DevOptions, DevStack};
use kiln_devstack::started_or_skip;
use kiln_shared::{OverallStatus, PresetStatus, StatusReport};
use kiln_tests::chromium::{Browser, BrowserOptions, find_chromium};

/// Starts the local system, or skips (returns `None`) when a tool is missing and
/// `KILN_REQUIRE_TOOLS` is not set.
async fn start(configure: impl FnOnce(&mut DevOptions)) -> Option<DevStack> {
    kiln_tests::stack::start(kiln_tests::stack::example_presets(), |options| {
        options.build_time = Duration::from_secs(4);
        configure(options);
    })
    .await
}

async fn get_status(url: &str) -> StatusReport {
    let resp = reqwest::get(url).await.expect("GET /status");
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.expect("a StatusReport")
}

/// Polls `/status` until `done` holds, failing with the last report after `limit`.
async fn wait_for(
    url: &str,
    limit: Duration,
    done: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let start = Instant::now();
    loop {
        let report = get_status(url).await;
        if done(&report) {
            return report;
        }
        assert!(
            start.elapsed() < limit,
            "not reached within {limit:?}; last status: {report:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn settled(r: &StatusReport) -> bool {
    !r.presets.is_empty() && r.presets.iter().all(|p| p.status != PresetStatus::Building)
}

/// The SSM runner config of `preset` in `region`, parsed.
async fn runner_config(stack: &DevStack, preset: &str, region: &str) -> serde_json::Value {
    let ssm = aws_sdk_ssm::Client::new(&stack.aws.moto_config(region));
    let name = format!("/{}/configs/{preset}", stack.options.prefix);
    let out = ssm
        .get_parameter()
        .name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name} in {region}: {e:?}"));
    serde_json::from_str(out.parameter().and_then(|p| p.value()).expect("a value"))
        .expect("JSON config")
}

/// Every ready preset's SSM config points at its AMI in every region, and keeps the
/// settings that came from the preset.
async fn assert_ssm_follows(stack: &DevStack, report: &StatusReport) {
    for p in &report.presets {
        let preset = stack
            .options
            .presets
            .iter()
            .find(|x| x.name == p.name)
            .expect("known preset");
        for region in preset.regions_or(&stack.options.region) {
            let config = runner_config(stack, &p.name, region).await;
            let expected = match p.status {
                PresetStatus::Ready => serde_json::Value::from(p.amis[region].clone()),
                _ => serde_json::Value::Null,
            };
            assert_eq!(
                config["amiId"], expected,
                "{} in {region}: {config}",
                p.name
            );
            assert_eq!(
                config["preset"],
                p.name.as_str(),
                "preset settings kept: {config}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_loop_with_one_failed_build_reaches_edge_by_push_and_page_in_chromium() {
    // A long edge cache: the only way the Worker can learn of the builds within the test
    // is the Lambdas' signed push to /ingest.
    let Some(stack) = start(|o| {
        o.fail = vec!["linux-arm64".into()];
        o.edge_cache_ttl_secs = 600;
        o.reconcile_every = Duration::from_secs(3600);
        o.stale_after = Duration::from_secs(3600);
    })
    .await
    else {
        return;
    };
    let url = stack.status_url();

    let first = get_status(&url).await;
    assert_eq!(first.status, OverallStatus::Building, "{first:#?}");
    assert_eq!(first.presets.len(), 4);
    assert!(first.presets.iter().all(|p| p.ami_id.is_none()));

    let report = wait_for(&url, Duration::from_secs(90), settled).await;
    assert_eq!(report.status, OverallStatus::Degraded, "{report:#?}");
    assert_eq!(report.message, "3 of 4 presets ready; linux-arm64 failed");
    assert!(!report.stale);
    let by_name: BTreeMap<&str, _> = report
        .presets
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    assert_eq!(by_name["linux-arm64"].status, PresetStatus::Failed);
    assert_eq!(by_name["linux-arm64"].ami_id, None);
    let x64 = by_name["linux-x64"];
    assert_eq!(x64.status, PresetStatus::Ready);
    assert_eq!(
        x64.amis.keys().map(String::as_str).collect::<Vec<_>>(),
        ["eu-west-1", "us-east-1"]
    );
    assert_eq!(
        x64.ami_id.as_deref(),
        Some(x64.amis["us-east-1"].as_str()),
        "home region is the first listed"
    );

    // DynamoDB holds the reason (never public), SSM follows the good builds only.
    let failed = stack
        .deps
        .store
        .get_ami("linux-arm64")
        .await
        .unwrap()
        .expect("record");
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("validation test"),
        "{failed:?}"
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains("validation test") && !json.contains("arn:"),
        "{json}"
    );
    assert_ssm_follows(&stack, &report).await;
    let x64_config = runner_config(&stack, "linux-x64", "eu-west-1").await;
    assert_eq!(
        x64_config["max_runners"], 20,
        "runner settings from the preset survive: {x64_config}"
    );

    // The page, as a browser shows it.
    if started_or_skip("page check", find_chromium()).is_none() {
        return;
    }
    let browser = Browser::start(BrowserOptions::default())
        .await
        .expect("chromium");
    browser.goto(&stack.page_url()).await.unwrap();
    let banner = browser.attr("[data-status]", "data-status").await.unwrap();
    assert_eq!(banner.as_deref(), Some("degraded"));
    let body = browser.text("body").await.unwrap();
    assert!(
        body.contains("3 of 4 presets ready; linux-arm64 failed"),
        "{body}"
    );
    for p in &report.presets {
        assert!(body.contains(&p.name), "{} missing from the page", p.name);
    }
    assert!(
        body.contains(&x64.amis["eu-west-1"]),
        "per-region AMI shown"
    );
    browser.screenshot("system/degraded").await.unwrap();
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_events_heal_on_status_and_edge_serves_stale_through_origin_outage() {
    let Some(mut stack) = start(|o| {
        o.drop_events = true;
        o.stale_after = Duration::from_secs(4);
        // Only the origin's inline reconcile may heal: the schedule never fires.
        o.reconcile_every = Duration::from_secs(3600);
        o.edge_cache_ttl_secs = 1;
    })
    .await
    else {
        return;
    };
    let url = stack.status_url();

    let report = wait_for(&url, Duration::from_secs(90), |r| {
        r.status == OverallStatus::Ready
    })
    .await;
    assert_eq!(report.message, "All 4 presets ready");
    let emitted = stack.imagebuilder.emitted_events();
    assert!(!emitted.is_empty());
    assert!(
        emitted
            .iter()
            .all(|e| matches!(e.fate, Fate::Dropped | Fate::NotMatched)),
        "every event was lost, so the state was healed by reconciliation"
    );
    assert_ssm_follows(&stack, &report).await;

    // Origin down: every request is still answered, from the last known good.
    stack.stop_origin();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (answered, stale) = load(&client, &url, 120).await;
    assert_eq!(
        answered, 120,
        "every request answered while the origin is down"
    );
    assert!(stale > 0, "the outage is visible as stale: true");
    let during = get_status(&url).await;
    assert!(during.stale);
    assert_eq!(during.status, OverallStatus::Ready);
    assert_eq!(
        during.presets, report.presets,
        "the last known good snapshot"
    );
    let page = reqwest::get(stack.page_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("data-stale=\"true\""),
        "the page flags staleness"
    );

    // Back up: fresh again, and requests kept being answered across the restart.
    let restart = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stack.start_origin().await.unwrap();
    };
    let ((answered, _), ()) = tokio::join!(load(&client, &url, 120), restart);
    assert_eq!(answered, 120, "every request answered across the restart");
    let after = wait_for(&url, Duration::from_secs(30), |r| !r.stale).await;
    assert_eq!(after.status, OverallStatus::Ready);
}

/// `n` GETs of `/status`, 8 at a time, on loopback. Returns (200 answers, stale ones).
async fn load(client: &reqwest::Client, url: &str, n: usize) -> (usize, usize) {
    use futures::StreamExt;
    let results: Vec<Option<bool>> = futures::stream::iter(0..n)
        .map(|_| async move {
            let resp = client.get(url).send().await.ok()?;
            if resp.status() != 200 {
                return None;
            }
            let r: StatusReport = resp.json().await.ok()?;
            Some(r.stale)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let answered = results.iter().flatten().count();
    let stale = results.iter().flatten().filter(|s| **s).count();
    (answered, stale)
}
