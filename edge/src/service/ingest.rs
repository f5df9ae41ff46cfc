//! `POST /ingest`: a signed snapshot pushed by the Lambdas after each state change.

use kiln_shared::signing::{self, INGEST_PATH, SignedRequest};

use super::{Edge, Platform, Request};
use crate::body::{BodySource, ReadError, read_limited};
use crate::config::ORIGIN_SECRET;
use crate::http::{Body, JSON, NO_STORE, Reply};

/// A status report is a few KB; anything far larger is not one.
pub const MAX_INGEST_BYTES: usize = 512 * 1024;

impl<P: Platform> Edge<P> {
    pub(super) async fn ingest(&self, req: &Request<'_>, mut src: impl BodySource) -> Reply {
        let cfg = self.p.config();
        // The primary or, during a rotation, the secondary secret.
        let accepted = cfg.accepted();
        if accepted.is_empty() {
            // Which setting is missing is for the log, not for the caller.
            self.p.log(&format!(
                "ingest refused: no usable {ORIGIN_SECRET} (see /healthz)"
            ));
            return Reply::error(503, "ingest_disabled", "ingest is not configured");
        }
        let body = match read_limited(&mut src, req.content_length, MAX_INGEST_BYTES).await {
            Ok(b) => b,
            Err(e @ ReadError::TooLarge(_)) => {
                return Reply::error(413, "too_large", &e.to_string());
            }
            Err(e @ ReadError::Broken(_)) => {
                self.p.log(&format!("ingest refused: {e}"));
                return Reply::error(400, "bad_request", "body could not be read");
            }
        };
        let now = self.p.now();
        let signed = SignedRequest {
            timestamp: req.timestamp,
            signature: req.signature,
            method: "POST",
            path: INGEST_PATH,
            body: &body,
        };
        let ts = match signing::verify_any(&accepted, &signed, now, cfg.signature_window_secs) {
            Ok(ts) => ts,
            Err(e) => return self.refuse(&e.to_string()),
        };
        // Accepted, a push from the future would make every on-time push a "replay".
        if ts - now > cfg.max_clock_skew_secs {
            return self.refuse(&format!(
                "timestamp is {} s in the future (allowed clock skew: {} s)",
                ts - now,
                cfg.max_clock_skew_secs
            ));
        }
        let mem = self.p.memory();
        if ts <= mem.last_ingest.get() {
            return self.refuse("replayed: timestamp is not newer than the last accepted push");
        }
        let (mut report, feeds) = match crate::snapshot::decode_published(&body) {
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
        let kv_last = self.read_kv().await.map_or(0, |(_, k)| k.last_ingest);
        // Checked again after the await: another push may have been accepted meanwhile.
        if ts <= kv_last.max(mem.last_ingest.get()) {
            return self.refuse("replayed: timestamp is not newer than the last accepted push");
        }
        mem.last_ingest.set(ts);
        let snap = self.install(report, feeds, ts, now, Some(ts)).await;
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
