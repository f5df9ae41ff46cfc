//! Release control: pin, unpin, rollback and revoke, as pure functions of the stored
//! record (and, where a choice of build is needed, the build history).
//!
//! They write the same AMI record as observations, through the same compare-and-swap:
//! every control write bumps [`AmiRecord::rev`], and every write of the record (events
//! included) is conditional on the revision it read, so a racing AVAILABLE re-reads and
//! re-applies on top of a pin instead of undoing it (and the other way round).
//!
//! What runners use ([`AmiRecord::current`]) is the record's `release` when there is one,
//! else its AMI register (the newest AVAILABLE). Two kinds of release:
//!
//! - *held* (`pinned`, `rolled_back`): set by an operator; new builds are recorded and
//!   shown, but runners stay on the release until `kiln unpin`;
//! - *fallback* (`revoked`): set when the build runners used is revoked; the next good
//!   build that is not revoked replaces it by itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::build::BuildRecord;
use crate::state::{AmiRecord, ImageState};
use crate::time;

/// How many release-control changes a record keeps (newest last).
pub const MAX_CHANGES: usize = 50;

/// Why runners are on a release rather than the newest build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    /// `kiln pin`: held until `kiln unpin`.
    Pinned,
    /// `kiln rollback`: held like a pin.
    RolledBack,
    /// The build runners used was revoked: held until a newer good build.
    Revoked,
}

impl ReleaseKind {
    /// An operator's decision that new builds do not override.
    pub fn held(self) -> bool {
        matches!(self, ReleaseKind::Pinned | ReleaseKind::RolledBack)
    }
}

/// A build runners are pointed at instead of the newest one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub kind: ReleaseKind,
    /// Image build version ARN.
    pub build_id: String,
    /// `1.0.42/3`.
    pub version: String,
    pub ami_id: Option<String>,
    pub amis: BTreeMap<String, String>,
    /// When the build finished.
    #[serde(with = "time::serde_secs")]
    pub built_at: DateTime<Utc>,
    /// When the release was decided.
    #[serde(with = "time::serde_secs")]
    pub at: DateTime<Utc>,
}

/// One release-control change, as the record's history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseChange {
    #[serde(with = "time::serde_secs")]
    pub at: DateTime<Utc>,
    /// `pin`, `unpin`, `rollback`, `revoke`.
    pub op: String,
    /// The build the operation named (pin/revoke) or chose (rollback).
    #[serde(default)]
    pub version: Option<String>,
    /// Build version runners used before and after.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

/// What runners use: the release if there is one, else the newest AVAILABLE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current<'a> {
    pub build_id: Option<&'a str>,
    pub ami_id: Option<&'a str>,
    pub amis: &'a BTreeMap<String, String>,
    pub built_at: Option<DateTime<Utc>>,
}

/// A release-control operation that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("preset {preset} has no build {version}")]
    UnknownBuild { preset: String, version: String },
    #[error(
        "build {version} of {preset} did not produce AMIs (its outcome is {outcome}); only an available build can be pinned"
    )]
    NotAvailable {
        preset: String,
        version: String,
        outcome: String,
    },
    #[error("build {version} of {preset} is revoked; it is never pointed at again")]
    Revoked { preset: String, version: String },
    #[error(
        "preset {preset} has no earlier good build to roll back to (builds that are available, not revoked and older than {current})"
    )]
    NoRollbackTarget { preset: String, current: String },
    #[error(
        "build {version} is what {preset}'s runners use and there is no other good build to fall back to; build a new image first"
    )]
    NoFallback { preset: String, version: String },
    #[error("preset {0} has no AMI record yet")]
    NoRecord(String),
}

/// The outcome of a control operation: the record to write, or nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Write(Box<AmiRecord>),
    /// Already so (a repeated pin, an unpin of an unpinned preset, a repeated revoke).
    Unchanged,
}

impl AmiRecord {
    /// What runners use (see the module docs).
    pub fn current(&self) -> Current<'_> {
        match &self.release {
            Some(r) => Current {
                build_id: Some(&r.build_id),
                ami_id: r.ami_id.as_deref(),
                amis: &r.amis,
                built_at: Some(r.built_at),
            },
            None => Current {
                build_id: self.ami_build_id.as_deref(),
                ami_id: self.ami_id.as_deref(),
                amis: &self.amis,
                built_at: self.ami_updated_at,
            },
        }
    }

    /// An operator holds the preset on a build (`pinned` in `/status`).
    pub fn is_pinned(&self) -> bool {
        self.release.as_ref().is_some_and(|r| r.kind.held())
    }

    pub fn is_revoked(&self, build_id: &str) -> bool {
        self.revoked.iter().any(|b| b == build_id)
    }

    fn current_version(&self, builds: &[BuildRecord]) -> Option<String> {
        let id = self.current().build_id?;
        Some(version_of(id, builds))
    }
}

/// The build version of an ARN: from the history, else the ARN's last two segments.
fn version_of(build_id: &str, builds: &[BuildRecord]) -> String {
    builds
        .iter()
        .find(|b| b.build_id == build_id)
        .map(|b| b.build_version.clone())
        .or_else(|| crate::ImageArn::parse(build_id).map(|a| a.build_version()))
        .unwrap_or_else(|| build_id.to_owned())
}

fn good(b: &BuildRecord) -> bool {
    b.outcome == Some(ImageState::Available) && !b.amis.is_empty()
}

fn finished(b: &BuildRecord) -> DateTime<Utc> {
    b.ended_at.unwrap_or(b.started_at)
}

/// Builds order by when they finished, then by version, numerically (`1.0.0/10` after
/// `1.0.0/9`): two builds finished in the same second still have a before and after.
fn order(b: &BuildRecord) -> (DateTime<Utc>, Vec<u64>) {
    (finished(b), version_key(b))
}

fn version_key(b: &BuildRecord) -> Vec<u64> {
    b.build_version
        .split(['.', '/'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Where the build runners use now stands in [`order`]. Its history item may lack an
/// end (the terminal write was lost; reconcile heals it later) while the record already
/// holds its AMIs: it finished when the record saw them, not when it started (a build
/// can start before the previous one ends). `None`: not in the history.
fn current_order(record: &AmiRecord, builds: &[BuildRecord]) -> Option<(DateTime<Utc>, Vec<u64>)> {
    let current = record.current();
    let b = builds
        .iter()
        .find(|b| Some(b.build_id.as_str()) == current.build_id)?;
    let end = b.ended_at.or(current.built_at).unwrap_or(b.started_at);
    Some((end, version_key(b)))
}

fn release_of(b: &BuildRecord, kind: ReleaseKind, home: &str, at: DateTime<Utc>) -> Release {
    Release {
        kind,
        build_id: b.build_id.clone(),
        version: b.build_version.clone(),
        ami_id: b.amis.get(home).or_else(|| b.amis.values().next()).cloned(),
        amis: b.amis.clone(),
        built_at: finished(b),
        at: time::truncate(at),
    }
}

/// The newest good, unrevoked build of the preset ordered before `before` (see
/// [`order`]; any when `None`), other than `except`.
fn newest_good<'a>(
    record: &AmiRecord,
    builds: &'a [BuildRecord],
    before: Option<(DateTime<Utc>, Vec<u64>)>,
    except: Option<&str>,
) -> Option<&'a BuildRecord> {
    builds
        .iter()
        .filter(|b| b.preset == record.preset && good(b) && !record.is_revoked(&b.build_id))
        .filter(|b| Some(b.build_id.as_str()) != except)
        .filter(|b| before.as_ref().is_none_or(|t| order(b) < *t))
        .max_by_key(|b| order(b))
}

fn find<'a>(
    record: &AmiRecord,
    builds: &'a [BuildRecord],
    version: &str,
) -> Result<&'a BuildRecord, ControlError> {
    builds
        .iter()
        .find(|b| b.preset == record.preset && b.build_version == version)
        .ok_or_else(|| ControlError::UnknownBuild {
            preset: record.preset.clone(),
            version: version.to_owned(),
        })
}

fn commit(
    current: &AmiRecord,
    mut next: AmiRecord,
    builds: &[BuildRecord],
    op: &str,
    version: Option<String>,
    at: DateTime<Utc>,
) -> Control {
    if next == *current {
        return Control::Unchanged;
    }
    next.rev = current.rev + 1;
    next.changes.push(ReleaseChange {
        at: time::truncate(at),
        op: op.to_owned(),
        version,
        from: current.current_version(builds),
        to: next.current_version(builds),
    });
    let excess = next.changes.len().saturating_sub(MAX_CHANGES);
    next.changes.drain(..excess);
    Control::Write(Box::new(next))
}

/// `kiln pin PRESET --build VERSION`: runners use that build until `kiln unpin`.
pub fn pin(
    current: &AmiRecord,
    builds: &[BuildRecord],
    version: &str,
    home_region: &str,
    at: DateTime<Utc>,
) -> Result<Control, ControlError> {
    hold(
        current,
        builds,
        version,
        home_region,
        at,
        ReleaseKind::Pinned,
        "pin",
    )
}

fn hold(
    current: &AmiRecord,
    builds: &[BuildRecord],
    version: &str,
    home_region: &str,
    at: DateTime<Utc>,
    kind: ReleaseKind,
    op: &str,
) -> Result<Control, ControlError> {
    let b = find(current, builds, version)?;
    if current.is_revoked(&b.build_id) {
        return Err(ControlError::Revoked {
            preset: current.preset.clone(),
            version: version.to_owned(),
        });
    }
    if !good(b) {
        return Err(ControlError::NotAvailable {
            preset: current.preset.clone(),
            version: version.to_owned(),
            outcome: b.outcome.map_or_else(
                || "still building".to_owned(),
                |o| o.as_str().to_lowercase(),
            ),
        });
    }
    if current
        .release
        .as_ref()
        .is_some_and(|r| r.kind == kind && r.build_id == b.build_id)
    {
        return Ok(Control::Unchanged);
    }
    let mut next = current.clone();
    next.release = Some(release_of(b, kind, home_region, at));
    Ok(commit(
        current,
        next,
        builds,
        op,
        Some(version.to_owned()),
        at,
    ))
}

/// `kiln unpin PRESET`: runners follow the newest good build again (the newest one
/// that is not revoked).
pub fn unpin(
    current: &AmiRecord,
    builds: &[BuildRecord],
    home_region: &str,
    at: DateTime<Utc>,
) -> Result<Control, ControlError> {
    if !current.is_pinned() {
        return Ok(Control::Unchanged);
    }
    let mut next = current.clone();
    next.release = None;
    settle(&mut next, builds, home_region, at)?;
    Ok(commit(current, next, builds, "unpin", None, at))
}

/// `kiln rollback PRESET`: pins the newest good, unrevoked build finished before the
/// one runners use now.
pub fn rollback(
    current: &AmiRecord,
    builds: &[BuildRecord],
    home_region: &str,
    at: DateTime<Utc>,
) -> Result<Control, ControlError> {
    let Some(target) = rollback_target(current, builds) else {
        return Err(ControlError::NoRollbackTarget {
            preset: current.preset.clone(),
            current: current
                .current_version(builds)
                .unwrap_or_else(|| "no build".into()),
        });
    };
    let version = target.build_version.clone();
    hold(
        current,
        builds,
        &version,
        home_region,
        at,
        ReleaseKind::RolledBack,
        "rollback",
    )
}

/// The build `kiln rollback` would pin: the newest good, unrevoked build finished
/// before the one runners use now (retention keeps its AMIs).
pub fn rollback_target<'a>(
    current: &AmiRecord,
    builds: &'a [BuildRecord],
) -> Option<&'a BuildRecord> {
    let now_on = current.current().build_id;
    let before = current_order(current, builds);
    let known = before.is_some();
    newest_good(current, builds, before, now_on).filter(|_| known || now_on.is_none())
}

/// `kiln revoke VERSION`: the build is never pointed at again. If runners use it, they
/// fall back to the newest good build before it (held until a newer good build).
pub fn revoke(
    current: &AmiRecord,
    builds: &[BuildRecord],
    version: &str,
    home_region: &str,
    at: DateTime<Utc>,
) -> Result<Control, ControlError> {
    let b = find(current, builds, version)?;
    if current.is_revoked(&b.build_id) {
        return Ok(Control::Unchanged);
    }
    let mut next = current.clone();
    next.revoked.push(b.build_id.clone());
    if next
        .release
        .as_ref()
        .is_some_and(|r| r.build_id == b.build_id)
    {
        next.release = None;
    }
    settle(&mut next, builds, home_region, at)?;
    Ok(commit(
        current,
        next,
        builds,
        "revoke",
        Some(version.to_owned()),
        at,
    ))
}

/// Makes sure runners are not on a revoked build: falls back to the newest good build
/// finished before it.
fn settle(
    next: &mut AmiRecord,
    builds: &[BuildRecord],
    home_region: &str,
    at: DateTime<Utc>,
) -> Result<(), ControlError> {
    let Some(on) = next.current().build_id.map(str::to_owned) else {
        return Ok(());
    };
    if !next.is_revoked(&on) {
        return Ok(());
    }
    // Without its build item: whatever finished before the record saw its AMI.
    let before = current_order(next, builds).or(next.ami_updated_at.map(|t| (t, Vec::new())));
    match newest_good(next, builds, before, Some(&on)) {
        Some(fallback) => {
            next.release = Some(release_of(fallback, ReleaseKind::Revoked, home_region, at));
            Ok(())
        }
        None => Err(ControlError::NoFallback {
            preset: next.preset.clone(),
            version: version_of(&on, builds),
        }),
    }
}

#[cfg(test)]
mod tests;
