//! Runner configs in SSM Parameter Store, one client per region.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};
use crate::regional::PerRegion;
use kiln_shared::runner_config;

/// Read and write the JSON runner config of a preset in one region.
pub trait RunnerConfigs: Send + Sync {
    /// `None` when the parameter does not exist.
    fn get<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>>;
    /// Creates or overwrites (String parameter).
    /// Writes the parameter, in the Advanced tier when the value outgrows Standard.
    fn put<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    /// Creates or overwrites a parameter of data type `aws:ec2:image` holding `ami`
    /// (for `resolve:ssm:` in launch templates). SSM checks the AMI exists.
    fn put_image_id<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        ami: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        self.put(region, name, ami)
    }
    /// Every parameter under `path` (recursive, all pages): (name, value).
    fn list<'a>(
        &'a self,
        region: &'a str,
        path: &'a str,
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>>;
}

/// The tier a value needs: Standard (free) unless only Advanced holds it — the rule
/// validation sized presets by. Oversized values are sent as Advanced, and SSM's own
/// refusal names the limit.
fn tier_for(value: &str) -> ParameterTier {
    match runner_config::parameter_tier(value) {
        Some(runner_config::ParameterTier::Standard) => ParameterTier::Standard,
        _ => ParameterTier::Advanced,
    }
}

/// The real SSM, with a client per region built from one base configuration (so an
/// endpoint override for local emulators applies to every region).
pub struct SsmConfigs(PerRegion<Client>);

impl SsmConfigs {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        SsmConfigs(PerRegion::new(base, Client::new))
    }
}

impl RunnerConfigs for SsmConfigs {
    fn get<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        Box::pin(async move {
            match self.0.get(region).get_parameter().name(name).send().await {
                Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_parameter_not_found()) =>
                {
                    Ok(None)
                }
                Err(e) => Err(from_sdk("ssm:GetParameter", e)),
            }
        })
    }

    fn put<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .get(region)
                .put_parameter()
                .name(name)
                .value(value)
                .r#type(ParameterType::String)
                .tier(tier_for(value))
                .overwrite(true)
                .send()
                .await
                .map_err(|e| from_sdk("ssm:PutParameter", e))?;
            Ok(())
        })
    }

    fn put_image_id<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        ami: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .get(region)
                .put_parameter()
                .name(name)
                .value(ami)
                .r#type(ParameterType::String)
                .data_type("aws:ec2:image")
                .overwrite(true)
                .send()
                .await
                .map_err(|e| from_sdk("ssm:PutParameter", e))?;
            Ok(())
        })
    }

    fn list<'a>(
        &'a self,
        region: &'a str,
        path: &'a str,
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>> {
        Box::pin(async move {
            let mut pages = self
                .0
                .get(region)
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .into_paginator()
                .send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| from_sdk("ssm:GetParametersByPath", e))?;
                for p in page.parameters() {
                    if let (Some(name), Some(value)) = (p.name(), p.value()) {
                        out.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
            Ok(out)
        })
    }
}
