//! JSON ↔ DynamoDB attribute values, so items are the serde form of the shared types.
//!
//! Numbers go through their decimal text (DynamoDB's own representation), so nothing
//! is rounded on the way in or out.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

pub type Item = HashMap<String, AttributeValue>;

/// Why an item could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    #[error("value is not a JSON object")]
    NotAnObject,
    #[error("unsupported DynamoDB attribute type at '{0}'")]
    Unsupported(String),
    #[error("number '{0}' cannot be represented")]
    BadNumber(String),
    #[error("item does not match the expected shape: {0}")]
    Shape(String),
}

pub fn to_attr(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attr).collect()),
        Value::Object(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
        }
    }
}

pub fn from_attr(path: &str, a: &AttributeValue) -> Result<Value, AttrError> {
    Ok(match a {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(parse_number(n)?),
        AttributeValue::L(l) => Value::Array(
            l.iter()
                .enumerate()
                .map(|(i, v)| from_attr(&format!("{path}[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(m) => Value::Object(from_map(path, m)?),
        _ => return Err(AttrError::Unsupported(path.to_owned())),
    })
}

fn parse_number(n: &str) -> Result<Number, AttrError> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Number::from(i));
    }
    if let Ok(u) = n.parse::<u64>() {
        return Ok(Number::from(u));
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| AttrError::BadNumber(n.to_owned()))
}

fn from_map(
    path: &str,
    m: &HashMap<String, AttributeValue>,
) -> Result<Map<String, Value>, AttrError> {
    m.iter()
        .map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            Ok((k.clone(), from_attr(&p, v)?))
        })
        .collect()
}

/// A serialisable value (a struct) as a DynamoDB item.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, AttrError> {
    match serde_json::to_value(value).map_err(|e| AttrError::Shape(e.to_string()))? {
        Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect()),
        _ => Err(AttrError::NotAnObject),
    }
}

/// A DynamoDB item as a deserialisable value; unknown attributes are ignored by serde.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, AttrError> {
    let json = Value::Object(from_map("", item)?);
    serde_json::from_value(json).map_err(|e| AttrError::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_nested_json_exactly() {
        let v = json!({
            "s": "x", "n": 42, "neg": -7, "f": 0.125, "big": 18446744073709551615u64,
            "null": null, "b": true, "l": [1, "two", {"three": [3.5]}], "m": {}
        });
        let item = to_item(&v).unwrap();
        assert_eq!(item["null"], AttributeValue::Null(true));
        assert_eq!(item["f"], AttributeValue::N("0.125".into()));
        let back: Value = from_item(&item).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        assert_eq!(to_item(&json!([1])).unwrap_err(), AttrError::NotAnObject);
        let item = Item::from([("ss".to_owned(), AttributeValue::Ss(vec!["a".into()]))]);
        assert!(matches!(
            from_item::<Value>(&item),
            Err(AttrError::Unsupported(p)) if p == "ss"
        ));
        let item = Item::from([("n".to_owned(), AttributeValue::N("1e400".into()))]);
        assert!(matches!(
            from_item::<Value>(&item),
            Err(AttrError::BadNumber(_))
        ));
    }
}
