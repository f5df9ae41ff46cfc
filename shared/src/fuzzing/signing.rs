//! Ingest verification: `verify` against an independent model of what it must accept.
//!
//! Half the cases start from a genuine signature made by `sign` and then change one
//! thing; the rest are arbitrary headers. The model accepts exactly when the signature
//! came from `sign` over the same secret, timestamp, method (case-insensitive), path and
//! body, inside the window.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Bytes;
use crate::signing::{self, SignatureError, SignedRequest};

const NOW: i64 = 1_800_000_000;

/// One side's view of a request.
#[derive(Debug, Clone, PartialEq)]
struct Inputs {
    secret: Vec<u8>,
    timestamp: Option<String>,
    signature: Option<String>,
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Target `ingest_verify`.
pub fn check(data: &[u8]) {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let window = match b.u8() % 8 {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => i64::MAX,
        4 => b.i64(),
        _ => signing::DEFAULT_WINDOW_SECS,
    };
    let skew = if flags & 0x80 != 0 {
        b.i64()
    } else {
        i64::from(b.u16() as i16)
    };
    let ts = NOW.saturating_add(skew);
    let secret = match b.u8() % 4 {
        0 => Vec::new(),
        1 => b"edge-origin-shared-secret".to_vec(),
        _ => b.short().to_vec(),
    };
    let method = b
        .pick(&["POST", "post", "GET", "RESPONSE", "P\nOST"])
        .to_owned();
    let method = if b.u8().is_multiple_of(4) {
        b.short_str()
    } else {
        method
    };
    let path = b
        .pick(&["/ingest", "/status", "/", "", "/ingest\n"])
        .to_owned();
    let path = if b.u8().is_multiple_of(4) {
        b.short_str()
    } else {
        path
    };
    let body_len = usize::from(b.u16() % 4097);
    let body = b.take(body_len).to_vec();

    let signed_case = flags & 1 == 1;
    let (signer, verifier) = if signed_case {
        let Ok(signature) = signing::sign(&secret, ts, &method, &path, &body) else {
            assert!(
                secret.is_empty() || !framing_ok(&method, &path),
                "sign refused usable inputs"
            );
            return;
        };
        let signer = Inputs {
            secret,
            timestamp: Some(ts.to_string()),
            signature: Some(signature),
            method,
            path,
            body,
        };
        let verifier = change(signer.clone(), (flags >> 1) % 12, &mut b);
        (Some(signer), verifier)
    } else {
        let timestamp = match b.u8() % 4 {
            0 => None,
            1 => Some(ts.to_string()),
            _ => Some(b.short_str()),
        };
        let signature = match b.u8() % 4 {
            0 => None,
            1 => Some(format!("v1={}", hex::encode(b.short()))),
            _ => Some(b.short_str()),
        };
        let verifier = Inputs {
            secret,
            timestamp,
            signature,
            method,
            path,
            body,
        };
        (None, verifier)
    };

    let request = SignedRequest {
        timestamp: verifier.timestamp.as_deref(),
        signature: verifier.signature.as_deref(),
        method: &verifier.method,
        path: &verifier.path,
        body: &verifier.body,
    };
    let actual = signing::verify(&verifier.secret, &request, NOW, window);
    let expected = model(signer.as_ref(), &verifier, window);
    assert_eq!(
        actual, expected,
        "verify disagrees with the model\nsigner: {signer:?}\nverifier: {verifier:?}\nwindow: {window}"
    );
}

/// The one change applied to a genuinely signed request before verifying it.
fn change(mut v: Inputs, how: u8, b: &mut Bytes<'_>) -> Inputs {
    match how {
        1 if !v.body.is_empty() => {
            let i = usize::from(b.u16()) % v.body.len();
            v.body[i] ^= 1 << (b.u8() % 8);
        }
        2 => v.secret.push(b.u8()),
        3 => v.method = b.short_str(),
        4 => v.path = b.short_str(),
        // Another spelling of the same timestamp.
        5 => {
            let ts = v.timestamp.take().unwrap_or_default();
            v.timestamp = Some(b.pick(&[" {}", "{} ", "+{}", "0{}"]).replace("{}", &ts));
        }
        6 => {
            let delta = i64::from(b.u8()) + 1;
            let ts: i64 = v.timestamp.as_deref().unwrap_or("0").parse().unwrap_or(0);
            v.timestamp = Some(ts.wrapping_sub(delta).to_string());
        }
        7 => {
            let sig = v.signature.take().unwrap_or_default();
            v.signature = Some(match b.u8() % 4 {
                0 => sig.to_ascii_uppercase(),
                1 => sig[..sig.len() - 2].to_owned(),
                2 => format!(" {sig}\t"),
                _ => sig.replacen("v1=", "v2=", 1),
            });
        }
        8 => v.timestamp = None,
        9 => v.signature = None,
        // Shift the boundary between path and body across a newline: the bytes fed to
        // the MAC stay the same, the request does not.
        10 => {
            let split_body = v.body.iter().position(|&c| c == b'\n');
            match (b.u8() % 2, split_body, v.path.rfind('\n')) {
                (0, Some(k), _) => {
                    let moved = String::from_utf8_lossy(&v.body[..k]).into_owned();
                    v.path = format!("{}\n{moved}", v.path);
                    v.body.drain(..=k);
                }
                (_, _, Some(j)) => {
                    v.body = [&v.path.as_bytes()[j + 1..], b"\n", &v.body].concat();
                    v.path.truncate(j);
                }
                _ => {}
            }
        }
        11 => v.method = v.method.to_ascii_lowercase(),
        _ => {}
    }
    v
}

/// Signing can only be injective if no field but the last (the body) holds the
/// separator.
fn framing_ok(method: &str, path: &str) -> bool {
    !method.contains('\n') && !path.contains('\n')
}

fn model(signer: Option<&Inputs>, v: &Inputs, window: i64) -> Result<i64, SignatureError> {
    if v.secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let (Some(ts), Some(sig)) = (&v.timestamp, &v.signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = ts.trim().parse().map_err(|_| SignatureError::Malformed)?;
    let tag = sig
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed)?;
    if !framing_ok(&v.method, &v.path) {
        return Err(SignatureError::Malformed);
    }
    if (i128::from(NOW) - i128::from(ts)).abs() > i128::from(window) {
        return Err(SignatureError::Expired);
    }
    let genuine = signer.is_some_and(|s| {
        key_block(&s.secret) == key_block(&v.secret)
            && s.timestamp.as_deref().and_then(|t| t.parse::<i64>().ok()) == Some(ts)
            && s.method.eq_ignore_ascii_case(&v.method)
            && s.path == v.path
            && s.body == v.body
            && tag == reference_tag(s)
    });
    if genuine {
        Ok(ts)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The key as HMAC uses it: hashed when longer than SHA-256's 64-byte block, then
/// zero-padded to the block. So `k` and `k\0` are the same key (RFC 2104, not a kiln
/// bug: both are the secret).
fn key_block(secret: &[u8]) -> Vec<u8> {
    let mut block = if secret.len() > 64 {
        Sha256::digest(secret).to_vec()
    } else {
        secret.to_vec()
    };
    block.resize(64, 0);
    block
}

/// HMAC-SHA256 computed here, not by `signing`, so a change to the signed message format
/// is a finding rather than silently agreed with.
fn reference_tag(s: &Inputs) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&s.secret).expect("HMAC takes any key");
    let ts = s.timestamp.as_deref().unwrap_or_default();
    mac.update(format!("{ts}\n{}\n{}\n", s.method.to_ascii_uppercase(), s.path).as_bytes());
    mac.update(&s.body);
    mac.finalize().into_bytes().to_vec()
}
