//! `kiln cleanup`: deregister old AMIs and delete their snapshots, per preset and region.
//!
//! The plan is pure (and unit-tested); the AWS side only lists and executes it. An AMI
//! is never deleted, whatever its age, while it is what runners use, a pinned build's,
//! the rollback target, the newest build (recorded while pinned), referenced by a
//! runner config or an AMI parameter in SSM, by an instance or a launch template (EC2
//! DescribeImageReferences, or the same checks by hand where that is unavailable), or
//! while its successor has been live for less than the grace period. The protection
//! is read first: if any of it cannot be read, nothing is deleted.

use std::collections::{BTreeMap, BTreeSet};

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kiln_aws::AwsError;
use kiln_aws::ec2::Ec2Images;
use kiln_aws::ssm::RunnerConfigs;

use crate::template::{TAG_ARCHITECTURE, TAG_PREFIX, TAG_PRESET};

mod protect;
pub use protect::{plan_for, referenced_by_ec2, referenced_by_records};

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("{region}: listing AMIs: {message}")]
    ListImages { region: String, message: String },
    #[error("{region}: reading runner configs under {path}: {message}")]
    ReadConfigs {
        region: String,
        path: String,
        message: String,
    },
    #[error("reading AMI records (the latest ready AMIs) from the state table: {0}")]
    ReadRecords(AwsError),
    #[error("reading the build history (rollback targets) from the state table: {0}")]
    ReadBuilds(AwsError),
    #[error("{region}: checking what references kiln's AMIs: {message}")]
    References { region: String, message: String },
}

/// One of kiln's AMIs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub id: String,
    pub name: String,
    pub preset: String,
    /// From the `kiln:architecture` tag.
    pub architecture: Option<String>,
    pub region: String,
    /// ISO-8601, as EC2 reports it (sorts as time).
    pub created: String,
    pub snapshots: Vec<String>,
    /// Size of its snapshots' volumes, GiB.
    pub size_gb: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// Among the newest N of its preset and region (1 = newest).
    Latest(usize),
    /// Referenced; says by what.
    InUse(String),
    /// Its successor went live less than the grace period ago (successor, since).
    Grace(String, String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub keep: Vec<(Image, KeepReason)>,
    pub delete: Vec<Image>,
}

/// Decides what to delete: per (preset, region) keep the newest `keep_latest`, and
/// anything in `in_use` (AMI id → who references it).
pub fn plan(images: Vec<Image>, keep_latest: usize, in_use: &BTreeMap<String, String>) -> Plan {
    let policy = Policy {
        keep_latest,
        grace: std::time::Duration::ZERO,
        now: chrono::DateTime::<chrono::Utc>::MAX_UTC,
    };
    plan_with(images, &policy, in_use)
}

/// How much to keep.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Per preset and region, newest first.
    pub keep_latest: usize,
    /// An AMI stays until its successor has been live this long.
    pub grace: std::time::Duration,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// [`plan`] with a grace period: an AMI whose next newer AMI (same preset and region)
/// was created less than `grace` before `now` is kept.
pub fn plan_with(images: Vec<Image>, policy: &Policy, in_use: &BTreeMap<String, String>) -> Plan {
    let grace = chrono::Duration::from_std(policy.grace).unwrap_or(chrono::Duration::MAX);
    let mut groups: BTreeMap<(String, String), Vec<Image>> = BTreeMap::new();
    for image in images {
        groups
            .entry((image.preset.clone(), image.region.clone()))
            .or_default()
            .push(image);
    }
    let mut out = Plan::default();
    for (_, mut group) in groups {
        group.sort_by(|a, b| (&b.created, &b.id).cmp(&(&a.created, &a.id)));
        let successors: Vec<Option<(String, String)>> = (0..group.len())
            .map(|i| {
                i.checked_sub(1)
                    .map(|j| (group[j].id.clone(), group[j].created.clone()))
            })
            .collect();
        for (i, image) in group.into_iter().enumerate() {
            let in_grace = successors[i].as_ref().filter(|(_, created)| {
                kiln_shared::time::parse(created)
                    .map_or(true, |t| policy.now.signed_duration_since(t) < grace)
            });
            if i < policy.keep_latest {
                out.keep.push((image, KeepReason::Latest(i + 1)));
            } else if let Some(user) = in_use.get(&image.id) {
                let user = user.clone();
                out.keep.push((image, KeepReason::InUse(user)));
            } else if let Some((next, since)) = in_grace {
                let reason = KeepReason::Grace(next.clone(), since.clone());
                out.keep.push((image, reason));
            } else {
                out.delete.push(image);
            }
        }
    }
    out
}

impl Plan {
    pub fn render(&self, dry_run: bool) -> String {
        let mut out = String::new();
        for (image, why) in &self.keep {
            let why = match why {
                KeepReason::Latest(n) => format!("newest #{n}"),
                KeepReason::InUse(by) => format!("in use by {by}"),
                KeepReason::Grace(next, since) => {
                    format!("within the grace period: its successor {next} is live since {since}")
                }
            };
            out.push_str(&format!(
                "keep    {} {} {} ({}, created {})\n",
                image.region, image.preset, image.id, why, image.created
            ));
        }
        let verb = if dry_run { "would delete" } else { "delete" };
        for image in &self.delete {
            out.push_str(&format!(
                "{verb} {} {} {} ({}: older than the newest kept, unreferenced, past the grace period; created {}; snapshots: {})\n",
                image.region,
                image.preset,
                image.id,
                image.name,
                image.created,
                if image.snapshots.is_empty() {
                    "none".to_owned()
                } else {
                    image.snapshots.join(", ")
                }
            ));
        }
        out.push_str(&format!(
            "{} AMI{} to delete, {} kept{}\n",
            self.delete.len(),
            if self.delete.len() == 1 { "" } else { "s" },
            self.keep.len(),
            if dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        ));
        out
    }
}

/// kiln's AMIs in one region (all pages).
pub async fn list_images(
    ec2: &dyn Ec2Images,
    region: &str,
    prefix: &str,
) -> Result<Vec<Image>, CleanupError> {
    let listed = ec2
        .list_images(region, TAG_PREFIX, prefix)
        .await
        .map_err(|e| CleanupError::ListImages {
            region: region.to_owned(),
            message: e.to_string(),
        })?;
    // The prefix tag already matched; an image without a preset tag was not made by
    // kiln's pipelines, so it is not ours to delete.
    Ok(listed
        .into_iter()
        .filter_map(|image| {
            let preset = image.tags.get(TAG_PRESET)?.clone();
            Some(Image {
                architecture: image.tags.get(TAG_ARCHITECTURE).cloned(),
                id: image.id,
                name: image.name,
                preset,
                region: region.to_owned(),
                created: image.created,
                snapshots: image.snapshots,
                size_gb: image.size_gb,
            })
        })
        .collect())
}

/// Newest first (then by id, so equal times list stably).
pub fn sort_newest_first(images: &mut [Image]) {
    images.sort_by(|a, b| (&b.created, &b.id).cmp(&(&a.created, &a.id)));
}

/// `kiln list --images`: one row per AMI.
pub fn render_images(images: &[Image]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["preset", "arch", "region", "AMI", "size", "name", "created"]);
    for i in images {
        table.add_row([
            i.preset.clone(),
            i.architecture.clone().unwrap_or_else(|| "-".into()),
            i.region.clone(),
            i.id.clone(),
            i.size_gb
                .map_or_else(|| "-".into(), |gb| format!("{gb} GiB")),
            i.name.clone(),
            i.created.clone(),
        ]);
    }
    format!("{table}\n")
}

/// AMI ids the parameters under `/<prefix>/<path>/` of one region point at: a runner
/// config's `amiId` (`configs`) or an AMI parameter's value (`ami`), with the parameter.
pub async fn referenced_by_configs(
    configs: &dyn RunnerConfigs,
    region: &str,
    prefix: &str,
    kind: &str,
) -> Result<BTreeMap<String, String>, CleanupError> {
    let path = format!("/{prefix}/{kind}/");
    let params = configs
        .list(region, &path)
        .await
        .map_err(|e| CleanupError::ReadConfigs {
            region: region.to_owned(),
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(params
        .into_iter()
        .filter_map(|(name, value)| {
            let ami = if value.starts_with("ami-") {
                value.trim().to_owned()
            } else {
                kiln_shared::runner_config::ami_of(&value)?
            };
            let what = if kind == "ami" {
                "AMI parameter"
            } else {
                "runner config"
            };
            Some((ami, format!("{what} {name} ({region})")))
        })
        .collect())
}

/// What went wrong deleting one image; the rest of the plan still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub image: String,
    pub region: String,
    pub message: String,
}

/// Deregisters each image, then deletes its snapshots (a snapshot of a registered AMI
/// cannot be deleted). Returns the failures.
pub async fn execute(ec2: &dyn Ec2Images, plan: &Plan, mut log: impl FnMut(&str)) -> Vec<Failure> {
    let mut failures = Vec::new();
    for image in &plan.delete {
        let fail = |message: String| Failure {
            image: image.id.clone(),
            region: image.region.clone(),
            message,
        };
        if let Err(e) = ec2.deregister_image(&image.region, &image.id).await {
            failures.push(fail(format!("deregister: {e}")));
            continue;
        }
        log(&format!(
            "deregistered {} {} {}",
            image.region, image.preset, image.id
        ));
        for snapshot in &image.snapshots {
            match ec2.delete_snapshot(&image.region, snapshot).await {
                Ok(_) => log(&format!("deleted snapshot {} {snapshot}", image.region)),
                Err(e) => failures.push(fail(format!("delete snapshot {snapshot}: {e}"))),
            }
        }
    }
    failures
}

/// Distinct regions, in order given.
pub fn unique_regions(regions: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    regions
        .iter()
        .filter(|r| seen.insert(r.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, preset: &str, region: &str, created: &str) -> Image {
        Image {
            id: id.into(),
            name: format!("n-{id}"),
            preset: preset.into(),
            architecture: None,
            region: region.into(),
            created: created.into(),
            snapshots: vec![format!("snap-{id}")],
            size_gb: Some(8),
        }
    }

    #[test]
    fn keeps_newest_per_preset_and_region_and_anything_in_use() {
        let images = vec![
            image("ami-a1", "a", "us-east-1", "2026-01-01T00:00:00.000Z"),
            image("ami-a3", "a", "us-east-1", "2026-01-03T00:00:00.000Z"),
            image("ami-a2", "a", "us-east-1", "2026-01-02T00:00:00.000Z"),
            image("ami-a0", "a", "us-east-1", "2025-12-31T00:00:00.000Z"),
            image("ami-e1", "a", "eu-west-1", "2026-01-01T00:00:00.000Z"),
            image("ami-b1", "b", "us-east-1", "2026-01-01T00:00:00.000Z"),
            image("ami-b2", "b", "us-east-1", "2026-01-05T00:00:00.000Z"),
        ];
        let in_use =
            BTreeMap::from([("ami-a1".to_owned(), "runner config /p/configs/a".to_owned())]);
        let p = plan(images, 1, &in_use);
        let deleted: BTreeSet<&str> = p.delete.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(deleted, BTreeSet::from(["ami-a2", "ami-a0", "ami-b1"]));
        let kept: BTreeMap<&str, &KeepReason> =
            p.keep.iter().map(|(i, r)| (i.id.as_str(), r)).collect();
        assert_eq!(kept["ami-a3"], &KeepReason::Latest(1));
        assert_eq!(
            kept["ami-e1"],
            &KeepReason::Latest(1),
            "regions are separate groups"
        );
        assert_eq!(kept["ami-b2"], &KeepReason::Latest(1));
        assert!(matches!(kept["ami-a1"], KeepReason::InUse(by) if by.contains("/p/configs/a")));
        let text = p.render(true);
        assert!(text.contains("would delete us-east-1 a ami-a2"), "{text}");
        assert!(
            text.contains("3 AMIs to delete, 4 kept (dry run: nothing changed)"),
            "{text}"
        );
    }

    #[test]
    fn keep_latest_larger_than_group_deletes_nothing() {
        let images = vec![
            image("ami-1", "a", "us-east-1", "2026-01-01T00:00:00Z"),
            image("ami-2", "a", "us-east-1", "2026-01-02T00:00:00Z"),
        ];
        let p = plan(images, 5, &BTreeMap::new());
        assert!(p.delete.is_empty());
        assert_eq!(p.keep.len(), 2);
    }
}
