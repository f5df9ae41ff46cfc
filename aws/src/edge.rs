//! Pushing snapshots to the edge (`POST {edge}/ingest`), signed, best effort.
//!
//! The edge also pulls `/status` on its own, so a failed push only delays freshness:
//! callers log the error and carry on, never failing the handler for it.

use std::time::Duration;

use kiln_shared::feeds::Published;
use kiln_shared::signing::{self, INGEST_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::BoxFut;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("signing the snapshot: {0}")]
    Sign(#[from] signing::SignatureError),
    #[error("POST {INGEST_PATH}: {0}")]
    Http(String),
    #[error("POST {INGEST_PATH}: edge answered {0}")]
    Status(u16),
}

pub trait EdgePusher: Send + Sync {
    /// `false` when no edge is configured (callers then skip building a snapshot).
    fn enabled(&self) -> bool {
        true
    }
    /// Signs with `secret` (the edge secret's current version, which the caller keeps
    /// fresh) and sends.
    fn push<'a>(
        &'a self,
        published: &'a Published,
        secret: &'a [u8],
    ) -> BoxFut<'a, Result<(), PushError>>;
}

/// No edge configured: pushing is a no-op.
pub struct NoEdge;

impl EdgePusher for NoEdge {
    fn enabled(&self) -> bool {
        false
    }
    fn push<'a>(
        &'a self,
        _published: &'a Published,
        _secret: &'a [u8],
    ) -> BoxFut<'a, Result<(), PushError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Signs and POSTs the report with a short timeout.
pub struct HttpEdge {
    url: String,
    http: reqwest::Client,
}

impl HttpEdge {
    /// `base` is the Worker's origin (`https://status.example.com`).
    pub fn new(base: &str, timeout: Duration) -> Self {
        HttpEdge {
            url: format!("{}{INGEST_PATH}", base.trim_end_matches('/')),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .expect("reqwest client builds"),
        }
    }
}

impl EdgePusher for HttpEdge {
    fn push<'a>(
        &'a self,
        published: &'a Published,
        secret: &'a [u8],
    ) -> BoxFut<'a, Result<(), PushError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(published).expect("snapshot serialises");
            let ts = chrono::Utc::now().timestamp();
            let sig = signing::sign(secret, ts, "POST", INGEST_PATH, &body)?;
            let resp = self
                .http
                .post(&self.url)
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| PushError::Http(e.to_string()))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(PushError::Status(resp.status().as_u16()))
            }
        })
    }
}
