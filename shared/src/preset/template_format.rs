//! The seed's template format (the Prism AMI-creation design), read as it is:
//!
//! ```yaml
//! name: "R Research Environment"      # display name; the preset's name is the file stem
//! base_ami:
//!   source: "ubuntu-22.04-lts"        # or ubuntu-24.04-lts, amazon-linux-2023, ami-…
//!   architecture: ["x86_64", "arm64"]
//! ```
//!
//! A file is in this format when it has `base_ami`. It is rewritten into kiln's own
//! mapping (`name` = stem, `display_name`, `base_image`, `architectures`); every other
//! field carries over and is validated as kiln's.

use serde_yaml::{Mapping, Value};

use super::BASE_IMAGE_ALIASES;

/// The template format's spellings of base images → kiln's aliases.
pub const TEMPLATE_SOURCE_ALIASES: [(&str, &str); 6] = [
    ("ubuntu-22.04-lts", "ubuntu-22.04"),
    ("ubuntu-24.04-lts", "ubuntu-24.04"),
    ("amazon-linux-2023", "amazon-linux-2023"),
    ("al2023", "amazon-linux-2023"),
    ("ubuntu-jammy", "ubuntu-22.04"),
    ("ubuntu-noble", "ubuntu-24.04"),
];

/// Whether a file's top-level mapping is in the template format.
pub fn is_template(map: &Mapping) -> bool {
    map.contains_key("base_ami")
}

/// The preset name a template file gets: its file name without directory and extension.
pub fn file_stem(file: &str) -> &str {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    base.strip_suffix(".yaml")
        .or_else(|| base.strip_suffix(".yml"))
        .unwrap_or(base)
}

/// Rewrites a template-format mapping into kiln's, or the `(field, reason)` of each
/// problem in the template-only parts (field paths as the user wrote them).
pub fn to_kiln(file: &str, map: &Mapping) -> Result<Mapping, Vec<(String, String)>> {
    let mut problems = Vec::new();
    for kiln_only in [
        "base_image",
        "architecture",
        "architectures",
        "display_name",
    ] {
        if map.contains_key(kiln_only) {
            let instead = match kiln_only {
                "display_name" => "`name` is the display name in this format",
                _ => "set the base image and architectures under base_ami",
            };
            problems.push((
                kiln_only.to_owned(),
                format!("not a field of a template with base_ami: {instead}"),
            ));
        }
    }
    let mut base_image = None;
    let mut architectures = None;
    match map.get("base_ami") {
        Some(Value::Mapping(base)) => {
            for (k, v) in base {
                match k.as_str() {
                    Some("source") => match source(v) {
                        Ok(v) => base_image = Some(v),
                        Err((path, reason)) => {
                            problems.push((format!("base_ami.source{path}"), reason))
                        }
                    },
                    Some("architecture") => architectures = Some(v.clone()),
                    _ => problems.push((
                        format!("base_ami.{}", super::parse::field_name(k)),
                        "unknown field: expected source or architecture".into(),
                    )),
                }
            }
            if !base.contains_key("source") {
                problems.push((
                    "base_ami.source".into(),
                    format!("required: {} or an ami-… id", accepted().join(", ")),
                ));
            }
            if !base.contains_key("architecture") {
                problems.push((
                    "base_ami.architecture".into(),
                    "required: x86_64, arm64 or a list of them".into(),
                ));
            }
        }
        _ => problems.push((
            "base_ami".into(),
            "must be a mapping with source and architecture".into(),
        )),
    }
    let display_name = match map.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            problems.push((
                "name".into(),
                "the display name must be a non-empty string".into(),
            ));
            None
        }
        None => {
            problems.push(("name".into(), "required: the display name".into()));
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = Mapping::new();
    out.insert("name".into(), file_stem(file).into());
    if let Some(d) = display_name {
        out.insert("display_name".into(), d.into());
    }
    if let Some(description) = map.get("description") {
        out.insert("description".into(), description.clone());
    }
    match architectures {
        Some(Value::Sequence(list)) => out.insert("architectures".into(), Value::Sequence(list)),
        Some(one) => out.insert("architecture".into(), one),
        None => None,
    };
    if let Some(b) = base_image {
        out.insert("base_image".into(), b);
    }
    for (k, v) in map {
        if !matches!(k.as_str(), Some("name" | "description" | "base_ami")) {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// A kiln field path of a converted file as the template spells it.
pub fn template_field(field: &str) -> String {
    let renames = [
        ("base_image", "base_ami.source"),
        ("architectures", "base_ami.architecture"),
        ("architecture", "base_ami.architecture"),
        ("display_name", "name"),
        ("name", "(file name)"),
    ];
    for (kiln, template) in renames {
        if let Some(rest) = field.strip_prefix(kiln)
            && (rest.is_empty() || rest.starts_with('[') || rest.starts_with('.'))
        {
            return format!("{template}{rest}");
        }
    }
    field.to_owned()
}

fn accepted() -> Vec<&'static str> {
    let mut all: Vec<&str> = TEMPLATE_SOURCE_ALIASES.iter().map(|(t, _)| *t).collect();
    for a in BASE_IMAGE_ALIASES {
        if !all.contains(&a) {
            all.push(a);
        }
    }
    all
}

/// `base_ami.source` → kiln's `base_image` (per architecture too), or `(sub-path, reason)`.
fn source(value: &Value) -> Result<Value, (String, String)> {
    match value {
        Value::String(s) => alias(s).map(Value::String).map_err(|r| (String::new(), r)),
        Value::Mapping(m) if super::per_arch::is_per_arch(value) => {
            let mut out = Mapping::new();
            for (k, v) in m {
                let arch = k.as_str().unwrap_or("");
                let text = v.as_str().ok_or_else(|| {
                    (
                        format!(".{arch}"),
                        "must be a base image name or ami-… id".to_owned(),
                    )
                })?;
                let kiln = alias(text).map_err(|r| (format!(".{arch}"), r))?;
                out.insert(k.clone(), kiln.into());
            }
            Ok(Value::Mapping(out))
        }
        _ => Err((
            String::new(),
            "must be a base image name or ami-… id (or one per architecture)".into(),
        )),
    }
}

fn alias(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Some((_, kiln)) = TEMPLATE_SOURCE_ALIASES.iter().find(|(t, _)| *t == text) {
        return Ok((*kiln).to_owned());
    }
    if BASE_IMAGE_ALIASES.contains(&text) || text.starts_with("ami-") {
        // An `ami-…` is checked by kiln's own base_image rule.
        return Ok(text.to_owned());
    }
    Err(format!(
        "unknown base image '{text}': expected one of {} or an AMI id (ami-xxxxxxxx)",
        accepted().join(", ")
    ))
}
