//! The SSM runner config (`/<prefix>/configs/<preset>`): a JSON object owned jointly by
//! kiln (the AMI fields and preset settings) and operators (any other key).
//!
//! Every write is a merge: unknown keys survive, and kiln only sets what it owns.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::preset::Preset;
use crate::time;

/// Keys the AMI update owns.
pub const AMI_ID: &str = "amiId";
pub const AMI_UPDATED_AT: &str = "amiUpdatedAt";

/// Every key kiln writes (the AMI fields, the region, the preset-derived settings): a
/// preset's free-form `runner:` settings may not set them (validation refuses it).
pub const OWNED_KEYS: [&str; 11] = [
    AMI_ID,
    AMI_UPDATED_AT,
    "region",
    "preset",
    "architecture",
    "instanceTypes",
    "labels",
    "timeoutMinutes",
    "diskSizeGb",
    "ports",
    "estimatedCostPerHour",
];

/// Largest value of a standard SSM parameter, bytes.
pub const STANDARD_MAX_BYTES: usize = 4096;
/// Largest value of an advanced SSM parameter, bytes.
pub const ADVANCED_MAX_BYTES: usize = 8192;

/// SSM parameter tier a runner config needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterTier {
    Standard,
    Advanced,
}

impl ParameterTier {
    /// SSM's spelling (`PutParameter`'s `Tier`).
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterTier::Standard => "Standard",
            ParameterTier::Advanced => "Advanced",
        }
    }
}

/// The tier a config's JSON needs: Standard up to 4 KB, Advanced up to 8 KB, `None`
/// above (SSM refuses it; validation keeps such presets out).
pub fn parameter_tier(json: &str) -> Option<ParameterTier> {
    match json.len() {
        n if n <= STANDARD_MAX_BYTES => Some(ParameterTier::Standard),
        n if n <= ADVANCED_MAX_BYTES => Some(ParameterTier::Advanced),
        _ => None,
    }
}

/// The largest config kiln will ever write for a preset: its settings plus the AMI
/// fields at their longest and the longest region name. Validation sizes this.
pub fn largest(preset: &Preset) -> String {
    let mut m = initial(preset, "ap-southeast-99-long");
    m.insert(AMI_ID.into(), Value::from("ami-0123456789abcdef0"));
    m.insert(AMI_UPDATED_AT.into(), Value::from("2026-01-27T12:00:00Z"));
    serde_json::to_string(&Value::Object(m)).expect("map serialises")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Refuse to overwrite what we cannot read: that would lose an operator's settings.
    #[error("existing runner config is not a JSON object ({0}); refusing to overwrite it")]
    NotAnObject(String),
}

/// The config written at deploy: the preset's runner settings and `"amiId": null`.
pub fn initial(preset: &Preset, region: &str) -> Map<String, Value> {
    let mut m = settings(preset);
    m.insert("region".into(), Value::from(region));
    m.insert(AMI_ID.into(), Value::Null);
    m
}

/// Settings kiln derives from the preset (written at deploy, refreshed on preset change).
pub fn settings(preset: &Preset) -> Map<String, Value> {
    let mut m = Map::new();
    // Free-form runner settings first, so the named fields below win on a clash.
    for (k, v) in &preset.runner {
        m.insert(k.clone(), v.clone());
    }
    m.insert("preset".into(), Value::from(preset.name.clone()));
    m.insert(
        "architecture".into(),
        Value::from(preset.architecture.as_str()),
    );
    m.insert(
        "instanceTypes".into(),
        Value::from(preset.instance_types.clone()),
    );
    m.insert("labels".into(), Value::from(preset.labels.clone()));
    if let Some(t) = preset.timeout_minutes {
        m.insert("timeoutMinutes".into(), Value::from(t));
    }
    if let Some(d) = preset.disk_size_gb {
        m.insert("diskSizeGb".into(), Value::from(d));
    }
    if !preset.ports.is_empty() {
        m.insert("ports".into(), Value::from(preset.ports.clone()));
    }
    if let Some(c) = preset.estimated_cost_per_hour {
        m.insert("estimatedCostPerHour".into(), Value::from(c));
    }
    m
}

/// Result of a merge: the text to write, and whether it differs from what was there
/// (an unchanged config is not rewritten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub json: String,
    pub changed: bool,
}

fn parse_existing(existing: Option<&str>) -> Result<Map<String, Value>, ConfigError> {
    match existing {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(ConfigError::NotAnObject(format!("found {}", kind(&other)))),
            Err(e) => Err(ConfigError::NotAnObject(e.to_string())),
        },
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn finish(before: Option<&str>, m: Map<String, Value>) -> Merged {
    let json = serde_json::to_string(&Value::Object(m.clone())).expect("map serialises");
    let changed = match before.and_then(|b| serde_json::from_str::<Value>(b).ok()) {
        Some(Value::Object(old)) => old != m,
        _ => true,
    };
    Merged { json, changed }
}

/// Points the config at a new AMI; every other key is kept.
pub fn merge_ami(
    existing: Option<&str>,
    ami_id: &str,
    at: DateTime<Utc>,
) -> Result<Merged, ConfigError> {
    let mut m = parse_existing(existing)?;
    m.insert(AMI_ID.into(), Value::from(ami_id));
    m.insert(AMI_UPDATED_AT.into(), Value::from(time::format(at)));
    Ok(finish(existing, m))
}

/// Refreshes preset-derived settings (on deploy of a changed preset); keeps the AMI
/// fields and every key an operator added. Creates the placeholder when absent.
pub fn merge_settings(
    existing: Option<&str>,
    fresh: &Map<String, Value>,
) -> Result<Merged, ConfigError> {
    let mut m = parse_existing(existing)?;
    for (k, v) in fresh {
        if k == AMI_ID || k == AMI_UPDATED_AT {
            // Only the AMI path sets these; the placeholder's null never clobbers an AMI.
            m.entry(k.clone()).or_insert_with(|| v.clone());
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    Ok(finish(existing, m))
}

/// The AMI id a config currently points at.
pub fn ami_of(config: &str) -> Option<String> {
    serde_json::from_str::<Value>(config)
        .ok()?
        .get(AMI_ID)?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        time::parse("2026-01-27T12:00:00Z").unwrap()
    }

    #[test]
    fn merge_sets_only_ami_fields() {
        let before = r#"{"amiId":null,"labels":["x"],"maxRunners":4,"custom":{"a":1}}"#;
        let merged = merge_ami(Some(before), "ami-0123456789abcdef0", at()).unwrap();
        let v: Value = serde_json::from_str(&merged.json).unwrap();
        assert_eq!(v["amiId"], "ami-0123456789abcdef0");
        assert_eq!(v["amiUpdatedAt"], "2026-01-27T12:00:00Z");
        assert_eq!(v["maxRunners"], 4);
        assert_eq!(v["custom"]["a"], 1);
        assert_eq!(v["labels"][0], "x");
        assert!(merged.changed);
        let again = merge_ami(Some(&merged.json), "ami-0123456789abcdef0", at()).unwrap();
        assert!(!again.changed, "same AMI twice is not a change");
    }

    #[test]
    fn refuses_to_overwrite_unreadable_config() {
        assert!(merge_ami(Some("not json"), "ami-1", at()).is_err());
        assert!(merge_ami(Some("[1,2]"), "ami-1", at()).is_err());
        assert!(merge_settings(Some("\"s\""), &Map::new()).is_err());
    }

    #[test]
    fn settings_never_clobber_the_ami() {
        let mut fresh = Map::new();
        fresh.insert("amiId".into(), Value::Null);
        fresh.insert("labels".into(), serde_json::json!(["new"]));
        let merged = merge_settings(
            Some(r#"{"amiId":"ami-9","labels":["old"],"mine":true}"#),
            &fresh,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&merged.json).unwrap();
        assert_eq!(v["amiId"], "ami-9");
        assert_eq!(v["labels"][0], "new");
        assert_eq!(v["mine"], true);
        let created = merge_settings(None, &fresh).unwrap();
        assert_eq!(ami_of(&created.json), None);
        assert!(created.json.contains("\"amiId\":null"));
    }

    #[test]
    fn owned_keys_are_every_key_kiln_writes() {
        let source = crate::preset::PresetSource {
            file: "p.yaml".into(),
            text: "name: p\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n\
                   labels: [a]\ntimeout_minutes: 5\ndisk_size_gb: 20\nports: [22]\n\
                   estimated_cost_per_hour: 0.1\ninstance_types: [m7i]\n"
                .into(),
        };
        let preset = crate::preset::parse_one(&source).unwrap().remove(0);
        let written: Map<String, Value> = serde_json::from_str(&largest(&preset)).unwrap();
        let mut keys: Vec<&str> = written.keys().map(String::as_str).collect();
        let mut owned = OWNED_KEYS.to_vec();
        keys.sort();
        owned.sort();
        assert_eq!(keys, owned);
    }

    #[test]
    fn tier_follows_the_size() {
        assert_eq!(
            parameter_tier(&"x".repeat(4096)),
            Some(ParameterTier::Standard)
        );
        assert_eq!(
            parameter_tier(&"x".repeat(4097)),
            Some(ParameterTier::Advanced)
        );
        assert_eq!(
            parameter_tier(&"x".repeat(8192)),
            Some(ParameterTier::Advanced)
        );
        assert_eq!(parameter_tier(&"x".repeat(8193)), None);
    }

    proptest! {
        #[test]
        fn merge_never_drops_a_key(
            keys in proptest::collection::btree_map("[a-zA-Z]{1,12}", any::<i64>(), 0..20),
            ami in "ami-[0-9a-f]{17}",
        ) {
            let before = serde_json::to_string(&keys).unwrap();
            let merged = merge_ami(Some(&before), &ami, at()).unwrap();
            let after: Map<String, Value> = serde_json::from_str(&merged.json).unwrap();
            for (k, v) in &keys {
                if k != AMI_ID && k != AMI_UPDATED_AT {
                    prop_assert_eq!(after.get(k), Some(&Value::from(*v)));
                }
            }
            prop_assert_eq!(ami_of(&merged.json), Some(ami));
        }
    }
}
