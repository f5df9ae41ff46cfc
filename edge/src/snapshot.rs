//! A status snapshot as the edge holds it: the parsed report plus the exact bytes served,
//! so the hot path answers from stored bytes without serialising again.
//!
//! The ETag and the KV comparison key come from the content, not the bytes: the origin
//! stamps a new `generatedAt` on every answer, and a tag that followed it would change on
//! every pull (no 304s) and make every pull look like news (a KV write each).

use kiln_shared::StatusReport;
use kiln_shared::feeds::{Feeds, Published};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub report: StatusReport,
    /// `report` as JSON: the `/status` body.
    pub body: String,
    /// ETag of the content (everything but `generatedAt`), quoted: same content, same
    /// tag, in every isolate and colo. A stale copy has its own tag.
    pub etag: String,
    /// Identity of the content for the KV write policy: `generatedAt` and `stale` excluded.
    pub content_key: String,
    /// When this edge last confirmed the snapshot (origin pull, ingest, or the decision
    /// to serve it stale): freshness is measured from here.
    pub checked_at: i64,
    /// The signed timestamp of the origin response or push it came from.
    pub signed_at: i64,
    /// The isolate that pulled or received it (0: unknown). That isolate refreshes it
    /// first; the colo's other isolates wait a grace period for its refresh.
    pub owner: u64,
    /// The history, feeds and badge documents the origin rendered with the report
    /// (`None` from an origin that predates them).
    pub feeds: Option<Feeds>,
}

/// The stored form (Cache API body and KV value).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    checked_at: i64,
    signed_at: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    owner: u64,
    /// KV only: the newest accepted push's signed timestamp (the replay guard), kept in
    /// the same value so a push costs one KV write.
    #[serde(default, skip_serializing_if = "is_zero_i")]
    last_ingest: i64,
    report: StatusReport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feeds: Option<Feeds>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
#[error("stored snapshot is unreadable: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

impl Snapshot {
    pub fn new(report: StatusReport, signed_at: i64, checked_at: i64) -> Snapshot {
        // StatusReport is plain data: serialising it cannot fail.
        let body = serde_json::to_string(&report).expect("StatusReport serialises");
        let (etag, content_key) = content_tags(&report);
        Snapshot {
            report,
            body,
            etag,
            content_key,
            checked_at,
            signed_at,
            owner: 0,
            feeds: None,
        }
    }

    pub fn with_feeds(mut self, feeds: Option<Feeds>) -> Snapshot {
        self.feeds = feeds;
        self
    }

    pub fn owned_by(mut self, owner: u64) -> Snapshot {
        self.owner = owner;
        self
    }

    /// The same data marked `"stale": true`, confirmed (as stale) at `now`.
    pub fn into_stale(self, now: i64) -> Snapshot {
        let owner = self.owner;
        let mut report = self.report;
        report.stale = true;
        Snapshot::new(report, self.signed_at, now)
            .owned_by(owner)
            .with_feeds(self.feeds)
    }

    /// The Cache API form.
    pub fn encode(&self) -> String {
        self.encode_with(0)
    }

    /// The KV form: with the replay guard's timestamp.
    pub fn encode_with(&self, last_ingest: i64) -> String {
        serde_json::to_string(&Envelope {
            checked_at: self.checked_at,
            signed_at: self.signed_at,
            owner: self.owner,
            last_ingest,
            report: self.report.clone(),
            feeds: self.feeds.clone(),
        })
        .expect("envelope serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        Self::decode_with(bytes).map(|(s, _)| s)
    }

    /// The snapshot and the replay guard's timestamp (0 when absent).
    pub fn decode_with(bytes: &[u8]) -> Result<(Snapshot, i64), DecodeError> {
        let e: Envelope = serde_json::from_slice(bytes)?;
        let snap = Snapshot::new(e.report, e.signed_at, e.checked_at)
            .owned_by(e.owner)
            .with_feeds(e.feeds);
        Ok((snap, e.last_ingest))
    }

    /// Seconds since the edge last confirmed it.
    pub fn age(&self, now: i64) -> i64 {
        now - self.checked_at
    }
}

/// An origin answer or push: `[report, feeds]`, or a bare report (an origin that
/// predates the feeds). One parse either way: the first byte tells which.
pub fn decode_published(body: &[u8]) -> Result<(StatusReport, Option<Feeds>), serde_json::Error> {
    if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<Published>(body).map(|p| (p.report, Some(p.feeds)))
    } else {
        serde_json::from_slice::<StatusReport>(body).map(|r| (r, None))
    }
}

/// `(etag, content_key)`. Both hash the report with `generatedAt` blanked; the ETag also
/// tells a stale copy from a fresh one, the content key does not.
fn content_tags(report: &StatusReport) -> (String, String) {
    let mut content = report.clone();
    content.generated_at.clear();
    let stale = std::mem::replace(&mut content.stale, false);
    let key = etag_of(
        serde_json::to_string(&content)
            .expect("StatusReport serialises")
            .as_bytes(),
    );
    let etag = if stale {
        etag_of(format!("{key} stale").as_bytes())
    } else {
        key.clone()
    };
    (etag, key)
}

/// `"<first 128 bits of SHA-256, hex>"`.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// RFC 9110 `If-None-Match` (weak comparison): `*` or any listed tag equal to `etag`.
pub fn if_none_match_hits(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else { return false };
    let bare = etag.trim_start_matches("W/");
    h.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kiln_shared::OverallStatus;

    pub(crate) fn report(message: &str) -> StatusReport {
        StatusReport {
            status: OverallStatus::NotConfigured,
            message: message.to_owned(),
            presets: vec![],
            generated_at: "2026-01-27T12:00:00Z".to_owned(),
            stale: false,
        }
    }

    #[test]
    fn etag_tracks_the_content_not_the_generation_time() {
        let a = Snapshot::new(report("a"), 1, 2);
        let b = Snapshot::new(report("b"), 1, 2);
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, Snapshot::new(report("a"), 9, 9).etag);
        let mut later = report("a");
        later.generated_at = "2026-01-27T12:00:15Z".to_owned();
        let regenerated = Snapshot::new(later, 3, 4);
        assert_ne!(regenerated.body, a.body);
        assert_eq!(
            regenerated.etag, a.etag,
            "a new generatedAt is not new content"
        );
        assert_eq!(regenerated.content_key, a.content_key);
        assert_eq!(a.etag.len(), 34);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
    }

    #[test]
    fn stale_changes_body_and_etag() {
        let a = Snapshot::new(report("a"), 1, 2);
        let s = a.clone().into_stale(50);
        assert!(s.body.contains("\"stale\":true"));
        assert_ne!(s.etag, a.etag);
        assert_eq!(
            s.content_key, a.content_key,
            "same content for the KV policy"
        );
        assert_eq!((s.signed_at, s.checked_at), (1, 50));
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let a = Snapshot::new(report("a"), 7, 8).owned_by(42);
        assert_eq!(Snapshot::decode(a.encode().as_bytes()).unwrap(), a);
        let (b, ingest) = Snapshot::decode_with(a.encode_with(99).as_bytes()).unwrap();
        assert_eq!((b, ingest), (a.clone(), 99));
        // Entries written before owners and the ingest field existed still read.
        let old = r#"{"checkedAt":8,"signedAt":7,"report":{"status":"not_configured","message":"a","presets":[],"generatedAt":"2026-01-27T12:00:00Z","stale":false}}"#;
        assert_eq!(Snapshot::decode_with(old.as_bytes()).unwrap().1, 0);
        assert!(Snapshot::decode(b"{}").is_err());
        assert!(Snapshot::decode(b"not json").is_err());
    }

    #[test]
    fn if_none_match() {
        let tag = "\"abc\"";
        assert!(if_none_match_hits(Some("\"abc\""), tag));
        assert!(if_none_match_hits(Some("\"x\", W/\"abc\""), tag));
        assert!(if_none_match_hits(Some("*"), tag));
        assert!(!if_none_match_hits(Some("\"abcd\""), tag));
        assert!(!if_none_match_hits(Some("abc"), tag));
        assert!(!if_none_match_hits(None, tag));
    }
}
