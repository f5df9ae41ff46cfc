//! Build history (`recordType = BUILD` items) for `kiln list` and `kiln registry export`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kiln_shared::build::{BuildRecord, RECORD_TYPE_BUILD};
use kiln_shared::registry::{self, Registry};
use kiln_shared::time;
use serde_json::{Map, Number, Value};

use crate::aws::describe;
use crate::template::RECORD_TYPE_INDEX;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("reading {record_type} items of table {table}: {message}")]
    Query {
        table: String,
        record_type: String,
        message: String,
    },
}

/// An item kiln could not read; reported, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub job_id: String,
    pub reason: String,
}

/// A DynamoDB item as plain JSON (numbers stay numbers, sets become arrays).
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_to_json(v)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect(),
    )
}

fn number(text: &str) -> Value {
    text.parse::<i64>()
        .map(Value::from)
        .ok()
        .or_else(|| {
            text.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
        })
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

pub fn attribute_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), attribute_to_json(v));
            }
            Value::Object(out)
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(attribute_to_json).collect()),
        AttributeValue::Ss(s) => Value::from(s.clone()),
        AttributeValue::Ns(n) => Value::Array(n.iter().map(|n| number(n)).collect()),
        // Binary is not part of kiln's items; keep the key visible rather than fail.
        _ => Value::Null,
    }
}

/// Every item of one record type, through the `recordType-index` GSI, all pages.
pub async fn query_record_type(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    record_type: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, HistoryError> {
    let mut pages = client
        .query()
        .table_name(table)
        .index_name(RECORD_TYPE_INDEX)
        .key_condition_expression("recordType = :t")
        .expression_attribute_values(":t", AttributeValue::S(record_type.to_owned()))
        .into_paginator()
        .items()
        .send();
    let mut items = Vec::new();
    while let Some(item) = pages.next().await {
        items.push(item.map_err(|e| HistoryError::Query {
            table: table.to_owned(),
            record_type: record_type.to_owned(),
            message: describe(e),
        })?);
    }
    Ok(items)
}

/// Parses BUILD items; unreadable ones are returned separately.
pub fn parse_builds(
    items: &[HashMap<String, AttributeValue>],
) -> (Vec<BuildRecord>, Vec<Unreadable>) {
    let mut builds = Vec::new();
    let mut bad = Vec::new();
    for item in items {
        let json = item_to_json(item);
        match serde_json::from_value::<BuildRecord>(json.clone()) {
            Ok(b) => builds.push(b),
            Err(e) => bad.push(Unreadable {
                job_id: json["jobId"].as_str().unwrap_or("(no jobId)").to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    (builds, bad)
}

/// All builds, newest first (by start, then version, so ties are stable).
pub async fn load_builds(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(Vec<BuildRecord>, Vec<Unreadable>), HistoryError> {
    let items = query_record_type(client, table, RECORD_TYPE_BUILD).await?;
    let (mut builds, bad) = parse_builds(&items);
    sort_newest_first(&mut builds);
    Ok((builds, bad))
}

pub fn sort_newest_first(builds: &mut [BuildRecord]) {
    builds.sort_by(|a, b| {
        (b.started_at, &b.preset, &b.build_version).cmp(&(
            a.started_at,
            &a.preset,
            &a.build_version,
        ))
    });
}

/// preset name → template name, from PRESET items (`template` at the top level or
/// inside a `preset` attribute, map or JSON text).
pub fn templates_from_preset_items(
    items: &[HashMap<String, AttributeValue>],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let json = item_to_json(item);
        let nested = match &json["preset"] {
            Value::String(text) => serde_json::from_str::<Value>(text).unwrap_or(Value::Null),
            other => other.clone(),
        };
        for candidate in [&json, &nested] {
            if let (Some(name), Some(template)) =
                (candidate["name"].as_str(), candidate["template"].as_str())
            {
                out.insert(name.to_owned(), template.to_owned());
                break;
            }
        }
        if let Some(name) = json["jobId"]
            .as_str()
            .and_then(|j| j.strip_prefix("PRESET#"))
            && let Some(template) = nested["template"].as_str().or(json["template"].as_str())
        {
            out.entry(name.to_owned())
                .or_insert_with(|| template.to_owned());
        }
    }
    out
}

/// The registry. A preset without a PRESET item (removed from the deployment) is its
/// own template: guessing from a `-x64` suffix would misname single-arch presets.
pub fn registry_of(
    builds: &[BuildRecord],
    templates: &BTreeMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Registry {
    let template_of = |p: &str| templates.get(p).cloned().unwrap_or_else(|| p.to_owned());
    registry::build_registry(builds, &template_of, now)
}

/// `kiln list` as a table: one row per build and region.
pub fn render_table(builds: &[BuildRecord]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "preset", "arch", "version", "status", "started", "ended", "region", "AMI",
    ]);
    for b in builds {
        let regions: Vec<(String, String)> = if b.amis.is_empty() {
            vec![("-".into(), "-".into())]
        } else {
            b.amis.iter().map(|(r, a)| (r.clone(), a.clone())).collect()
        };
        let status = match &b.reason {
            Some(reason) if b.status != kiln_shared::BuildStatus::Ready => {
                format!("{} ({reason})", b.status.as_str())
            }
            _ => b.status.as_str().to_owned(),
        };
        for (region, ami) in regions {
            table.add_row([
                b.preset.clone(),
                b.architecture
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_else(|| "-".into()),
                b.build_version.clone(),
                status.clone(),
                time::format(b.started_at),
                b.ended_at.map(time::format).unwrap_or_else(|| "-".into()),
                region,
                ami,
            ]);
        }
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn build_item(preset: &str, version: &str, started: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("jobId".into(), s(&format!("BUILD#{preset}#{version}"))),
            ("recordType".into(), s("BUILD")),
            ("preset".into(), s(preset)),
            ("architecture".into(), s("x86_64")),
            ("buildVersion".into(), s(version)),
            (
                "buildId".into(),
                s("arn:aws:imagebuilder:us-east-1:123456789012:image/p/1.0.0/1"),
            ),
            ("status".into(), s("ready")),
            ("lastState".into(), s("AVAILABLE")),
            ("startedAt".into(), s(started)),
            ("endedAt".into(), s(started)),
            ("outcome".into(), s("AVAILABLE")),
            (
                "amis".into(),
                AttributeValue::M(HashMap::from([("us-east-1".into(), s("ami-1"))])),
            ),
            ("reason".into(), AttributeValue::Null(true)),
            ("validated".into(), AttributeValue::Bool(true)),
            ("sizeGb".into(), AttributeValue::N("30".into())),
        ])
    }

    #[test]
    fn build_items_parse_and_sort_newest_first() {
        let mut broken = build_item("q", "1.0.0/1", "2026-01-01T00:00:00Z");
        broken.remove("status");
        let items = vec![
            build_item("p", "1.0.0/1", "2026-01-01T00:00:00Z"),
            build_item("p", "1.0.0/2", "2026-01-02T00:00:00Z"),
            broken,
        ];
        let (mut builds, bad) = parse_builds(&items);
        sort_newest_first(&mut builds);
        assert_eq!(builds.len(), 2);
        assert_eq!(builds[0].build_version, "1.0.0/2");
        assert_eq!(builds[0].size_gb, Some(30));
        assert_eq!(builds[0].amis["us-east-1"], "ami-1");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].job_id, "BUILD#q#1.0.0/1");
        assert!(bad[0].reason.contains("status"), "{}", bad[0].reason);
    }

    #[test]
    fn templates_come_from_preset_items_in_any_shape() {
        let nested_text = HashMap::from([
            ("jobId".into(), s("PRESET#r-x64")),
            ("preset".into(), s(r#"{"name":"r-x64","template":"r"}"#)),
        ]);
        let nested_map = HashMap::from([
            ("jobId".into(), s("PRESET#q-arm64")),
            (
                "preset".into(),
                AttributeValue::M(HashMap::from([
                    ("name".into(), s("q-arm64")),
                    ("template".into(), s("q")),
                ])),
            ),
        ]);
        let flat = HashMap::from([
            ("jobId".into(), s("PRESET#solo")),
            ("name".into(), s("solo")),
            ("template".into(), s("solo")),
        ]);
        let t = templates_from_preset_items(&[nested_text, nested_map, flat]);
        assert_eq!(t["r-x64"], "r");
        assert_eq!(t["q-arm64"], "q");
        assert_eq!(t["solo"], "solo");
    }
}
