//! CloudFormation intrinsics and the key order of the rendered file.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub(super) fn sub(text: impl Into<String>) -> Value {
    json!({ "Fn::Sub": text.into() })
}

pub(super) fn reference(id: &str) -> Value {
    json!({ "Ref": id })
}

/// The state table's name: the table this stack created, or the one kept by an earlier
/// stack and adopted through the `ExistingStateTable` parameter.
pub(super) fn state_table_name() -> Value {
    json!({ "Fn::If": ["CreateStateTable", reference("StateTable"), reference("ExistingStateTable")] })
}

/// An ARN under the state table (`suffix` e.g. `/index/<name>`, or empty).
pub(super) fn state_table_arn(suffix: &str) -> Value {
    json!({ "Fn::Sub": [
        format!("arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{Table}}{suffix}"),
        { "Table": state_table_name() },
    ] })
}

pub(super) fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// Rebuilds every object with its keys inserted in order. A no-op with serde_json's
/// default map; a guarantee if another crate turns on `preserve_order`.
pub(super) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Adds a resource whose logical id must be new: a clash would silently replace
/// another preset's resource.
pub(super) fn insert_new(
    resources: &mut serde_json::Map<String, Value>,
    id: String,
    resource: Value,
) -> Result<(), super::SynthError> {
    if resources.contains_key(&id) {
        return Err(super::SynthError::DuplicateLogicalId(id));
    }
    resources.insert(id, resource);
    Ok(())
}
