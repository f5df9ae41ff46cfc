//! The operating commands' AWS clients: [`kiln_aws`]'s, from the standard chain with the
//! region and endpoint overridable from the command line (local emulators).

use aws_config::SdkConfig;
use kiln_aws::sdk::{self, Clients, DeployClients, DeployEndpoints, Endpoints, SdkConfigError};

use crate::cli::AwsArgs;

/// Loads the SDK config, for `region` when given, else the command line's or the
/// chain's region.
pub async fn sdk_config(args: &AwsArgs, region: Option<&str>) -> Result<SdkConfig, SdkConfigError> {
    sdk::load(
        region.or(args.region.as_deref()),
        args.endpoint_url.as_deref(),
    )
    .await
}

/// Every client of the deployment named by `args`, and its home region. The SSM and
/// EC2 clients serve any region asked of them.
pub async fn clients(args: &AwsArgs) -> Result<(Clients, String), SdkConfigError> {
    clients_with_target(args, false).await
}

/// [`clients`], where `--region` may name a target instead (see [`stack_config`]).
pub async fn clients_with_target(
    args: &AwsArgs,
    region_is_target: bool,
) -> Result<(Clients, String), SdkConfigError> {
    let config = stack_config(args, region_is_target).await?;
    Ok(deployment_clients(&config, args))
}

fn deployment_clients(config: &SdkConfig, args: &AwsArgs) -> (Clients, String) {
    (
        Clients::from_sdk(config, &Endpoints::default(), &args.table_name()),
        sdk::region_of(config),
    )
}

/// The clients of `kiln deploy` / `kiln destroy`, and the region they go to.
pub async fn deploy_clients(args: &AwsArgs) -> Result<(DeployClients, String), SdkConfigError> {
    let config = sdk_config(args, None).await?;
    let region = sdk::region_of(&config);
    Ok((
        DeployClients::from_sdk(&config, &DeployEndpoints::default()),
        region,
    ))
}

/// The SDK config of the stack's region. `--region` is that region, unless it names a
/// target (after `kiln test`: where to test; after `kiln build`: a one-off
/// distribution): then the stack's region comes from `KILN_STACK_REGION`, else the AWS
/// chain, else `--region`.
async fn stack_config(args: &AwsArgs, region_is_target: bool) -> Result<SdkConfig, SdkConfigError> {
    if !region_is_target {
        return sdk_config(args, None).await;
    }
    let stack_region = std::env::var("KILN_STACK_REGION")
        .ok()
        .filter(|r| !r.is_empty());
    match sdk::load(stack_region.as_deref(), args.endpoint_url.as_deref()).await {
        Err(SdkConfigError::NoRegion) => sdk_config(args, None).await,
        other => other,
    }
}

/// The clients of `kiln test`, and the stack's region (see [`stack_config`]).
pub async fn test_clients(
    args: &AwsArgs,
    region_is_target: bool,
) -> Result<(Clients, kiln_aws::testbed::Testbed, String), SdkConfigError> {
    let config = stack_config(args, region_is_target).await?;
    let (clients, region) = deployment_clients(&config, args);
    Ok((
        clients,
        kiln_aws::testbed::Testbed::from_sdk(&config),
        region,
    ))
}
