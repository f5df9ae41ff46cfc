//! EC2 AMIs and their snapshots, one client per region (the AMIs of a build live in
//! every distribution region).

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};
use crate::regional::PerRegion;

pub mod refs;

/// One AMI owned by the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Image {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// ISO-8601, as EC2 reports it (sorts as time).
    pub created: String,
    /// EBS snapshots behind the AMI (deleted with it).
    pub snapshots: Vec<String>,
    /// Total size of its EBS volumes, GiB (from the block device mappings).
    pub size_gb: Option<u32>,
}

pub trait Ec2Images: Send + Sync {
    /// The account's own AMIs in `region` carrying tag `key` = `value` (all pages).
    fn list_images<'a>(
        &'a self,
        region: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<Vec<Ec2Image>, AwsError>>;
    fn deregister_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    fn delete_snapshot<'a>(
        &'a self,
        region: &'a str,
        snapshot: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    /// How EC2 sees each of `ids` in `region` (deprecated and disabled images
    /// included); an id EC2 does not return is absent from the map.
    fn image_states<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<BTreeMap<String, ImageHealth>, AwsError>>;
    /// EC2 DisableImage: the AMI can no longer launch instances (and is hidden).
    fn disable_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    /// What references each of `ids` in `region` (instances, launch templates): pairs
    /// of (AMI id, resource). DescribeImageReferences where EC2 offers it; else the same
    /// checks made by hand (see [`refs`]).
    fn image_references<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>>;
}

/// One AMI's state as EC2 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHealth {
    /// `available`, `pending`, `disabled`, `deregistered`, `failed`, …
    pub state: String,
    /// A deprecation time is set and has passed.
    pub deprecated: bool,
}

/// The real client, one SDK client per region.
pub struct SdkEc2(PerRegion<Client>);

impl SdkEc2 {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        SdkEc2(PerRegion::new(base, Client::new))
    }
}

impl Ec2Images for SdkEc2 {
    fn list_images<'a>(
        &'a self,
        region: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<Vec<Ec2Image>, AwsError>> {
        Box::pin(async move {
            let mut pages = self
                .0
                .get(region)
                .describe_images()
                .owners("self")
                .filters(
                    Filter::builder()
                        .name(format!("tag:{key}"))
                        .values(value)
                        .build(),
                )
                .into_paginator()
                .send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| from_sdk("ec2:DescribeImages", e))?;
                for image in page.images() {
                    let Some(id) = image.image_id() else { continue };
                    out.push(Ec2Image {
                        id: id.to_owned(),
                        name: image.name().unwrap_or_default().to_owned(),
                        tags: image
                            .tags()
                            .iter()
                            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                            .collect(),
                        created: image.creation_date().unwrap_or_default().to_owned(),
                        snapshots: image
                            .block_device_mappings()
                            .iter()
                            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
                            .map(str::to_owned)
                            .collect(),
                        size_gb: image
                            .block_device_mappings()
                            .iter()
                            .filter_map(|m| m.ebs().and_then(|e| e.volume_size()))
                            .map(|gb| u32::try_from(gb).unwrap_or(0))
                            .reduce(|a, b| a.saturating_add(b)),
                    });
                }
            }
            Ok(out)
        })
    }

    fn deregister_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .get(region)
                .deregister_image()
                .image_id(image)
                .send()
                .await
                .map_err(|e| from_sdk("ec2:DeregisterImage", e))?;
            Ok(())
        })
    }

    fn delete_snapshot<'a>(
        &'a self,
        region: &'a str,
        snapshot: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .get(region)
                .delete_snapshot()
                .snapshot_id(snapshot)
                .send()
                .await
                .map_err(|e| from_sdk("ec2:DeleteSnapshot", e))?;
            Ok(())
        })
    }

    fn image_states<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<BTreeMap<String, ImageHealth>, AwsError>> {
        Box::pin(refs::image_states(self.0.get(region), ids))
    }

    fn disable_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .get(region)
                .disable_image()
                .image_id(image)
                .send()
                .await
                .map_err(|e| from_sdk("ec2:DisableImage", e))?;
            Ok(())
        })
    }

    fn image_references<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>> {
        Box::pin(refs::image_references(self.0.get(region), ids))
    }
}
