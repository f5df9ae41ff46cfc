//! Pulling the status from the origin: the signed request and the checks on its answer.
//!
//! Anything short of a 200 carrying a valid response signature and a well-formed report
//! is an [`OriginError`]; the caller then serves the last known good snapshot.

use kiln_shared::StatusReport;
use kiln_shared::signing::{
    self, RESPONSE_METHOD, SIGNATURE_HEADER, SignatureError, SignedRequest, TIMESTAMP_HEADER,
};

use crate::config::{Config, ORIGIN_SECRET, ORIGIN_URL};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("origin not configured: {0} is missing or invalid")]
    NotConfigured(&'static str),
    #[error("origin unreachable: {0}")]
    Transport(String),
    #[error("origin did not answer within {0} ms")]
    Timeout(u32),
    #[error("origin answered HTTP {0}")]
    Status(u16),
    #[error("origin response signature rejected: {0}")]
    Signature(SignatureError),
    #[error("origin response is not a valid status report: {0}")]
    Body(String),
    #[error("origin response is dated {0} s ahead of this clock (more than the allowed skew)")]
    FromTheFuture(i64),
}

/// The signed `GET {ORIGIN_URL}/status?nonce=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRequest {
    pub url: String,
    pub headers: [(&'static str, String); 2],
    pub timeout_ms: u32,
    /// What was signed (`/status?nonce=…`); the answer must be signed over it too.
    pub target: String,
}

/// What came back, as raw as the platform got it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginResponse {
    pub status: u16,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

/// The pull's request. `nonce` must be unique per pull (the origin answers a signature
/// once, and signs its answer over this pull's target).
pub fn request(cfg: &Config, now: i64, nonce: &str) -> Result<OriginRequest, OriginError> {
    let base = cfg
        .origin_url
        .as_deref()
        .ok_or(OriginError::NotConfigured(ORIGIN_URL))?;
    let secret = cfg
        .origin_secret
        .as_deref()
        .ok_or(OriginError::NotConfigured(ORIGIN_SECRET))?;
    let target = signing::origin_status_target(nonce);
    let sig = signing::sign(secret, now, "GET", &target, b"").map_err(OriginError::Signature)?;
    Ok(OriginRequest {
        url: format!("{base}{target}"),
        headers: [(TIMESTAMP_HEADER, now.to_string()), (SIGNATURE_HEADER, sig)],
        timeout_ms: cfg.origin_timeout_ms,
        target,
    })
}

/// Checks the origin's answer to `req`; returns the report and the response's signed
/// timestamp. A response signed for another request (a replayed answer) is refused.
pub fn verify(
    cfg: &Config,
    req: &OriginRequest,
    resp: &OriginResponse,
    now: i64,
) -> Result<(StatusReport, Option<kiln_shared::feeds::Feeds>, i64), OriginError> {
    if resp.status != 200 {
        return Err(OriginError::Status(resp.status));
    }
    // The primary or, during a rotation, the secondary secret.
    let accepted = cfg.accepted();
    if accepted.is_empty() {
        return Err(OriginError::NotConfigured(ORIGIN_SECRET));
    }
    let signed_at = signing::verify_any(
        &accepted,
        &SignedRequest {
            timestamp: resp.timestamp.as_deref(),
            signature: resp.signature.as_deref(),
            method: RESPONSE_METHOD,
            path: &req.target,
            body: &resp.body,
        },
        now,
        cfg.signature_window_secs,
    )
    .map_err(OriginError::Signature)?;
    if signed_at - now > cfg.max_clock_skew_secs {
        return Err(OriginError::FromTheFuture(signed_at - now));
    }
    let (mut report, feeds) = crate::snapshot::decode_published(&resp.body)
        .map_err(|e| OriginError::Body(e.to_string()))?;
    // The origin speaks for now; staleness is the edge's to declare.
    report.stale = false;
    Ok((report, feeds, signed_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;

    const NOW: i64 = 1_800_000_000;

    fn cfg() -> Config {
        Config {
            origin_url: Some("http://127.0.0.1:9".into()),
            origin_secret: Some(b"k".to_vec()),
            ..Config::default()
        }
    }

    const TARGET: &str = "/status?nonce=0000000000000001";

    fn pull() -> OriginRequest {
        request(&cfg(), NOW, "0000000000000001").unwrap()
    }

    fn signed(body: &[u8], ts: i64, key: &[u8]) -> OriginResponse {
        signed_for(body, ts, key, TARGET)
    }

    fn signed_for(body: &[u8], ts: i64, key: &[u8], target: &str) -> OriginResponse {
        OriginResponse {
            status: 200,
            timestamp: Some(ts.to_string()),
            signature: Some(signing::sign(key, ts, RESPONSE_METHOD, target, body).unwrap()),
            body: body.to_vec(),
        }
    }

    fn body() -> Vec<u8> {
        Snapshot::new(crate::snapshot::tests::report("hi"), 0, 0)
            .body
            .into_bytes()
    }

    #[test]
    fn request_is_signed_for_get_status_with_its_nonce() {
        let r = pull();
        assert_eq!(r.url, "http://127.0.0.1:9/status?nonce=0000000000000001");
        assert_eq!(r.target, TARGET);
        assert_eq!(r.headers[0], (TIMESTAMP_HEADER, NOW.to_string()));
        let check = |path: &str| {
            signing::verify(
                b"k",
                &SignedRequest {
                    timestamp: Some(&r.headers[0].1),
                    signature: Some(&r.headers[1].1),
                    method: "GET",
                    path,
                    body: b"",
                },
                NOW,
                300,
            )
        };
        assert_eq!(check(TARGET), Ok(NOW));
        assert_eq!(check("/status"), Err(SignatureError::Mismatch));
        // Two pulls in one second have different signatures (the origin answers each
        // signature once).
        let other = request(&cfg(), NOW, "0000000000000002").unwrap();
        assert_ne!(other.headers[1], r.headers[1]);
        let unconfigured = Config {
            origin_secret: None,
            ..cfg()
        };
        assert_eq!(
            request(&unconfigured, NOW, "0000000000000001"),
            Err(OriginError::NotConfigured(ORIGIN_SECRET))
        );
    }

    #[test]
    fn a_response_signed_for_another_pull_is_refused() {
        let c = cfg();
        for other in ["/status", "/status?nonce=0000000000000002"] {
            assert_eq!(
                verify(&c, &pull(), &signed_for(&body(), NOW, b"k", other), NOW),
                Err(OriginError::Signature(SignatureError::Mismatch)),
                "{other}"
            );
        }
    }

    #[test]
    fn accepts_a_signed_report() {
        let (report, _, ts) =
            verify(&cfg(), &pull(), &signed(&body(), NOW - 2, b"k"), NOW).unwrap();
        assert_eq!(report.message, "hi");
        assert_eq!(ts, NOW - 2);
    }

    #[test]
    fn refuses_everything_else() {
        let c = cfg();
        let mut bad_status = signed(&body(), NOW, b"k");
        bad_status.status = 502;
        assert_eq!(
            verify(&c, &pull(), &bad_status, NOW),
            Err(OriginError::Status(502))
        );
        assert_eq!(
            verify(&c, &pull(), &signed(&body(), NOW, b"other"), NOW),
            Err(OriginError::Signature(SignatureError::Mismatch))
        );
        assert_eq!(
            verify(&c, &pull(), &signed(&body(), NOW - 301, b"k"), NOW),
            Err(OriginError::Signature(SignatureError::Expired))
        );
        let unsigned = OriginResponse {
            status: 200,
            body: body(),
            ..Default::default()
        };
        assert_eq!(
            verify(&c, &pull(), &unsigned, NOW),
            Err(OriginError::Signature(SignatureError::Missing))
        );
        // Inside the signature window, yet ahead of the allowed clock skew.
        assert_eq!(
            verify(&c, &pull(), &signed(&body(), NOW + 121, b"k"), NOW),
            Err(OriginError::FromTheFuture(121))
        );
        assert!(verify(&c, &pull(), &signed(&body(), NOW + 120, b"k"), NOW).is_ok());
        // A request signature (GET) replayed as a response does not verify.
        let mut as_request = signed(&body(), NOW, b"k");
        as_request.signature = Some(signing::sign(b"k", NOW, "GET", TARGET, &body()).unwrap());
        assert_eq!(
            verify(&c, &pull(), &as_request, NOW),
            Err(OriginError::Signature(SignatureError::Mismatch))
        );
        // Signed garbage and extra (possibly leaking) fields are refused.
        assert!(matches!(
            verify(
                &c,
                &pull(),
                &signed(b"{\"status\":\"ready\"}", NOW, b"k"),
                NOW
            ),
            Err(OriginError::Body(_))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&body()).unwrap();
        v["accountId"] = "123456789012".into();
        let leaky = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            verify(&c, &pull(), &signed(&leaky, NOW, b"k"), NOW),
            Err(OriginError::Body(_))
        ));
    }

    #[test]
    fn the_secondary_secret_verifies_but_never_signs() {
        let c = Config {
            origin_secret_secondary: Some(b"next".to_vec()),
            ..cfg()
        };
        let r = request(&c, NOW, "0000000000000001").unwrap();
        assert_eq!(
            r.headers,
            pull().headers,
            "pulls are signed with the primary"
        );
        for key in [b"k".as_slice(), b"next"] {
            assert!(verify(&c, &r, &signed(&body(), NOW, key), NOW).is_ok());
        }
        assert_eq!(
            verify(&c, &r, &signed(&body(), NOW, b"other"), NOW),
            Err(OriginError::Signature(SignatureError::Mismatch))
        );
    }
}
