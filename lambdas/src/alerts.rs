//! Alerts on the stack's SNS topic (the one the failed-builds rule notifies), once per
//! transition: a warning raised or cleared — pipeline disabled, AMI too old or
//! missing, build revoked, no recent success. Reconcile compares the warnings with the
//! ones last announced, stored on the record, and moves that marker with a conditional
//! write before it sends, so two runs never announce one transition twice; a failed
//! send puts the marker back. Messages carry preset names, build versions, regions
//! and AMI ids; never ARNs or account ids.

use chrono::{DateTime, Utc};
use kiln_aws::release::{UpdateError, update_ami};
use kiln_shared::state::AmiRecord;
use kiln_shared::status::Warning;
use kiln_shared::status::warnings::warnings;

use crate::Deps;
use crate::observe::HandlerError;

/// Words that look like ARNs or account ids are replaced (reasons come from Image
/// Builder and may quote resources).
pub fn redact(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.contains("arn:") {
                "[resource]".to_owned()
            } else if w.len() >= 12 && w.chars().filter(char::is_ascii_digit).count() >= 12 {
                "[account]".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Raised and cleared warnings since the last announcement, announced once. Returns
/// whether an alert was sent.
pub async fn warning_transitions(
    deps: &Deps,
    preset: &str,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    if !deps.alerts.enabled() {
        return Ok(false);
    }
    let mut diff: Option<(Vec<Warning>, Vec<String>, Vec<String>)> = None;
    let decide = |r: &AmiRecord| {
        let current = warnings(r, now);
        let keys: Vec<String> = current.iter().map(Warning::key).collect();
        let before = r
            .health
            .as_ref()
            .map(|h| h.announced.clone())
            .unwrap_or_default();
        let raised: Vec<Warning> = current
            .iter()
            .filter(|w| !before.contains(&w.key()))
            .cloned()
            .collect();
        let cleared: Vec<String> = before
            .iter()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        diff = Some((raised, cleared, before));
        Ok::<_, std::convert::Infallible>(r.with_announced(keys, now))
    };
    let (_, written) = update_ami(deps.store.as_ref(), preset, decide)
        .await
        .map_err(|e| match e {
            UpdateError::Aws(e) => HandlerError::Aws(e),
            other => HandlerError::Contention {
                what: other.to_string(),
            },
        })?;
    let Some((raised, cleared, before)) = diff.filter(|_| written) else {
        return Ok(false);
    };
    let mut lines = Vec::new();
    for w in &raised {
        lines.push(format!("raised: {} ({})", w.message, w.code));
    }
    for k in &cleared {
        lines.push(format!("cleared: {k}"));
    }
    let subject = match (raised.len(), cleared.len()) {
        (0, _) => format!("kiln: {preset} warning cleared"),
        (_, 0) => format!("kiln: {preset} warning: {}", raised[0].short()),
        _ => format!("kiln: {preset} warnings changed"),
    };
    let message = format!("Preset {preset}:\n{}", lines.join("\n"));
    if let Err(e) = deps.alerts.publish(&subject, &redact(&message)).await {
        // Not sent: put the marker back so the next run announces it (at least once).
        let restore = update_ami(deps.store.as_ref(), preset, |r| {
            Ok::<_, std::convert::Infallible>(r.with_announced(before.clone(), now))
        })
        .await;
        if let Err(r) = restore {
            tracing::error!(preset, error = %r, "could not restore the announced warnings");
        }
        return Err(e.into());
    }
    tracing::info!(
        preset,
        raised = raised.len(),
        cleared = cleared.len(),
        "alert sent"
    );
    Ok(true)
}
