//! status-origin's signature binding, replay refusal, response binding, and inline
//! reconcile only for verified requests within its budget.
use super::status::{at, signed_for};
use super::*;
use crate::status::{OriginRequest, handle_request};
use http::HeaderMap;
use kiln_shared::signing::{self, RESPONSE_METHOD, SIGNATURE_HEADER, TIMESTAMP_HEADER};

const SECRET: &str = EDGE_SECRET;

fn target(n: u32) -> String {
    signing::origin_status_target(&format!("edge-nonce-{n:04}"))
}

fn origin(w: &World) -> (Deps, Arc<FaultPlan>) {
    let config = config();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config, w.fakes.clients().with_edge(w.edge.clone()))
        .with_faults(plan.clone());
    (deps, plan)
}

/// A `building` record an hour old: due for inline reconcile on the next `/status`.
async fn stale_world() -> World {
    let w = setup();
    building(&w).await;
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    w
}

#[tokio::test]
async fn a_captured_signed_request_is_answered_once() {
    let w = setup();
    let (deps, _) = origin(&w);
    let now = t("2026-01-27T12:00:00Z");
    let one = target(1);
    let headers = signed_for(now.timestamp(), SECRET, &one);
    assert_eq!(
        handle_request(&deps, at(&one, &headers), now)
            .await
            .status(),
        200
    );
    for later in [0, 1, 60, 299] {
        let replay = handle_request(
            &deps,
            at(&one, &headers),
            now + chrono::Duration::seconds(later),
        )
        .await;
        assert_eq!(replay.status(), 401, "replayed {later} s later");
    }
    // The same signature spelt in upper-case hex is the same signature.
    let mut shouted = headers.clone();
    let sig = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
    let upper = format!("v1={}", sig[3..].to_ascii_uppercase());
    shouted.insert(SIGNATURE_HEADER, upper.parse().unwrap());
    assert_eq!(
        handle_request(&deps, at(&one, &shouted), now)
            .await
            .status(),
        401
    );
    // The edge's next pull, in the same second, has its own nonce.
    let two = target(2);
    let next = signed_for(now.timestamp(), SECRET, &two);
    assert_eq!(
        handle_request(&deps, at(&two, &next), now).await.status(),
        200
    );
}

#[tokio::test]
async fn the_signature_binds_method_path_and_query() {
    let w = setup();
    let (deps, plan) = origin(&w);
    let now = t("2026-01-27T12:00:00Z");
    let good = target(1);
    let headers = signed_for(now.timestamp(), SECRET, &good);
    for other in [
        "/status",
        "/status/",
        "/status//",
        "/status?x=1",
        "/status?nonce=edge-nonce-0002",
        "/status?nonce=edge-nonce-0001&x=1",
    ] {
        let r = handle_request(&deps, at(other, &headers), now).await;
        assert_eq!(r.status(), 401, "{other}");
    }
    let head = OriginRequest {
        method: "HEAD",
        ..at(&good, &headers)
    };
    assert_eq!(handle_request(&deps, head, now).await.status(), 401);
    // Signed for exactly what was sent, but not the edge's form: not found.
    for odd in ["/status", "/status?x=1", "/status/?nonce=edge-nonce-0003"] {
        let h = signed_for(now.timestamp(), SECRET, odd);
        assert_eq!(
            handle_request(&deps, at(odd, &h), now).await.status(),
            404,
            "{odd}"
        );
    }
    assert_eq!(
        plan.calls().get("dynamodb:Query"),
        None,
        "none of these read the table"
    );
    assert_eq!(
        handle_request(&deps, at(&good, &headers), now)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_response_answers_its_own_request_only() {
    let w = setup();
    let (deps, _) = origin(&w);
    let now = t("2026-01-27T12:00:00Z");
    let mine = target(7);
    let headers = signed_for(now.timestamp(), SECRET, &mine);
    let resp = handle_request(&deps, at(&mine, &headers), now).await;
    assert_eq!(resp.status(), 200);
    let ts = resp.headers()[TIMESTAMP_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let sig = resp.headers()[SIGNATURE_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let check = |path: &str| {
        signing::verify(
            SECRET.as_bytes(),
            &signing::SignedRequest {
                timestamp: Some(&ts),
                signature: Some(&sig),
                method: RESPONSE_METHOD,
                path,
                body: resp.body().as_bytes(),
            },
            now.timestamp(),
            60,
        )
    };
    assert!(check(&mine).is_ok());
    // Replayed to another pull (another nonce), or to the old constant target: refused.
    assert!(check(&target(8)).is_err());
    assert!(check("/status").is_err());
}

#[tokio::test]
async fn inline_reconcile_runs_only_after_the_signature_is_verified() {
    let w = stale_world().await;
    let (deps, plan) = origin(&w);
    let now = t("2026-01-27T12:00:00Z");
    let one = target(1);
    let good = signed_for(now.timestamp(), SECRET, &one);
    for bad in [
        HeaderMap::new(),
        signed_for(now.timestamp(), "wrong-secret", &one),
        signed_for(now.timestamp() - 3600, SECRET, &one),
    ] {
        assert_eq!(
            handle_request(&deps, at(&one, &bad), now).await.status(),
            401
        );
    }
    // No DynamoDB, SSM or Image Builder call; the secret is read once (the container's
    // first request) and once more for the mismatch (maybe a rotation; rate-limited).
    assert_eq!(
        plan.calls(),
        BTreeMap::from([("secretsmanager:GetSecretValue".to_owned(), 4)]),
        "unverified requests cost no other AWS call"
    );
    assert_eq!(
        handle_request(&deps, at(&one, &good), now).await.status(),
        200
    );
    assert_eq!(record(&w).await.status, BuildStatus::Ready, "healed inline");
    plan.reset_counts();
    // A replay of the verified request does not get to reconcile again either.
    assert_eq!(
        handle_request(&deps, at(&one, &good), now).await.status(),
        401
    );
    assert_eq!(plan.aws_calls(), 0);
}

#[tokio::test]
async fn inline_reconcile_gives_up_well_before_the_edge_timeout() {
    let w = stale_world().await;
    let (deps, plan) = origin(&w);
    // Image Builder hangs for longer than the edge waits (2.5 s).
    plan.add(
        Rule::new(
            Some("imagebuilder:GetImage"),
            Fault::Timeout(std::time::Duration::from_secs(5)),
        )
        .forever(),
    );
    let now = t("2026-01-27T12:00:00Z");
    let one = target(1);
    let headers = signed_for(now.timestamp(), SECRET, &one);
    let started = std::time::Instant::now();
    let resp = handle_request(&deps, at(&one, &headers), now).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 200, "served what is stored");
    assert!(
        took < std::time::Duration::from_millis(1500),
        "answered in {took:?}, the edge gives up at 2.5 s"
    );
    assert!(took >= deps.config.status_budget, "{took:?}");
    assert_eq!(
        record(&w).await.status,
        BuildStatus::Building,
        "left to reconcile"
    );
}

/// The response's signature checked against `secret`.
fn answered_with(resp: &http::Response<String>, target: &str, secret: &str) -> bool {
    let ts = resp.headers()[TIMESTAMP_HEADER].to_str().unwrap();
    let sig = resp.headers()[SIGNATURE_HEADER].to_str().unwrap();
    let now: i64 = ts.parse().unwrap();
    signing::verify(
        secret.as_bytes(),
        &signing::SignedRequest {
            timestamp: Some(ts),
            signature: Some(sig),
            method: RESPONSE_METHOD,
            path: target,
            body: resp.body().as_bytes(),
        },
        now,
        60,
    )
    .is_ok()
}

#[tokio::test]
async fn during_a_rotation_both_secrets_verify_and_answers_use_the_current_one() {
    const NEXT: &str = "the-next-edge-secret-of-at-least-32-bytes";
    let w = setup();
    let (deps, plan) = origin(&w);
    let now = t("2026-01-27T12:00:00Z");
    let read = |plan: &FaultPlan| plan.calls()["secretsmanager:GetSecretValue"];
    let one = target(1);
    let r = handle_request(
        &deps,
        at(&one, &signed_for(now.timestamp(), SECRET, &one)),
        now,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(answered_with(&r, &one, SECRET));
    assert_eq!(read(&plan), 2, "AWSCURRENT and AWSPREVIOUS, once");

    // Rotated in Secrets Manager, and the edge already signs with the new value (its
    // step 4 came before this container's TTL ran out): a mismatch reads again, once.
    w.fakes.secrets.rotate(EDGE_SECRET_ARN, NEXT);
    let two = target(2);
    let r = handle_request(
        &deps,
        at(&two, &signed_for(now.timestamp(), NEXT, &two)),
        now,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        answered_with(&r, &two, NEXT),
        "signed with the new AWSCURRENT"
    );
    assert!(!answered_with(&r, &two, SECRET));
    assert_eq!(read(&plan), 4);
    // The old value (now AWSPREVIOUS) still verifies: an edge not yet switched.
    let three = target(3);
    let r = handle_request(
        &deps,
        at(&three, &signed_for(now.timestamp(), SECRET, &three)),
        now,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(answered_with(&r, &three, NEXT));
    // Forgeries right after: refused without reading Secrets Manager again.
    for n in 4..20 {
        let forged = target(n);
        let r = handle_request(
            &deps,
            at(
                &forged,
                &signed_for(now.timestamp(), "forged-forged-forged-forged-32b", &forged),
            ),
            now,
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(read(&plan), 4, "rate-limited");
}

#[tokio::test]
async fn pushes_are_signed_with_the_current_secret() {
    let w = setup();
    let (deps, _) = origin(&w);
    crate::snapshot::push_snapshot(&deps, t("2026-01-27T12:00:00Z")).await;
    w.fakes
        .secrets
        .rotate(EDGE_SECRET_ARN, "rotated-rotated-rotated-rotated-32");
    // Within the TTL the cached value still signs; a fresh container signs with the new.
    crate::snapshot::push_snapshot(&deps, t("2026-01-27T12:00:01Z")).await;
    let fresh = crate::Deps::new(config(), w.fakes.clients().with_edge(w.edge.clone()));
    crate::snapshot::push_snapshot(&fresh, t("2026-01-27T12:00:02Z")).await;
    let keys = w.edge.1.lock().unwrap().clone();
    assert_eq!(
        keys,
        vec![
            SECRET.as_bytes().to_vec(),
            SECRET.as_bytes().to_vec(),
            b"rotated-rotated-rotated-rotated-32".to_vec(),
        ]
    );
}
