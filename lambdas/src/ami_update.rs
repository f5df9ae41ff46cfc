//! `ami-update`: one Image Builder state-change event → the AMI record, the runner
//! configs, the build history and a push to the edge.
//!
//! Every check that needs no AWS call comes first (parse, "is this ours" from the ARN,
//! clock skew), then the PRESET item, and only then GetImage: a foreign or removed
//! preset's event never reaches Image Builder (where it would be AccessDenied and
//! retried into the DLQ). The event then becomes an observation and goes through
//! [`observe`], the code path reconciliation uses too.

use chrono::{DateTime, Utc};
use kiln_shared::event::EventError;
use kiln_shared::{ImageStateChange, time};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Deps;
use crate::observe::{HandlerError, Outcome, observation, observe};
use crate::snapshot::push_snapshot;

/// Why an event was acknowledged without any write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    Malformed(String),
    /// The image's recipe is not `<prefix>-<preset>` of a preset of this deployment
    /// (another stack, a removed preset): decided before any Image Builder call.
    NotOurs(String),
    /// Dated more than the allowed skew ahead of the handler's clock.
    FutureDated {
        time: String,
        ahead_secs: i64,
    },
    /// GetImage knows no such image.
    UnknownImage(String),
    /// The image's pipeline is not the preset's pipeline.
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

/// The binary's entry: the payload as raw JSON text, so that input of any size or
/// nesting depth reaches the handler (a `Value` payload fails at 128 levels inside the
/// runtime, before the handler, and is retried into the DLQ).
pub async fn handle_raw(deps: &Deps, payload: &RawValue) -> Result<EventAck, HandlerError> {
    handle_text(deps, payload.get(), Utc::now()).await
}

/// Raw event text at the handler's clock `now`.
pub async fn handle_text(
    deps: &Deps,
    text: &str,
    now: DateTime<Utc>,
) -> Result<EventAck, HandlerError> {
    handle_parsed(deps, ImageStateChange::parse(text), now).await
}

/// An already deserialised event (the tests, the local stack).
pub async fn handle_event(deps: &Deps, event: Value) -> Result<EventAck, HandlerError> {
    handle_event_at(deps, event, Utc::now()).await
}

pub async fn handle_event_at(
    deps: &Deps,
    event: Value,
    now: DateTime<Utc>,
) -> Result<EventAck, HandlerError> {
    handle_parsed(deps, ImageStateChange::from_value(event), now).await
}

/// The `ami-update` handler: never fails for bad input (acknowledged, one log line),
/// fails for AWS errors so that Lambda retries the event.
async fn handle_parsed(
    deps: &Deps,
    parsed: Result<ImageStateChange, EventError>,
    now: DateTime<Utc>,
) -> Result<EventAck, HandlerError> {
    let change = match parsed {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "malformed event acknowledged without a write");
            return Ok(EventAck::Ignored(Ignored::Malformed(e.to_string())));
        }
    };
    let arn = change.image.arn.as_str();
    let Some(name) = deps.config.preset_of_recipe(&change.image.recipe) else {
        tracing::warn!(
            image = arn,
            prefix = deps.config.prefix,
            "image of a recipe that is not <prefix>-<preset>; event acknowledged"
        );
        return Ok(EventAck::Ignored(Ignored::NotOurs(change.image.recipe)));
    };
    let skew = deps.config.event_skew();
    let ahead = change.time - now;
    if ahead > skew {
        tracing::warn!(
            image = arn,
            event_time = time::format(change.time),
            ahead_secs = ahead.num_seconds(),
            max_skew_secs = skew.num_seconds(),
            "event dated ahead of this clock by more than the allowed skew; acknowledged, not applied"
        );
        return Ok(EventAck::Ignored(Ignored::FutureDated {
            time: time::format(change.time),
            ahead_secs: ahead.num_seconds(),
        }));
    }
    let Some(preset) = deps.store.get_preset(name).await? else {
        tracing::warn!(
            preset = name,
            image = arn,
            "no such preset in this deployment (removed, or another stack's); event acknowledged"
        );
        return Ok(EventAck::Ignored(Ignored::NotOurs(change.image.recipe)));
    };
    let Some(image) = deps.images.get_image(arn).await? else {
        tracing::warn!(image = arn, state = %change.state, "image unknown to Image Builder; event acknowledged");
        return Ok(EventAck::Ignored(Ignored::UnknownImage(arn.to_owned())));
    };
    let pipeline = image.source_pipeline_name.clone().unwrap_or_default();
    // No source pipeline: a CreateImage build of this preset's recipe (`kiln build
    // --region`, a one-off distribution), ours by the recipe name already checked.
    if !pipeline.is_empty()
        && deps.config.preset_of_pipeline(&pipeline) != Some(preset.name.as_str())
    {
        tracing::warn!(
            pipeline,
            preset = preset.name,
            image = arn,
            "image from a pipeline that is not this preset's; event acknowledged"
        );
        return Ok(EventAck::Ignored(Ignored::UnknownPipeline(pipeline)));
    }
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
        // Dated by the clock: a push dated ahead would be refused by the edge and
        // block the on-time pushes after it.
        push_snapshot(deps, Utc::now()).await;
    }
    Ok(EventAck::Processed(Box::new(outcome)))
}
