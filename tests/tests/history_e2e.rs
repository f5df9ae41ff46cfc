//! History and feeds through every real component: builds in the local Image Builder
//! (a success, a failure, a recovery) → EventBridge-shaped events → the real `ami-update`
//! binary → DynamoDB Local (BUILD items and the HISTORY rollups) → the real
//! `status-origin` binary → the Worker under `wrangler dev` → `/history.json`,
//! `/feed.atom` (read by `feed-rs`), `/api/v2/summary.json` and `/api/v2/status.json`
//! (checked against the committed Statuspage JSON Schemas by python-jsonschema, and read
//! as Statuspage's shape with unknown members refused) and the metric badges.

use std::time::{Duration, Instant};

use kiln_devstack::stack::DevStack;
use kiln_devstack::started_or_skip;
use kiln_shared::feeds::statuspage::Summary;
use kiln_shared::history::{DAYS, Outcome, PresetHistory};
use kiln_shared::{ImageState, PresetStatus, StatusReport};
use kiln_tests::chromium::{Browser, BrowserOptions, find_chromium};

const PRESET: &str = "linux-x64";

async fn start() -> Option<DevStack> {
    kiln_tests::stack::start(kiln_tests::stack::example_presets(), |options| {
        options.build_time = Duration::from_secs(3);
        options.reconcile_every = Duration::from_secs(3600);
        options.stale_after = Duration::from_secs(3600);
    })
    .await
}

struct HistoryDoc {
    generated_at: String,
    stale: bool,
    presets: Vec<PresetHistory>,
}

/// `/history.json`, every member checked (unknown ones refused).
fn parse_history(text: &str) -> HistoryDoc {
    let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let o = v.as_object().expect("an object");
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["generatedAt", "presets", "stale"], "{text}");
    HistoryDoc {
        generated_at: o["generatedAt"].as_str().unwrap().to_owned(),
        stale: o["stale"].as_bool().unwrap(),
        presets: serde_json::from_value(o["presets"].clone()).expect("presets"),
    }
}

async fn get(url: &str) -> reqwest::Response {
    let resp = reqwest::get(url).await.expect("GET");
    assert_eq!(resp.status(), 200, "GET {url}");
    resp
}

async fn wait_for_preset(stack: &DevStack, limit: Duration, want: PresetStatus, after: &str) {
    let start = Instant::now();
    loop {
        let r: StatusReport = get(&stack.status_url()).await.json().await.unwrap();
        let p = r.presets.iter().find(|p| p.name == PRESET).expect("preset");
        let all_settled = r.presets.iter().all(|p| p.status != PresetStatus::Building);
        if p.status == want && all_settled && p.updated_at.as_deref() > Some(after) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{PRESET} not {want:?} within {limit:?}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn history(stack: &DevStack) -> HistoryDoc {
    let text = get(&format!("{}history.json", stack.page_url()))
        .await
        .text()
        .await
        .unwrap();
    parse_history(&text)
}

const SUMMARY_SCHEMA: &str = "shared/statuspage-summary.schema.json";
const STATUS_SCHEMA: &str = "shared/statuspage-status.schema.json";

/// `summary.json`, checked against the committed Statuspage schema (python-jsonschema)
/// and read by the typed client model (unknown members refused).
async fn summary(stack: &DevStack) -> Summary {
    let text = get(&format!("{}api/v2/summary.json", stack.page_url()))
        .await
        .text()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    kiln_tests::schema::assert_valid(&[SUMMARY_SCHEMA], &value);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("Statuspage shape: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn success_failure_recovery_in_history_feed_and_statuspage() {
    let Some(stack) = start().await else {
        return;
    };
    let pipeline = format!("{}-{PRESET}", stack.options.prefix);
    let base = stack.page_url();

    // 1. The first builds succeed.
    wait_for_preset(&stack, Duration::from_secs(90), PresetStatus::Ready, "").await;
    let first = history(&stack).await;
    let x64 = first.presets.iter().find(|p| p.name == PRESET).unwrap();
    assert_eq!(x64.builds.len(), 1, "{:?}", x64.builds);
    assert_eq!(x64.builds[0].outcome, Outcome::Available);

    // 2. A rebuild fails its validation tests.
    let t1 = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    stack.imagebuilder.fail_next_build(
        &pipeline,
        ImageState::Testing,
        "validation test 'docker' failed: arn:aws:iam::123456789012:role/secret",
    );
    stack.imagebuilder.start_build(&pipeline).unwrap();
    wait_for_preset(&stack, Duration::from_secs(60), PresetStatus::Failed, &t1).await;
    let during = summary(&stack).await;
    let component = during.components.iter().find(|c| c.id == PRESET).unwrap();
    assert_eq!(
        component.status, "partial_outage",
        "the old AMI still serves"
    );
    assert_eq!(during.status.indicator, "minor");
    assert_eq!(during.incidents.len(), 1, "{:#?}", during.incidents);
    assert_eq!(during.incidents[0].impact, "minor");
    assert!(during.incidents[0].name.starts_with("linux-x64: build "));
    assert!(during.scheduled_maintenances.is_empty());
    assert!(
        during.page.url.starts_with("http://"),
        "{}",
        during.page.url
    );

    // 3. The next build recovers.
    let t2 = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    stack.imagebuilder.start_build(&pipeline).unwrap();
    wait_for_preset(&stack, Duration::from_secs(60), PresetStatus::Ready, &t2).await;

    // /history.json: three builds, newest first, and the failure's downtime.
    let resp = get(&format!("{base}history.json")).await;
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"),
    );
    let text = resp.text().await.unwrap();
    for secret in ["arn:", "123456789012", "validation test", "role/secret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let doc = parse_history(&text);
    assert!(!doc.stale);
    assert!(doc.generated_at.ends_with('Z'));
    let names: Vec<&str> = doc.presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let x64 = doc.presets.iter().find(|p| p.name == PRESET).unwrap();
    let outcomes: Vec<Outcome> = x64.builds.iter().map(|b| b.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Available, Outcome::Failed, Outcome::Available]
    );
    assert!(x64.builds[1].amis.is_empty());
    assert_eq!(x64.builds[1].tests.passed, None, "failed in TESTING");
    assert_eq!(x64.builds[0].tests.failed, Some(0));
    assert!(x64.builds[0].tests.passed.unwrap() > 0);
    assert_eq!(x64.builds[0].amis.len(), 2, "both regions");
    assert!(x64.builds[0].started_at <= x64.builds[0].finished_at.clone().unwrap());
    assert_eq!(x64.days.len(), DAYS);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let last = x64.days.last().unwrap();
    assert!(last.date <= today, "{last:?}");
    assert!(x64.days[..DAYS - 2].iter().all(|d| d.ready.is_none()));
    let ready_today = x64.days.iter().rev().find_map(|d| d.ready).unwrap();
    assert!(
        ready_today > 0.0 && ready_today < 1.0,
        "the failure counts as downtime today: {ready_today}"
    );
    let h24 = x64.uptime.h24.unwrap();
    assert!(h24 > 0.0 && h24 < 1.0, "{h24}");
    assert_eq!(x64.uptime.d30, x64.uptime.d90, "all within the last day");
    let other = doc.presets.iter().find(|p| p.name != PRESET).unwrap();
    assert_eq!(other.uptime.h24.map(|u| u > 0.0), Some(true));

    // Conditional requests.
    let client = reqwest::Client::new();
    let again = client
        .get(format!("{base}history.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // The Atom feed, read by a real parser: one entry per finished build, newest first,
    // ids stable across requests.
    let atom = get(&format!("{base}feed.atom")).await;
    assert!(
        atom.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml")
    );
    let bytes = atom.bytes().await.unwrap();
    let feed = feed_rs::parser::parse(&bytes[..]).expect("a valid feed");
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
    assert_eq!(
        feed.entries.len(),
        4 + 2,
        "four first builds, a failure, a recovery"
    );
    let updated: Vec<_> = feed.entries.iter().map(|e| e.updated.unwrap()).collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let x64_titles: Vec<String> = feed
        .entries
        .iter()
        .map(|e| e.title.as_ref().unwrap().content.clone())
        .filter(|t| t.starts_with("linux-x64:"))
        .collect();
    assert_eq!(x64_titles.len(), 3);
    assert!(x64_titles[0].ends_with("available") && x64_titles[1].ends_with("failed"));
    let ids: Vec<String> = feed.entries.iter().map(|e| e.id.clone()).collect();
    let again = feed_rs::parser::parse(
        &get(&format!("{base}feed.atom"))
            .await
            .bytes()
            .await
            .unwrap()[..],
    )
    .unwrap();
    assert_eq!(
        again
            .entries
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(!String::from_utf8_lossy(&bytes).contains("arn:"));

    // Statuspage: the incident closed with the recovery.
    let after = summary(&stack).await;
    assert!(after.incidents.is_empty(), "{:#?}", after.incidents);
    assert_eq!(after.components.len(), 4);
    assert!(after.components.iter().all(|c| c.status == "operational"));
    assert_eq!(after.status.indicator, "none");
    let status_doc: serde_json::Value = get(&format!("{base}api/v2/status.json"))
        .await
        .json()
        .await
        .unwrap();
    kiln_tests::schema::assert_valid(&[STATUS_SCHEMA, SUMMARY_SCHEMA], &status_doc);
    assert_eq!(status_doc["status"]["indicator"], "none");
    assert_eq!(status_doc["page"]["id"], "kiln");
    assert_eq!(
        status_doc.as_object().unwrap().len(),
        2,
        "page and status only"
    );

    // Badges for the same metrics.
    let svg = get(&format!("{base}badge.svg?metric=uptime30d"))
        .await
        .text()
        .await
        .unwrap();
    assert!(svg.contains("uptime 30d: ") && svg.contains(" %"), "{svg}");
    let shields: serde_json::Value = get(&format!("{base}badge.json?metric=age"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shields["label"], "image age");
    assert!(
        shields["message"].as_str().unwrap().contains("minute"),
        "{shields}"
    );
    let bad = reqwest::get(format!("{base}badge.svg?metric=nope"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The page, as a browser shows it: a 90-day bar per preset, readable without colour.
    if started_or_skip("page check", find_chromium()).is_none() {
        return;
    }
    let browser = Browser::start(BrowserOptions::default())
        .await
        .expect("chromium");
    browser.goto(&base).await.unwrap();
    let bar = format!("article[data-preset='{PRESET}'] li[data-day]");
    assert_eq!(browser.count(&bar).await.unwrap(), DAYS);
    assert_eq!(browser.count("li[data-day]").await.unwrap(), 4 * DAYS);
    let title = browser
        .attr(&format!("{bar}:last-child"), "title")
        .await
        .unwrap()
        .unwrap();
    assert!(
        title.starts_with(&format!("{}: ready ", x64.days[DAYS - 1].date)) && title.ends_with(" %"),
        "{title}"
    );
    let section = browser.text("#history").await.unwrap();
    assert!(section.contains("Uptime: 24 h"), "{section}");
    assert!(section.contains("Image age:"), "{section}");
    assert!(
        section.contains("failed") && section.contains("available"),
        "{section}"
    );
    browser.screenshot("history/recovered").await.unwrap();
    browser.close().await.unwrap();
}
