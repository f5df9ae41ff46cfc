//! The AMI registry export, in the seed design's shape:
//!
//! ```json
//! {"version": "1", "last_updated": "…",
//!  "templates": {"<template>": {"version", "description",
//!     "amis": {"<region>": {"<arch>": {"ami_id", "created", "validated", "size_gb"}}},
//!     "ports", "estimated_cost_per_hour"}}}
//! ```
//!
//! with kiln's own fields beside them (`display_name`, `presets`, each AMI's `preset`,
//! `build_version` and per-test results). A plain JSON document other tooling
//! (Terraform, runner fleets) can read without AWS credentials; its JSON Schema is
//! committed as `shared/registry.schema.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::build::BuildRecord;
use crate::preset::Preset;
use crate::state::BuildStatus;
use crate::time;

/// The registry document's format version.
pub const REGISTRY_VERSION: &str = "1";

/// One validation test's outcome, kept per build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TestResult {
    pub name: String,
    pub passed: bool,
    /// The command's output (trimmed, bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryEntry {
    pub ami_id: String,
    /// When the build finished (ISO-8601 UTC).
    pub created: String,
    pub validated: bool,
    pub size_gb: Option<u32>,
    /// kiln: the expanded preset that built it.
    pub preset: String,
    /// kiln: `1.0.42/3`.
    pub build_version: String,
    /// kiln: each validation test's outcome, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestResult>,
}

/// region → arch → entry.
pub type RegistryAmis = BTreeMap<String, BTreeMap<String, RegistryEntry>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryTemplate {
    /// The deployed preset's version (`1.0.42`, from its content hash); for a preset no
    /// longer deployed, its newest build's.
    pub version: String,
    pub description: Option<String>,
    pub amis: RegistryAmis,
    pub ports: Vec<u16>,
    /// arch → USD per hour.
    pub estimated_cost_per_hour: BTreeMap<String, f64>,
    /// kiln: the name people see (the template format's `name`).
    pub display_name: String,
    /// kiln: arch → expanded preset name.
    pub presets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "kiln AMI registry",
    description = "Newest ready AMI per template, region and architecture (`kiln registry export`)."
)]
pub struct Registry {
    pub version: String,
    pub last_updated: String,
    pub templates: BTreeMap<String, RegistryTemplate>,
}

/// Newest ready build per template/region/arch, with each template's settings from the
/// deployed presets. A build whose preset is no longer deployed is its own template.
/// `size_of` gives an AMI's size from its snapshots when the build recorded none.
pub fn build_registry(
    builds: &[BuildRecord],
    presets: &[Preset],
    size_of: &dyn Fn(&str, &str) -> Option<u32>,
    generated_at: chrono::DateTime<chrono::Utc>,
) -> Registry {
    let mut templates: BTreeMap<String, RegistryTemplate> = BTreeMap::new();
    let by_name: BTreeMap<&str, &Preset> = presets.iter().map(|p| (p.name.as_str(), p)).collect();
    for p in presets {
        let t = templates
            .entry(p.template.clone())
            .or_insert_with(|| empty_template(&p.template));
        t.display_name = p.shown_name().to_owned();
        t.description = p.description.clone();
        t.version = semantic(&p.semantic_version()).to_owned();
        for port in &p.ports {
            if !t.ports.contains(port) {
                t.ports.push(*port);
            }
        }
        t.ports.sort_unstable();
        let arch = p.architecture.as_str().to_owned();
        if let Some(c) = p.estimated_cost_per_hour {
            t.estimated_cost_per_hour.insert(arch.clone(), c);
        }
        t.presets.insert(arch, p.name.clone());
    }
    let mut newest_build: BTreeMap<String, String> = BTreeMap::new();
    for b in builds.iter().filter(|b| b.status == BuildStatus::Ready) {
        let created = time::format(b.ended_at.unwrap_or(b.started_at));
        let preset = by_name.get(b.preset.as_str());
        let template = preset.map_or_else(|| b.preset.clone(), |p| p.template.clone());
        let arch = b
            .architecture
            .or(preset.map(|p| p.architecture))
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let t = templates
            .entry(template.clone())
            .or_insert_with(|| empty_template(&template));
        t.presets
            .entry(arch.clone())
            .or_insert_with(|| b.preset.clone());
        for (region, ami) in &b.amis {
            let slot = t.amis.entry(region.clone()).or_default();
            if slot.get(&arch).is_none_or(|e| created > e.created) {
                slot.insert(
                    arch.clone(),
                    RegistryEntry {
                        ami_id: ami.clone(),
                        created: created.clone(),
                        validated: b.validated_now(),
                        size_gb: b.size_gb.or_else(|| size_of(region, ami)),
                        preset: b.preset.clone(),
                        build_version: b.build_version.clone(),
                        tests: b.tests.clone(),
                    },
                );
            }
        }
        let newest = newest_build.entry(template).or_default();
        if created > *newest {
            *newest = created;
            if preset.is_none() || t.version.is_empty() {
                t.version = semantic(&b.build_version).to_owned();
            }
        }
    }
    Registry {
        version: REGISTRY_VERSION.into(),
        last_updated: time::format(generated_at),
        templates,
    }
}

/// The committed `shared/registry.schema.json`: the registry document's JSON Schema.
pub fn json_schema() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(Registry)).expect("schema");
    // The design's fields are required; kiln's beside them may grow.
    schema["required"] = serde_json::json!(["version", "last_updated", "templates"]);
    // Always written, possibly null: required, so consumers can rely on the keys.
    for (def, keys) in [
        ("RegistryEntry", &["size_gb"][..]),
        ("RegistryTemplate", &["description"][..]),
    ] {
        if let Some(required) = schema["$defs"][def]["required"].as_array_mut() {
            for k in keys {
                required.push(serde_json::json!(k));
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

fn empty_template(name: &str) -> RegistryTemplate {
    RegistryTemplate {
        version: String::new(),
        description: None,
        amis: BTreeMap::new(),
        ports: Vec::new(),
        estimated_cost_per_hour: BTreeMap::new(),
        display_name: name.to_owned(),
        presets: BTreeMap::new(),
    }
}

/// `1.0.42/3` → `1.0.42`.
fn semantic(build_version: &str) -> &str {
    build_version.split('/').next().unwrap_or(build_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::Architecture;
    use crate::state::ImageState;

    fn build(
        preset: &str,
        arch: Architecture,
        version: &str,
        ended: &str,
        status: BuildStatus,
        amis: &[(&str, &str)],
    ) -> BuildRecord {
        BuildRecord {
            job_id: crate::table::build_job_id(preset, version),
            record_type: crate::table::RECORD_TYPE_BUILD.into(),
            preset: preset.into(),
            architecture: Some(arch),
            build_version: version.into(),
            build_id: format!(
                "arn:aws:imagebuilder:us-east-1:123456789012:image/{preset}/{version}"
            ),
            status,
            last_state: ImageState::Available,
            started_at: time::parse("2026-01-01T00:00:00Z").unwrap(),
            ended_at: Some(time::parse(ended).unwrap()),
            outcome: Some(ImageState::Available),
            amis: amis
                .iter()
                .map(|(r, a)| ((*r).into(), (*a).into()))
                .collect(),
            reason: None,
            validated: true,
            size_gb: Some(30),
            tests: Vec::new(),
            tested: None,
        }
    }

    #[test]
    fn newest_ready_build_wins_per_region_and_arch() {
        let builds = [
            build(
                "r-research-x64",
                Architecture::X86_64,
                "1.0.1/1",
                "2026-01-02T00:00:00Z",
                BuildStatus::Ready,
                &[("us-east-1", "ami-old"), ("eu-west-1", "ami-old-eu")],
            ),
            build(
                "r-research-x64",
                Architecture::X86_64,
                "1.0.1/2",
                "2026-01-03T00:00:00Z",
                BuildStatus::Ready,
                &[("us-east-1", "ami-new")],
            ),
            build(
                "r-research-x64",
                Architecture::X86_64,
                "1.0.1/3",
                "2026-01-04T00:00:00Z",
                BuildStatus::Failed,
                &[("us-east-1", "ami-failed")],
            ),
            build(
                "r-research-arm64",
                Architecture::Arm64,
                "1.0.1/1",
                "2026-01-02T00:00:00Z",
                BuildStatus::Ready,
                &[("us-east-1", "ami-arm")],
            ),
        ];
        let presets = crate::preset::parse_all(
            "presets",
            &[crate::preset::PresetSource {
                file: "r-research.yml".into(),
                text: include_str!("../tests/fixtures/presets/template/r-research.yml").into(),
            }],
        )
        .unwrap();
        let reg = build_registry(
            &builds,
            &presets,
            &|_, _| None,
            time::parse("2026-01-05T00:00:00Z").unwrap(),
        );
        assert_eq!(reg.version, REGISTRY_VERSION);
        assert_eq!(reg.last_updated, "2026-01-05T00:00:00Z");
        let t = &reg.templates["r-research"];
        assert_eq!(t.amis["us-east-1"]["x86_64"].ami_id, "ami-new");
        assert_eq!(t.amis["us-east-1"]["arm64"].ami_id, "ami-arm");
        assert_eq!(t.amis["eu-west-1"]["x86_64"].ami_id, "ami-old-eu");
        assert_eq!(t.amis["us-east-1"]["x86_64"].size_gb, Some(30));
        assert_eq!(t.amis["us-east-1"]["x86_64"].preset, "r-research-x64");
        assert_eq!(t.display_name, "R Research Environment");
        assert_eq!(t.ports, [22, 8787]);
        assert_eq!(t.estimated_cost_per_hour["x86_64"], 0.0464);
        assert_eq!(t.estimated_cost_per_hour["arm64"], 0.0368);
        assert_eq!(t.presets["arm64"], "r-research-arm64");
        assert!(t.version.starts_with("1.0."), "{}", t.version);
    }

    #[test]
    fn schema_is_committed_and_current() {
        let committed = include_str!("../registry.schema.json");
        if std::env::var_os("KILN_BLESS").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/registry.schema.json"),
                json_schema(),
            )
            .unwrap();
            return;
        }
        assert!(
            committed == json_schema(),
            "shared/registry.schema.json is stale: run `KILN_BLESS=1 cargo test -p kiln-shared registry`"
        );
        let v: serde_json::Value = serde_json::from_str(committed).unwrap();
        let entry = v["$defs"]["RegistryEntry"]["required"].to_string();
        for key in ["ami_id", "created", "validated", "size_gb"] {
            assert!(entry.contains(key), "{key} in {entry}");
        }
    }

    #[test]
    fn sizes_come_from_snapshots_and_removed_presets_are_their_own_template() {
        let mut b = build(
            "gone",
            Architecture::Arm64,
            "1.0.7/2",
            "2026-01-02T00:00:00Z",
            BuildStatus::Ready,
            &[("us-east-1", "ami-gone")],
        );
        b.size_gb = None;
        let size_of =
            |region: &str, ami: &str| (region == "us-east-1" && ami == "ami-gone").then_some(42);
        let reg = build_registry(
            &[b],
            &[],
            &size_of,
            time::parse("2026-01-05T00:00:00Z").unwrap(),
        );
        let t = &reg.templates["gone"];
        assert_eq!(t.amis["us-east-1"]["arm64"].size_gb, Some(42));
        assert_eq!(t.version, "1.0.7");
        assert_eq!(t.display_name, "gone");
        let json = serde_json::to_value(&reg).unwrap();
        for key in ["version", "last_updated", "templates"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let entry = &json["templates"]["gone"]["amis"]["us-east-1"]["arm64"];
        for key in ["ami_id", "created", "validated", "size_gb"] {
            assert!(entry.get(key).is_some(), "{key}: {entry}");
        }
    }
}
