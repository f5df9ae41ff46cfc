//! Retention: which of kiln's AMIs to deregister, per preset and region. Pure: the
//! callers (`kiln cleanup`, the stack's scheduled retention) read what protects an AMI
//! and list the images (`kiln_aws::retention`), this decides, they execute.
//!
//! An AMI is kept while it is among the newest N of its preset and region, while
//! anything references it (the reader says what), or while its successor has been live
//! for less than the grace period.

use std::collections::{BTreeMap, BTreeSet};

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
                crate::time::parse(created)
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

/// Newest first (then by id, so equal times list stably).
pub fn sort_newest_first(images: &mut [Image]) {
    images.sort_by(|a, b| (&b.created, &b.id).cmp(&(&a.created, &a.id)));
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
