//! Per-architecture values: any setting may be written `{x86_64: …, arm64: …}` and
//! resolves, for each expanded preset, to the value of its architecture.

use serde_yaml::{Mapping, Value};

use super::Architecture;

/// Fields that decide the expansion itself: never per architecture.
const NOT_PER_ARCH: [&str; 4] = ["name", "architecture", "architectures", "$schema"];

/// `{x86_64: …, arm64: …}`: a non-empty mapping whose keys are all architecture names.
pub(super) fn is_per_arch(value: &Value) -> bool {
    match value {
        Value::Mapping(m) => {
            !m.is_empty()
                && m.keys()
                    .all(|k| k.as_str().and_then(Architecture::parse).is_some())
        }
        _ => false,
    }
}

/// Whether any field of a file gives per-architecture values.
pub(super) fn any_per_arch(map: &Mapping) -> bool {
    map.iter().any(|(k, v)| {
        is_per_arch(v)
            || (k.as_str() == Some("runner")
                && v.as_mapping().is_some_and(|r| r.values().any(is_per_arch)))
    })
}

/// A field given per architecture where it may not be, as `(field, reason)`.
pub(super) fn misplaced(map: &Mapping) -> Vec<(String, String)> {
    map.iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?;
            (NOT_PER_ARCH.contains(&key) && is_per_arch(v)).then(|| {
                (
                    key.to_owned(),
                    "cannot be given per architecture: it decides the architectures".into(),
                )
            })
        })
        .collect()
}

/// `(field, reason)` problems.
pub(super) type Problems = Vec<(String, String)>;

/// The file's mapping as seen by one architecture, plus the fields that were per
/// architecture (for error paths), or the `(field, reason)` of each value missing for
/// `arch`.
pub(super) fn resolve(
    map: &Mapping,
    arch: Architecture,
) -> Result<(Mapping, Vec<String>), Problems> {
    let mut out = Mapping::new();
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("");
        if NOT_PER_ARCH.contains(&key) {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let value = match pick(v, arch) {
            Picked::Same => v.clone(),
            Picked::Value(value) => {
                resolved.push(key.to_owned());
                value
            }
            Picked::Missing(has) => {
                missing.push((key.to_owned(), missing_reason(arch, &has)));
                continue;
            }
        };
        let value = if key == "runner" {
            match value {
                Value::Mapping(runner) => {
                    let mut settings = Mapping::new();
                    for (rk, rv) in runner {
                        match pick(&rv, arch) {
                            Picked::Same => {
                                settings.insert(rk, rv);
                            }
                            Picked::Value(value) => {
                                resolved.push(format!("runner.{}", rk.as_str().unwrap_or("")));
                                settings.insert(rk, value);
                            }
                            Picked::Missing(has) => missing.push((
                                format!("runner.{}", rk.as_str().unwrap_or("")),
                                missing_reason(arch, &has),
                            )),
                        }
                    }
                    Value::Mapping(settings)
                }
                other => other,
            }
        } else {
            value
        };
        out.insert(k.clone(), value);
    }
    if missing.is_empty() {
        Ok((out, resolved))
    } else {
        Err(missing)
    }
}

enum Picked {
    Same,
    Value(Value),
    Missing(Vec<String>),
}

fn pick(value: &Value, arch: Architecture) -> Picked {
    if !is_per_arch(value) {
        return Picked::Same;
    }
    let Value::Mapping(m) = value else {
        return Picked::Same;
    };
    match m.get(arch.as_str()) {
        Some(v) => Picked::Value(v.clone()),
        None => Picked::Missing(
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
        ),
    }
}

fn missing_reason(arch: Architecture, has: &[String]) -> String {
    format!(
        "no value for architecture {arch} (the per-architecture values name only {})",
        has.join(", ")
    )
}

/// An error path inside a per-architecture field, with the architecture spelled in:
/// `instance_types[1]` → `instance_types.arm64[1]`.
pub(super) fn field_path(field: &str, resolved: &[String], arch: Architecture) -> String {
    for key in resolved {
        if let Some(rest) = field.strip_prefix(key.as_str())
            && (rest.is_empty() || rest.starts_with('[') || rest.starts_with('.'))
        {
            return format!("{key}.{arch}{rest}");
        }
    }
    field.to_owned()
}

/// The mapping with each per-architecture value replaced by its first entry: for
/// reporting a file's other problems when its architectures are themselves wrong.
pub(super) fn first_values(map: &Mapping) -> Mapping {
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Mapping(m) if is_per_arch(v) => {
                    m.values().next().cloned().unwrap_or(Value::Null)
                }
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}
