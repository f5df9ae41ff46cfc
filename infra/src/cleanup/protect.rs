//! What protects an AMI from cleanup, read before anything is planned: the state
//! table (current, pinned, newest and rollback-target AMIs), SSM (runner configs and
//! AMI parameters) and EC2 (instances and launch templates).

use std::collections::BTreeMap;

use kiln_aws::AwsError;
use kiln_aws::ec2::Ec2Images;
use kiln_aws::sdk::Clients;
use kiln_aws::store::StateStore;
use kiln_shared::state::release::rollback_target;

use super::{CleanupError, Image, Plan, Policy, list_images, plan_with, referenced_by_configs};

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
    // DescribeImageReferences takes a bounded number of ids per call.
    for chunk in ids.chunks(50) {
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
    clients: &Clients,
    prefix: &str,
    regions: &[String],
    policy: &Policy,
) -> Result<Plan, CleanupError> {
    // Protection first: if we cannot read what is in use, we delete nothing.
    let mut in_use = referenced_by_records(clients.store.as_ref()).await?;
    let mut images = Vec::new();
    for region in regions {
        for path in ["configs", "ami"] {
            for (ami, who) in
                referenced_by_configs(clients.configs.as_ref(), region, prefix, path).await?
            {
                in_use.entry(ami).or_insert(who);
            }
        }
        let listed = list_images(clients.ec2.as_ref(), region, prefix).await?;
        for (ami, who) in referenced_by_ec2(clients.ec2.as_ref(), region, &listed).await? {
            in_use.entry(ami).or_insert(who);
        }
        images.extend(listed);
    }
    Ok(plan_with(images, policy, &in_use))
}
