//! Event parsing: arbitrary text, and valid envelopes mutated field by field.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Bytes;
use crate::event::{DETAIL_TYPE, EventError, MAX_ARN_LEN, MAX_REASON_LEN, MAX_SHORT_LEN, SOURCE};
use crate::state::{self, AmiRecord, ImageState, Observation, Transition};
use crate::{ImageArn, ImageStateChange, time};

const BASES: [&str; 4] = [
    include_str!("../../tests/fixtures/events/available.json"),
    include_str!("../../tests/fixtures/events/building.json"),
    include_str!("../../tests/fixtures/events/failed.json"),
    include_str!("../../tests/fixtures/events/cancelled.json"),
];

/// Target `event_parse`: any text. Never panics; every accepted event is consistent.
pub fn check_text(data: &[u8]) {
    // The Lambda runtime hands over UTF-8; the parser takes `&str`.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = check_json(text);
    }
}

fn check_json(text: &str) -> Result<ImageStateChange, EventError> {
    let parsed = ImageStateChange::parse(text);
    // `from_value` (the path for an already-decoded payload) must agree with `parse`.
    // Only one way: duplicate keys fail `parse` but collapse in a `Value`.
    if let (Ok(event), Ok(value)) = (&parsed, serde_json::from_str::<Value>(text)) {
        assert_eq!(
            ImageStateChange::from_value(value).as_ref(),
            Ok(event),
            "parse and from_value disagree on {text:?}"
        );
    }
    if let Ok(event) = &parsed {
        check_accepted(event);
    }
    parsed
}

/// What every accepted event must satisfy, through to the record it produces.
fn check_accepted(e: &ImageStateChange) {
    assert_eq!(
        ImageArn::parse(&e.image.arn).as_ref(),
        Some(&e.image),
        "ARN does not re-parse"
    );
    let a = &e.image;
    assert!(a.account.len() == 12 && a.account.bytes().all(|b| b.is_ascii_digit()));
    assert!(!a.region.is_empty() && !a.recipe.is_empty() && !a.recipe.contains('/'));
    let version: Vec<&str> = a.version.split('.').collect();
    assert!(version.len() == 3 && version.iter().all(|p| p.parse::<u32>().is_ok()));
    assert_eq!(ImageState::parse(e.state.as_str()), Some(e.state));

    // Stored times are fixed-width `YYYY-MM-DDTHH:MM:SSZ`, compared as strings in
    // DynamoDB conditions, and must read back.
    assert_eq!(e.time.timestamp_subsec_nanos(), 0, "time keeps sub-seconds");
    let shown = time::format(e.time);
    assert_eq!(shown.len(), 20, "time {shown} is not fixed-width");
    assert_eq!(
        time::parse(&shown),
        Ok(e.time),
        "time {shown} does not re-parse"
    );

    // The event drives the state machine; its record must store and load unchanged.
    let Some(status) = e.state.build_status() else {
        return;
    };
    let obs = Observation {
        preset: a.recipe.clone(),
        architecture: None,
        state: e.state,
        at: e.time,
        build_id: a.arn.clone(),
        amis: BTreeMap::from([(a.region.clone(), "ami-0123456789abcdef0".to_owned())]),
        home_region: a.region.clone(),
        reason: e.reason.clone(),
        started: None,
    };
    let Transition::Write { record, .. } = state::apply(None, &obs) else {
        panic!("first observation of a preset must write");
    };
    assert_eq!(record.status, status);
    assert_eq!(record.updated_at, e.time);
    assert!(record.order_key.starts_with(&shown));
    let stored = serde_json::to_string(&record).expect("record serialises");
    let loaded: AmiRecord = serde_json::from_str(&stored).expect("stored record loads");
    assert_eq!(&loaded, record.as_ref());
    // Applying the same observation again is an idempotent no-op.
    assert!(matches!(
        state::apply(Some(&loaded), &obs),
        Transition::NoOp(state::NoOp::Duplicate)
    ));
}

/// Target `event_envelope`: a real envelope with a few fields replaced or removed. A
/// model computed from the JSON tree predicts accept/reject, and what is accepted.
pub fn check_envelope(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut v: Value = serde_json::from_str(b.pick(&BASES)).expect("fixture is JSON");
    for _ in 0..b.u8() % 6 {
        mutate(&mut v, &mut b);
    }
    let text = serde_json::to_string(&v).expect("Value serialises");
    let parsed = check_json(&text);
    let Some(expected) = model(&v) else {
        return;
    };
    match (&parsed, &expected) {
        (Ok(e), Ok(m)) => {
            assert_eq!(e.state, m.state);
            assert_eq!(e.image.arn, m.arn);
            assert_eq!(e.time, m.time);
            assert_eq!(e.previous, m.previous);
            assert_eq!(e.id, m.id);
            assert_eq!(e.reason, m.reason);
        }
        (Err(e), Err(kind)) => assert_eq!(
            std::mem::discriminant(e),
            std::mem::discriminant(kind),
            "{e} but the model expected {kind}, for {text}"
        ),
        _ => panic!("parse gave {parsed:?}, model expected {expected:?}, for {text}"),
    }
}

const PATHS: [&[&str]; 14] = [
    &["id"],
    &["source"],
    &["detail-type"],
    &["time"],
    &["resources"],
    &["resources", "0"],
    &["resources", "1"],
    &["detail"],
    &["detail", "state"],
    &["detail", "state", "status"],
    &["detail", "state", "reason"],
    &["detail", "previous-state"],
    &["detail", "previous-state", "status"],
    &["account"],
];

fn mutate(v: &mut Value, b: &mut Bytes<'_>) {
    let path = b.pick(&PATHS);
    let (last, parents) = path.split_last().expect("paths are non-empty");
    let mut node = v;
    for key in parents {
        node = match node {
            Value::Object(m) => m.entry(*key).or_insert_with(|| json!({})),
            Value::Array(a) => match key.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            _ => return,
        };
    }
    let remove = b.u8().is_multiple_of(5);
    let new = (!remove).then(|| generate(b, last));
    match (node, new) {
        (Value::Object(m), None) => {
            m.remove(*last);
        }
        (Value::Object(m), Some(new)) => {
            m.insert((*last).to_owned(), new);
        }
        (Value::Array(a), new) => {
            let Ok(i) = last.parse::<usize>() else { return };
            match new {
                Some(new) if i < a.len() => a[i] = new,
                Some(new) => a.push(new),
                None if i < a.len() => {
                    a.remove(i);
                }
                None => {}
            }
        }
        _ => {}
    }
}

/// A replacement for field `key`: usually a near-valid value of its kind, sometimes a
/// value of the wrong JSON type.
fn generate(b: &mut Bytes<'_>, key: &str) -> Value {
    match b.u8() % 10 {
        0 => Value::Null,
        1 => Value::from(b.u8().is_multiple_of(2)),
        2 => Value::from(b.i64()),
        3 => Value::from(b.short_str()),
        4 => json!([]),
        5 => Value::Array(vec![token(b, key)]),
        6 => json!({}),
        _ => token(b, key),
    }
}

fn token(b: &mut Bytes<'_>, key: &str) -> Value {
    match key {
        "source" => Value::from(b.pick(&[SOURCE, "aws.ec2", "AWS.IMAGEBUILDER", ""])),
        "detail-type" => Value::from(b.pick(&[
            DETAIL_TYPE,
            "EC2 Image Builder Image Pipeline State Change",
            "ec2 image builder image state change",
        ])),
        "time" => Value::from(time_text(b)),
        "resources" => Value::Array(vec![Value::from(arn_text(b))]),
        "0" | "1" => Value::from(arn_text(b)),
        "status" => {
            let s = b.pick(&ImageState::ALL).as_str();
            Value::from(match b.u8() % 4 {
                0 => s.to_lowercase(),
                1 => format!(" {s}"),
                _ => s.to_owned(),
            })
        }
        "state" | "previous-state" => {
            let mut m = Map::new();
            m.insert("status".into(), token(b, "status"));
            if b.u8().is_multiple_of(2) {
                m.insert("reason".into(), Value::from(b.short_str()));
            }
            Value::Object(m)
        }
        "detail" => json!({ "state": token(b, "state"), "previous-state": token(b, "state") }),
        _ => Value::from(b.short_str()),
    }
}

/// RFC 3339-shaped times with every component free to be out of range.
fn time_text(b: &mut Bytes<'_>) -> String {
    let date = format!(
        "{:04}-{:02}-{:02}",
        b.u16() % 10_000,
        b.u8() % 14,
        b.u8() % 33
    );
    let clock = format!("{:02}:{:02}:{:02}", b.u8() % 25, b.u8() % 61, b.u8() % 62);
    let frac = b.pick(&["", ".5", ".123456789", ".1234567891234"]);
    let offset = match b.u8() % 5 {
        0 => "z".to_owned(),
        1 | 2 => "Z".to_owned(),
        n => format!(
            "{}{:02}:{:02}",
            if n == 3 { '+' } else { '-' },
            b.u8() % 25,
            b.u8() % 61
        ),
    };
    let sep = b.pick(&["T", "T", "t", " "]);
    format!("{date}{sep}{clock}{frac}{offset}")
}

fn arn_text(b: &mut Bytes<'_>) -> String {
    let partition = b.pick(&["aws", "aws-cn", "aws-us-gov", "azure", ""]);
    let service = b.pick(&["imagebuilder", "imagebuilder", "ec2"]);
    let region = b.pick(&["us-east-1", "eu-west-1", "", "x:y"]);
    let account = b.pick(&["123456789012", "12345678901", "12345678901a", ""]);
    let kind = b.pick(&["image", "image", "image-pipeline", "component"]);
    let recipe = b.pick(&["linux-x64", "r-research-arm64", "", "a/b"]);
    let version = b.pick(&["1.0.42", "1.0", "1.0.x", "01.2.3", "4294967296.0.0"]);
    let build = match b.u8() % 4 {
        0 => "+3".to_owned(),
        1 => b.short_str(),
        _ => b.u16().to_string(),
    };
    format!("arn:{partition}:{service}:{region}:{account}:{kind}/{recipe}/{version}/{build}")
}

/// What the parser must produce for an accepted envelope.
#[derive(Debug)]
struct Expected {
    id: Option<String>,
    arn: String,
    state: ImageState,
    previous: Option<ImageState>,
    time: chrono::DateTime<chrono::Utc>,
    reason: Option<String>,
}

/// An independent reading of the envelope rules over the JSON tree. `None` when the
/// outcome depends on serde details the model does not mirror (structs given as
/// arrays, which serde accepts positionally).
fn model(v: &Value) -> Option<Result<Expected, EventError>> {
    let malformed = || Some(Err(EventError::Malformed(String::new())));
    let top = v.as_object()?;
    let detail = match top.get("detail") {
        Some(Value::Object(d)) => d,
        Some(Value::Array(_)) => return None,
        _ => return malformed(),
    };
    // Option<String>: absent or null or a string.
    let opt_str = |m: &Map<String, Value>, k: &str| match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    // A StateDetail object: (status, reason).
    let state_detail = |s: &Value| -> Option<Result<(String, Option<String>), ()>> {
        match s {
            Value::Object(m) => Some(match (m.get("status"), opt_str(m, "reason")) {
                (Some(Value::String(status)), Ok(reason)) => Ok((status.clone(), reason)),
                _ => Err(()),
            }),
            Value::Array(_) => None,
            _ => Some(Err(())),
        }
    };
    let Some(state) = detail.get("state") else {
        return malformed();
    };
    let Ok((status, reason)) = state_detail(state)? else {
        return malformed();
    };
    let previous = match detail.get("previous-state") {
        None | Some(Value::Null) => None,
        Some(p) => match state_detail(p)? {
            Ok((status, _)) => Some(status),
            Err(()) => return malformed(),
        },
    };
    let resources: Vec<&str> = match top.get("resources") {
        None => vec![],
        Some(Value::Array(items)) => match items.iter().map(Value::as_str).collect() {
            Some(r) => r,
            None => return malformed(),
        },
        Some(_) => return malformed(),
    };
    let (
        Ok(id),
        Some(Value::String(source)),
        Some(Value::String(detail_type)),
        Some(Value::String(at)),
    ) = (
        opt_str(top, "id"),
        top.get("source"),
        top.get("detail-type"),
        top.get("time"),
    )
    else {
        return malformed();
    };
    let too_long = |len: usize, max: usize| {
        Some(Err(EventError::TooLong {
            field: "",
            len,
            max,
        }))
    };
    if id.as_ref().is_some_and(|i| i.len() > MAX_SHORT_LEN) {
        return too_long(0, MAX_SHORT_LEN);
    }
    if source != SOURCE {
        return Some(Err(EventError::WrongSource(source.clone())));
    }
    if detail_type != DETAIL_TYPE {
        return Some(Err(EventError::WrongDetailType(detail_type.clone())));
    }
    if at.len() > MAX_SHORT_LEN {
        return too_long(at.len(), MAX_SHORT_LEN);
    }
    let Ok(time) = time::parse(at) else {
        return Some(Err(EventError::BadTime(at.clone())));
    };
    let Some(arn) = resources.first() else {
        return Some(Err(EventError::NoResource));
    };
    if arn.len() > MAX_ARN_LEN {
        return too_long(arn.len(), MAX_ARN_LEN);
    }
    if ImageArn::parse(arn).is_none() {
        return Some(Err(EventError::BadArn((*arn).to_owned())));
    }
    let Some(state) = ImageState::parse(&status) else {
        return Some(Err(EventError::UnknownState(status)));
    };
    Some(Ok(Expected {
        id,
        arn: (*arn).to_owned(),
        state,
        previous: previous.as_deref().and_then(ImageState::parse),
        time,
        reason: reason.map(|r| crate::event::truncate(&r, MAX_REASON_LEN)),
    }))
}
