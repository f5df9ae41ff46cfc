//! Where a snapshot comes from, fastest first: this isolate's memory (the hot path:
//! stored bytes, no I/O), the colo's Cache API entry, the origin, KV's last known good.
//!
//! Freshness is measured from when the edge last confirmed a snapshot. The isolate that
//! pulled it (its owner) refreshes it after `CACHE_TTL_SECS`; the colo's other isolates
//! give the owner a grace period first and then look in the Cache API before the origin,
//! so a colo pulls about once per TTL however many isolates it runs. Within an isolate
//! one refresh runs at a time and concurrent requests wait for it (single flight).

use std::rc::Rc;

use kiln_shared::StatusReport;

use super::{Edge, Memory, Platform, Wake};
use crate::origin;
use crate::snapshot::Snapshot;

/// KV key of the last known good snapshot (and the push replay guard).
pub const LKG_KEY: &str = "status:last-known-good";
/// KV is rewritten with unchanged content at most this often, so the last known good
/// never looks abandoned.
pub const KV_HEARTBEAT_SECS: i64 = 3_600;

/// What KV holds, as far as this isolate knows.
#[derive(Debug, Clone)]
pub(super) struct KvSeen {
    content_key: String,
    written_at: i64,
    pub(super) last_ingest: i64,
}

/// Ends a refresh however its future ends (completed, cancelled, dropped unpolled):
/// wakes the waiters, who then read the isolate's current snapshot.
struct Flight<P: Platform>(P);

impl<P: Platform> Drop for Flight<P> {
    fn drop(&mut self) {
        let waiters = self.0.memory().flight.borrow_mut().take();
        waiters.into_iter().flatten().for_each(|wake: Wake| wake());
    }
}

impl Memory {
    fn current(&self) -> Option<Rc<Snapshot>> {
        self.current.borrow().clone()
    }

    fn set_current(&self, s: Rc<Snapshot>) {
        *self.current.borrow_mut() = Some(s);
    }
}

impl<P: Platform> Edge<P> {
    /// Until when `s` is served without a refresh.
    fn fresh_until(&self, s: &Snapshot) -> i64 {
        let cfg = self.p.config();
        let mut until = s.checked_at + i64::from(cfg.cache_ttl_secs);
        if s.owner != self.p.memory().id {
            until += i64::from(cfg.owner_grace_secs());
        }
        until
    }

    /// Until when `s` may be served at all (while a refresh runs in the background).
    fn servable_until(&self, s: &Snapshot) -> i64 {
        let cfg = self.p.config();
        s.checked_at + i64::from(cfg.cache_ttl_secs) + i64::from(cfg.stale_while_revalidate_secs)
    }

    /// The snapshot to answer with.
    pub async fn snapshot(&self) -> Option<Rc<Snapshot>> {
        let now = self.p.now();
        match self.p.memory().current() {
            Some(s) if now < self.fresh_until(&s) => Some(s),
            Some(s) if now < self.servable_until(&s) => {
                self.refresh_in_background();
                Some(s)
            }
            _ => self.refresh_shared().await,
        }
    }

    /// Claims the isolate's one refresh slot.
    fn lead(&self) -> Option<Flight<P>> {
        let mut flight = self.p.memory().flight.borrow_mut();
        if flight.is_some() {
            return None;
        }
        *flight = Some(Vec::new());
        Some(Flight(self.p.clone()))
    }

    fn refresh_in_background(&self) {
        if let Some(flight) = self.lead() {
            let this = self.clone();
            self.p.spawn(Box::pin(async move {
                let _flight = flight;
                this.refresh().await;
            }));
        }
    }

    /// Refreshes, or waits for the refresh already running in this isolate.
    async fn refresh_shared(&self) -> Option<Rc<Snapshot>> {
        let Some(flight) = self.lead() else {
            let (wake, wait) = self.p.signal();
            if let Some(waiters) = self.p.memory().flight.borrow_mut().as_mut() {
                waiters.push(wake);
            }
            wait.await;
            return self.p.memory().current();
        };
        let out = self.refresh().await;
        drop(flight);
        out
    }

    /// Colo cache, then origin; on origin failure the newest known snapshot, stale.
    async fn refresh(&self) -> Option<Rc<Snapshot>> {
        let mem = self.p.memory();
        if let Some(bytes) = self.p.cache_get().await {
            match Snapshot::decode(&bytes) {
                Ok(c) => self.adopt(c),
                Err(e) => self.p.log(&format!("ignoring cache entry: {e}")),
            }
        }
        let now = self.p.now();
        if let Some(s) = mem.current().filter(|s| now < self.fresh_until(s)) {
            return Some(s);
        }
        let cfg = self.p.config();
        let pulled = match origin::request(cfg, now, &mem.next_nonce()) {
            Ok(req) => match self.p.fetch_origin(&req).await {
                Ok(resp) => origin::verify(cfg, &req, &resp, self.p.now()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match pulled {
            Ok((report, feeds, signed_at)) => {
                Some(self.install(report, feeds, signed_at, now, None).await)
            }
            Err(e) => {
                self.p
                    .log(&format!("origin pull failed: {e}; serving last known good"));
                self.fall_back(now).await
            }
        }
    }

    /// Takes the colo's entry unless this isolate already holds it or something newer.
    /// Ties go to the colo, so isolates that pulled at the same moment settle on one owner.
    fn adopt(&self, c: Snapshot) {
        let mem = self.p.memory();
        let take = match mem.current() {
            None => true,
            Some(m) => {
                c.checked_at > m.checked_at
                    || (c.checked_at == m.checked_at && (c.owner, &c.etag) != (m.owner, &m.etag))
            }
        };
        if take {
            mem.set_current(Rc::new(c));
        }
    }

    /// Makes a fresh report current in every tier. `ingest`: the push's timestamp.
    pub(super) async fn install(
        &self,
        report: StatusReport,
        feeds: Option<kiln_shared::feeds::Feeds>,
        signed_at: i64,
        now: i64,
        ingest: Option<i64>,
    ) -> Rc<Snapshot> {
        let mem = self.p.memory();
        let snap = Rc::new(
            Snapshot::new(report, signed_at, now)
                .owned_by(mem.id)
                .with_feeds(feeds),
        );
        mem.set_current(snap.clone());
        let cfg = self.p.config();
        let keep = cfg.cache_ttl_secs + cfg.stale_while_revalidate_secs;
        self.p.cache_put(snap.encode(), keep).await;
        self.persist(&snap, now, ingest).await;
        snap
    }

    /// The KV write policy: write when the content differs from KV's (generation time
    /// and staleness do not count), when a push's replay-guard timestamp must be kept,
    /// or as a heartbeat once KV's copy is an hour old. The free plan allows 1,000 KV
    /// writes a day; pulls happen every TTL in every colo.
    async fn persist(&self, snap: &Snapshot, now: i64, ingest: Option<i64>) {
        let mem = self.p.memory();
        let due = |k: &KvSeen| {
            k.content_key != snap.content_key
                || now - k.written_at >= KV_HEARTBEAT_SECS
                || ingest.is_some_and(|ts| ts > k.last_ingest)
        };
        if mem.kv.borrow().as_ref().is_some_and(|k| !due(k)) {
            return;
        }
        // Read before writing: another isolate or colo may have written this already.
        let stored = self.read_kv().await.map(|(_, k)| k);
        if let Some(k) = stored.as_ref().filter(|k| !due(k)) {
            *mem.kv.borrow_mut() = Some(k.clone());
            return;
        }
        let last_ingest = stored
            .map_or(0, |k| k.last_ingest)
            .max(ingest.unwrap_or(0))
            .max(mem.last_ingest.get());
        self.p.kv_put(LKG_KEY, snap.encode_with(last_ingest)).await;
        *mem.kv.borrow_mut() = Some(KvSeen {
            content_key: snap.content_key.clone(),
            written_at: now,
            last_ingest,
        });
    }

    /// KV's last known good, and what this isolate now knows KV holds.
    pub(super) async fn read_kv(&self) -> Option<(Snapshot, KvSeen)> {
        let bytes = self.p.kv_get(LKG_KEY).await?;
        match Snapshot::decode_with(&bytes) {
            Ok((s, last_ingest)) => {
                let seen = KvSeen {
                    content_key: s.content_key.clone(),
                    written_at: s.checked_at,
                    last_ingest,
                };
                *self.p.memory().kv.borrow_mut() = Some(seen.clone());
                Some((s, seen))
            }
            Err(e) => {
                self.p.log(&format!("ignoring last known good in KV: {e}"));
                None
            }
        }
    }

    /// When `s` was generated, if that is a time this clock can vouch for: unparseable
    /// or further ahead than the allowed skew counts as older than anything.
    fn generated(&self, s: &Snapshot, now: i64) -> Option<i64> {
        let at = kiln_shared::time::parse(&s.report.generated_at)
            .ok()?
            .timestamp();
        (at <= now + self.p.config().max_clock_skew_secs).then_some(at)
    }

    async fn fall_back(&self, now: i64) -> Option<Rc<Snapshot>> {
        let in_memory = self.p.memory().current();
        let from_kv = self.read_kv().await.map(|(s, _)| s);
        // The newest data wins, compared as times; memory on a tie.
        let best = match (in_memory, from_kv) {
            (Some(m), Some(k)) if self.generated(&k, now) > self.generated(&m, now) => k,
            (Some(m), _) => (*m).clone(),
            (None, Some(k)) => k,
            (None, None) => return None,
        };
        let stale = Rc::new(best.into_stale(now).owned_by(self.p.memory().id));
        self.p.memory().set_current(stale.clone());
        // Shared with the colo's other isolates, so they do not each wait on a dead origin.
        let cfg = self.p.config();
        self.p
            .cache_put(
                stale.encode(),
                cfg.cache_ttl_secs + cfg.stale_while_revalidate_secs,
            )
            .await;
        Some(stale)
    }
}
