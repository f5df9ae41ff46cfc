//! Hostile input, clock skew and load (issue 11, "Edge").

use futures::future::join_all;

use super::*;

/// A body that never ends, in 64 KiB chunks; counts the chunks pulled.
struct Endless {
    pulled: usize,
}

impl BodySource for Endless {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.pulled += 1;
        Ok(Some(vec![b' '; 64 * 1024]))
    }
}

fn post<'a>(path: &'a str, content_length: Option<u64>) -> Request<'a> {
    Request {
        method: "POST",
        path,
        content_length,
        ..Request::default()
    }
}

#[test]
fn post_bodies_are_read_only_by_ingest_and_only_to_the_limit() {
    let f = fake(OriginMode::Up(ready()));
    let huge = Some(100 * 1024 * 1024);
    for (path, code) in [("/nope", 404), ("/status", 405), ("/", 405)] {
        let mut body = Endless { pulled: 0 };
        let r = block_on(f.edge().handle(&post(path, huge), &mut body));
        assert_eq!(r.status, code, "{path}");
        assert_eq!(body.pulled, 0, "{path}: not one chunk read before routing");
    }
    // Declared too large: refused before reading.
    let mut body = Endless { pulled: 0 };
    let r = block_on(f.edge().handle(&post("/ingest", huge), &mut body));
    assert_eq!((r.status, body.pulled), (413, 0));
    // Undeclared (chunked): reading stops at the chunk that crosses 512 KiB.
    let mut body = Endless { pulled: 0 };
    let r = block_on(f.edge().handle(&post("/ingest", None), &mut body));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(body.pulled, MAX_INGEST_BYTES / (64 * 1024) + 1);
}

#[test]
fn unchanged_content_is_written_to_kv_once_plus_an_hourly_heartbeat() {
    let f = fake(OriginMode::Regenerating(ready()));
    let first = f.get("/status");
    let etag = first.header("etag").unwrap().to_owned();
    // Pull after pull for most of an hour; each answer has a new generatedAt.
    for _ in 0..300 {
        f.advance(11);
        let r = f.get("/status");
        f.run_spawned();
        assert_eq!(
            r.header("etag"),
            Some(etag.as_str()),
            "same content, same tag"
        );
    }
    assert!(f.0.origin_calls.get() >= 300);
    assert_eq!(f.0.kv_writes.get(), 1, "unchanged content is not rewritten");
    let (_, now) = f.status_json();
    assert_ne!(now.generated_at, ready().generated_at, "pulled anew");
    let cond = f.req(Request {
        method: "GET",
        path: "/status",
        if_none_match: Some(&etag),
        ..Request::default()
    });
    assert_eq!(cond.status, 304, "a re-pulled snapshot still matches");
    // An hour after the write: exactly one heartbeat, then quiet again.
    for _ in 0..60 {
        f.advance(11);
        f.get("/status");
        f.run_spawned();
    }
    assert_eq!(f.0.kv_writes.get(), 2, "one heartbeat");
    // New content: written at the first pull that sees it.
    f.set_origin(OriginMode::Regenerating(building()));
    f.advance(11);
    f.get("/status");
    f.run_spawned();
    assert_eq!(f.0.kv_writes.get(), 3);
}

#[test]
fn another_isolate_does_not_rewrite_what_kv_already_holds() {
    let f = fake(OriginMode::Regenerating(ready()));
    f.get("/status");
    assert_eq!(f.0.kv_writes.get(), 1);
    // The cache entry is evicted: a second isolate pulls the same content itself.
    *f.0.cache.borrow_mut() = None;
    f.advance(1);
    let g = f.sibling(2);
    assert_eq!(g.status_json().1.presets, ready().presets);
    assert_eq!(f.0.origin_calls.get(), 2);
    assert_eq!(f.0.kv_writes.get(), 1, "read KV, found the same content");
}

#[test]
fn concurrent_requests_share_one_origin_pull() {
    let f = fake(OriginMode::Up(ready()));
    f.0.origin_yields.set(3); // the pull is still in flight while the others arrive
    let req = Request {
        method: "GET",
        path: "/status",
        ..Request::default()
    };
    let edge = f.edge();
    for round in 1..=2 {
        let replies = block_on(join_all((0..20).map(|_| edge.handle(&req, NoBody))));
        assert!(replies.iter().all(|r| r.status == 200));
        assert_eq!(f.0.origin_calls.get(), round, "one pull for 20 requests");
        f.advance(31); // past TTL + SWR: every request needs the refresh
    }
}

#[test]
fn isolates_of_a_colo_share_the_pull_through_the_cache() {
    let f = fake(OriginMode::Up(ready()));
    f.get("/status");
    let g = f.sibling(2);
    g.get("/status");
    assert_eq!(f.0.origin_calls.get(), 1, "g took f's Cache API entry");
    // Both copies expired; f pulls, and g, that same second, finds f's entry first.
    f.advance(31);
    f.get("/status");
    g.get("/status");
    assert_eq!(f.0.origin_calls.get(), 2);
    // Past the TTL f (the owner) refreshes; g gives it a grace period, then takes the
    // refreshed entry from the cache instead of pulling too.
    f.advance(11);
    f.get("/status");
    g.get("/status");
    assert_eq!(f.run_spawned(), 1, "only the owner refreshes at the TTL");
    f.advance(f.0.config.owner_grace_secs().into());
    g.get("/status");
    assert_eq!(f.run_spawned(), 1);
    assert_eq!(f.0.origin_calls.get(), 3, "g refreshed from the cache");
}

fn with_generated_at(mut r: StatusReport, at: &str) -> StatusReport {
    r.generated_at = at.to_owned();
    r
}

/// f holds `memory` (pulled), KV holds `kv`; then the origin dies.
fn fallback_between(memory: StatusReport, kv: StatusReport) -> StatusReport {
    let f = fake(OriginMode::Up(memory));
    f.get("/status");
    let planted = Snapshot::new(kv, T0, T0).encode_with(0);
    f.0.kv.borrow_mut().insert(LKG_KEY, planted);
    f.set_origin(OriginMode::Down);
    f.advance(31);
    let (_, served) = f.status_json();
    assert!(served.stale);
    served
}

#[test]
fn a_far_future_snapshot_does_not_win_the_fallback() {
    let real = with_generated_at(ready(), "2026-01-27T12:00:00Z");
    let future = with_generated_at(building(), "9999-01-01T00:00:00Z");
    let served = fallback_between(real.clone(), future);
    assert_eq!(served.presets, real.presets, "the real snapshot is served");
}

#[test]
fn the_fallback_compares_times_not_text() {
    // 11:30-01:00 is 12:30Z: newer, though it sorts first as text.
    let older = with_generated_at(ready(), "2026-01-27T12:00:00Z");
    let newer = with_generated_at(building(), "2026-01-27T11:30:00-01:00");
    let served = fallback_between(older, newer.clone());
    assert_eq!(served.presets, newer.presets);
}

#[test]
fn future_dated_pushes_are_refused_and_block_no_on_time_push() {
    let f = fake(OriginMode::Up(ready()));
    let bodies = [ready(), building()].map(|r| serde_json::to_vec(&r).unwrap());
    // Inside the signature window, ahead of the allowed skew.
    let r = f.ingest(&bodies[1], T0 + 290, SECRET);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("in the future"), "{}", r.text());
    for i in 0..60 {
        f.advance(5);
        let r = f.ingest(&bodies[i % 2], f.now(), SECRET);
        assert_eq!(r.status, 202, "on-time push {i}: {}", r.text());
    }
    assert_eq!(f.0.kv_writes.get(), 60, "one KV write per push");
    // The skew is a Worker var.
    let strict = fake_with(
        Config {
            max_clock_skew_secs: 30,
            ..config()
        },
        OriginMode::Down,
    );
    assert_eq!(strict.ingest(&bodies[0], T0 + 31, SECRET).status, 401);
    assert_eq!(strict.ingest(&bodies[0], T0 + 30, SECRET).status, 202);
}

#[test]
fn every_pull_has_its_own_signed_nonce_and_a_replayed_answer_counts_as_down() {
    let f = fake(OriginMode::Up(ready()));
    f.get("/status");
    let g = f.sibling(2);
    f.advance(31);
    f.get("/status");
    f.advance(31);
    f.get("/status");
    let targets = f.0.targets.borrow().clone();
    assert_eq!(targets.len(), 3, "{targets:?}");
    let mut unique = targets.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "a nonce is never reused: {targets:?}");
    assert_ne!(
        f.0.memory.next_nonce(),
        g.0.memory.next_nonce(),
        "isolates (by id) never share nonces"
    );
    // A genuine, correctly keyed answer to another pull is not this pull's answer.
    f.set_origin(OriginMode::Misbound(building()));
    f.advance(31);
    let (_, body) = f.status_json();
    assert!(body.stale, "served the last known good");
    assert_eq!(body.status, OverallStatus::Ready);
}
