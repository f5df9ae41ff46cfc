//! CloudFormation custom resource → kiln_lambdas::preset_init (always answers).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_lambdas::{Deps, logging, preset_init};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// Kept back from Lambda's deadline to deliver the answer.
const ANSWER_RESERVE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let (deps, http) = (&deps, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
        let budget = left
            .saturating_sub(ANSWER_RESERVE)
            .max(Duration::from_secs(1));
        let response =
            preset_init::handle_custom_resource(deps, http, event.payload, budget).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({ "status": response.status }))
    }))
    .await
}
