//! The service against an in-process fake runtime: every tier, every refusal.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures::executor::block_on;
use kiln_shared::signing::{RESPONSE_METHOD, sign};
use kiln_shared::status::summarise;
use kiln_shared::{OverallStatus, PresetReport, PresetStatus, StatusReport};

use super::*;
use crate::body::{Chunks, NoBody};

mod docs;
mod hardening;

const SECRET: &str = "super-secret-value-7f3a";
const T0: i64 = 1_800_000_000;

enum OriginMode {
    Up(StatusReport),
    /// Like the real origin: the same report stamped with the time of each answer.
    Regenerating(StatusReport),
    Down,
    /// Answers with a signature made with another key.
    WrongKey(StatusReport),
    /// Answers with a genuine response to another request (a replayed answer).
    Misbound(StatusReport),
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// One isolate. The `Rc` fields are shared with its [`Fake::sibling`]s (same colo).
struct State {
    now: Rc<Cell<i64>>,
    config: Config,
    memory: Memory,
    origin: Rc<RefCell<OriginMode>>,
    origin_calls: Rc<Cell<u32>>,
    /// The signed target of every origin pull, in order.
    targets: Rc<RefCell<Vec<String>>>,
    /// How many times an origin fetch yields before answering (requests in flight).
    origin_yields: Rc<Cell<u32>>,
    cache: Rc<RefCell<Option<String>>>,
    kv: Rc<RefCell<HashMap<&'static str, String>>>,
    kv_writes: Rc<Cell<u32>>,
    spawned: Rc<RefCell<Vec<Task>>>,
    logs: Rc<RefCell<Vec<String>>>,
}

/// Returns `Pending` once (waking itself), so other futures in a join run meanwhile.
#[derive(Default)]
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[derive(Clone)]
struct Fake(Rc<State>);

impl Platform for Fake {
    fn now(&self) -> i64 {
        self.0.now.get()
    }
    fn config(&self) -> &Config {
        &self.0.config
    }
    fn memory(&self) -> &Memory {
        &self.0.memory
    }
    async fn fetch_origin(&self, req: &OriginRequest) -> Result<OriginResponse, OriginError> {
        self.0.origin_calls.set(self.0.origin_calls.get() + 1);
        assert_eq!(req.url, format!("http://origin.test{}", req.target));
        assert!(kiln_shared::signing::status_nonce(&req.target).is_some());
        self.0.targets.borrow_mut().push(req.target.clone());
        for _ in 0..self.0.origin_yields.get() {
            YieldNow::default().await;
        }
        let (report, key) = match &*self.0.origin.borrow() {
            OriginMode::Down => return Err(OriginError::Transport("connection refused".into())),
            OriginMode::Up(r) => (r.clone(), SECRET),
            OriginMode::Regenerating(r) => {
                let mut r = r.clone();
                let at = chrono::DateTime::from_timestamp(self.now(), 0).unwrap();
                r.generated_at = kiln_shared::time::format(at);
                (r, SECRET)
            }
            OriginMode::WrongKey(r) => (r.clone(), "not-the-secret"),
            OriginMode::Misbound(r) => {
                let body = serde_json::to_vec(r).unwrap();
                let ts = self.now();
                let other = kiln_shared::signing::origin_status_target("some-other-pull");
                return Ok(OriginResponse {
                    status: 200,
                    timestamp: Some(ts.to_string()),
                    signature: Some(
                        sign(SECRET.as_bytes(), ts, RESPONSE_METHOD, &other, &body).unwrap(),
                    ),
                    body,
                });
            }
        };
        let body = serde_json::to_vec(&report).unwrap();
        let ts = self.now();
        Ok(OriginResponse {
            status: 200,
            timestamp: Some(ts.to_string()),
            signature: Some(sign(key.as_bytes(), ts, RESPONSE_METHOD, &req.target, &body).unwrap()),
            body,
        })
    }
    async fn cache_get(&self) -> Option<Vec<u8>> {
        self.0.cache.borrow().clone().map(String::into_bytes)
    }
    async fn cache_put(&self, value: String, _max_age_secs: u32) {
        *self.0.cache.borrow_mut() = Some(value);
    }
    async fn kv_get(&self, key: &'static str) -> Option<Vec<u8>> {
        self.0.kv.borrow().get(key).cloned().map(String::into_bytes)
    }
    async fn kv_put(&self, key: &'static str, value: String) {
        self.0.kv_writes.set(self.0.kv_writes.get() + 1);
        self.0.kv.borrow_mut().insert(key, value);
    }
    fn spawn(&self, fut: Pin<Box<dyn Future<Output = ()>>>) {
        self.0.spawned.borrow_mut().push(fut);
    }
    fn signal(&self) -> (Wake, Wait) {
        crate::signal::local()
    }
    fn log(&self, line: &str) {
        self.0.logs.borrow_mut().push(line.to_owned());
    }
}

fn config() -> Config {
    Config {
        origin_url: Some("http://origin.test".into()),
        origin_secret: Some(SECRET.as_bytes().to_vec()),
        cache_ttl_secs: 10,
        stale_while_revalidate_secs: 20,
        ..Config::default()
    }
}

fn fake_with(config: Config, origin: OriginMode) -> Fake {
    Fake(Rc::new(State {
        now: Rc::new(Cell::new(T0)),
        config,
        memory: Memory::new(1),
        origin: Rc::new(RefCell::new(origin)),
        origin_calls: Rc::default(),
        targets: Rc::default(),
        origin_yields: Rc::default(),
        cache: Rc::default(),
        kv: Rc::default(),
        kv_writes: Rc::default(),
        spawned: Rc::default(),
        logs: Rc::default(),
    }))
}

fn fake(origin: OriginMode) -> Fake {
    fake_with(config(), origin)
}

impl Fake {
    fn edge(&self) -> Edge<Fake> {
        Edge::new(self.clone())
    }
    fn advance(&self, secs: i64) {
        self.0.now.set(self.0.now.get() + secs);
    }
    fn set_origin(&self, mode: OriginMode) {
        *self.0.origin.borrow_mut() = mode;
    }
    fn run_spawned(&self) -> usize {
        let tasks: Vec<_> = self.0.spawned.borrow_mut().drain(..).collect();
        let n = tasks.len();
        for t in tasks {
            block_on(t);
        }
        n
    }
    /// Another isolate in the same colo, alive at the same time: shares the clock, the
    /// origin, the Cache API entry and KV (and their counters), not memory.
    fn sibling(&self, id: u64) -> Fake {
        let s = &self.0;
        Fake(Rc::new(State {
            now: s.now.clone(),
            config: s.config.clone(),
            memory: Memory::new(id),
            origin: s.origin.clone(),
            origin_calls: s.origin_calls.clone(),
            targets: s.targets.clone(),
            origin_yields: s.origin_yields.clone(),
            cache: s.cache.clone(),
            kv: s.kv.clone(),
            kv_writes: s.kv_writes.clone(),
            spawned: s.spawned.clone(),
            logs: s.logs.clone(),
        }))
    }
    /// A new isolate later on: copies cache and KV, not memory; its origin is down.
    fn new_isolate(&self) -> Fake {
        let f = fake_with(self.0.config.clone(), OriginMode::Down);
        f.0.now.set(self.now());
        *f.0.cache.borrow_mut() = self.0.cache.borrow().clone();
        *f.0.kv.borrow_mut() = self.0.kv.borrow().clone();
        f
    }
    fn get(&self, path: &str) -> Reply {
        self.req(Request {
            method: "GET",
            path,
            ..Request::default()
        })
    }
    fn get_q(&self, path: &str, query: &str) -> Reply {
        self.req(Request {
            method: "GET",
            path,
            query: Some(query),
            ..Request::default()
        })
    }
    fn req(&self, r: Request<'_>) -> Reply {
        block_on(self.edge().handle(&r, NoBody))
    }
    fn status_json(&self) -> (Reply, StatusReport) {
        let r = self.get("/status");
        let report = serde_json::from_str(r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
        (r, report)
    }
    fn ingest(&self, body: &[u8], ts: i64, key: &str) -> Reply {
        let ts_s = ts.to_string();
        let sig = sign(key.as_bytes(), ts, "POST", "/ingest", body).unwrap();
        let req = Request {
            method: "POST",
            path: "/ingest",
            timestamp: Some(&ts_s),
            signature: Some(&sig),
            content_length: Some(body.len() as u64),
            ..Request::default()
        };
        block_on(self.edge().handle(&req, Chunks::new(body, 16 * 1024)))
    }
    /// The replay guard's timestamp as KV holds it.
    fn kv_last_ingest(&self) -> i64 {
        let kv = self.0.kv.borrow().get(LKG_KEY).cloned().unwrap();
        Snapshot::decode_with(kv.as_bytes()).unwrap().1
    }
}

fn report(presets: Vec<PresetReport>, generated_at: &str) -> StatusReport {
    let (status, message) = summarise(&presets);
    StatusReport {
        status,
        message,
        presets,
        generated_at: generated_at.into(),
        stale: false,
    }
}

fn preset(name: &str, status: PresetStatus) -> PresetReport {
    let ami = (status == PresetStatus::Ready).then(|| format!("ami-{name}"));
    PresetReport {
        name: name.into(),
        status,
        ami_id: ami.clone(),
        updated_at: Some("2026-01-27T12:00:00Z".into()),
        architecture: None,
        amis: ami
            .map(|a| [("us-east-1".to_owned(), a)].into())
            .unwrap_or_default(),
        built_at: None,
        pinned: false,
        warnings: Vec::new(),
        display_name: None,
    }
}

fn ready() -> StatusReport {
    report(
        vec![preset("linux-x64", PresetStatus::Ready)],
        "2026-01-27T12:00:00Z",
    )
}

fn building() -> StatusReport {
    report(
        vec![preset("linux-x64", PresetStatus::Building)],
        "2026-01-27T12:01:00Z",
    )
}

#[test]
fn cold_pull_then_served_from_memory_within_ttl() {
    let f = fake(OriginMode::Up(ready()));
    let (r, body) = f.status_json();
    assert_eq!(r.status, 200);
    assert_eq!(body, ready());
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=10, stale-while-revalidate=20")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(
        etag,
        Snapshot::new(ready(), 0, 0).etag,
        "tag of the content"
    );
    assert!(
        matches!(r.body, Body::Snapshot(_)),
        "hot path serves stored bytes"
    );

    f.advance(9);
    let again = f.get("/status");
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(
        f.0.origin_calls.get(),
        1,
        "served from memory within the TTL"
    );
    assert_eq!(f.0.kv_writes.get(), 1, "last known good written once");
    assert!(
        f.0.cache.borrow().is_some(),
        "shared with the colo via the Cache API"
    );
}

#[test]
fn etag_304_and_head_share_headers() {
    let f = fake(OriginMode::Up(ready()));
    let etag = f.get("/status").header("etag").unwrap().to_owned();
    let r = f.req(Request {
        method: "GET",
        path: "/status",
        if_none_match: Some(&format!("\"nope\", {etag}")),
        ..Request::default()
    });
    assert_eq!(r.status, 304);
    assert!(r.body.as_bytes().is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(r.header("cache-control").unwrap().contains("max-age=10"));
    let miss = f.req(Request {
        method: "GET",
        path: "/status",
        if_none_match: Some("\"other\""),
        ..Request::default()
    });
    assert_eq!(miss.status, 200);
    let head = f.req(Request {
        method: "HEAD",
        path: "/status",
        ..Request::default()
    });
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
}

#[test]
fn require_ready_gates_with_the_same_body() {
    let f = fake(OriginMode::Up(ready()));
    let ok = f.req(Request {
        method: "GET",
        path: "/status",
        query: Some("require=ready"),
        ..Request::default()
    });
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("cache-control"),
        Some("no-store"),
        "a gate's 200 is not for shared caches"
    );
    assert!(
        f.get("/status")
            .header("cache-control")
            .is_some_and(|c| c.starts_with("public")),
        "the plain view stays cacheable"
    );

    let f = fake(OriginMode::Up(building()));
    let plain = f.get("/status");
    let gated = f.req(Request {
        method: "GET",
        path: "/status",
        query: Some("require=ready"),
        if_none_match: plain.header("etag"),
        ..Request::default()
    });
    assert_eq!(gated.status, 503, "not ready beats a matching ETag");
    assert_eq!(gated.text(), plain.text());
    assert_eq!(gated.header("cache-control"), Some("no-store"));
}

#[test]
fn no_snapshot_anywhere_is_503_json_on_every_view() {
    let f = fake(OriginMode::Down);
    let r = f.get("/status");
    assert_eq!(r.status, 503);
    let v: serde_json::Value = serde_json::from_str(r.text()).unwrap();
    assert_eq!(v["error"], "unavailable");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(f.get("/badge.svg").status, 503);
    assert_eq!(f.get("/badge.json").status, 503);
    let page = f.get("/");
    assert_eq!(page.status, 503);
    assert!(page.text().contains("Status unavailable"));
    assert!(
        f.0.logs
            .borrow()
            .iter()
            .any(|l| l.contains("origin pull failed"))
    );
}

#[test]
fn origin_down_serves_last_known_good_as_stale_then_recovers() {
    let f = fake(OriginMode::Up(ready()));
    let fresh = f.get("/status");
    f.set_origin(OriginMode::Down);
    f.advance(31); // past TTL + SWR
    let (r, body) = f.status_json();
    assert_eq!(r.status, 200, "never a 5xx while a snapshot exists");
    assert!(body.stale);
    assert_eq!(body.presets, ready().presets);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_ne!(r.header("etag"), fresh.header("etag"));
    // Stale and ready still passes the readiness gate: the AMIs exist.
    let gated = f.req(Request {
        method: "GET",
        path: "/status",
        query: Some("require=ready"),
        ..Request::default()
    });
    assert_eq!(gated.status, 200);
    // The stale decision is remembered for a TTL: the dead origin is not hammered.
    let calls = f.0.origin_calls.get();
    f.advance(5);
    f.get("/status");
    assert_eq!(f.0.origin_calls.get(), calls);
    // The origin comes back: within SWR the stale copy is served once more while a
    // background pull refreshes; afterwards fresh data.
    f.set_origin(OriginMode::Up(building()));
    f.advance(6);
    let (_, during) = f.status_json();
    assert!(during.stale);
    assert_eq!(f.run_spawned(), 1);
    let (_, after) = f.status_json();
    assert_eq!(after, building());
    // KV never holds a stale snapshot.
    let kv = f.0.kv.borrow().get(LKG_KEY).cloned().unwrap();
    assert!(!Snapshot::decode(kv.as_bytes()).unwrap().report.stale);
}

#[test]
fn wrongly_signed_origin_counts_as_down() {
    let f = fake(OriginMode::Up(ready()));
    f.get("/status");
    f.set_origin(OriginMode::WrongKey(building()));
    f.advance(100);
    let (_, body) = f.status_json();
    assert!(body.stale);
    assert_eq!(
        body.status,
        OverallStatus::Ready,
        "forged data is never served"
    );
    assert!(
        f.0.logs
            .borrow()
            .iter()
            .any(|l| l.contains("signature rejected: signature does not match")),
        "{:?}",
        f.0.logs.borrow()
    );
}

#[test]
fn stale_while_revalidate_serves_old_and_refreshes_once() {
    let f = fake(OriginMode::Up(ready()));
    f.get("/status");
    f.set_origin(OriginMode::Up(building()));
    f.advance(12);
    assert_eq!(f.status_json().1, ready());
    assert_eq!(f.status_json().1, ready());
    assert_eq!(
        f.run_spawned(),
        1,
        "one background pull, not one per request"
    );
    assert_eq!(f.status_json().1, building());
    assert_eq!(f.0.origin_calls.get(), 2);
}

#[test]
fn new_isolate_uses_cache_then_kv() {
    let f = fake(OriginMode::Up(ready()));
    f.get("/status");
    f.advance(3);
    let g = f.new_isolate();
    let (_, body) = g.status_json();
    assert_eq!(body, ready());
    assert_eq!(
        g.0.origin_calls.get(),
        0,
        "fresh Cache API entry, no origin call"
    );

    // Cache evicted and origin down: KV's last known good, stale.
    f.advance(100);
    let h = f.new_isolate();
    *h.0.cache.borrow_mut() = None;
    let (r, body) = h.status_json();
    assert_eq!(r.status, 200);
    assert!(body.stale);
    assert_eq!(body.message, ready().message);
}

#[test]
fn corrupt_stored_entries_are_ignored_and_logged() {
    let f = fake(OriginMode::Down);
    *f.0.cache.borrow_mut() = Some("garbage".into());
    f.0.kv.borrow_mut().insert(LKG_KEY, "{\"nope\":1}".into());
    assert_eq!(f.get("/status").status, 503);
    let logs = f.0.logs.borrow();
    assert!(logs.iter().any(|l| l.contains("ignoring cache entry")));
    assert!(
        logs.iter()
            .any(|l| l.contains("ignoring last known good in KV"))
    );
}

#[test]
fn ingest_replaces_the_snapshot_immediately() {
    let f = fake(OriginMode::Up(ready()));
    f.get("/status");
    let body = serde_json::to_vec(&building()).unwrap();
    let r = f.ingest(&body, T0, SECRET);
    assert_eq!(r.status, 202, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(r.text()).unwrap();
    assert_eq!(v["accepted"], true);
    assert_eq!(v["status"], "building");
    // Within the TTL of the pulled snapshot, yet the pushed one is served.
    let (got, report) = f.status_json();
    assert_eq!(report, building());
    assert_eq!(got.header("etag"), v["etag"].as_str());
    assert_eq!(f.0.origin_calls.get(), 1);
    let kv = f.0.kv.borrow().get(LKG_KEY).cloned().unwrap();
    assert_eq!(Snapshot::decode(kv.as_bytes()).unwrap().report, building());
    assert_eq!(
        f.kv_last_ingest(),
        T0,
        "replay guard kept with the snapshot"
    );
    // A pushed snapshot claiming to be stale is stored as fresh.
    let mut claims_stale = ready();
    claims_stale.stale = true;
    let r = f.ingest(&serde_json::to_vec(&claims_stale).unwrap(), T0 + 1, SECRET);
    assert_eq!(r.status, 202);
    assert!(!f.status_json().1.stale);
}

#[test]
fn ingest_refusals_leave_the_snapshot_alone() {
    let f = fake(OriginMode::Up(ready()));
    let before = f.get("/status").text().to_owned();
    let body = serde_json::to_vec(&building()).unwrap();
    assert_eq!(f.ingest(&body, T0, SECRET).status, 202);
    let accepted = f.get("/status").text().to_owned();
    assert_ne!(before, accepted);

    let cases: Vec<(&str, Reply)> = vec![
        ("replayed", f.ingest(&body, T0, SECRET)),
        ("replayed", f.ingest(&body, T0 - 1, SECRET)),
        ("signature does not match", f.ingest(&body, T0 + 1, "wrong")),
        (
            "outside the accepted window",
            f.ingest(&body, T0 + 301, SECRET),
        ),
        (
            "missing",
            block_on(f.edge().handle(
                &Request {
                    method: "POST",
                    path: "/ingest",
                    ..Request::default()
                },
                Chunks::new(&body, 1024),
            )),
        ),
    ];
    for (why, r) in cases {
        assert_eq!(r.status, 401, "{why}: {}", r.text());
        let v: serde_json::Value = serde_json::from_str(r.text()).unwrap();
        assert_eq!(v["error"], "unauthorized");
        assert!(
            v["message"].as_str().unwrap().contains(why),
            "{why}: {}",
            r.text()
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
    // Signed but not a report: 400, and the timestamp is not burnt.
    let r = f.ingest(b"{\"status\":\"ready\"}", T0 + 2, SECRET);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not a status report"));
    let big = vec![b' '; MAX_INGEST_BYTES + 1];
    assert_eq!(f.ingest(&big, T0 + 3, SECRET).status, 413);
    assert_eq!(f.get("/status").text(), accepted);
    assert_eq!(
        f.ingest(&serde_json::to_vec(&ready()).unwrap(), T0 + 2, SECRET)
            .status,
        202
    );
}

#[test]
fn replay_protection_survives_a_new_isolate() {
    let f = fake(OriginMode::Up(ready()));
    let body = serde_json::to_vec(&building()).unwrap();
    assert_eq!(f.ingest(&body, T0, SECRET).status, 202);
    let g = f.new_isolate();
    assert_eq!(g.ingest(&body, T0, SECRET).status, 401);
    assert_eq!(g.ingest(&body, T0 + 1, SECRET).status, 202);
}

#[test]
fn ingest_without_a_secret_is_disabled() {
    let f = fake_with(
        Config {
            origin_secret: None,
            ..config()
        },
        OriginMode::Down,
    );
    let r = f.ingest(b"{}", T0, SECRET);
    assert_eq!(r.status, 503);
    assert!(!r.text().contains("ORIGIN_SECRET"), "{}", r.text());
    assert!(
        f.0.logs
            .borrow()
            .iter()
            .any(|l| l.contains("ORIGIN_SECRET"))
    );
}

#[test]
fn page_and_badges_come_from_the_snapshot() {
    let f = fake(OriginMode::Up(building()));
    let page = f.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(page.text().contains("1 preset building"));
    assert!(
        page.text().contains(r#"content="30""#),
        "page refresh from config"
    );
    let svg = f.get("/badge.svg");
    assert_eq!(
        svg.header("content-type"),
        Some("image/svg+xml; charset=utf-8")
    );
    assert!(svg.text().contains(">building</text>"));
    let json: serde_json::Value = serde_json::from_str(f.get("/badge.json").text()).unwrap();
    assert_eq!(json["message"], "building");
    assert_eq!(f.0.origin_calls.get(), 1);
}

#[test]
fn routing_errors_are_json() {
    let f = fake(OriginMode::Down);
    let r = f.get("/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.text().contains("\"error\":\"not_found\""));
    let r = f.req(Request {
        method: "DELETE",
        path: "/status",
        ..Request::default()
    });
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let r = f.get("/ingest");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = f.req(Request {
        method: "GET",
        path: "/status",
        query: Some("require=maybe"),
        ..Request::default()
    });
    assert_eq!(r.status, 400);
    let r = f.req(Request {
        method: "OPTIONS",
        path: "/status",
        ..Request::default()
    });
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(f.0.origin_calls.get(), 0, "no route touched the origin");
}

#[test]
fn healthz_is_generic_in_public_and_names_problems_in_the_log() {
    let f = fake(OriginMode::Down);
    let r = f.get("/healthz");
    assert_eq!((r.status, r.text()), (200, r#"{"status":"ok"}"#));
    let bad = fake_with(Config::from_lookup(|_| None), OriginMode::Down);
    let r = bad.get("/healthz");
    assert_eq!((r.status, r.text()), (503, r#"{"status":"misconfigured"}"#));
    let logs = bad.0.logs.borrow();
    assert!(
        logs.iter().any(|l| l.contains("ORIGIN_URL is not set")),
        "{logs:?}"
    );
    assert_eq!(bad.0.origin_calls.get(), 0);
}

#[test]
fn the_secret_never_appears_in_replies_or_logs() {
    let f = fake(OriginMode::Up(ready()));
    let mut replies = vec![];
    for path in [
        "/status",
        "/",
        "/badge.svg",
        "/badge.json",
        "/healthz",
        "/x",
    ] {
        replies.push(f.get(path));
    }
    f.set_origin(OriginMode::WrongKey(ready()));
    f.advance(100);
    replies.push(f.get("/status"));
    replies.push(f.ingest(b"{}", T0, "wrong"));
    replies.push(f.ingest(b"{}", T0 + 100, SECRET));
    for r in &replies {
        assert!(!r.text().contains(SECRET));
        for (_, v) in &r.headers {
            assert!(!v.contains(SECRET));
        }
    }
    for l in f.0.logs.borrow().iter() {
        assert!(!l.contains(SECRET), "{l}");
    }
    assert!(!f.0.logs.borrow().is_empty());
}

#[test]
fn a_secondary_secret_verifies_answers_and_pushes() {
    // A rotation in progress: the origin already signs with the next secret.
    let next = "not-the-secret";
    let rotating = Config {
        origin_secret_secondary: Some(next.as_bytes().to_vec()),
        ..config()
    };
    let f = fake_with(rotating, OriginMode::WrongKey(ready()));
    let (_, body) = f.status_json();
    assert!(!body.stale, "{:?}", f.0.logs.borrow());
    assert_eq!(body.status, OverallStatus::Ready);
    let push = serde_json::to_vec(&building()).unwrap();
    assert_eq!(f.ingest(&push, T0 + 1, next).status, 202);
    assert_eq!(f.ingest(&push, T0 + 2, SECRET).status, 202);
    assert_eq!(f.ingest(&push, T0 + 3, "a-third-secret").status, 401);
}
