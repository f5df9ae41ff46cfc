//! State-change events in the EventBridge envelope, their faults, and their delivery.
//!
//! Delivery mimics an EventBridge rule with one target: best effort, at least once when
//! the target answers, in order per sink unless a fault says otherwise.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_shared::ImageState;
use kiln_shared::event::{DETAIL_TYPE, SOURCE};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::engine::{Shared, State};

/// States the default rule forwards (DESIGN.md: "all statuses that matter"). PENDING is
/// emitted by Image Builder but not matched by kiln's rule.
pub const RULE_STATES: [ImageState; 6] = kiln_shared::event::TRACKED_STATES;

/// The exact envelope EventBridge delivers: `resources[0]` is the image build version
/// ARN, `detail` carries only states (never an AMI id).
pub fn envelope(
    account: &str,
    region: &str,
    image_arn: &str,
    state: ImageState,
    previous: Option<ImageState>,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Value {
    let mut detail = json!({"state": {"status": state.as_str()}});
    if let Some(reason) = reason {
        detail["state"]["reason"] = reason.into();
    }
    if let Some(prev) = previous {
        detail["previous-state"] = json!({"status": prev.as_str()});
    }
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": kiln_shared::time::format(at),
        "region": region,
        "resources": [image_arn],
        "detail": detail,
    })
}

/// Event delivery faults, globally or for one pipeline (a pipeline's own setting wins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EventFaults {
    /// Events in these states are lost (e.g. `[AVAILABLE]`; all states for "drop all").
    pub drop: Vec<ImageState>,
    /// Events in these states are delivered twice.
    pub duplicate: Vec<ImageState>,
    /// Each build's events are held and delivered newest-first when the build ends.
    pub reorder: bool,
    /// Every delivery waits this long (milliseconds).
    pub delay_ms: u64,
}

impl EventFaults {
    pub fn drop_all() -> Self {
        EventFaults {
            drop: kiln_shared::ImageState::ALL.to_vec(),
            ..Default::default()
        }
    }

    pub fn is_clean(&self) -> bool {
        *self == EventFaults::default()
    }
}

/// What happened to one emitted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Handed to the sinks (once, or twice when duplicated).
    Sent { copies: u8 },
    /// Filtered out by the rule (e.g. PENDING).
    NotMatched,
    /// Lost on purpose (fault).
    Dropped,
    /// Held for reordering; becomes `Sent` when its build ends.
    Held,
}

/// The log entry of one emitted event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmittedEvent {
    pub pipeline_name: String,
    pub image_arn: String,
    pub state: ImageState,
    pub fate: Fate,
    pub event: Value,
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum SinkTarget {
    /// POST the event JSON to this URL (e.g. a local Lambda's invoke endpoint).
    Http(String),
    /// Send it into an in-process channel.
    Channel(mpsc::UnboundedSender<Value>),
}

/// One sink: a queue and a worker that delivers in order, each event at its due time.
#[derive(Debug)]
pub(crate) struct Sink {
    queue: mpsc::UnboundedSender<(Instant, Value)>,
}

impl Sink {
    pub fn spawn(target: SinkTarget, http: reqwest::Client) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<(Instant, Value)>();
        tokio::spawn(async move {
            while let Some((due, event)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                match &target {
                    SinkTarget::Channel(tx) => {
                        if tx.send(event).is_err() {
                            tracing::debug!("event channel closed; dropping event");
                        }
                    }
                    SinkTarget::Http(url) => post_with_retries(&http, url, &event).await,
                }
            }
        });
        Sink { queue }
    }

    pub fn send(&self, due: Instant, event: Value) {
        // The worker only stops when the sink is dropped.
        let _ = self.queue.send((due, event));
    }
}

/// EventBridge retries failed target invocations (and Lambda retries failed async
/// invocations twice); three quick attempts stand in for both.
async fn post_with_retries(http: &reqwest::Client, url: &str, event: &Value) {
    for attempt in 1..=3u32 {
        match http.post(url).json(event).send().await {
            // A Lambda Invoke API target reports handler errors in this header; EventBridge
            // retries those like failed deliveries.
            Ok(r)
                if r.status().is_success() && r.headers().get("x-amz-function-error").is_none() =>
            {
                return;
            }
            Ok(r) => tracing::warn!(url, status = %r.status(), attempt, "event sink refused event"),
            Err(e) => tracing::warn!(url, error = %e, attempt, "event sink unreachable"),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    tracing::warn!(
        url,
        "event not delivered after 3 attempts (best effort, as EventBridge)"
    );
}

impl Shared {
    /// Builds the event, applies the rule and the faults, hands it to the sinks.
    pub(super) fn emit(
        &self,
        st: &mut State,
        arn: &str,
        state: ImageState,
        previous: Option<ImageState>,
        reason: Option<&str>,
    ) {
        let Some(image) = st.images.iter().find(|i| i.arn == arn) else {
            return;
        };
        let pipeline = image.pipeline_name.clone();
        let at = image.history.last().map_or_else(Utc::now, |(_, t)| *t);
        let event = envelope(
            &self.account,
            &self.region,
            arn,
            state,
            previous,
            reason,
            at,
        );
        let faults = st
            .knobs
            .get(&pipeline)
            .and_then(|k| k.events.clone())
            .unwrap_or_else(|| st.global_events.clone());
        let due = Instant::now() + Duration::from_millis(faults.delay_ms);
        let fate = if !st.rule_states.contains(&state) {
            Fate::NotMatched
        } else if faults.drop.contains(&state) {
            Fate::Dropped
        } else if faults.reorder {
            st.held
                .entry(arn.to_owned())
                .or_default()
                .push(event.clone());
            Fate::Held
        } else {
            let copies = if faults.duplicate.contains(&state) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                for sink in &st.sinks {
                    sink.send(due, event.clone());
                }
            }
            Fate::Sent { copies }
        };
        if fate != Fate::NotMatched {
            tracing::debug!(image = arn, %state, ?fate, "event");
        }
        st.log.push(EmittedEvent {
            pipeline_name: pipeline,
            image_arn: arn.to_owned(),
            state,
            fate,
            event,
        });
        // A finished build releases its held events, newest first.
        if state.is_terminal()
            && let Some(held) = st.held.remove(arn)
        {
            for event in held.into_iter().rev() {
                for sink in &st.sinks {
                    sink.send(due, event.clone());
                }
                let id = event["id"].clone();
                if let Some(entry) = st.log.iter_mut().find(|e| e.event["id"] == id) {
                    entry.fate = Fate::Sent { copies: 1 };
                }
            }
        }
    }
}
