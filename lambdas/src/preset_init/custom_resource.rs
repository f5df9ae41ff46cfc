//! The CloudFormation side of preset-init: the request, the work each RequestType does
//! for a group, and the bounded answer PUT to the pre-signed ResponseURL.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApplyReport, InitError, apply_group, apply_presets, parse_properties, remove_group};
use crate::Deps;

/// Errors of the handler itself (as opposed to the deploy it reports on).
#[derive(Debug, thiserror::Error)]
pub enum CustomResourceError {
    #[error("not a CloudFormation custom resource event: {0}")]
    BadEvent(String),
    #[error("could not deliver the response to CloudFormation: {0}")]
    Respond(String),
}

/// The parts of a CloudFormation custom resource request kiln reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CfnRequest {
    pub request_type: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Value,
    /// The properties before an Update.
    #[serde(default)]
    pub old_resource_properties: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CfnResponse {
    pub status: String,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The answer's `Data`: counts only, so the response stays far under CloudFormation's
/// 4,096 bytes however many presets a group holds (the names are in the logs).
pub fn summary(report: &ApplyReport) -> Value {
    serde_json::json!({
        "Created": report.created.len(),
        "Changed": report.changed.len(),
        "Unchanged": report.unchanged.len(),
        "Removed": report.removed.len(),
        "Started": report.started.len(),
        "ConfigsRefused": report.configs_refused.len(),
    })
}

/// The group a custom resource belongs to (property `Group`), when it has one.
fn group(props: &Value) -> Option<&str> {
    props.get("Group").and_then(Value::as_str)
}

/// The preset names of properties, for removal: unreadable properties name none (so
/// nothing is removed by mistake).
fn preset_names(props: &Value) -> BTreeSet<String> {
    let presets = match props.get("Presets") {
        Some(Value::String(text)) => serde_json::from_str::<Vec<Value>>(text).ok(),
        Some(Value::Array(items)) => Some(items.clone()),
        _ => None,
    };
    presets
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Handles one custom resource event and answers CloudFormation. `budget` bounds the
/// work so the answer goes out before Lambda's own timeout. `Err` only when no answer
/// could be delivered (or the event has no ResponseURL).
pub async fn handle_custom_resource(
    deps: &Deps,
    http: &reqwest::Client,
    event: Value,
    budget: Duration,
) -> Result<CfnResponse, CustomResourceError> {
    let req: CfnRequest =
        serde_json::from_value(event).map_err(|e| CustomResourceError::BadEvent(e.to_string()))?;
    let response = respond(deps, &req, budget).await;
    send_response(http, &req.response_url, &response).await?;
    Ok(response)
}

/// What to answer a request (after doing its work); the answer is not sent.
pub async fn respond(deps: &Deps, req: &CfnRequest, budget: Duration) -> CfnResponse {
    let props = &req.resource_properties;
    let physical = req
        .physical_resource_id
        .clone()
        .unwrap_or_else(|| match group(props) {
            Some(g) => format!("{}-presets-{g}", deps.config.prefix),
            None => format!("{}-presets", deps.config.prefix),
        });
    tracing::info!(
        request_type = req.request_type,
        stack = req.stack_id,
        group = group(props).unwrap_or("-"),
        "custom resource request"
    );
    let work = async {
        match req.request_type.as_str() {
            // A group's nested stack is going: its presets stop being listed. Records,
            // history and configs are kept; a resource of an older kiln (no `Group`,
            // every preset of the stack) removes nothing.
            "Delete" => match group(props) {
                Some(_) => remove_group(deps, &preset_names(props)).await.map(Some),
                None => Ok(None),
            },
            "Create" | "Update" => {
                let parsed = parse_properties(props, &deps.config.prefix)?;
                // Create: nothing of this group existed before. Update: the old list.
                let previous = if req.request_type == "Update" {
                    preset_names(&req.old_resource_properties)
                } else {
                    BTreeSet::new()
                };
                let report = if group(props).is_some() {
                    apply_group(
                        deps,
                        &parsed.presets,
                        &parsed.pipelines,
                        &previous,
                        Utc::now(),
                    )
                    .await?
                } else {
                    apply_presets(deps, &parsed.presets, &parsed.pipelines, Utc::now()).await?
                };
                Ok(Some(report))
            }
            other => Err(InitError::Invalid(format!("unknown RequestType '{other}'"))),
        }
    };
    let result: Result<Option<ApplyReport>, InitError> =
        match tokio::time::timeout(budget, work).await {
            Ok(r) => r,
            Err(_) => Err(InitError::TimedOut),
        };
    if let Ok(Some(r)) = &result {
        // The names CloudFormation's answer leaves out.
        tracing::info!(
            created = ?r.created,
            changed = ?r.changed,
            removed = ?r.removed,
            started = ?r.started.keys().collect::<Vec<_>>(),
            configs_refused = ?r.configs_refused,
            "presets of this resource"
        );
    }
    let (status, reason, data) = match result {
        Ok(report) => (
            "SUCCESS",
            format!("{} done", req.request_type),
            report.as_ref().map(summary),
        ),
        // A Delete that fails would leave the stack unable to go: report it, answer
        // SUCCESS (at worst a removed preset stays listed until the next deploy).
        Err(e) if req.request_type == "Delete" => {
            tracing::error!(error = %e, "removing the group's presets failed");
            (
                "SUCCESS",
                truncate(&format!("Delete done; presets not removed: {e}"), 1000),
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "custom resource failed");
            ("FAILED", truncate(&e.to_string(), 1000), None)
        }
    };
    CfnResponse {
        status: status.into(),
        reason,
        physical_resource_id: physical,
        stack_id: req.stack_id.clone(),
        request_id: req.request_id.clone(),
        logical_resource_id: req.logical_resource_id.clone(),
        data,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// PUTs the answer to the pre-signed URL; a few attempts, because a lost answer leaves
/// the stack waiting for an hour.
async fn send_response(
    http: &reqwest::Client,
    url: &str,
    response: &CfnResponse,
) -> Result<(), CustomResourceError> {
    let body = serde_json::to_string(response).expect("response serialises");
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        // Pre-signed S3 URLs are signed without a content type: send none.
        match http.put(url).body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(status = response.status, "answered CloudFormation");
                return Ok(());
            }
            Ok(r) => last = format!("ResponseURL answered {}", r.status()),
            // The URL is pre-signed: whoever reads it can answer for this stack.
            Err(e) => last = e.without_url().to_string(),
        }
        tracing::warn!(attempt, error = last, "answering CloudFormation failed");
    }
    Err(CustomResourceError::Respond(last))
}
