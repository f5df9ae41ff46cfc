//! A one-off build of a pipeline's recipe distributed to one region (`kiln build
//! --region`): CreateImage with the pipeline's recipe and infrastructure and a
//! distribution configuration holding only the pipeline's entry for that region. The
//! pipeline, its schedule and its distribution stay as they are.

use std::hash::{DefaultHasher, Hash, Hasher};

use aws_sdk_imagebuilder::Client;

use crate::error::{AwsError, absent_on, from_sdk};

pub(super) async fn start(
    client: &Client,
    pipeline_arn: &str,
    region: &str,
) -> Result<String, AwsError> {
    let op = "imagebuilder:GetImagePipeline";
    let pipeline = client
        .get_image_pipeline()
        .image_pipeline_arn(pipeline_arn)
        .send()
        .await
        .map_err(|e| from_sdk(op, e))?
        .image_pipeline
        .ok_or_else(|| AwsError::invalid(op, format!("no pipeline {pipeline_arn}")))?;
    let (Some(name), Some(recipe), Some(infra), Some(dist)) = (
        pipeline.name(),
        pipeline.image_recipe_arn(),
        pipeline.infrastructure_configuration_arn(),
        pipeline.distribution_configuration_arn(),
    ) else {
        return Err(AwsError::invalid(
            op,
            format!("pipeline {pipeline_arn} has no recipe, infrastructure or distribution"),
        ));
    };
    let op = "imagebuilder:GetDistributionConfiguration";
    let config = client
        .get_distribution_configuration()
        .distribution_configuration_arn(dist)
        .send()
        .await
        .map_err(|e| from_sdk(op, e))?
        .distribution_configuration
        .ok_or_else(|| AwsError::invalid(op, format!("no distribution configuration {dist}")))?;
    let Some(entry) = config
        .distributions()
        .iter()
        .find(|d| d.region() == region)
        .cloned()
    else {
        let regions: Vec<&str> = config.distributions().iter().map(|d| d.region()).collect();
        return Err(AwsError::invalid(
            op,
            format!(
                "{region} is not one of pipeline {name}'s regions ({})",
                regions.join(", ")
            ),
        ));
    };
    // One configuration per pipeline, region and content: a redeploy that changes the
    // pipeline's distribution gets a new one instead of an update.
    let mut h = DefaultHasher::new();
    format!("{entry:?}").hash(&mut h);
    let one_off_name = format!("{name}-to-{region}-{:08x}", h.finish() as u32);
    let one_off_arn = sibling_arn(dist, &one_off_name);
    let created = client
        .create_distribution_configuration()
        .name(&one_off_name)
        .description(format!(
            "kiln: one-off builds of {name} distributed to {region} only"
        ))
        .distributions(entry)
        .tags("kiln:one-off", region)
        .client_token(uuid::Uuid::new_v4().to_string())
        .send()
        .await;
    // Already there from an earlier one-off of the same content: reused.
    absent_on(
        "imagebuilder:CreateDistributionConfiguration",
        "ResourceAlreadyExistsException",
        created,
    )?;
    let op = "imagebuilder:CreateImage";
    let out = client
        .create_image()
        .image_recipe_arn(recipe)
        .infrastructure_configuration_arn(infra)
        .distribution_configuration_arn(&one_off_arn)
        .set_image_tests_configuration(pipeline.image_tests_configuration().cloned())
        .tags("kiln:one-off", region)
        .client_token(uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .map_err(|e| from_sdk(op, e))?;
    out.image_build_version_arn()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::invalid(op, "the answer names no image"))
}

/// `arn:…:distribution-configuration/<name>` for another configuration of the same
/// account and region (Image Builder lowercases the name in the ARN).
fn sibling_arn(arn: &str, name: &str) -> String {
    let base = arn.rsplit_once('/').map_or(arn, |(b, _)| b);
    format!("{base}/{}", name.to_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sibling_arns_share_account_and_region() {
        assert_eq!(
            super::sibling_arn(
                "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/kiln-r-dist",
                "kiln-r-To-us-east-2-0a1b2c3d"
            ),
            "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/kiln-r-to-us-east-2-0a1b2c3d"
        );
    }
}
