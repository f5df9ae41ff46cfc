//! A preset file as the user writes it: the serde shape (and JSON Schema) before
//! validation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Architecture;

/// A check run in Image Builder's TEST phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationTest {
    /// Short name, shown in build history.
    pub name: String,
    /// Shell command run on the built instance.
    pub command: String,
    /// The command's whole output (trimmed) must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The command's output must contain this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_contains: Option<String>,
}

/// One preset file as written by a user. Field docs become the JSON Schema's
/// descriptions (editor completion).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "kiln preset",
    description = "One machine image built by EC2 Image Builder."
)]
pub struct PresetFile {
    /// Unique name, `[a-z0-9-]{1,40}`.
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,40}$"))]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Single architecture. Use either this or `architectures`.
    #[serde(default)]
    #[schemars(with = "Option<Architecture>")]
    pub architecture: Option<String>,
    /// Several architectures: one preset per entry, named `<name>-<arch>`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Architecture>>")]
    pub architectures: Option<Vec<String>>,
    /// `ubuntu-22.04`, `ubuntu-24.04`, `amazon-linux-2023`, or an explicit `ami-…`.
    pub base_image: String,
    /// Instance types or families the runners use (kept in the runner config).
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// Instance types for the Image Builder build; defaults per architecture.
    #[serde(default)]
    pub build_instance_types: Option<Vec<String>>,
    /// AMI distribution regions; the first is the home region. Default: the stack region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Docker images pre-pulled into the image.
    #[serde(default)]
    pub additional_docker_images: Vec<String>,
    /// Shell script run in the Image Builder BUILD phase.
    #[serde(default)]
    pub setup_script: Option<String>,
    /// Checks run in the TEST phase.
    #[serde(default)]
    pub validation_tests: Vec<ValidationTest>,
    /// Rebuild schedule, an EventBridge/Image Builder cron expression. Default weekly.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Runner job timeout in minutes.
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
    /// Runner labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Root volume size of the image, GiB.
    #[serde(default)]
    pub disk_size_gb: Option<u32>,
    /// Root device of an explicit `ami-…` base (its `RootDeviceName`: `/dev/xvda`,
    /// `/dev/sda1`, …), so `disk_size_gb` resizes the root volume instead of adding a
    /// disk. Aliases' root devices are known; with an explicit AMI and `disk_size_gb` it
    /// is required.
    #[serde(default)]
    pub root_device_name: Option<String>,
    /// Ports the runner exposes.
    #[serde(default)]
    pub ports: Vec<u32>,
    /// Informational cost estimate, USD per hour.
    #[serde(default)]
    pub estimated_cost_per_hour: Option<f64>,
    /// Any further runner settings, copied as-is into the SSM runner config. Keys kiln
    /// writes itself (`amiId`, `amiUpdatedAt`, `region`, `preset`, …) are refused.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub runner: BTreeMap<String, serde_json::Value>,
    /// Name shown on the status page and in the registry (default: `name`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Days after which the AMI runners use is too old: a warning, and `/status` turns
    /// `degraded`. Also the window for "no successful build". Default 30.
    #[serde(default)]
    #[schemars(range(min = 1, max = 3650))]
    pub max_age_days: Option<u32>,
    /// Also rebuild when the base image or a component has a newer version (Image
    /// Builder `EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE`): the schedule then
    /// only checks, and builds when something changed. Default false.
    #[serde(default)]
    pub rebuild_on_dependency_updates: Option<bool>,
}

pub(super) const KNOWN_FIELDS: [&str; 23] = [
    "name",
    "description",
    "architecture",
    "architectures",
    "base_image",
    "instance_types",
    "build_instance_types",
    "regions",
    "additional_docker_images",
    "setup_script",
    "validation_tests",
    "schedule",
    "timeout_minutes",
    "labels",
    "disk_size_gb",
    "root_device_name",
    "ports",
    "estimated_cost_per_hour",
    "runner",
    "$schema",
    "max_age_days",
    "rebuild_on_dependency_updates",
    "display_name",
];
