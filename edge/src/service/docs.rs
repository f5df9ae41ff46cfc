//! `/history.json`, `/feed.atom`, `/api/v2/{summary,status}.json` and the metric badges:
//! the origin's pre-rendered documents from the snapshot in memory, wrapped with the
//! per-request parts (generation time, staleness, the page URL). No JSON is parsed here.

use kiln_web::Badge;

use super::{Edge, Platform, Request};
use crate::http::{Body, JSON, Reply, SVG};
use crate::route::{Doc, Metric};
use crate::snapshot::if_none_match_hits;

const ATOM: &str = "application/atom+xml; charset=utf-8";

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

impl<P: Platform> Edge<P> {
    pub(super) async fn doc(&self, req: &Request<'_>, doc: Doc) -> Reply {
        let Some(s) = self.snapshot().await else {
            return Self::no_snapshot();
        };
        let Some(f) = &s.feeds else {
            return Reply::error(
                503,
                "unavailable",
                "the status origin has not sent history yet (it predates this Worker)",
            )
            .with("retry-after", "60");
        };
        let r = &s.report;
        let (kind, name) = match doc {
            Doc::History => (JSON, "h"),
            Doc::Atom => (ATOM, "a"),
            Doc::Summary => (JSON, "s"),
            Doc::SpStatus => (JSON, "t"),
        };
        // Content tag of the origin's documents, per document and per freshness.
        let etag = format!("\"{name}{}{}\"", f.tag, if r.stale { "s" } else { "" });
        let cc = self.cache_control(&s);
        if if_none_match_hits(req.if_none_match, &etag) {
            return Reply::new(304, kind, Body::Empty)
                .with("cache-control", cc)
                .with("etag", etag)
                .with("access-control-expose-headers", "ETag");
        }
        let page = || {
            format!(
                r#"{{"id":"kiln","name":"kiln","url":{},"time_zone":"Etc/UTC","updated_at":{}}}"#,
                json_str(&format!("{}/", req.base)),
                json_str(&r.generated_at)
            )
        };
        let body = match doc {
            Doc::History => format!(
                r#"{{"generatedAt":{},"stale":{},"presets":{}}}"#,
                json_str(&r.generated_at),
                r.stale,
                f.history
            ),
            Doc::Atom => f.atom.clone(),
            Doc::Summary => format!(
                r#"{{"page":{},"status":{},{}}}"#,
                page(),
                f.status,
                f.summary
            ),
            Doc::SpStatus => format!(r#"{{"page":{},"status":{}}}"#, page(), f.status),
        };
        Reply::new(200, kind, Body::Text(body))
            .with("cache-control", cc)
            .with("etag", etag)
            .with("access-control-expose-headers", "ETag")
    }

    pub(super) async fn metric_badge(&self, svg: bool, metric: Metric) -> Reply {
        let Some(s) = self.snapshot().await else {
            return Self::no_snapshot();
        };
        let (label, [message, tone]) = match (&s.feeds, metric) {
            (Some(f), Metric::Uptime30d) => ("uptime 30d", f.uptime30d.clone()),
            (Some(f), Metric::Age) => (
                "image age",
                kiln_shared::feeds::age_badge(&f.age, self.p.now()),
            ),
            (None, Metric::Uptime30d) => ("uptime 30d", ["n/a".into(), "none".into()]),
            (None, Metric::Age) => ("image age", ["n/a".into(), "none".into()]),
        };
        let (color, shields_color) = match tone.as_str() {
            "good" => ("#1f883d", "brightgreen"),
            "warn" => ("#9a6700", "yellow"),
            "bad" => ("#cf222e", "red"),
            _ => ("#6e7781", "lightgrey"),
        };
        let badge = Badge {
            label,
            message: if s.report.stale {
                format!("{message} (stale)")
            } else {
                message
            },
            color,
            shields_color,
        };
        let reply = if svg {
            Reply::new(200, SVG, Body::Text(kiln_web::render_badge_svg(&badge)))
        } else {
            Reply::new(200, JSON, Body::Text(kiln_web::render_badge_json(&badge)))
        };
        reply.with("cache-control", self.cache_control(&s))
    }
}
