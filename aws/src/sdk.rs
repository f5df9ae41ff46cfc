//! Building the real clients: one SDK configuration, per-service endpoint overrides for
//! local emulators, bounded timeouts for the Lambdas.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::account::{Account, SdkAccount, SdkTables, Tables};
use crate::artifacts::{Artifacts, S3Artifacts};
use crate::cfn::{SdkStacks, Stacks};
use crate::ec2::{Ec2Images, SdkEc2};
use crate::edge::{EdgePusher, NoEdge};
use crate::images::{ImageBuilderApi, SdkImageBuilder};
use crate::secrets::{SdkSecrets, SecretVersions, Secrets};
use crate::ssm::{RunnerConfigs, SsmConfigs};
use crate::store::{DynamoStore, StateStore};

/// Per-service endpoint overrides (local emulators); `None` uses the SDK's resolution,
/// which already honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub ssm: Option<String>,
    pub imagebuilder: Option<String>,
    pub ec2: Option<String>,
    pub secretsmanager: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SdkConfigError {
    #[error("no AWS region: pass --region or set AWS_REGION")]
    NoRegion,
}

/// Every client kiln uses, as trait objects (so any of them can be wrapped or faked).
#[derive(Clone)]
pub struct Clients {
    pub store: Arc<dyn StateStore>,
    pub configs: Arc<dyn RunnerConfigs>,
    pub images: Arc<dyn ImageBuilderApi>,
    pub ec2: Arc<dyn Ec2Images>,
    pub edge: Arc<dyn EdgePusher>,
    /// The edge secret's versions (read by ARN at init, refreshed by the Lambdas).
    pub secrets: Arc<dyn SecretVersions>,
    /// The alerts topic; none until [`Clients::with_alerts`].
    pub alerts: Arc<dyn crate::alerts::Alerts>,
}

impl Clients {
    /// Real SDK clients from one SDK configuration; the edge push starts disabled.
    pub fn from_sdk(sdk: &SdkConfig, endpoints: &Endpoints, table: &str) -> Self {
        let with = |url: &Option<String>| match url {
            Some(url) => sdk.to_builder().endpoint_url(url).build(),
            None => sdk.clone(),
        };
        Clients {
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&with(&endpoints.dynamodb)),
                table,
            )),
            configs: Arc::new(SsmConfigs::new(with(&endpoints.ssm))),
            images: Arc::new(SdkImageBuilder::new(aws_sdk_imagebuilder::Client::new(
                &with(&endpoints.imagebuilder),
            ))),
            ec2: Arc::new(SdkEc2::new(with(&endpoints.ec2))),
            edge: Arc::new(NoEdge),
            secrets: Arc::new(SdkSecrets::new(aws_sdk_secretsmanager::Client::new(&with(
                &endpoints.secretsmanager,
            )))),
            alerts: Arc::new(crate::alerts::NoAlerts),
        }
    }

    pub fn with_edge(self, edge: Arc<dyn EdgePusher>) -> Self {
        Clients { edge, ..self }
    }

    pub fn with_alerts(self, alerts: Arc<dyn crate::alerts::Alerts>) -> Self {
        Clients { alerts, ..self }
    }
}

/// Endpoint overrides of the deploy's services (local emulators), kept apart from
/// [`Endpoints`] so the Lambdas' clients do not grow by services they never call.
#[derive(Debug, Clone, Default)]
pub struct DeployEndpoints {
    pub cloudformation: Option<String>,
    pub s3: Option<String>,
    pub secretsmanager: Option<String>,
    pub dynamodb: Option<String>,
    pub sts: Option<String>,
}

/// The clients of `kiln deploy` / `kiln destroy`.
#[derive(Clone)]
pub struct DeployClients {
    pub stacks: Arc<dyn Stacks>,
    pub artifacts: Arc<dyn Artifacts>,
    pub secrets: Arc<dyn Secrets>,
    pub account: Arc<dyn Account>,
    pub tables: Arc<dyn Tables>,
}

impl DeployClients {
    pub fn from_sdk(sdk: &SdkConfig, endpoints: &DeployEndpoints) -> Self {
        let with = |url: &Option<String>| match url {
            Some(url) => sdk.to_builder().endpoint_url(url).build(),
            None => sdk.clone(),
        };
        let s3 = with(&endpoints.s3);
        // Emulators on loopback have no per-bucket host names: path-style addressing.
        let local = s3.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&s3)
            .force_path_style(local)
            .build();
        DeployClients {
            stacks: Arc::new(SdkStacks::new(aws_sdk_cloudformation::Client::new(&with(
                &endpoints.cloudformation,
            )))),
            artifacts: Arc::new(S3Artifacts::new(aws_sdk_s3::Client::from_conf(s3))),
            secrets: Arc::new(SdkSecrets::new(aws_sdk_secretsmanager::Client::new(&with(
                &endpoints.secretsmanager,
            )))),
            account: Arc::new(SdkAccount::new(aws_sdk_sts::Client::new(&with(
                &endpoints.sts,
            )))),
            tables: Arc::new(SdkTables::new(aws_sdk_dynamodb::Client::new(&with(
                &endpoints.dynamodb,
            )))),
        }
    }
}

/// The standard credential/region chain, with the region and one endpoint for every
/// service overridable (the CLI's `--region` and `--endpoint-url`).
pub async fn load(
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> Result<SdkConfig, SdkConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(SdkConfigError::NoRegion);
    }
    Ok(config)
}

/// What the Lambdas use: the default chain, with every call bounded so a hung request
/// fails (and Lambda retries) well before the function's own timeout.
pub async fn load_bounded() -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// The region a configuration resolved to.
pub fn region_of(config: &SdkConfig) -> String {
    config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default()
}
