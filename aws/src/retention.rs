//! Retention's reads and writes: kiln's AMIs per region, what protects them (the state
//! table: current, pinned, newest and rollback-target AMIs; SSM: runner configs and AMI
//! parameters; EC2: instances and launch templates), and the execution of a plan that
//! [`kiln_shared::retention`] made. The protection is read first: if any of it cannot
//! be read, nothing is planned, so nothing is deleted.

use std::collections::BTreeMap;

use kiln_shared::retention::{Image, Plan, Policy, plan_with};
use kiln_shared::state::release::rollback_target;
use kiln_shared::table::{TAG_ARCHITECTURE, TAG_PREFIX, TAG_PRESET};

use crate::AwsError;
use crate::ec2::Ec2Images;
use crate::ssm::RunnerConfigs;
use crate::store::StateStore;

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

/// AMI ids the state table protects, with why: what runners use, a pinned build's, the
/// newest build's (recorded while pinned), the rollback target's. An unreadable record
/// makes the whole read fail: what it protects is unknown.
pub async fn referenced_by_records(
    store: &dyn StateStore,
) -> Result<BTreeMap<String, String>, CleanupError> {
    let records = store.list_ami().await.map_err(CleanupError::ReadRecords)?;
    if let Some(bad) = records.unreadable.first() {
        return Err(CleanupError::ReadRecords(AwsError::invalid(
            "dynamodb:Query",
            format!("unreadable AMI record {}: {}", bad.job_id, bad.reason),
        )));
    }
    let builds = store
        .list_builds()
        .await
        .map_err(CleanupError::ReadBuilds)?;
    if let Some(bad) = builds.unreadable.first() {
        return Err(CleanupError::ReadBuilds(AwsError::invalid(
            "dynamodb:Query",
            format!("unreadable build item {}: {}", bad.job_id, bad.reason),
        )));
    }
    let mut out = BTreeMap::new();
    let mut protect = |amis: Vec<&String>, why: String| {
        for ami in amis {
            out.entry(ami.clone()).or_insert_with(|| why.clone());
        }
    };
    for record in &records {
        let p = &record.preset;
        let current = record.current();
        let what = if record.is_pinned() {
            "the pinned build"
        } else {
            "the current image"
        };
        protect(
            current.amis.values().collect(),
            format!("{what} of {p} (state table)"),
        );
        protect(
            record.ami_id.iter().chain(record.amis.values()).collect(),
            format!("the newest build of {p} (state table)"),
        );
        let history: Vec<_> = builds.iter().filter(|b| &b.preset == p).cloned().collect();
        if let Some(target) = rollback_target(record, &history) {
            protect(
                target.amis.values().collect(),
                format!(
                    "the rollback target of {p} (build {})",
                    target.build_version
                ),
            );
        }
    }
    Ok(out)
}

/// AMIs of `images` referenced in EC2 (instances, launch templates), with by what.
pub async fn referenced_by_ec2(
    ec2: &dyn Ec2Images,
    region: &str,
    images: &[Image],
) -> Result<BTreeMap<String, String>, CleanupError> {
    let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
    let mut out = BTreeMap::new();
    // DescribeImageReferences takes at most 10 image ids per call.
    for chunk in ids.chunks(10) {
        let refs =
            ec2.image_references(region, chunk)
                .await
                .map_err(|e| CleanupError::References {
                    region: region.to_owned(),
                    message: e.to_string(),
                })?;
        for (ami, what) in refs {
            out.entry(ami)
                .or_insert_with(|| format!("{what} ({region})"));
        }
    }
    Ok(out)
}

/// Reads every protection and kiln's AMIs in `regions`, then plans.
pub async fn plan_for(
    store: &dyn StateStore,
    configs: &dyn RunnerConfigs,
    ec2: &dyn Ec2Images,
    prefix: &str,
    regions: &[String],
    policy: &Policy,
) -> Result<Plan, CleanupError> {
    // Protection first: if we cannot read what is in use, we delete nothing.
    let mut in_use = referenced_by_records(store).await?;
    let mut images = Vec::new();
    for region in regions {
        for path in ["configs", "ami"] {
            for (ami, who) in referenced_by_configs(configs, region, prefix, path).await? {
                in_use.entry(ami).or_insert(who);
            }
        }
        let listed = list_images(ec2, region, prefix).await?;
        for (ami, who) in referenced_by_ec2(ec2, region, &listed).await? {
            in_use.entry(ami).or_insert(who);
        }
        images.extend(listed);
    }
    Ok(plan_with(images, policy, &in_use))
}
