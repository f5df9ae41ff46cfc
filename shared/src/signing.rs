//! HMAC-SHA256 signatures between the edge and the origin (and the Lambdas' pushes to
//! the edge).
//!
//! The signed message binds the timestamp, method, path and body, so a signature for
//! one request cannot be replayed against another route, and a captured request is only
//! good within the timestamp window. Comparison is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-kiln-timestamp";
pub const SIGNATURE_HEADER: &str = "x-kiln-signature";
/// Path the edge requests from the origin (`GET {ORIGIN_URL}/status`), signed as such.
pub const ORIGIN_STATUS_PATH: &str = "/status";
/// The origin signs its response body with this pseudo-method and
/// [`ORIGIN_STATUS_PATH`], so a response cannot be replayed as a request.
pub const RESPONSE_METHOD: &str = "RESPONSE";
/// Where the Lambdas push snapshots to the edge (`POST {EDGE_URL}/ingest`).
pub const INGEST_PATH: &str = "/ingest";
/// Default accepted clock skew / request age, seconds.
pub const DEFAULT_WINDOW_SECS: i64 = 300;
/// Query parameter carrying the edge's per-request nonce on `GET /status`: part of the
/// signed target, so every pull has its own signature (the origin refuses a repeat) and
/// the origin's response, signed over the same target, answers that pull only.
pub const NONCE_PARAM: &str = "nonce";
/// Nonces are 8 to 64 characters of `[0-9a-zA-Z_-]`.
pub const MAX_NONCE_LEN: usize = 64;
const MIN_NONCE_LEN: usize = 8;
const SCHEME: &str = "v1=";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signing secret is not configured")]
    NoSecret,
    #[error("missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")]
    Missing,
    #[error("malformed timestamp or signature")]
    Malformed,
    #[error("request timestamp is outside the accepted window")]
    Expired,
    #[error("signature does not match")]
    Mismatch,
}

fn mac(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<HmacSha256, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    if !unambiguous(method, path) {
        return Err(SignatureError::Malformed);
    }
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::NoSecret)?;
    mac.update(format!("{timestamp}\n{}\n{path}\n", method.to_ascii_uppercase()).as_bytes());
    mac.update(body);
    Ok(mac)
}

/// Newlines separate the fields of the signed message, so only the last field (the
/// body) may contain one: otherwise `("/a\nb", "c")` and `("/a", "b\nc")` would share a
/// signature. Real methods and paths never hold a raw newline.
fn unambiguous(method: &str, path: &str) -> bool {
    !method.contains('\n') && !path.contains('\n')
}

/// The `x-kiln-signature` value for a request: `v1=<hex>`.
pub fn sign(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<String, SignatureError> {
    let tag = mac(secret, timestamp, method, path, body)?
        .finalize()
        .into_bytes();
    Ok(format!("{SCHEME}{}", hex::encode(tag)))
}

/// What a request is signed over: its path, plus `?query` when there is one.
pub fn request_target(path: &str, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

/// The edge's signed target for one pull: `/status?nonce=<nonce>`.
pub fn origin_status_target(nonce: &str) -> String {
    format!("{ORIGIN_STATUS_PATH}?{NONCE_PARAM}={nonce}")
}

/// The nonce of a target of exactly the form [`origin_status_target`] makes (no other
/// path, parameter or spelling), else `None`.
pub fn status_nonce(target: &str) -> Option<&str> {
    let nonce = target
        .strip_prefix(ORIGIN_STATUS_PATH)?
        .strip_prefix('?')?
        .strip_prefix(NONCE_PARAM)?
        .strip_prefix('=')?;
    let ok = (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(nonce)
}

/// The MAC a `v1=<hex>` signature carries (hex of either case), for replay memories
/// that must see two spellings of one signature as the same.
pub fn signature_tag(signature: &str) -> Option<Vec<u8>> {
    signature
        .trim()
        .strip_prefix(SCHEME)
        .and_then(|h| hex::decode(h).ok())
}

/// A request's signature inputs as they arrived.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

/// Verifies a request; returns its timestamp (callers use it to refuse replays).
pub fn verify(
    secret: &[u8],
    req: &SignedRequest<'_>,
    now: i64,
    window_secs: i64,
) -> Result<i64, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let (Some(ts), Some(sig)) = (req.timestamp, req.signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = ts.trim().parse().map_err(|_| SignatureError::Malformed)?;
    let tag = signature_tag(sig).ok_or(SignatureError::Malformed)?;
    if !unambiguous(req.method, req.path) {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff` because a hostile timestamp (i64::MIN) overflows `now - ts`.
    if !u64::try_from(window_secs).is_ok_and(|w| now.abs_diff(ts) <= w) {
        return Err(SignatureError::Expired);
    }
    mac(secret, ts, req.method, req.path, req.body)?
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(ts)
}

/// [`verify`] against each of `secrets` in turn (a rotation in progress: current, then
/// previous); the first that matches wins, any other error stops at once.
pub fn verify_any(
    secrets: &[&[u8]],
    req: &SignedRequest<'_>,
    now: i64,
    window_secs: i64,
) -> Result<i64, SignatureError> {
    let mut last = SignatureError::NoSecret;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        match verify(secret, req, now, window_secs) {
            Err(SignatureError::Mismatch) => last = SignatureError::Mismatch,
            done => return done,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"edge-origin-shared-secret";
    const NOW: i64 = 1_800_000_000;

    fn req<'a>(ts: &'a str, sig: &'a str, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            timestamp: Some(ts),
            signature: Some(sig),
            method: "POST",
            path: "/ingest",
            body,
        }
    }

    #[test]
    fn verify_any_tries_each_secret_but_stops_on_other_errors() {
        let sig = sign(b"second", NOW, "POST", "/ingest", b"{}").unwrap();
        let ts = NOW.to_string();
        let r = req(&ts, &sig, b"{}");
        assert_eq!(verify_any(&[KEY, b"second"], &r, NOW, 60), Ok(NOW));
        assert_eq!(verify_any(&[b"second", KEY], &r, NOW, 60), Ok(NOW));
        assert_eq!(
            verify_any(&[KEY], &r, NOW, 60),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_any(&[KEY, b"second"], &r, NOW + 61, 60),
            Err(SignatureError::Expired)
        );
        assert_eq!(verify_any(&[], &r, NOW, 60), Err(SignatureError::NoSecret));
        assert_eq!(
            verify_any(&[b""], &r, NOW, 60),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn round_trip() {
        let sig = sign(KEY, NOW, "POST", "/ingest", b"{}").unwrap();
        assert_eq!(
            verify(KEY, &req(&NOW.to_string(), &sig, b"{}"), NOW + 10, 300),
            Ok(NOW)
        );
    }

    #[test]
    fn rejects_tampering_wrong_key_staleness_and_garbage() {
        let ts = NOW.to_string();
        let sig = sign(KEY, NOW, "POST", "/ingest", b"{\"a\":1}").unwrap();
        assert_eq!(
            verify(KEY, &req(&ts, &sig, b"{\"a\":2}"), NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other key", &req(&ts, &sig, b"{\"a\":1}"), NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(KEY, &req(&ts, &sig, b"{\"a\":1}"), NOW + 301, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(KEY, &req(&ts, &sig, b"{\"a\":1}"), NOW - 301, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(KEY, &req("soon", &sig, b""), NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(KEY, &req(&ts, "v1=zz", b""), NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(KEY, &req(&ts, &sig[3..], b""), NOW, 300),
            Err(SignatureError::Malformed)
        );
        let other_path = SignedRequest {
            path: "/status",
            ..req(&ts, &sig, b"{\"a\":1}")
        };
        assert_eq!(
            verify(KEY, &other_path, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        let missing = SignedRequest {
            signature: None,
            ..req(&ts, &sig, b"")
        };
        assert_eq!(
            verify(KEY, &missing, NOW, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"", &req(&ts, &sig, b""), NOW, 300),
            Err(SignatureError::NoSecret)
        );
        // A timestamp moved forward with the old signature fails: it is signed.
        let moved = (NOW + 1).to_string();
        assert_eq!(
            verify(KEY, &req(&moved, &sig, b"{\"a\":1}"), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn extreme_timestamps_are_expired_not_a_panic() {
        let sig = sign(KEY, NOW, "POST", "/ingest", b"").unwrap();
        for ts in [i64::MIN, i64::MAX, -1] {
            assert_eq!(
                verify(KEY, &req(&ts.to_string(), &sig, b""), NOW, 300),
                Err(SignatureError::Expired),
                "{ts}"
            );
        }
        assert_eq!(
            verify(KEY, &req(&NOW.to_string(), &sig, b""), NOW, -1),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn newline_cannot_move_bytes_between_path_and_body() {
        // Both would be the MAC input "ts\nPOST\n/ingest\nx\n{}".
        assert_eq!(
            sign(KEY, NOW, "POST", "/ingest\nx", b"{}"),
            Err(SignatureError::Malformed)
        );
        let sig = sign(KEY, NOW, "POST", "/ingest", b"x\n{}").unwrap();
        let ts = NOW.to_string();
        let moved = SignedRequest {
            path: "/ingest\nx",
            ..req(&ts, &sig, b"{}")
        };
        assert_eq!(
            verify(KEY, &moved, NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            sign(KEY, NOW, "PO\nST", "/", b""),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn targets_bind_path_and_query_and_nonces_have_one_form() {
        assert_eq!(request_target("/status", None), "/status");
        assert_eq!(request_target("/status", Some("")), "/status");
        assert_eq!(request_target("/status", Some("x=1")), "/status?x=1");
        let target = origin_status_target("abcdef0123456789");
        assert_eq!(target, "/status?nonce=abcdef0123456789");
        assert_eq!(status_nonce(&target), Some("abcdef0123456789"));
        for bad in [
            "/status",
            "/status?",
            "/status/?nonce=abcdef0123456789",
            "/status?nonce=abcdef0123456789&x=1",
            "/status?x=1&nonce=abcdef0123456789",
            "/status?nonce=short",
            "/status?nonce=abc%20def0123456789",
            "/statusx?nonce=abcdef0123456789",
        ] {
            assert_eq!(status_nonce(bad), None, "{bad}");
        }
        assert_eq!(status_nonce(&origin_status_target(&"n".repeat(65))), None);
        // A signature over one target does not verify on another.
        let sig = sign(KEY, NOW, "GET", &target, b"").unwrap();
        let ts = NOW.to_string();
        for other in [
            "/status",
            "/status/",
            "/status?x=1",
            "/status?nonce=abcdef0123456788",
        ] {
            let r = SignedRequest {
                method: "GET",
                path: other,
                ..req(&ts, &sig, b"")
            };
            assert_eq!(
                verify(KEY, &r, NOW, 300),
                Err(SignatureError::Mismatch),
                "{other}"
            );
        }
        assert_eq!(
            signature_tag(&sig.to_ascii_uppercase().replacen("V1=", "v1=", 1)),
            signature_tag(&sig)
        );
    }

    proptest! {
        #[test]
        fn any_single_byte_flip_is_rejected(body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let sig = sign(KEY, NOW, "POST", "/ingest", &body).unwrap();
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] ^= 1 << bit;
            let ts = NOW.to_string();
            prop_assert_eq!(verify(KEY, &req(&ts, &sig, &tampered), NOW, 300), Err(SignatureError::Mismatch));
        }
    }
}
