//! Scheduled rules → kiln_lambdas::reconcile, or kiln_lambdas::retention when the
//! stack's opt-in retention schedule sends its input.
use kiln_lambdas::retention::{RetentionRequest, run};
use kiln_lambdas::{Deps, logging, reconcile};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = chrono::Utc::now();
        if let Some(request) = RetentionRequest::from_event(&event.payload) {
            let report = run(deps, &request, now).await?;
            return Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "kept": report.kept,
                "deleted": report.deleted,
                "failures": report.failures.len(),
            }));
        }
        let report = reconcile::reconcile(deps, now).await?;
        Ok(serde_json::json!({
            "checked": report.checked,
            "corrected": report.corrected,
            "configsRepaired": report.configs_repaired.len(),
            "errors": report.errors.len(),
        }))
    }))
    .await
}
