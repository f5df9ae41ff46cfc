//! Function URL → kiln_lambdas::status (signed `/status` for the edge).
use kiln_lambdas::status::{OriginRequest, handle_request};
use kiln_lambdas::{Deps, logging};
use lambda_http::{Body, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        let body: &[u8] = req.body().as_ref();
        let resp = handle_request(
            deps,
            OriginRequest {
                method: req.method().as_str(),
                // Path and query as received: the signature covers both.
                path: req
                    .uri()
                    .path_and_query()
                    .map_or(req.uri().path(), |pq| pq.as_str()),
                headers: req.headers(),
                body,
            },
            chrono::Utc::now(),
        )
        .await;
        let (parts, body) = resp.into_parts();
        Ok::<_, std::convert::Infallible>(Response::from_parts(parts, Body::from(body)))
    }))
    .await
}
