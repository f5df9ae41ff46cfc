//! `ami-update`: one Image Builder state-change event → the AMI record, the runner
//! configs, the build history and a push to the edge.
//!
//! The event becomes an observation and goes through [`observe`], the code path
//! reconciliation uses too.

use chrono::Utc;
use kiln_shared::ImageStateChange;
use serde_json::Value;

use crate::Deps;
use crate::observe::{HandlerError, Outcome, observation, observe};
use crate::snapshot::push_snapshot;

/// Why an event was acknowledged without any write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    Malformed(String),
    /// GetImage knows no such image.
    UnknownImage(String),
    /// The image's pipeline is not one of this stack's presets.
    UnknownPipeline(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAck {
    Ignored(Ignored),
    Processed(Box<Outcome>),
}

impl EventAck {
    /// A short JSON summary (the Lambda's return value, shown by `cargo lambda invoke`).
    pub fn summary(&self) -> Value {
        match self {
            EventAck::Ignored(why) => serde_json::json!({ "ignored": format!("{why:?}") }),
            EventAck::Processed(o) => serde_json::json!({
                "preset": o.preset,
                "recordWritten": o.record_written,
                "noop": o.noop.map(|n| format!("{n:?}")),
                "configsUpdated": o.configs_updated,
                "configsRefused": o.configs_refused,
                "buildWritten": o.build_written,
            }),
        }
    }
}

/// The `ami-update` handler: never fails for bad input (acknowledged, one log line),
/// fails for AWS errors so that Lambda retries the event.
pub async fn handle_event(deps: &Deps, event: Value) -> Result<EventAck, HandlerError> {
    let change = match ImageStateChange::from_value(event) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "malformed event acknowledged without a write");
            return Ok(EventAck::Ignored(Ignored::Malformed(e.to_string())));
        }
    };
    let arn = change.image.arn.as_str();
    let Some(image) = deps.images.get_image(arn).await? else {
        tracing::warn!(image = arn, state = %change.state, "image unknown to Image Builder; event acknowledged");
        return Ok(EventAck::Ignored(Ignored::UnknownImage(arn.to_owned())));
    };
    let pipeline = image.source_pipeline_name.clone().unwrap_or_default();
    let preset = match deps.config.preset_of_pipeline(&pipeline) {
        Some(name) => deps.store.get_preset(name).await?,
        None => None,
    };
    let Some(preset) = preset else {
        tracing::warn!(
            pipeline,
            image = arn,
            "image from a pipeline that is not a kiln preset; event acknowledged"
        );
        return Ok(EventAck::Ignored(Ignored::UnknownPipeline(pipeline)));
    };
    let reason = change.reason.clone().or(image.reason.clone());
    let obs = observation(&preset, &image, change.state, change.time, reason);
    tracing::info!(
        preset = obs.preset,
        state = %obs.state,
        build = change.image.build_version(),
        event_id = change.id.as_deref().unwrap_or(""),
        "image state change"
    );
    let outcome = observe(deps, &preset, &obs).await?;
    if outcome.record_written {
        push_snapshot(deps, change.time.max(Utc::now())).await;
    }
    Ok(EventAck::Processed(Box::new(outcome)))
}
