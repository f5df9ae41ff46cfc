//! The public status (`GET /status`): aggregation, messages and the allow-listed type.
//!
//! [`StatusReport`] is built field by field from records; a record is never passed
//! through, so a field added to a record (build ARNs, reasons, account data) cannot leak.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::preset::Architecture;
use crate::state::{AmiRecord, BuildStatus};
use crate::time;

pub mod warnings;
pub use warnings::Warning;

/// A preset's public status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresetStatus {
    Ready,
    Building,
    Failed,
    NotConfigured,
}

/// The overall public status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverallStatus {
    Ready,
    Building,
    Degraded,
    NotConfigured,
}

impl OverallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OverallStatus::Ready => "ready",
            OverallStatus::Building => "building",
            OverallStatus::Degraded => "degraded",
            OverallStatus::NotConfigured => "not_configured",
        }
    }
}

impl fmt::Display for OverallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PresetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PresetStatus::Ready => "ready",
            PresetStatus::Building => "building",
            PresetStatus::Failed => "failed",
            PresetStatus::NotConfigured => "not_configured",
        }
    }
}

/// One preset in the public status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresetReport {
    pub name: String,
    pub status: PresetStatus,
    pub ami_id: Option<String>,
    pub updated_at: Option<String>,
    pub architecture: Option<Architecture>,
    pub amis: BTreeMap<String, String>,
    /// When the AMI runners use was built.
    #[serde(default)]
    pub built_at: Option<String>,
    /// An operator holds the preset on a build (`kiln pin` / `kiln rollback`).
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// The preset's display name (`display_name`, a template's `name`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The `/status` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusReport {
    pub status: OverallStatus,
    pub message: String,
    pub presets: Vec<PresetReport>,
    pub generated_at: String,
    pub stale: bool,
}

/// A preset known from configuration (PRESET items), whether or not it has a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPreset {
    pub name: String,
    pub architecture: Option<Architecture>,
    pub display_name: Option<String>,
}

impl StatusReport {
    /// Aggregates records (and configured presets that have none yet) into the report.
    pub fn build(
        known: &[KnownPreset],
        records: &[AmiRecord],
        generated_at: DateTime<Utc>,
    ) -> Self {
        let mut by_name: BTreeMap<&str, PresetReport> = BTreeMap::new();
        for k in known {
            by_name.insert(
                &k.name,
                PresetReport {
                    name: k.name.clone(),
                    status: PresetStatus::NotConfigured,
                    ami_id: None,
                    updated_at: None,
                    architecture: k.architecture,
                    amis: BTreeMap::new(),
                    built_at: None,
                    pinned: false,
                    warnings: Vec::new(),
                    display_name: k.display_name.clone(),
                },
            );
        }
        for r in records {
            let known = by_name.get(r.preset.as_str());
            let architecture = r
                .architecture
                .or_else(|| known.and_then(|p| p.architecture));
            let display_name = known.and_then(|p| p.display_name.clone());
            let mut public = public_preset(r, architecture, generated_at);
            public.display_name = display_name;
            by_name.insert(&r.preset, public);
        }
        let presets: Vec<PresetReport> = by_name.into_values().collect();
        let (status, message) = summarise(&presets);
        StatusReport {
            status,
            message,
            presets,
            generated_at: time::format(generated_at),
            stale: false,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.status == OverallStatus::Ready
    }
}

/// The allow-list: exactly these fields of a record are public. `amiId`/`amis` are
/// what runners use (a pinned or rolled-back build's, not necessarily the newest).
fn public_preset(
    r: &AmiRecord,
    architecture: Option<Architecture>,
    now: DateTime<Utc>,
) -> PresetReport {
    let current = r.current();
    PresetReport {
        name: r.preset.clone(),
        status: match r.status {
            BuildStatus::Building => PresetStatus::Building,
            BuildStatus::Ready => PresetStatus::Ready,
            BuildStatus::Failed => PresetStatus::Failed,
        },
        ami_id: current.ami_id.map(str::to_owned),
        updated_at: Some(time::format(r.updated_at)),
        architecture,
        amis: current.amis.clone(),
        built_at: current.built_at.map(time::format),
        pinned: r.is_pinned(),
        warnings: warnings::warnings(r, now),
        display_name: None,
    }
}

/// Overall status and message. Precedence: none → not_configured; any failed →
/// degraded; any building → building; any without an AMI → degraded; else ready. Any
/// warning then makes it degraded, and the message names each.
pub fn summarise(presets: &[PresetReport]) -> (OverallStatus, String) {
    let (status, mut message) = summarise_builds(presets);
    let warned: Vec<String> = presets
        .iter()
        .filter(|p| !p.warnings.is_empty())
        .map(|p| {
            let what: Vec<String> = p.warnings.iter().map(Warning::short).collect();
            format!("{}: {}", p.name, what.join(", "))
        })
        .collect();
    if warned.is_empty() || status == OverallStatus::NotConfigured {
        return (status, message);
    }
    let names: Vec<&str> = warned.iter().map(String::as_str).collect();
    message.push_str("; ");
    message.push_str(&list(&names));
    (OverallStatus::Degraded, message)
}

fn summarise_builds(presets: &[PresetReport]) -> (OverallStatus, String) {
    let total = presets.len();
    if total == 0 {
        return (OverallStatus::NotConfigured, "No presets configured".into());
    }
    let names = |f: &dyn Fn(&PresetReport) -> bool| -> Vec<&str> {
        presets
            .iter()
            .filter(|p| f(p))
            .map(|p| p.name.as_str())
            .collect()
    };
    let ready = presets
        .iter()
        .filter(|p| p.status == PresetStatus::Ready && p.ami_id.is_some())
        .count();
    let failed = names(&|p| p.status == PresetStatus::Failed);
    let building = names(&|p| p.status == PresetStatus::Building);
    let without_ami = names(&|p| p.ami_id.is_none());

    if !failed.is_empty() {
        let mut msg = format!(
            "{ready} of {total} {} ready; {} failed",
            plural(total, "preset"),
            list(&failed)
        );
        if !building.is_empty() {
            msg.push_str(&format!("; {} building", building.len()));
        }
        return (OverallStatus::Degraded, msg);
    }
    if !building.is_empty() {
        let b = building.len();
        let msg = if b == total {
            format!("{b} {} building", plural(b, "preset"))
        } else {
            format!(
                "{b} {} building; {ready} of {total} ready",
                plural(b, "preset")
            )
        };
        return (OverallStatus::Building, msg);
    }
    if !without_ami.is_empty() {
        let verb = if without_ami.len() == 1 {
            "has"
        } else {
            "have"
        };
        return (
            OverallStatus::Degraded,
            format!(
                "{ready} of {total} {} ready; {} {verb} no AMI",
                plural(total, "preset"),
                list(&without_ami)
            ),
        );
    }
    let msg = if total == 1 {
        "1 preset ready".to_owned()
    } else {
        format!("All {total} presets ready")
    };
    (OverallStatus::Ready, msg)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// "a", "a and b", "a, b and c", "a, b, c and 2 more".
fn list(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        _ if names.len() <= SHOWN => {
            let (last, rest) = names.split_last().expect("non-empty");
            format!("{} and {last}", rest.join(", "))
        }
        _ => format!(
            "{} and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        ),
    }
}

#[cfg(test)]
mod tests;
