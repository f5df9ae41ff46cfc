//! The Worker's behaviour, independent of the Workers runtime.
//!
//! Snapshot tiers, fastest first: this isolate's memory (the hot path: stored bytes, no
//! I/O), the colo's Cache API entry, the origin, and KV's last known good. Freshness is
//! measured from when the edge last confirmed a snapshot; after `CACHE_TTL_SECS` it is
//! still served for `STALE_WHILE_REVALIDATE_SECS` while one background pull refreshes it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use chrono::DateTime;
use kiln_shared::StatusReport;
use kiln_shared::signing::{self, INGEST_PATH, SignedRequest};
use kiln_web::PageOptions;

use crate::config::{Config, ORIGIN_SECRET};
use crate::http::{Body, HTML, JSON, NO_STORE, PAGE_CSP, Reply, SVG};
use crate::origin::{self, OriginError, OriginRequest, OriginResponse};
use crate::route::{ALLOW_READ, Route, RouteError, route};
use crate::snapshot::{Snapshot, if_none_match_hits};

/// KV key of the last known good snapshot.
pub const LKG_KEY: &str = "status:last-known-good";
/// KV key of the newest accepted push's signed timestamp.
pub const LAST_INGEST_KEY: &str = "ingest:last-timestamp";
/// A status report is a few KB; anything far larger is not one.
pub const MAX_INGEST_BYTES: usize = 512 * 1024;

/// What the service needs from the runtime. Implemented by the Worker glue and by the
/// tests' in-process fake.
#[allow(async_fn_in_trait)] // single-threaded runtime: futures need not be Send
pub trait Platform: Clone + 'static {
    /// Unix seconds.
    fn now(&self) -> i64;
    fn config(&self) -> &Config;
    /// State that outlives a request (per isolate).
    fn memory(&self) -> &Memory;
    /// Performs the origin request, enforcing `req.timeout_ms`.
    async fn fetch_origin(&self, req: &OriginRequest) -> Result<OriginResponse, OriginError>;
    async fn cache_get(&self) -> Option<Vec<u8>>;
    async fn cache_put(&self, value: String, max_age_secs: u32);
    async fn kv_get(&self, key: &'static str) -> Option<Vec<u8>>;
    async fn kv_put(&self, key: &'static str, value: String);
    /// Runs `fut` after the response is sent (`waitUntil`).
    fn spawn(&self, fut: Pin<Box<dyn Future<Output = ()>>>);
    fn log(&self, line: &str);
}

/// Per-isolate state.
#[derive(Debug, Default)]
pub struct Memory {
    current: RefCell<Option<Rc<Snapshot>>>,
    last_ingest: Cell<i64>,
    revalidating: Cell<bool>,
    kv_etag: RefCell<Option<String>>,
}

/// An incoming request, as the service sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Clone)]
pub struct Edge<P: Platform> {
    p: P,
}

impl<P: Platform> Edge<P> {
    pub fn new(p: P) -> Self {
        Edge { p }
    }

    pub async fn handle(&self, req: &Request<'_>) -> Reply {
        match route(req.method, req.path, req.query) {
            Ok(Route::Status { require_ready }) => self.status(req, require_ready).await,
            Ok(Route::Page) => self.page().await,
            Ok(Route::BadgeSvg) => self.badge(true).await,
            Ok(Route::BadgeJson) => self.badge(false).await,
            Ok(Route::Healthz) => self.healthz(),
            Ok(Route::Ingest) => self.ingest(req).await,
            Ok(Route::Preflight) => Reply::new(204, JSON, Body::Empty)
                .with("access-control-allow-methods", ALLOW_READ)
                .with("access-control-allow-headers", "If-None-Match")
                .with("access-control-max-age", "86400"),
            Err(e @ RouteError::NotFound) => Reply::error(404, "not_found", &e.to_string()),
            Err(e @ RouteError::MethodNotAllowed { allow }) => {
                Reply::error(405, "method_not_allowed", &e.to_string()).with("allow", allow)
            }
            Err(e @ RouteError::BadQuery) => Reply::error(400, "bad_request", &e.to_string()),
        }
    }

    fn no_snapshot() -> Reply {
        Reply::error(
            503,
            "unavailable",
            "no status snapshot is available yet and the status origin is not answering",
        )
        .with("retry-after", "5")
    }

    fn cache_control(&self, s: &Snapshot) -> String {
        if s.report.stale {
            // A stale answer should not be kept downstream: ask again every time.
            "no-cache".to_owned()
        } else {
            self.p.config().cache_control()
        }
    }

    async fn status(&self, req: &Request<'_>, require_ready: bool) -> Reply {
        let Some(s) = self.snapshot().await else {
            return Self::no_snapshot();
        };
        let etag = s.etag.clone();
        if require_ready && !s.report.is_ready() {
            // Same body, so `curl -f` callers can still log why.
            return Reply::new(503, JSON, Body::Snapshot(s))
                .with("cache-control", NO_STORE)
                .with("etag", etag);
        }
        let cc = self.cache_control(&s);
        let reply = if if_none_match_hits(req.if_none_match, &etag) {
            Reply::new(304, JSON, Body::Empty)
        } else {
            Reply::new(200, JSON, Body::Snapshot(s))
        };
        reply
            .with("cache-control", cc)
            .with("etag", etag)
            .with("access-control-expose-headers", "ETag")
    }

    async fn page(&self) -> Reply {
        let opts = PageOptions {
            refresh_secs: self.p.config().page_refresh_secs,
        };
        let (status, html, cc) = match self.snapshot().await {
            Some(s) => {
                let now = DateTime::from_timestamp(self.p.now(), 0).unwrap_or_default();
                let cc = if s.report.stale {
                    "no-cache".to_owned()
                } else {
                    format!("public, max-age={}", self.p.config().cache_ttl_secs)
                };
                (200, kiln_web::render_page(&s.report, now, &opts), cc)
            }
            None => (
                503,
                kiln_web::render_unavailable(&opts),
                NO_STORE.to_owned(),
            ),
        };
        Reply::new(status, HTML, Body::Text(html))
            .with("cache-control", cc)
            .with("content-security-policy", PAGE_CSP)
            .with("referrer-policy", "no-referrer")
    }

    async fn badge(&self, svg: bool) -> Reply {
        let Some(s) = self.snapshot().await else {
            return Self::no_snapshot();
        };
        let (status, stale) = (s.report.status, s.report.stale);
        let reply = if svg {
            Reply::new(200, SVG, Body::Text(kiln_web::badge_svg(status, stale)))
        } else {
            Reply::new(200, JSON, Body::Text(kiln_web::badge_json(status, stale)))
        };
        reply.with("cache-control", self.cache_control(&s))
    }

    fn healthz(&self) -> Reply {
        let problems: Vec<String> = self
            .p
            .config()
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect();
        #[derive(serde::Serialize)]
        struct Health {
            status: &'static str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            problems: Vec<String>,
        }
        let (code, status) = if problems.is_empty() {
            (200, "ok")
        } else {
            (503, "misconfigured")
        };
        let body = serde_json::to_string(&Health { status, problems }).expect("serialises");
        Reply::new(code, JSON, Body::Text(body)).with("cache-control", NO_STORE)
    }

    /// The snapshot to answer with: memory, then Cache API, then origin, then KV (stale).
    pub async fn snapshot(&self) -> Option<Rc<Snapshot>> {
        let now = self.p.now();
        let current = self.p.memory().current.borrow().clone();
        if let Some(s) = current {
            if let Some(s) = self.serve_or_revalidate(s, now) {
                return Some(s);
            }
        } else if let Some(bytes) = self.p.cache_get().await {
            match Snapshot::decode(&bytes) {
                Ok(s) => {
                    let s = Rc::new(s);
                    *self.p.memory().current.borrow_mut() = Some(s.clone());
                    if let Some(s) = self.serve_or_revalidate(s, now) {
                        return Some(s);
                    }
                }
                Err(e) => self.p.log(&format!("ignoring cache entry: {e}")),
            }
        }
        self.refresh(now).await
    }

    fn serve_or_revalidate(&self, s: Rc<Snapshot>, now: i64) -> Option<Rc<Snapshot>> {
        let cfg = self.p.config();
        let ttl = i64::from(cfg.cache_ttl_secs);
        let swr = i64::from(cfg.stale_while_revalidate_secs);
        let age = s.age(now);
        if age < ttl {
            return Some(s);
        }
        if age < ttl + swr {
            let mem = self.p.memory();
            if !mem.revalidating.replace(true) {
                let this = self.clone();
                self.p.spawn(Box::pin(async move {
                    let now = this.p.now();
                    this.refresh(now).await;
                }));
            }
            return Some(s);
        }
        None
    }

    /// Pulls from the origin; on any failure falls back to the newest known snapshot,
    /// marked stale.
    async fn refresh(&self, now: i64) -> Option<Rc<Snapshot>> {
        let cfg = self.p.config();
        let pulled = match origin::request(cfg, now) {
            Ok(req) => match self.p.fetch_origin(&req).await {
                Ok(resp) => origin::verify(cfg, &resp, self.p.now()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let out = match pulled {
            Ok((report, signed_at)) => Some(self.install(report, signed_at, now).await),
            Err(e) => {
                self.p
                    .log(&format!("origin pull failed: {e}; serving last known good"));
                self.fall_back(now).await
            }
        };
        self.p.memory().revalidating.set(false);
        out
    }

    /// Makes a fresh report current in every tier.
    async fn install(&self, report: StatusReport, signed_at: i64, now: i64) -> Rc<Snapshot> {
        let snap = Rc::new(Snapshot::new(report, signed_at, now));
        let mem = self.p.memory();
        *mem.current.borrow_mut() = Some(snap.clone());
        let cfg = self.p.config();
        let keep = cfg.cache_ttl_secs + cfg.stale_while_revalidate_secs;
        self.p.cache_put(snap.encode(), keep).await;
        // KV allows about one write per second per key: write only when it changed.
        let changed = mem.kv_etag.borrow().as_deref() != Some(snap.etag.as_str());
        if changed {
            *mem.kv_etag.borrow_mut() = Some(snap.etag.clone());
            self.p.kv_put(LKG_KEY, snap.encode()).await;
        }
        snap
    }

    async fn fall_back(&self, now: i64) -> Option<Rc<Snapshot>> {
        let in_memory = self.p.memory().current.borrow().clone();
        let from_kv = match self.p.kv_get(LKG_KEY).await.map(|b| Snapshot::decode(&b)) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                self.p.log(&format!("ignoring last known good in KV: {e}"));
                None
            }
            None => None,
        };
        // The newest data wins (the timestamp format sorts as text).
        let best = match (in_memory, from_kv) {
            (Some(m), Some(k)) if k.report.generated_at > m.report.generated_at => k,
            (Some(m), _) => (*m).clone(),
            (None, Some(k)) => k,
            (None, None) => return None,
        };
        let stale = Rc::new(best.into_stale(now));
        *self.p.memory().current.borrow_mut() = Some(stale.clone());
        // Shared with the colo's other isolates, so they do not each wait on a dead origin.
        let cfg = self.p.config();
        self.p
            .cache_put(
                stale.encode(),
                cfg.cache_ttl_secs + cfg.stale_while_revalidate_secs,
            )
            .await;
        Some(stale)
    }

    async fn ingest(&self, req: &Request<'_>) -> Reply {
        let cfg = self.p.config();
        let Some(secret) = cfg.origin_secret.as_deref() else {
            return Reply::error(
                503,
                "ingest_disabled",
                &format!("{ORIGIN_SECRET} is not set"),
            );
        };
        if req.body.len() > MAX_INGEST_BYTES {
            return Reply::error(
                413,
                "too_large",
                &format!("a status report is at most {MAX_INGEST_BYTES} bytes"),
            );
        }
        let now = self.p.now();
        let signed = SignedRequest {
            timestamp: req.timestamp,
            signature: req.signature,
            method: "POST",
            path: INGEST_PATH,
            body: req.body,
        };
        let ts = match signing::verify(secret, &signed, now, cfg.signature_window_secs) {
            Ok(ts) => ts,
            Err(e) => return self.refuse(&e.to_string()),
        };
        let mem = self.p.memory();
        if ts <= mem.last_ingest.get() {
            return self.refuse("replayed: timestamp is not newer than the last accepted push");
        }
        let mut report: StatusReport = match serde_json::from_slice(req.body) {
            Ok(r) => r,
            Err(e) => {
                self.p.log(&format!("ingest refused: bad report: {e}"));
                return Reply::error(
                    400,
                    "bad_request",
                    &format!("body is not a status report: {e}"),
                );
            }
        };
        report.stale = false;
        let kv_last = self
            .p
            .kv_get(LAST_INGEST_KEY)
            .await
            .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse::<i64>().ok())
            .unwrap_or(i64::MIN);
        // Checked again after the await: another push may have been accepted meanwhile.
        if ts <= kv_last.max(mem.last_ingest.get()) {
            return self.refuse("replayed: timestamp is not newer than the last accepted push");
        }
        mem.last_ingest.set(ts);
        self.p.kv_put(LAST_INGEST_KEY, ts.to_string()).await;
        let snap = self.install(report, ts, now).await;
        #[derive(serde::Serialize)]
        struct Accepted<'a> {
            accepted: bool,
            status: kiln_shared::OverallStatus,
            etag: &'a str,
        }
        let body = serde_json::to_string(&Accepted {
            accepted: true,
            status: snap.report.status,
            etag: &snap.etag,
        })
        .expect("serialises");
        Reply::new(202, JSON, Body::Text(body)).with("cache-control", NO_STORE)
    }

    fn refuse(&self, why: &str) -> Reply {
        self.p.log(&format!("ingest refused: {why}"));
        Reply::error(401, "unauthorized", why)
    }
}

#[cfg(test)]
mod tests;
