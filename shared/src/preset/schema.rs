//! The JSON Schema of a preset file: kiln's format or the seed's template format (one
//! of the two, told apart by `base_image` / `base_ami`), with any setting allowed per
//! architecture (`{x86_64: …, arm64: …}`).

use serde_json::{Value, json};

use super::PresetFile;

/// Fields that decide the expansion: never per architecture.
const FIXED: [&str; 3] = ["name", "architecture", "architectures"];

pub(super) fn json_schema() -> String {
    let generated = serde_json::to_value(schemars::schema_for!(PresetFile)).expect("schema");
    let mut properties = generated["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    properties.insert(
        "$schema".into(),
        json!({"description": "The schema this file follows (for editors).", "type": "string"}),
    );
    for (name, schema) in properties.iter_mut() {
        if !FIXED.contains(&name.as_str()) && name != "$schema" {
            *schema = per_architecture(schema.clone());
        }
    }
    let mut kiln = properties.clone();
    kiln.remove("base_image");
    kiln.insert(
        "base_image".into(),
        per_architecture(generated["properties"]["base_image"].clone()),
    );

    let mut template = properties;
    for kiln_only in [
        "name",
        "architecture",
        "architectures",
        "base_image",
        "display_name",
    ] {
        template.remove(kiln_only);
    }
    template.insert(
        "name".into(),
        json!({
            "description": "Display name (shown on the page and in the registry); the preset's name is the file name without .yml.",
            "type": "string",
            "minLength": 1
        }),
    );
    let source = json!({
        "description": "ubuntu-22.04-lts, ubuntu-24.04-lts, amazon-linux-2023 (or kiln's ubuntu-22.04, …) or an explicit ami-… id.",
        "type": "string"
    });
    template.insert(
        "base_ami".into(),
        json!({
            "description": "Base image and architectures (the template format).",
            "type": "object",
            "additionalProperties": false,
            "required": ["source", "architecture"],
            "properties": {
                "source": per_architecture(source),
                "architecture": {
                    "anyOf": [
                        {"$ref": "#/$defs/Architecture"},
                        {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Architecture"}}
                    ]
                }
            }
        }),
    );
    let schema = json!({
        "$schema": generated["$schema"],
        "title": "kiln preset",
        "description": "One machine image built by EC2 Image Builder: kiln's preset format, or the template format (name = display name, base_ami) whose preset name is the file name.",
        "oneOf": [
            {
                "title": "kiln preset",
                "type": "object",
                "properties": kiln,
                "additionalProperties": false,
                "required": ["name", "base_image"]
            },
            {
                "title": "template",
                "type": "object",
                "properties": template,
                "additionalProperties": false,
                "required": ["name", "base_ami"]
            }
        ],
        "$defs": generated["$defs"],
    });
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

/// `schema`, or a mapping of architecture → `schema`.
fn per_architecture(schema: Value) -> Value {
    let mut plain = schema.clone();
    let description = plain.as_object_mut().and_then(|o| o.remove("description"));
    if let Some(o) = plain.as_object_mut() {
        o.remove("default");
    }
    let mut out = json!({
        "anyOf": [
            plain.clone(),
            {
                "description": "One value per architecture.",
                "type": "object",
                "additionalProperties": false,
                "minProperties": 1,
                "properties": {"x86_64": plain.clone(), "arm64": plain}
            }
        ]
    });
    if let Some(d) = description {
        out["description"] = d;
    }
    out
}
