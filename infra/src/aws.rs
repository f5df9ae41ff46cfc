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
    let config = sdk_config(args, None).await?;
    let region = sdk::region_of(&config);
    Ok((
        Clients::from_sdk(&config, &Endpoints::default(), &args.table_name()),
        region,
    ))
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
