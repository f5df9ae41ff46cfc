//! AMI states and references, for health checks and retention.
//!
//! References come from EC2 DescribeImageReferences (instances, launch templates, SSM
//! parameters, Image Builder recipes). Where that operation is not available (older
//! regions, partitions, local emulators) the same question is answered by hand, as the
//! API defines it: instances not terminated whose image is the AMI, and every version
//! of every launch template whose image is the AMI. SSM parameters are checked by the
//! caller, which already reads them.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;

use super::ImageHealth;
use crate::error::{AwsError, from_sdk};

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

pub(super) async fn image_states(
    client: Client,
    ids: &[String],
) -> Result<BTreeMap<String, ImageHealth>, AwsError> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    // A filter, not ImageIds: an unknown id is then absent, not an error for all.
    let page = client
        .describe_images()
        .filters(filter("image-id", ids))
        .include_deprecated(true)
        .include_disabled(true)
        .send()
        .await
        .map_err(|e| from_sdk("ec2:DescribeImages", e))?;
    let now = kiln_shared::time::format(chrono::Utc::now());
    for image in page.images() {
        let Some(id) = image.image_id() else { continue };
        out.insert(
            id.to_owned(),
            ImageHealth {
                state: image
                    .state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                deprecated: image
                    .deprecation_time()
                    .is_some_and(|t| !t.is_empty() && t <= now.as_str()),
            },
        );
    }
    Ok(out)
}

pub(super) async fn image_references(
    client: Client,
    ids: &[String],
) -> Result<Vec<(String, String)>, AwsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match described_references(&client, ids).await {
        Ok(refs) => Ok(refs),
        Err(e) => {
            tracing::warn!(error = %e, "DescribeImageReferences unavailable; checking instances and launch templates directly");
            let mut refs = instance_references(&client, ids).await?;
            refs.extend(launch_template_references(&client, ids).await?);
            Ok(refs)
        }
    }
}

async fn described_references(
    client: &Client,
    ids: &[String],
) -> Result<Vec<(String, String)>, AwsError> {
    let mut pages = client
        .describe_image_references()
        .set_image_ids(Some(ids.to_vec()))
        .include_all_resource_types(true)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("ec2:DescribeImageReferences", e))?;
        for r in page.image_references() {
            let (Some(image), Some(arn)) = (r.image_id(), r.arn()) else {
                continue;
            };
            let kind = r.resource_type().map(|t| t.as_str()).unwrap_or("resource");
            out.push((image.to_owned(), format!("{kind} {arn}")));
        }
    }
    Ok(out)
}

async fn instance_references(
    client: &Client,
    ids: &[String],
) -> Result<Vec<(String, String)>, AwsError> {
    let live: Vec<String> = ["pending", "running", "shutting-down", "stopping", "stopped"]
        .map(str::to_owned)
        .to_vec();
    let mut pages = client
        .describe_instances()
        .filters(filter("image-id", ids))
        .filters(filter("instance-state-name", &live))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("ec2:DescribeInstances", e))?;
        for i in page.reservations().iter().flat_map(|r| r.instances()) {
            if let (Some(image), Some(id)) = (i.image_id(), i.instance_id())
                && ids.iter().any(|x| x == image)
            {
                out.push((image.to_owned(), format!("instance {id}")));
            }
        }
    }
    Ok(out)
}

async fn launch_template_references(
    client: &Client,
    ids: &[String],
) -> Result<Vec<(String, String)>, AwsError> {
    let mut templates = Vec::new();
    let mut pages = client.describe_launch_templates().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("ec2:DescribeLaunchTemplates", e))?;
        for t in page.launch_templates() {
            if let Some(id) = t.launch_template_id() {
                templates.push(id.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for template in templates {
        let mut versions = client
            .describe_launch_template_versions()
            .launch_template_id(&template)
            .into_paginator()
            .send();
        while let Some(page) = versions.next().await {
            let page = page.map_err(|e| from_sdk("ec2:DescribeLaunchTemplateVersions", e))?;
            for v in page.launch_template_versions() {
                let Some(image) = v.launch_template_data().and_then(|d| d.image_id()) else {
                    continue;
                };
                if ids.iter().any(|x| x == image) {
                    out.push((
                        image.to_owned(),
                        format!(
                            "launch template {} version {}",
                            v.launch_template_name().unwrap_or(&template),
                            v.version_number().unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
    Ok(out)
}
