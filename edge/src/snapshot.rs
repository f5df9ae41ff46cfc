//! A status snapshot as the edge holds it: the parsed report plus the exact bytes served,
//! so the hot path answers from stored bytes without serialising again.

use kiln_shared::StatusReport;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub report: StatusReport,
    /// `report` as JSON: the `/status` body.
    pub body: String,
    /// Strong ETag of `body`, quoted.
    pub etag: String,
    /// When this edge last confirmed the snapshot (origin pull, ingest, or the decision
    /// to serve it stale): freshness is measured from here.
    pub checked_at: i64,
    /// The signed timestamp of the origin response or push it came from.
    pub signed_at: i64,
}

/// The stored form (Cache API body and KV value).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    checked_at: i64,
    signed_at: i64,
    report: StatusReport,
}

#[derive(Debug, thiserror::Error)]
#[error("stored snapshot is unreadable: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

impl Snapshot {
    pub fn new(report: StatusReport, signed_at: i64, checked_at: i64) -> Snapshot {
        // StatusReport is plain data: serialising it cannot fail.
        let body = serde_json::to_string(&report).expect("StatusReport serialises");
        let etag = etag_of(body.as_bytes());
        Snapshot {
            report,
            body,
            etag,
            checked_at,
            signed_at,
        }
    }

    /// The same data marked `"stale": true`, confirmed (as stale) at `now`.
    pub fn into_stale(self, now: i64) -> Snapshot {
        let mut report = self.report;
        report.stale = true;
        Snapshot::new(report, self.signed_at, now)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(&Envelope {
            checked_at: self.checked_at,
            signed_at: self.signed_at,
            report: self.report.clone(),
        })
        .expect("envelope serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let e: Envelope = serde_json::from_slice(bytes)?;
        Ok(Snapshot::new(e.report, e.signed_at, e.checked_at))
    }

    /// Seconds since the edge last confirmed it.
    pub fn age(&self, now: i64) -> i64 {
        now - self.checked_at
    }
}

/// `"<first 128 bits of SHA-256, hex>"`: strong, and changes with any byte of the body.
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
    fn etag_tracks_the_body() {
        let a = Snapshot::new(report("a"), 1, 2);
        let b = Snapshot::new(report("b"), 1, 2);
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, Snapshot::new(report("a"), 9, 9).etag);
        assert_eq!(a.etag.len(), 34);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
    }

    #[test]
    fn stale_changes_body_and_etag() {
        let a = Snapshot::new(report("a"), 1, 2);
        let s = a.clone().into_stale(50);
        assert!(s.body.contains("\"stale\":true"));
        assert_ne!(s.etag, a.etag);
        assert_eq!((s.signed_at, s.checked_at), (1, 50));
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let a = Snapshot::new(report("a"), 7, 8);
        assert_eq!(Snapshot::decode(a.encode().as_bytes()).unwrap(), a);
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
