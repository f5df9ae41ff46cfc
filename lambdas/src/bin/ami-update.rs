//! EventBridge (Image Builder state change) → kiln_lambdas::ami_update.
use kiln_lambdas::{Deps, ami_update, logging};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    // Raw text, not `Value`: any JSON, however large or deep, reaches the handler,
    // which acknowledges what it cannot use instead of failing into the DLQ.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            // Err → Lambda retries the event (transient AWS failures only).
            let ack = ami_update::handle_raw(deps, &event.payload).await?;
            Ok::<_, lambda_runtime::Error>(ack.summary())
        },
    ))
    .await
}
