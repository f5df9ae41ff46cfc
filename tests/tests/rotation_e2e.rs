//! `kiln secret rotate`'s order of steps through the real pieces, as far as they run
//! locally: the secret in moto's Secrets Manager read by the real Lambda binaries (only
//! its ARN in their environment), and the Worker under `wrangler dev`, restarted with new
//! `.dev.vars` for each Cloudflare deployment step (`wrangler secret bulk` itself needs a
//! Cloudflare account; its command line and JSON are unit-tested in `kiln-infra`).
//! While the secret changes, `/status` never answers `stale: true` and no signature is
//! refused on either side; a Worker left on the old secret alone does go stale (the
//! control that shows this test can fail).

use std::time::{Duration, Instant};

use kiln_aws::secrets::{SdkSecrets, SecretValue, Secrets};
use kiln_devstack::stack::DevStack;
use kiln_devstack::wrangler::EdgeVars;
use kiln_shared::StatusReport;
async fn start() -> Option<DevStack> {
    kiln_tests::stack::start(kiln_tests::stack::example_presets(), |options| {
        options.build_time = Duration::from_secs(4);
        // The Lambdas read the secret again after 2 s (300 s when deployed).
        options.edge_secret_ttl = Duration::from_secs(2);
        options.edge_cache_ttl_secs = 1;
    })
    .await
}

/// `/status` for `how_long`, every answer a 200 that is not stale. Returns the count.
async fn never_stale(url: &str, how_long: Duration, phase: &str) -> usize {
    let end = Instant::now() + how_long;
    let mut answers = 0;
    while Instant::now() < end {
        let resp = reqwest::get(url).await.expect("GET /status");
        assert_eq!(resp.status(), 200, "{phase}");
        let report: StatusReport = resp.json().await.expect("a StatusReport");
        assert!(!report.stale, "{phase}: /status went stale: {report:?}");
        answers += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    answers
}

/// The Worker's configuration for one deployment: no stale-while-revalidate, so any
/// refused origin answer shows as `stale: true` on the next request.
fn vars(stack: &DevStack, primary: &str, secondary: Option<&str>) -> EdgeVars {
    let mut v = stack.edge_vars.clone();
    v.origin_secret = primary.to_owned();
    v.origin_secret_secondary = secondary.map(str::to_owned);
    v.stale_while_revalidate_secs = 0;
    // A slow answer (a loaded CI machine) must not pass for a refused one: only a
    // refused signature may turn an answer stale here.
    v.origin_timeout_ms = 15_000;
    v
}

fn refusals(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("signature") && (l.contains("refused") || l.contains("rejected")))
        .collect()
}

fn origin_log(stack: &DevStack) -> String {
    stack
        .log_paths()
        .into_iter()
        .filter(|(name, _)| name.contains("status-origin"))
        .map(|(_, path)| std::fs::read_to_string(path).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_steps_never_leave_status_stale() {
    let Some(mut stack) = start().await else {
        return;
    };
    let url = stack.status_url();
    let old = stack.options.secret.clone();
    let new = SecretValue::generate();
    let sm = SdkSecrets::from_conf(&stack.aws.moto_config(&stack.options.region));
    let settle = Duration::from_secs(4);

    // The Lambdas' environment holds the ARN, never the value.
    assert!(stack.edge_secret_arn.contains(":secretsmanager:"));

    stack.restart_edge(vars(&stack, &old, None)).await.unwrap();
    never_stale(&url, settle, "before").await;

    // (a) the Worker accepts the new secret beside the old one.
    stack
        .restart_edge(vars(&stack, &old, Some(new.expose())))
        .await
        .unwrap();
    never_stale(&url, settle, "(a) worker accepts new").await;

    // (b) AWSCURRENT = new: the Lambdas sign with it after their TTL, accept both.
    sm.put_value(&stack.edge_secret_name, &new).await.unwrap();
    // (c) past the Lambdas' TTL, answers are signed with the new secret.
    never_stale(&url, settle, "(b)+(c) lambdas switch").await;
    assert!(
        refusals(&stack.edge.log()).is_empty(),
        "the Worker refused a signature:\n{}",
        stack.edge.log()
    );

    // (d) the Worker signs with the new secret, still accepts the old one.
    stack
        .restart_edge(vars(&stack, new.expose(), Some(&old)))
        .await
        .unwrap();
    let n = never_stale(&url, settle, "(d) worker signs with new").await;
    assert!(n > 5, "{n} answers");
    assert!(
        refusals(&stack.edge.log()).is_empty(),
        "the Worker refused a signature:\n{}",
        stack.edge.log()
    );
    // Every pull the Worker signed, with the old secret or the new, was accepted.
    let origin = origin_log(&stack);
    assert!(
        refusals(&origin).is_empty(),
        "status-origin refused a pull:\n{origin}"
    );

    // The new secret alone suffices now: every Lambda signs with it.
    stack
        .restart_edge(vars(&stack, new.expose(), None))
        .await
        .unwrap();
    never_stale(&url, settle, "after").await;

    // Control: a Worker that only knows the old secret refuses the Lambdas' answers
    // and serves its last known good as stale.
    stack.restart_edge(vars(&stack, &old, None)).await.unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut went_stale = false;
    while Instant::now() < end && !went_stale {
        let report: StatusReport = reqwest::get(&url).await.unwrap().json().await.unwrap();
        went_stale = report.stale;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(went_stale, "a Worker on the old secret alone must go stale");
    assert!(
        !refusals(&stack.edge.log()).is_empty(),
        "{}",
        stack.edge.log()
    );
}
