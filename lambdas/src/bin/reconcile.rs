//! Scheduled rule → kiln_lambdas::reconcile.
use kiln_lambdas::{Deps, logging, reconcile};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let report = reconcile::reconcile(deps, chrono::Utc::now()).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({
            "checked": report.checked,
            "corrected": report.corrected,
            "configsRepaired": report.configs_repaired.len(),
            "errors": report.errors.len(),
        }))
    }))
    .await
}
