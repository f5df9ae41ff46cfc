//! `status-origin`: the signed `/status` origin the edge pulls from.
//!
//! One paginated GSI query reads every AMI record, one more the PRESET items (presets
//! without a record yet show as `not_configured`; records of presets no longer
//! configured are hidden). Stale records are reconciled inline — only for a request
//! whose signature verified and was not seen before — within a time budget well under
//! the edge's origin timeout, each preset at most once per container per memo period;
//! what the budget leaves is healed by the scheduled `reconcile`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::{HeaderMap, Response, StatusCode};
use kiln_aws::AwsError;
use kiln_shared::StatusReport;
use kiln_shared::feeds::Published;
use kiln_shared::signing::{
    self, DEFAULT_WINDOW_SECS, RESPONSE_METHOD, SIGNATURE_HEADER, SignatureError, SignedRequest,
    TIMESTAMP_HEADER,
};
use kiln_shared::state::AmiRecord;

use crate::Deps;
use crate::reconcile::{is_stale, reconcile_preset};
use crate::secret;
use crate::snapshot::report;

/// The status with stale records reconciled inline (bounded by the time budget).
pub async fn status(deps: &Deps, now: DateTime<Utc>) -> Result<StatusReport, AwsError> {
    Ok(status_and_records(deps, now).await?.0)
}

/// [`status`] and the records it was built from.
async fn status_and_records(
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<(StatusReport, Vec<AmiRecord>), AwsError> {
    let (mut records, presets) =
        futures::try_join!(deps.store.list_ami(), deps.store.list_presets())?;
    let due: Vec<String> = {
        let mut memo = deps
            .inline_reconciled
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let at = Instant::now();
        let due: Vec<String> = records
            .iter()
            .filter(|r| is_stale(r, now, deps.config.stale_after))
            .filter(|r| {
                memo.get(&r.preset)
                    .is_none_or(|t| at.duration_since(*t) >= deps.config.status_memo)
            })
            .map(|r| r.preset.clone())
            .collect();
        for p in &due {
            memo.insert(p.clone(), at);
        }
        due
    };
    if !due.is_empty() {
        let due_records: Vec<AmiRecord> = records
            .iter()
            .filter(|r| due.contains(&r.preset))
            .cloned()
            .collect();
        let work = futures::stream::iter(due_records)
            .map(|r| async move { (r.preset.clone(), reconcile_preset(deps, &r, now).await) })
            .buffer_unordered(deps.config.reconcile_concurrency.max(1))
            .collect::<Vec<_>>();
        match tokio::time::timeout(deps.config.status_budget, work).await {
            Ok(results) => {
                for (preset, result) in results {
                    match result {
                        Ok(Some(o)) => {
                            if let Some(fresh) = o.record
                                && let Some(slot) = records.iter_mut().find(|r| r.preset == preset)
                            {
                                *slot = fresh;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(preset, error = %e, "inline reconcile failed"),
                    }
                }
            }
            Err(_) => tracing::warn!(
                budget_ms = deps.config.status_budget.as_millis() as u64,
                "inline reconcile exceeded its budget; serving what is stored"
            ),
        }
    }
    Ok((report(&presets, &records, now), records.items))
}

/// [`status`] and the history rollups (read beside it): the origin's answer.
pub async fn published(deps: &Deps, now: DateTime<Utc>) -> Result<Published, AwsError> {
    let ((report, records), rollups) =
        futures::try_join!(status_and_records(deps, now), crate::history::rollups(deps))?;
    Ok(crate::history::published(report, &rollups, &records, now))
}

/// A minimal HTTP request, independent of the Lambda adapter (tests call this directly).
pub struct OriginRequest<'a> {
    pub method: &'a str,
    /// The path and query as received (`/status?nonce=…`): what the signature covers.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

fn json_error(status: StatusCode, message: &str) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(serde_json::json!({ "error": message }).to_string())
        .expect("static response")
}

/// The Function URL handler: verify → status → signed JSON. Errors are JSON with a
/// generic message (details go to the log, never to the caller).
pub async fn handle_request(
    deps: &Deps,
    req: OriginRequest<'_>,
    now: DateTime<Utc>,
) -> Response<String> {
    let keys = match deps.edge_secret.keys().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "no edge secret; refusing every request");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "origin is not configured",
            );
        }
    };
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedRequest {
        timestamp: header(TIMESTAMP_HEADER),
        signature: header(SIGNATURE_HEADER),
        method: req.method,
        path: req.path,
        body: req.body,
    };
    // The signature covers the method, path and query as received: one made for
    // `GET /status?nonce=…` verifies on nothing else. Both live versions of the secret
    // verify (a rotation in progress); matching neither may mean this container's copy
    // is older than the edge's, so it reads again (at most once per 30 s) and retries.
    let now_ts = now.timestamp();
    let mut verified = secret::verify(&keys, &signed, now_ts, DEFAULT_WINDOW_SECS);
    let mut keys = keys;
    if verified == Err(SignatureError::Mismatch)
        && let Some(fresh) = deps.edge_secret.refresh_on_mismatch().await
    {
        verified = secret::verify(&fresh, &signed, now_ts, DEFAULT_WINDOW_SECS);
        keys = fresh;
    }
    let ts = match verified {
        Ok(ts) => ts,
        Err(e) => {
            tracing::warn!(error = %e, path = %kiln_shared::event::echo(req.path), "request refused: bad signature");
            return json_error(StatusCode::UNAUTHORIZED, "invalid or missing signature");
        }
    };
    let tag = signed
        .signature
        .and_then(signing::signature_tag)
        .unwrap_or_default();
    let admitted =
        deps.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(&tag, ts, now.timestamp());
    if let Err(e) = admitted {
        tracing::warn!(error = %e, "request refused: replayed signature");
        return json_error(StatusCode::UNAUTHORIZED, "invalid or missing signature");
    }
    if !req.method.eq_ignore_ascii_case("GET") {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported");
    }
    if signing::status_nonce(req.path).is_none() {
        return json_error(StatusCode::NOT_FOUND, "not found");
    }
    // Only now, with the caller known to be the edge, may this request cost Image
    // Builder calls and writes (inline reconcile, bounded by the budget).
    let published = match published(deps, now).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "status unavailable");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "status temporarily unavailable",
            );
        }
    };
    let body = serde_json::to_string(&published).expect("snapshot serialises");
    let report = &published.report;
    let ts = now.timestamp();
    // Signed over the request's own target (its nonce): the answer to this pull only.
    let sig = match signing::sign(
        keys.current.expose().as_bytes(),
        ts,
        RESPONSE_METHOD,
        req.path,
        body.as_bytes(),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "signing the response failed");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    tracing::info!(
        status = report.status.as_str(),
        presets = report.presets.len(),
        "status served"
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, sig)
        .body(body)
        .expect("valid response")
}
