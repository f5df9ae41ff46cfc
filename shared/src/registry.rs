//! The AMI registry export: template → region → architecture → newest good AMI.
//!
//! A plain JSON document other tooling (Terraform, runner fleets) can read without AWS
//! credentials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::build::BuildRecord;
use crate::state::BuildStatus;
use crate::time;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub ami_id: String,
    /// When the build finished (ISO-8601 UTC).
    pub created: String,
    pub validated: bool,
    pub size_gb: Option<u32>,
    /// `1.0.42/3`.
    pub build_version: String,
}

/// template → region → arch → entry.
pub type RegistryTemplates = BTreeMap<String, BTreeMap<String, BTreeMap<String, RegistryEntry>>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub generated_at: String,
    pub templates: RegistryTemplates,
}

/// The template a preset belongs to, for presets whose history item lacks it:
/// expanded names end in `-x64`/`-arm64`.
pub type TemplateOf<'a> = &'a dyn Fn(&str) -> String;

/// Newest ready build per template/region/arch. `template_of` maps a preset name to its
/// template (the name in the file); `default_size_gb` fills builds that did not record one.
pub fn build_registry(
    builds: &[BuildRecord],
    template_of: TemplateOf<'_>,
    generated_at: chrono::DateTime<chrono::Utc>,
) -> Registry {
    let mut templates: RegistryTemplates = BTreeMap::new();
    for b in builds.iter().filter(|b| b.status == BuildStatus::Ready) {
        let created = b.ended_at.unwrap_or(b.started_at);
        let arch = b
            .architecture
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| "unknown".into());
        for (region, ami) in &b.amis {
            let slot = templates
                .entry(template_of(&b.preset))
                .or_default()
                .entry(region.clone())
                .or_default();
            let newer = slot
                .get(&arch)
                .is_none_or(|e| time::format(created) > e.created);
            if newer {
                slot.insert(
                    arch.clone(),
                    RegistryEntry {
                        ami_id: ami.clone(),
                        created: time::format(created),
                        validated: b.validated,
                        size_gb: b.size_gb,
                        build_version: b.build_version.clone(),
                    },
                );
            }
        }
    }
    Registry {
        generated_at: time::format(generated_at),
        templates,
    }
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
        let template_of = |p: &str| {
            p.trim_end_matches("-x64")
                .trim_end_matches("-arm64")
                .to_owned()
        };
        let reg = build_registry(
            &builds,
            &template_of,
            time::parse("2026-01-05T00:00:00Z").unwrap(),
        );
        let t = &reg.templates["r-research"];
        assert_eq!(t["us-east-1"]["x86_64"].ami_id, "ami-new");
        assert_eq!(t["us-east-1"]["arm64"].ami_id, "ami-arm");
        assert_eq!(t["eu-west-1"]["x86_64"].ami_id, "ami-old-eu");
        assert_eq!(t["us-east-1"]["x86_64"].size_gb, Some(30));
    }
}
