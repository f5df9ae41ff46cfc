//! SDK configuration for the operating commands: the standard AWS chain, with the
//! region and endpoint overridable from the command line (local emulators).

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::cli::AwsArgs;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no AWS region: pass --region or set AWS_REGION")]
    NoRegion,
}

/// Loads the SDK config, for `region` when given (per-region clients), else the
/// command line's or the chain's region.
pub async fn sdk_config(args: &AwsArgs, region: Option<&str>) -> Result<SdkConfig, ConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region.or(args.region.as_deref()) {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ConfigError::NoRegion);
    }
    Ok(config)
}

/// The region a config resolved to.
pub fn region_of(config: &SdkConfig) -> String {
    config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default()
}

/// An SDK error with its whole chain: "service error" alone tells a user nothing.
pub fn describe<E: std::error::Error>(err: E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string()
}
