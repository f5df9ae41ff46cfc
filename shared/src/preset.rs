//! Presets: one YAML file per machine image, validated, then expanded per architecture.
//!
//! Parsing is pure: callers hand in `(file name, contents)` pairs (the CLI reads the
//! directory). Every problem of every file is collected, so a user fixes a directory in
//! one pass; each names the file, the field and the reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod architecture;
mod base_image;
mod cron;
mod file;
mod guard;
mod parse;
mod per_arch;
mod schema;
pub mod template_format;
mod validate;

pub use architecture::{Architecture, instance_architecture};
pub use base_image::{BASE_IMAGE_ALIASES, BaseImage};
pub use cron::{DEFAULT_SCHEDULE, normalise_cron};
pub use file::{PresetFile, ValidationTest};
pub use guard::{MAX_FILE_BYTES, MAX_FLOW_OPENERS};
pub use parse::{parse_all, parse_one};

use file::KNOWN_FIELDS;

/// A validated preset for one architecture: what the rest of kiln works with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    /// Unique name after architecture expansion (`r-research-arm64`).
    pub name: String,
    /// The name written in the file (the registry's "template").
    pub template: String,
    /// File it came from, for messages.
    pub source_file: String,
    #[serde(default)]
    pub description: Option<String>,
    pub architecture: Architecture,
    pub base_image: BaseImage,
    pub instance_types: Vec<String>,
    pub build_instance_types: Vec<String>,
    /// Empty means "the stack region".
    pub regions: Vec<String>,
    pub additional_docker_images: Vec<String>,
    pub setup_script: String,
    pub validation_tests: Vec<ValidationTest>,
    /// Normalised to `cron(…)`.
    pub schedule: String,
    pub timeout_minutes: Option<u32>,
    pub labels: Vec<String>,
    pub disk_size_gb: Option<u32>,
    /// Only for an explicit AMI base (validated); aliases know theirs.
    #[serde(default)]
    pub root_device_name: Option<String>,
    pub ports: Vec<u16>,
    pub estimated_cost_per_hour: Option<f64>,
    pub runner: BTreeMap<String, serde_json::Value>,
    /// Shown on the page and in the registry; `None`: the name is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// An AMI older than this is a warning (and no successful build within it).
    /// Left out of the JSON at its default, so existing presets keep their hash.
    #[serde(
        default = "default_max_age_days",
        skip_serializing_if = "is_default_max_age_days"
    )]
    pub max_age_days: u32,
    /// Image Builder's `EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild_on_dependency_updates: bool,
}

/// The default of `max_age_days`.
pub const DEFAULT_MAX_AGE_DAYS: u32 = 30;

fn default_max_age_days() -> u32 {
    DEFAULT_MAX_AGE_DAYS
}

fn is_default_max_age_days(d: &u32) -> bool {
    *d == DEFAULT_MAX_AGE_DAYS
}

impl Preset {
    /// What people see: the display name, else the template name.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.template)
    }

    /// The home region: first distribution region, else the stack's.
    pub fn home_region<'a>(&'a self, stack_region: &'a str) -> &'a str {
        self.regions
            .first()
            .map(String::as_str)
            .unwrap_or(stack_region)
    }

    /// Distribution regions with the default applied.
    pub fn regions_or<'a>(&'a self, stack_region: &'a str) -> Vec<&'a str> {
        if self.regions.is_empty() {
            vec![stack_region]
        } else {
            self.regions.iter().map(String::as_str).collect()
        }
    }

    /// SHA-256 of the preset's canonical JSON (source file excluded, so moving a file
    /// does not trigger a rebuild). Drives component/recipe versions and "changed?".
    pub fn content_hash(&self) -> String {
        let mut canonical = self.clone();
        canonical.source_file = String::new();
        let json = serde_json::to_vec(&canonical).expect("preset serialises");
        hex::encode(Sha256::digest(json))
    }

    /// Image Builder semantic version derived from the content hash: `1.0.<n>` with
    /// `n < 2^30` (Image Builder's per-field limit). A changed script → a new version.
    pub fn semantic_version(&self) -> String {
        let hash = self.content_hash();
        let n = u32::from_str_radix(&hash[..8], 16).unwrap_or(0) & ((1 << 30) - 1);
        format!("1.0.{n}")
    }

    /// Pipeline name in Image Builder.
    pub fn pipeline_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name)
    }

    /// SSM parameter holding the runner config.
    pub fn parameter_name(&self, prefix: &str) -> String {
        format!("/{prefix}/configs/{}", self.name)
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct PresetError {
    pub file: String,
    /// Path of the field (`validation_tests[1].command`), or `(file)` for the whole file.
    pub field: String,
    pub reason: String,
}

/// Every problem found in a set of preset files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PresetErrors(pub Vec<PresetError>);

impl fmt::Display for PresetErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A preset source: file name (as shown in messages) and its text.
#[derive(Debug, Clone)]
pub struct PresetSource {
    pub file: String,
    pub text: String,
}

/// The JSON Schema of a preset file, for editors (`# yaml-language-server: $schema=…`).
/// Covers both formats: kiln's and the seed's template format.
pub fn json_schema() -> String {
    schema::json_schema()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod format_tests;
