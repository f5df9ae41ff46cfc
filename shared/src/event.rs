//! EC2 Image Builder state-change events in their EventBridge envelope.
//!
//! Tolerant of fields kiln does not read (AWS adds fields), strict on the ones it needs:
//! source, detail-type, time, `resources[0]` (the image build version ARN) and
//! `detail.state.status`. The event carries no AMI id: that comes from GetImage.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::state::ImageState;
use crate::time;

/// EventBridge `source` of Image Builder events.
pub const SOURCE: &str = "aws.imagebuilder";
/// EventBridge `detail-type` of an image's state change.
pub const DETAIL_TYPE: &str = "EC2 Image Builder Image State Change";
/// Every state kiln's rule forwards to ami-update (DESIGN "AWS resources": all statuses
/// that matter). PENDING is emitted by Image Builder but says nothing new. The template's
/// rule and the local Image Builder's emitter both read this list.
pub const TRACKED_STATES: [ImageState; 6] = [
    ImageState::Building,
    ImageState::Testing,
    ImageState::Distributing,
    ImageState::Available,
    ImageState::Failed,
    ImageState::Cancelled,
];

/// Image Builder's model bounds an image build version ARN at 1011 characters; anything
/// longer is not an ARN and must never reach an SDK request (a 200 KB URI panics there).
pub const MAX_ARN_LEN: usize = 1011;
/// Longest failure reason kept (longer ones are truncated, never refused).
pub const MAX_REASON_LEN: usize = 1024;
/// Longest EventBridge id, source, detail-type, time or status accepted.
pub const MAX_SHORT_LEN: usize = 256;
/// Longest raw event accepted: real state-change events are a few KB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// How much of a refused value an error (and so a log line) repeats.
const ECHO_LEN: usize = 120;

/// A parsed, checked state-change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStateChange {
    /// EventBridge event id (for logs and de-duplication diagnostics).
    pub id: Option<String>,
    pub image: ImageArn,
    pub state: ImageState,
    pub previous: Option<ImageState>,
    pub time: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Why an event was rejected. Rejected events are logged and acknowledged, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not JSON of the EventBridge envelope: {0}")]
    Malformed(String),
    #[error("event source is '{0}', expected '{SOURCE}'")]
    WrongSource(String),
    #[error("event detail-type is '{0}', expected '{DETAIL_TYPE}'")]
    WrongDetailType(String),
    #[error("event time '{0}' is not an RFC 3339 timestamp")]
    BadTime(String),
    #[error("event has no resources[0] (the image build version ARN)")]
    NoResource,
    #[error("resources[0] '{0}' is not an Image Builder image build version ARN")]
    BadArn(String),
    #[error("unknown image state '{0}'")]
    UnknownState(String),
    #[error("event field {field} is {len} bytes, more than the {max} allowed")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

/// The first [`ECHO_LEN`] characters of `text`, so a hostile value cannot flood logs.
pub fn echo(text: &str) -> String {
    truncate(text, ECHO_LEN)
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn bounded(field: &'static str, text: &str, max: usize) -> Result<(), EventError> {
    if text.len() > max {
        return Err(EventError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<String>,
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: String,
    #[serde(default)]
    resources: Vec<String>,
    detail: Detail,
}

#[derive(Deserialize)]
struct Detail {
    state: StateDetail,
    #[serde(rename = "previous-state", default)]
    previous_state: Option<StateDetail>,
}

#[derive(Deserialize)]
struct StateDetail {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

impl ImageStateChange {
    /// Parses raw event text. Oversized or too deeply nested input is refused as
    /// malformed (serde_json stops at 128 levels), never a panic.
    pub fn parse(json: &str) -> Result<Self, EventError> {
        bounded("event", json, MAX_EVENT_BYTES)?;
        let envelope: Envelope =
            serde_json::from_str(json).map_err(|e| EventError::Malformed(e.to_string()))?;
        Self::from_envelope(envelope)
    }

    pub fn from_value(value: serde_json::Value) -> Result<Self, EventError> {
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| EventError::Malformed(e.to_string()))?;
        Self::from_envelope(envelope)
    }

    fn from_envelope(e: Envelope) -> Result<Self, EventError> {
        if let Some(id) = &e.id {
            bounded("id", id, MAX_SHORT_LEN)?;
        }
        if e.source != SOURCE {
            return Err(EventError::WrongSource(echo(&e.source)));
        }
        if e.detail_type != DETAIL_TYPE {
            return Err(EventError::WrongDetailType(echo(&e.detail_type)));
        }
        bounded("time", &e.time, MAX_SHORT_LEN)?;
        let at = time::parse(&e.time).map_err(|_| EventError::BadTime(echo(&e.time)))?;
        let arn = e.resources.first().ok_or(EventError::NoResource)?;
        bounded("resources[0]", arn, MAX_ARN_LEN)?;
        let image = ImageArn::parse(arn).ok_or_else(|| EventError::BadArn(echo(arn)))?;
        let state = ImageState::parse(&e.detail.state.status)
            .ok_or_else(|| EventError::UnknownState(echo(&e.detail.state.status)))?;
        // An unknown previous state is only informational: keep the event.
        let previous = e
            .detail
            .previous_state
            .as_ref()
            .and_then(|p| ImageState::parse(&p.status));
        Ok(ImageStateChange {
            id: e.id,
            image,
            state,
            previous,
            time: at,
            reason: e.detail.state.reason.map(|r| truncate(&r, MAX_REASON_LEN)),
        })
    }
}

/// `arn:<partition>:imagebuilder:<region>:<account>:image/<recipe>/<x.y.z>/<build>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageArn {
    pub arn: String,
    pub region: String,
    pub account: String,
    pub recipe: String,
    pub version: String,
    pub build: u32,
}

impl ImageArn {
    pub fn parse(arn: &str) -> Option<Self> {
        if arn.len() > MAX_ARN_LEN {
            return None;
        }
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("imagebuilder"),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        if !partition.starts_with("aws")
            || region.is_empty()
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let segments: Vec<&str> = resource.split('/').collect();
        let ["image", recipe, version, build] = segments.as_slice() else {
            return None;
        };
        let semver_ok =
            version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok());
        if recipe.is_empty() || !semver_ok {
            return None;
        }
        Some(ImageArn {
            arn: arn.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            recipe: (*recipe).to_owned(),
            version: (*version).to_owned(),
            build: build.parse().ok()?,
        })
    }

    /// `1.0.3/4`: identifies the build within its recipe.
    pub fn build_version(&self) -> String {
        format!("{}/{}", self.version, self.build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILDING: &str = include_str!("../tests/fixtures/events/building.json");
    const AVAILABLE: &str = include_str!("../tests/fixtures/events/available.json");
    const FAILED: &str = include_str!("../tests/fixtures/events/failed.json");

    #[test]
    fn parses_real_shaped_events() {
        let e = ImageStateChange::parse(AVAILABLE).unwrap();
        assert_eq!(e.state, ImageState::Available);
        assert_eq!(e.previous, Some(ImageState::Distributing));
        assert_eq!(e.image.recipe, "linux-x64");
        assert_eq!(e.image.build_version(), "1.0.42/3");
        assert_eq!(time::format(e.time), "2026-01-27T12:00:00Z");
        assert_eq!(
            ImageStateChange::parse(BUILDING).unwrap().state,
            ImageState::Building
        );
        let failed = ImageStateChange::parse(FAILED).unwrap();
        assert_eq!(failed.state, ImageState::Failed);
        assert!(failed.reason.unwrap().contains("validation"));
    }

    #[test]
    fn tolerates_unknown_fields() {
        let mut v: serde_json::Value = serde_json::from_str(AVAILABLE).unwrap();
        v["detail"]["somethingNew"] = serde_json::json!({"x": 1});
        v["extra"] = serde_json::json!(true);
        assert!(ImageStateChange::from_value(v).is_ok());
    }

    #[test]
    fn strict_on_needed_fields() {
        let base: serde_json::Value = serde_json::from_str(AVAILABLE).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = base.clone();
            f(&mut v);
            ImageStateChange::from_value(v).unwrap_err()
        };
        assert!(matches!(
            with(&|v| v["source"] = "aws.ec2".into()),
            EventError::WrongSource(_)
        ));
        assert!(matches!(
            with(&|v| v["detail-type"] = "Other".into()),
            EventError::WrongDetailType(_)
        ));
        assert!(matches!(
            with(&|v| v["time"] = "yesterday".into()),
            EventError::BadTime(_)
        ));
        assert!(matches!(
            with(&|v| v["resources"] = serde_json::json!([])),
            EventError::NoResource
        ));
        assert!(matches!(
            with(&|v| v["resources"] = serde_json::json!([
                "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/x"
            ])),
            EventError::BadArn(_)
        ));
        assert!(matches!(
            with(&|v| v["detail"]["state"]["status"] = "EXPLODED".into()),
            EventError::UnknownState(_)
        ));
        assert!(matches!(
            with(&|v| v
                .as_object_mut()
                .unwrap()
                .remove("detail")
                .map(drop)
                .unwrap()),
            EventError::Malformed(_)
        ));
        assert!(matches!(
            ImageStateChange::parse("not json"),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn every_field_is_bounded_and_errors_do_not_echo_hostile_input() {
        let base: serde_json::Value = serde_json::from_str(AVAILABLE).unwrap();
        let huge = "x".repeat(200 * 1024);
        let long_arn = format!(
            "arn:aws:imagebuilder:us-east-1:123456789012:image/{}/1.0.0/1",
            "r".repeat(MAX_ARN_LEN)
        );
        let cases: [(&str, serde_json::Value); 5] = [
            ("resources", serde_json::json!([long_arn])),
            ("id", huge.clone().into()),
            ("time", huge.clone().into()),
            ("source", huge.clone().into()),
            ("detail-type", huge.clone().into()),
        ];
        for (field, value) in cases {
            let mut v = base.clone();
            v[field] = value;
            let e = ImageStateChange::from_value(v).unwrap_err();
            assert!(
                e.to_string().len() < 400,
                "{field}: {} bytes",
                e.to_string().len()
            );
        }
        let mut v = base.clone();
        v["detail"]["state"]["reason"] = huge.clone().into();
        let e = ImageStateChange::from_value(v).unwrap();
        assert_eq!(e.reason.unwrap().len(), MAX_REASON_LEN);
        assert_eq!(truncate("éé", 3), "é", "cut on a char boundary");
        assert!(matches!(
            ImageStateChange::parse(&format!("{{\"pad\":\"{huge}{huge}\"}}")),
            Err(EventError::TooLong { field: "event", .. })
        ));
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            ImageStateChange::parse(&deep),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn arn_parsing() {
        let a = ImageArn::parse(
            "arn:aws:imagebuilder:eu-west-1:123456789012:image/r-research-arm64/1.0.7/12",
        )
        .unwrap();
        assert_eq!(
            (a.region.as_str(), a.recipe.as_str(), a.build),
            ("eu-west-1", "r-research-arm64", 12)
        );
        for bad in [
            "arn:aws:imagebuilder:eu-west-1:123456789012:image/r/1.0/12",
            "arn:aws:imagebuilder:eu-west-1:12345:image/r/1.0.0/12",
            "arn:aws:imagebuilder:eu-west-1:123456789012:image/r/1.0.0/x",
            "arn:aws:ec2:eu-west-1:123456789012:image/r/1.0.0/1",
            "",
        ] {
            assert!(ImageArn::parse(bad).is_none(), "{bad}");
        }
    }
}
