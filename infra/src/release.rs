//! `kiln pin`, `kiln unpin`, `kiln rollback` and `kiln revoke`: release control.
//!
//! Each operation is a pure function of the AMI record and the build history
//! (`kiln_shared::state::release`) written through the same compare-and-swap as the
//! Lambdas' observations ([`kiln_aws::release::update_ami`]), so a build's AVAILABLE
//! racing a pin re-applies on top of it instead of undoing it. Afterwards every
//! region's runner config and `/<prefix>/ami/<preset>` parameter follow the record.

use chrono::{DateTime, Utc};
use kiln_aws::AwsError;
use kiln_aws::release::{Synced, UpdateError, ami_parameter_name, sync_current, update_ami};
use kiln_aws::sdk::Clients;
use kiln_aws::store::PresetItem;
use kiln_shared::build::BuildRecord;
use kiln_shared::state::AmiRecord;
use kiln_shared::state::release::{self, Control, ControlError};

/// One release-control operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Pin {
        preset: String,
        version: String,
    },
    Unpin {
        preset: String,
    },
    Rollback {
        preset: String,
    },
    /// `preset` narrows a version that more than one preset has.
    Revoke {
        version: String,
        preset: Option<String>,
        disable_ami: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Refused(#[from] ControlError),
    #[error("unknown preset {0} (no PRESET item in the state table; is it deployed?)")]
    UnknownPreset(String),
    #[error("no preset has a build {0} (see `kiln list`)")]
    UnknownVersion(String),
    #[error("build {version} exists for several presets ({presets}); name one with --preset")]
    AmbiguousVersion { version: String, presets: String },
    #[error("{0}")]
    Write(String),
}

impl From<UpdateError<ControlError>> for ReleaseError {
    fn from(e: UpdateError<ControlError>) -> Self {
        match e {
            UpdateError::Aws(e) => ReleaseError::Aws(e),
            UpdateError::Refused(e) => ReleaseError::Refused(e),
            other => ReleaseError::Write(other.to_string()),
        }
    }
}

/// What an operation did to one preset.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub preset: String,
    /// The record changed (false: it already was so).
    pub changed: bool,
    pub record: AmiRecord,
    pub synced: Synced,
    /// (region, AMI) disabled in EC2 (`revoke --disable-ami`).
    pub disabled: Vec<(String, String)>,
}

impl Done {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let current = self.record.current();
        let on = self
            .record
            .changes
            .last()
            .and_then(|c| c.to.clone())
            .filter(|_| self.changed)
            .or_else(|| self.record.release.as_ref().map(|r| r.version.clone()))
            .unwrap_or_else(|| "the newest build".into());
        let mut line = format!(
            "{}: {}runners use {on} ({})",
            self.preset,
            if self.changed { "" } else { "unchanged; " },
            current.ami_id.unwrap_or("no AMI"),
        );
        if self.record.is_pinned() {
            line.push_str(", pinned");
        }
        if !self.synced.configs_updated.is_empty() {
            line.push_str(&format!(
                "; runner configs updated in {}",
                self.synced.configs_updated.join(", ")
            ));
        }
        for (region, ami) in &self.disabled {
            line.push_str(&format!("; disabled {ami} in {region}"));
        }
        line
    }
}

/// Runs `op` against the deployment with `prefix`.
pub async fn run(
    clients: &Clients,
    prefix: &str,
    op: &Op,
    now: DateTime<Utc>,
) -> Result<Done, ReleaseError> {
    // The preset's own history: one query on its key prefix. Only a revoke without
    // --preset reads every preset's builds, to find the preset, and keeps its share.
    let (name, builds): (String, Vec<BuildRecord>) = match op {
        Op::Pin { preset, .. }
        | Op::Unpin { preset }
        | Op::Rollback { preset }
        | Op::Revoke {
            preset: Some(preset),
            ..
        } => (
            preset.clone(),
            clients.store.list_builds_of(preset).await?.items,
        ),
        Op::Revoke {
            version,
            preset: None,
            ..
        } => {
            let all = clients.store.list_builds().await?.items;
            let name = preset_of(&all, version)?;
            let builds = all.into_iter().filter(|b| b.preset == name).collect();
            (name, builds)
        }
    };
    if let Op::Revoke { version, .. } = op
        && !builds.iter().any(|b| &b.build_version == version)
    {
        return Err(ReleaseError::UnknownVersion(version.clone()));
    }
    let item = clients
        .store
        .get_preset(&name)
        .await?
        .ok_or_else(|| ReleaseError::UnknownPreset(name.clone()))?;
    let home = item.home_region.clone();
    let (record, changed) = update_ami(clients.store.as_ref(), &name, |current| {
        let control = match op {
            Op::Pin { version, .. } => release::pin(current, &builds, version, &home, now),
            Op::Unpin { .. } => release::unpin(current, &builds, &home, now),
            Op::Rollback { .. } => release::rollback(current, &builds, &home, now),
            Op::Revoke { version, .. } => release::revoke(current, &builds, version, &home, now),
        }?;
        Ok(match control {
            Control::Write(next) => Some(*next),
            Control::Unchanged => None,
        })
    })
    .await
    .map_err(|e| match e {
        UpdateError::NoRecord(p) => ReleaseError::Refused(ControlError::NoRecord(p)),
        e => e.into(),
    })?;
    tracing::info!(preset = name, changed, op = ?op, "release control applied");
    let synced = follow(clients, prefix, &item, record.clone()).await?;
    let mut disabled = Vec::new();
    if let Op::Revoke {
        version,
        disable_ami: true,
        ..
    } = op
        && let Some(b) = builds.iter().find(|b| &b.build_version == version)
    {
        for (region, ami) in &b.amis {
            clients.ec2.disable_image(region, ami).await?;
            disabled.push((region.clone(), ami.clone()));
        }
    }
    Ok(Done {
        preset: name,
        changed,
        record,
        synced,
        disabled,
    })
}

/// Syncs the configs to the record, then re-reads it: a build's event that landed in
/// between may have synced its own AMI after ours, so follow until the record stands
/// still.
async fn follow(
    clients: &Clients,
    prefix: &str,
    item: &PresetItem,
    mut record: AmiRecord,
) -> Result<Synced, AwsError> {
    let config = item.parameter_name.clone();
    let ami = ami_parameter_name(prefix, &item.name);
    let mut total = Synced::default();
    for _ in 0..3 {
        let s = sync_current(clients.configs.as_ref(), item, &record, &config, &ami).await?;
        total.configs_updated.extend(s.configs_updated);
        total.configs_refused.extend(s.configs_refused);
        total.parameters_updated.extend(s.parameters_updated);
        let Some(latest) = clients.store.get_ami(&item.name).await? else {
            break;
        };
        if (latest.rev, &latest.ami_order_key) == (record.rev, &record.ami_order_key) {
            break;
        }
        record = latest;
    }
    total.configs_updated.dedup();
    total.parameters_updated.dedup();
    Ok(total)
}

/// The preset a build version belongs to.
fn preset_of(builds: &[BuildRecord], version: &str) -> Result<String, ReleaseError> {
    let mut presets: Vec<&str> = builds
        .iter()
        .filter(|b| b.build_version == version)
        .map(|b| b.preset.as_str())
        .collect();
    presets.sort();
    presets.dedup();
    match presets.as_slice() {
        [] => Err(ReleaseError::UnknownVersion(version.to_owned())),
        [one] => Ok((*one).to_owned()),
        many => Err(ReleaseError::AmbiguousVersion {
            version: version.to_owned(),
            presets: many.join(", "),
        }),
    }
}

/// `kiln releases PRESET`: release control as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Releases {
    pub preset: String,
    /// `pinned`, `rolled_back` or `revoked` (runners held on `version`); `None`: runners
    /// follow the newest good build.
    pub hold: Option<release::ReleaseKind>,
    pub version: Option<String>,
    /// The AMI runners use in the stack region.
    pub ami_id: Option<String>,
    /// Revoked builds (versions).
    pub revoked: Vec<String>,
    /// Each pin, unpin, rollback and revoke, newest first (the record keeps the last
    /// [`release::MAX_CHANGES`]).
    pub changes: Vec<release::ReleaseChange>,
}

/// Reads `preset`'s release control.
pub async fn releases(clients: &Clients, preset: &str) -> Result<Releases, ReleaseError> {
    let record = clients
        .store
        .get_ami(preset)
        .await?
        .ok_or_else(|| ReleaseError::UnknownPreset(preset.to_owned()))?;
    Ok(Releases::of(&record))
}

impl Releases {
    pub fn of(record: &AmiRecord) -> Releases {
        let version = |arn: &str| {
            kiln_shared::ImageArn::parse(arn)
                .map(|a| a.build_version())
                .unwrap_or_else(|| arn.to_owned())
        };
        Releases {
            preset: record.preset.clone(),
            hold: record.release.as_ref().map(|r| r.kind),
            version: record.release.as_ref().map(|r| r.version.clone()),
            ami_id: record.current().ami_id.map(str::to_owned),
            revoked: record.revoked.iter().map(|a| version(a)).collect(),
            changes: record.changes.iter().rev().cloned().collect(),
        }
    }

    /// For the terminal: what runners use, then one line per change.
    pub fn render(&self) -> String {
        let on = match (&self.hold, &self.version) {
            (Some(kind), Some(v)) => {
                let why = match kind {
                    release::ReleaseKind::Pinned => "pinned",
                    release::ReleaseKind::RolledBack => "rolled back",
                    release::ReleaseKind::Revoked => "the newer build was revoked",
                };
                format!("held on build {v} ({why})")
            }
            _ => "following the newest good build".to_owned(),
        };
        let mut out = format!(
            "{}: runners {on}, AMI {}\n",
            self.preset,
            self.ami_id.as_deref().unwrap_or("none")
        );
        if !self.revoked.is_empty() {
            out.push_str(&format!("revoked: {}\n", self.revoked.join(", ")));
        }
        if self.changes.is_empty() {
            out.push_str("no release-control changes\n");
        }
        for c in &self.changes {
            let named = c
                .version
                .as_deref()
                .map_or(String::new(), |v| format!(" {v}"));
            let from = c.from.as_deref().unwrap_or("-");
            let to = c.to.as_deref().unwrap_or("-");
            out.push_str(&format!(
                "{}  {}{named}  runners {from} -> {to}\n",
                kiln_shared::time::format(c.at),
                c.op
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
