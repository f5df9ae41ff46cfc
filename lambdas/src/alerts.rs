//! Warning transitions: logged on the record for the Atom feed, and alerts on the stack's SNS topic (the one the failed-builds rule notifies), once per
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

/// Logs the warnings raised and cleared since the last run on the record (the feed's
/// warning entries) and, when alerts are configured, announces them once. Returns
/// whether the record changed (the snapshot then needs a push).
pub async fn warning_transitions(
    deps: &Deps,
    preset: &str,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let alerts = deps.alerts.enabled();
    let mut diff: Option<(Vec<Warning>, Vec<String>, Vec<String>)> = None;
    let decide = |r: &AmiRecord| {
        diff = None;
        let current = warnings(r, now);
        let pairs: Vec<(String, String)> = current
            .iter()
            .map(|w| (w.key(), w.message.clone()))
            .collect();
        let logged = r.with_transitions(&pairs, now);
        if !alerts {
            return Ok::<_, std::convert::Infallible>(logged);
        }
        let base = logged.as_ref().unwrap_or(r);
        let keys: Vec<String> = pairs.into_iter().map(|(k, _)| k).collect();
        let before = base
            .health
            .as_ref()
            .map(|h| h.announced.clone())
            .unwrap_or_default();
        let Some(announced) = base.with_announced(keys.clone(), now) else {
            return Ok(logged);
        };
        let raised: Vec<Warning> = current
            .into_iter()
            .filter(|w| !before.contains(&w.key()))
            .collect();
        let cleared: Vec<String> = before
            .iter()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        diff = Some((raised, cleared, before));
        Ok(Some(announced))
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
        return Ok(written);
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
