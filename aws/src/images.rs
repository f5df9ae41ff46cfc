//! EC2 Image Builder: the four operations kiln needs, behind a trait.

use std::collections::BTreeMap;

use aws_sdk_imagebuilder::Client;
use aws_sdk_imagebuilder::types::Filter;
use chrono::{DateTime, Utc};
use kiln_shared::{ImageState, time};

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

mod one_off;

/// What GetImage says about one image build version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub arn: String,
    pub state: Option<ImageState>,
    pub reason: Option<String>,
    pub date_created: Option<DateTime<Utc>>,
    pub source_pipeline_name: Option<String>,
    /// Region → AMI, from `outputResources.amis`.
    pub amis: BTreeMap<String, String>,
}

/// One entry of ListImagePipelineImages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub arn: String,
    pub date_created: Option<DateTime<Utc>>,
    pub state: Option<ImageState>,
}

/// How a pipeline's build instances are launched (its infrastructure configuration):
/// `kiln test` launches its instances the same way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfrastructure {
    pub instance_types: Vec<String>,
    pub instance_profile: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
}

/// A pipeline, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSummary {
    pub name: String,
    pub arn: String,
}

pub trait ImageBuilderApi: Send + Sync {
    /// Every pipeline of the account and region (all pages), sorted by name.
    fn list_pipelines(&self) -> BoxFut<'_, Result<Vec<PipelineSummary>, AwsError>>;
    /// ARN of the pipeline with exactly this name.
    fn find_pipeline<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<String>, AwsError>>;
    /// Every image of a pipeline, all pages, in the service's (undocumented) order.
    fn list_pipeline_images<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Vec<ImageSummary>, AwsError>>;
    /// `None` when the image does not exist (deleted, or not ours).
    fn get_image<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, AwsError>>;
    /// Starts a build without waiting; returns the new image build version ARN.
    fn start_pipeline<'a>(&'a self, pipeline_arn: &'a str) -> BoxFut<'a, Result<String, AwsError>>;
    /// Whether the pipeline is ENABLED (GetImagePipeline); `None` when the answer
    /// holds no pipeline.
    fn pipeline_enabled<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Option<bool>, AwsError>>;
    /// A build of the pipeline's recipe distributed to `region` only (a one-off; the
    /// pipeline is untouched): GetImagePipeline, GetDistributionConfiguration, a
    /// distribution configuration holding the pipeline's entry for `region` (created
    /// once per content), CreateImage. The new image build version ARN.
    fn start_one_off<'a>(
        &'a self,
        pipeline_arn: &'a str,
        region: &'a str,
    ) -> BoxFut<'a, Result<String, AwsError>>;
    /// The pipeline's infrastructure configuration (GetImagePipeline, then
    /// GetInfrastructureConfiguration); `None` when either is gone.
    fn infrastructure<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Option<BuildInfrastructure>, AwsError>>;
}

/// The newest image by `dateCreated` (never the list order); ties break on the ARN so
/// the choice is deterministic. Images without a parsable date sort oldest.
pub fn newest(images: &[ImageSummary]) -> Option<&ImageSummary> {
    images
        .iter()
        .max_by(|a, b| (a.date_created, &a.arn).cmp(&(b.date_created, &b.arn)))
}

fn parse_state(
    s: Option<&aws_sdk_imagebuilder::types::ImageState>,
) -> (Option<ImageState>, Option<String>) {
    match s {
        Some(s) => (
            s.status().and_then(|st| ImageState::parse(st.as_str())),
            s.reason().map(str::to_owned),
        ),
        None => (None, None),
    }
}

fn parse_date(d: Option<&str>) -> Option<DateTime<Utc>> {
    let d = d?;
    match time::parse(d) {
        Ok(t) => Some(t),
        Err(_) => {
            tracing::warn!(
                date_created = d,
                "unparsable dateCreated from Image Builder"
            );
            None
        }
    }
}

/// The real Image Builder.
#[derive(Clone, Debug)]
pub struct SdkImageBuilder {
    client: Client,
}

impl SdkImageBuilder {
    pub fn new(client: Client) -> Self {
        SdkImageBuilder { client }
    }
}

impl ImageBuilderApi for SdkImageBuilder {
    fn list_pipelines(&self) -> BoxFut<'_, Result<Vec<PipelineSummary>, AwsError>> {
        Box::pin(async move {
            let mut pages = self.client.list_image_pipelines().into_paginator().send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| from_sdk("imagebuilder:ListImagePipelines", e))?;
                for p in page.image_pipeline_list() {
                    if let (Some(name), Some(arn)) = (p.name(), p.arn()) {
                        out.push(PipelineSummary {
                            name: name.to_owned(),
                            arn: arn.to_owned(),
                        });
                    }
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn find_pipeline<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        Box::pin(async move {
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .list_image_pipelines()
                    .filters(Filter::builder().name("name").values(name).build())
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk("imagebuilder:ListImagePipelines", e))?;
                // The filter is a server-side hint; the exact match is checked here.
                if let Some(p) = out
                    .image_pipeline_list()
                    .iter()
                    .find(|p| p.name() == Some(name))
                {
                    return Ok(p.arn().map(str::to_owned));
                }
                match out.next_token {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => return Ok(None),
                }
            }
        })
    }

    fn list_pipeline_images<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Vec<ImageSummary>, AwsError>> {
        Box::pin(async move {
            let mut images = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .list_image_pipeline_images()
                    .image_pipeline_arn(pipeline_arn)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk("imagebuilder:ListImagePipelineImages", e))?;
                for s in out.image_summary_list() {
                    let Some(arn) = s.arn() else { continue };
                    images.push(ImageSummary {
                        arn: arn.to_owned(),
                        date_created: parse_date(s.date_created()),
                        state: parse_state(s.state()).0,
                    });
                }
                match out.next_token {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => return Ok(images),
                }
            }
        })
    }

    fn get_image<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, AwsError>> {
        Box::pin(async move {
            let out = match self
                .client
                .get_image()
                .image_build_version_arn(arn)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    use aws_sdk_imagebuilder::error::ProvideErrorMetadata;
                    let missing = e.code() == Some("ResourceNotFoundException")
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                    if missing {
                        return Ok(None);
                    }
                    return Err(from_sdk("imagebuilder:GetImage", e));
                }
            };
            let Some(image) = out.image else {
                return Ok(None);
            };
            let (state, reason) = parse_state(image.state());
            let amis = image
                .output_resources()
                .map(|o| o.amis())
                .unwrap_or_default()
                .iter()
                .filter_map(|a| Some((a.region()?.to_owned(), a.image()?.to_owned())))
                .collect();
            Ok(Some(ImageInfo {
                arn: image.arn().unwrap_or(arn).to_owned(),
                state,
                reason,
                date_created: parse_date(image.date_created()),
                source_pipeline_name: image.source_pipeline_name().map(str::to_owned),
                amis,
            }))
        })
    }

    fn start_pipeline<'a>(&'a self, pipeline_arn: &'a str) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let out = self
                .client
                .start_image_pipeline_execution()
                .image_pipeline_arn(pipeline_arn)
                .client_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await
                .map_err(|e| from_sdk("imagebuilder:StartImagePipelineExecution", e))?;
            out.image_build_version_arn.ok_or_else(|| {
                AwsError::invalid(
                    "imagebuilder:StartImagePipelineExecution",
                    "no imageBuildVersionArn in response",
                )
            })
        })
    }

    fn pipeline_enabled<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Option<bool>, AwsError>> {
        Box::pin(async move {
            match self
                .client
                .get_image_pipeline()
                .image_pipeline_arn(pipeline_arn)
                .send()
                .await
            {
                Ok(out) => Ok(out.image_pipeline.map(|p| {
                    p.status()
                        .is_none_or(|s| *s != aws_sdk_imagebuilder::types::PipelineStatus::Disabled)
                })),
                Err(e) => Err(from_sdk("imagebuilder:GetImagePipeline", e)),
            }
        })
    }

    fn start_one_off<'a>(
        &'a self,
        pipeline_arn: &'a str,
        region: &'a str,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(one_off::start(&self.client, pipeline_arn, region))
    }

    fn infrastructure<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Option<BuildInfrastructure>, AwsError>> {
        Box::pin(async move {
            let pipeline = self
                .client
                .get_image_pipeline()
                .image_pipeline_arn(pipeline_arn)
                .send()
                .await
                .map_err(|e| from_sdk("imagebuilder:GetImagePipeline", e))?;
            let Some(arn) = pipeline
                .image_pipeline()
                .and_then(|p| p.infrastructure_configuration_arn())
            else {
                return Ok(None);
            };
            let out = self
                .client
                .get_infrastructure_configuration()
                .infrastructure_configuration_arn(arn)
                .send()
                .await
                .map_err(|e| from_sdk("imagebuilder:GetInfrastructureConfiguration", e))?;
            Ok(out
                .infrastructure_configuration()
                .map(|c| BuildInfrastructure {
                    instance_types: c.instance_types().to_vec(),
                    instance_profile: c.instance_profile_name().map(str::to_owned),
                    subnet_id: c.subnet_id().map(str::to_owned),
                    security_group_ids: c.security_group_ids().to_vec(),
                }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_ignores_list_order() {
        let s = |arn: &str, at: Option<&str>| ImageSummary {
            arn: arn.into(),
            date_created: at.map(|t| time::parse(t).unwrap()),
            state: Some(ImageState::Available),
        };
        let list = [
            s("b2", Some("2026-01-02T00:00:00.000Z")),
            s("b3", Some("2026-01-03T00:00:00.000Z")),
            s("b1", Some("2026-01-01T00:00:00.000Z")),
            s("b0", None),
        ];
        assert_eq!(newest(&list).unwrap().arn, "b3");
        assert!(newest(&[]).is_none());
    }
}
