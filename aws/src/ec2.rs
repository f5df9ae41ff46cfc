//! EC2 AMIs and their snapshots, one client per region (the AMIs of a build live in
//! every distribution region).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

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
}

/// The real client, one SDK client per region built on first use.
pub struct SdkEc2 {
    base: aws_config::SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
}

impl SdkEc2 {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        SdkEc2 {
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let conf = aws_sdk_ec2::config::Builder::from(&self.base)
                    .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
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
                .client(region)
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
            self.client(region)
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
            self.client(region)
                .delete_snapshot()
                .snapshot_id(snapshot)
                .send()
                .await
                .map_err(|e| from_sdk("ec2:DeleteSnapshot", e))?;
            Ok(())
        })
    }
}
