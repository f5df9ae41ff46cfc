//! The Worker's behaviour, independent of the Workers runtime.
//!
//! Snapshot tiers (memory, colo Cache API, origin, KV) live in `tiers`, push ingest in
//! `ingest`; this module routes and renders.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use chrono::DateTime;
use kiln_web::PageOptions;

use crate::body::BodySource;
use crate::config::Config;
use crate::http::{Body, HTML, JSON, NO_STORE, PAGE_CSP, Reply, SVG};
use crate::origin::{OriginError, OriginRequest, OriginResponse};
use crate::route::{ALLOW_READ, Route, RouteError, route};
use crate::snapshot::{Snapshot, if_none_match_hits};

mod docs;
mod ingest;
mod tiers;

pub use ingest::MAX_INGEST_BYTES;
pub use tiers::{KV_HEARTBEAT_SECS, LKG_KEY};

/// Wakes one waiting request.
pub type Wake = Box<dyn FnOnce()>;
/// Completes when its [`Wake`] is called.
pub type Wait = Pin<Box<dyn Future<Output = ()>>>;

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
    /// A one-shot wake-up, for a request waiting on another request's origin pull. On
    /// Workers the waiting side must be a promise of the waiting request's own: a
    /// continuation run in another request's context is cancelled when that one ends.
    fn signal(&self) -> (Wake, Wait);
    fn log(&self, line: &str);
}

/// Per-isolate state.
#[derive(Default)]
pub struct Memory {
    /// This isolate's identity in the colo (see [`Snapshot::owner`]).
    id: u64,
    current: RefCell<Option<Rc<Snapshot>>>,
    last_ingest: Cell<i64>,
    /// `Some` while a refresh runs: the requests waiting for it.
    flight: RefCell<Option<Vec<Wake>>>,
    /// What KV holds, as this isolate last read or wrote it.
    kv: RefCell<Option<tiers::KvSeen>>,
    /// Origin pulls made, for each pull's nonce.
    pulls: Cell<u64>,
}

impl Memory {
    /// `id` should be unique among the colo's isolates (random) and non-zero.
    pub fn new(id: u64) -> Memory {
        Memory {
            id,
            ..Memory::default()
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// A nonce no other pull of this isolate (nor, by the random id, of another isolate)
    /// uses: the origin answers each signature once, and two pulls can share a second.
    pub fn next_nonce(&self) -> String {
        let n = self.pulls.get().wrapping_add(1);
        self.pulls.set(n);
        format!("{:016x}{n:08x}", self.id)
    }
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
    /// The declared `Content-Length`; the body itself is read only by `/ingest`.
    pub content_length: Option<u64>,
    /// `scheme://host[:port]` as the client addressed the Worker (Statuspage's page URL).
    pub base: &'a str,
}

#[derive(Clone)]
pub struct Edge<P: Platform> {
    p: P,
}

impl<P: Platform> Edge<P> {
    pub fn new(p: P) -> Self {
        Edge { p }
    }

    /// Routes first: `body` is pulled only by `/ingest`, and only up to its limit.
    pub async fn handle(&self, req: &Request<'_>, body: impl BodySource) -> Reply {
        match route(req.method, req.path, req.query) {
            Ok(Route::Status { require_ready }) => self.status(req, require_ready).await,
            Ok(Route::Page) => self.page().await,
            Ok(Route::BadgeSvg) => self.badge(true).await,
            Ok(Route::BadgeJson) => self.badge(false).await,
            Ok(Route::Healthz) => self.healthz(),
            Ok(Route::Ingest) => self.ingest(req, body).await,
            Ok(Route::Doc(doc)) => self.doc(req, doc).await,
            Ok(Route::MetricBadge { svg, metric }) => self.metric_badge(svg, metric).await,
            Ok(Route::Preflight) => Reply::new(204, JSON, Body::Empty)
                .with("access-control-allow-methods", ALLOW_READ)
                .with("access-control-allow-headers", "If-None-Match")
                .with("access-control-max-age", "86400"),
            Err(e @ RouteError::NotFound) => Reply::error(404, "not_found", &e.to_string()),
            Err(e @ RouteError::MethodNotAllowed { allow }) => {
                Reply::error(405, "method_not_allowed", &e.to_string()).with("allow", allow)
            }
            Err(e @ (RouteError::BadQuery | RouteError::BadMetric)) => {
                Reply::error(400, "bad_request", &e.to_string())
            }
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
        // A gate's "ready" must not outlive readiness in a shared cache (a CDN or proxy
        // in front of CI would answer 200 for max-age after a failure).
        let cc = if require_ready {
            NO_STORE.to_owned()
        } else {
            self.cache_control(&s)
        };
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
                let history = s.feeds.as_ref().map_or("", |f| f.page.as_str());
                (
                    200,
                    kiln_web::render_page_with(&s.report, now, &opts, history),
                    cc,
                )
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

    /// Publicly only whether the Worker is configured: which setting is wrong is for
    /// the operator's log (`wrangler tail`), not for anyone probing the edge.
    fn healthz(&self) -> Reply {
        let problems = &self.p.config().problems;
        for problem in problems {
            self.p.log(&format!("healthz: {problem}"));
        }
        let (code, body) = if problems.is_empty() {
            (200, r#"{"status":"ok"}"#)
        } else {
            (503, r#"{"status":"misconfigured"}"#)
        };
        Reply::new(code, JSON, Body::Text(body.into())).with("cache-control", NO_STORE)
    }
}

#[cfg(test)]
mod tests;
