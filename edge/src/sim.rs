//! Cost simulation: the Worker's service logic, unchanged, in many isolates across colos
//! on a simulated clock, with simulated latencies for the origin, the Cache API and KV,
//! while the origin's state changes. It counts what costs money or quota: origin pulls
//! (each one a status-origin Lambda invocation), KV writes (1,000 a day on the free
//! plan) and reads, Cache API traffic. `make bench` prints it (`examples/cost.rs`); the
//! unit tests assert the counts. Counts only: nothing here measures time.
//!
//! Model: each colo has one Cache API store shared by its isolates; KV is one global,
//! strongly consistent store (real KV is eventually consistent across colos, which can
//! add a write per colo for a change pulled within KV's propagation delay). Requests
//! arrive evenly at `rps_per_isolate` per isolate with a per-isolate phase; a push (if
//! enabled) goes to one isolate 50 ms after each change.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Waker;

use kiln_shared::signing::{RESPONSE_METHOD, sign};
use kiln_shared::status::summarise;
use kiln_shared::{PresetReport, PresetStatus, StatusReport};

use crate::body::{Chunks, NoBody};
use crate::config::Config;
use crate::origin::{OriginError, OriginRequest, OriginResponse};
use crate::service::{Edge, LKG_KEY, Memory, Platform, Request, Wait, Wake};
use crate::snapshot::Snapshot;

const T0: i64 = 1_800_000_000;
const SECRET: &[u8] = b"simulated-shared-secret-0123456789";

#[derive(Debug, Clone)]
pub struct Params {
    pub colos: usize,
    pub isolates_per_colo: usize,
    pub rps_per_isolate: u32,
    /// How often the origin's state changes during the run.
    pub changes: u32,
    pub secs: u32,
    /// Whether each change is also pushed to the edge (as the Lambdas do).
    pub pushes: bool,
    pub ttl_secs: u32,
    pub swr_secs: u32,
    pub origin_ms: u64,
    pub cache_ms: u64,
    pub kv_ms: u64,
    /// Start with empty colo caches and KV (a first deploy) instead of the steady state
    /// (each colo's cache and KV hold the current status, just pulled).
    pub cold: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            colos: 3,
            isolates_per_colo: 4,
            rps_per_isolate: 10,
            changes: 6,
            secs: 3_600,
            pushes: true,
            ttl_secs: 15,
            swr_secs: 60,
            origin_ms: 150,
            cache_ms: 2,
            kv_ms: 20,
            cold: false,
        }
    }
}

impl Params {
    /// One pull per TTL per colo.
    pub fn ideal_pulls_per_colo(&self) -> u64 {
        u64::from(self.secs.div_ceil(self.ttl_secs))
    }
    /// One write per change plus one heartbeat per hour.
    pub fn ideal_kv_writes(&self) -> u64 {
        u64::from(self.changes) + u64::from(self.secs.div_ceil(3_600))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub answered_200: u64,
    pub origin_pulls: u64,
    pub pulls_per_colo: Vec<u64>,
    pub kv_writes: u64,
    pub kv_reads: u64,
    pub cache_gets: u64,
    pub cache_puts: u64,
    pub pushes_accepted: u64,
}

mod exec;
use exec::{Exec, Sleep, Task};

struct World {
    now_ms: Cell<u64>,
    timers: RefCell<BinaryHeap<Reverse<(u64, u64)>>>,
    wakers: RefCell<HashMap<u64, Waker>>,
    seq: Cell<u64>,
    spawned: RefCell<Vec<Task>>,
    caches: Vec<RefCell<Option<(String, u64)>>>,
    kv: RefCell<HashMap<&'static str, String>>,
    origin: RefCell<StatusReport>,
    counts: RefCell<Counts>,
    config: Config,
    p: Params,
}

impl World {
    fn now(&self) -> i64 {
        T0 + (self.now_ms.get() / 1_000) as i64
    }

    fn sleep(self: &Rc<Self>, ms: u64) -> Sleep {
        Sleep::new(self.clone(), self.now_ms.get() + ms)
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.borrow_mut());
    }
}

#[derive(Clone)]
struct Isolate {
    world: Rc<World>,
    colo: usize,
    memory: Rc<Memory>,
}

impl Platform for Isolate {
    fn now(&self) -> i64 {
        self.world.now()
    }
    fn config(&self) -> &Config {
        &self.world.config
    }
    fn memory(&self) -> &Memory {
        &self.memory
    }
    async fn fetch_origin(&self, req: &OriginRequest) -> Result<OriginResponse, OriginError> {
        let colo = self.colo;
        self.world.count(|c| {
            c.origin_pulls += 1;
            c.pulls_per_colo[colo] += 1;
        });
        self.world.sleep(self.world.p.origin_ms).await;
        // Like the real origin: a new generatedAt on every answer.
        let mut report = self.world.origin.borrow().clone();
        let now = self.now();
        report.generated_at = stamp(now);
        let body = serde_json::to_vec(&report).expect("serialises");
        let sig = sign(SECRET, now, RESPONSE_METHOD, &req.target, &body).expect("signs");
        Ok(OriginResponse {
            status: 200,
            timestamp: Some(now.to_string()),
            signature: Some(sig),
            body,
        })
    }
    async fn cache_get(&self) -> Option<Vec<u8>> {
        self.world.sleep(self.world.p.cache_ms).await;
        self.world.count(|c| c.cache_gets += 1);
        let entry = self.world.caches[self.colo].borrow().clone();
        let (value, expires) = entry?;
        (self.world.now_ms.get() < expires).then(|| value.into_bytes())
    }
    async fn cache_put(&self, value: String, max_age_secs: u32) {
        self.world.sleep(self.world.p.cache_ms).await;
        self.world.count(|c| c.cache_puts += 1);
        let expires = self.world.now_ms.get() + u64::from(max_age_secs) * 1_000;
        *self.world.caches[self.colo].borrow_mut() = Some((value, expires));
    }
    async fn kv_get(&self, key: &'static str) -> Option<Vec<u8>> {
        self.world.sleep(self.world.p.kv_ms).await;
        self.world.count(|c| c.kv_reads += 1);
        self.world
            .kv
            .borrow()
            .get(key)
            .cloned()
            .map(String::into_bytes)
    }
    async fn kv_put(&self, key: &'static str, value: String) {
        self.world.count(|c| c.kv_writes += 1);
        self.world.sleep(self.world.p.kv_ms).await;
        self.world.kv.borrow_mut().insert(key, value);
    }
    fn spawn(&self, fut: Pin<Box<dyn Future<Output = ()>>>) {
        self.world.spawned.borrow_mut().push(fut);
    }
    fn signal(&self) -> (Wake, Wait) {
        crate::signal::local()
    }
    fn log(&self, _line: &str) {}
}

fn stamp(unix: i64) -> String {
    kiln_shared::time::format(chrono::DateTime::from_timestamp(unix, 0).expect("in range"))
}

/// The origin's state after `n` changes: one preset alternating ready / building.
fn state(n: u32) -> StatusReport {
    let status = if n.is_multiple_of(2) {
        PresetStatus::Ready
    } else {
        PresetStatus::Building
    };
    let presets = vec![PresetReport {
        name: "linux-x64".into(),
        status,
        ami_id: Some(format!("ami-{n:017}")),
        updated_at: Some(stamp(T0 + i64::from(n))),
        architecture: None,
        amis: [("us-east-1".to_owned(), format!("ami-{n:017}"))].into(),
        built_at: None,
        pinned: false,
        warnings: Vec::new(),
        display_name: None,
    }];
    let (status, message) = summarise(&presets);
    StatusReport {
        status,
        message,
        presets,
        generated_at: stamp(T0),
        stale: false,
    }
}

/// Spreads arrivals and push targets deterministically.
fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 11
}

pub fn run(p: &Params) -> Counts {
    let config = Config {
        origin_url: Some("https://origin.sim".into()),
        origin_secret: Some(SECRET.to_vec()),
        cache_ttl_secs: p.ttl_secs,
        stale_while_revalidate_secs: p.swr_secs,
        ..Config::default()
    };
    let world = Rc::new(World {
        now_ms: Cell::new(0),
        timers: RefCell::default(),
        wakers: RefCell::default(),
        seq: Cell::new(0),
        spawned: RefCell::default(),
        caches: (0..p.colos).map(|_| RefCell::new(None)).collect(),
        kv: RefCell::default(),
        origin: RefCell::new(state(0)),
        counts: RefCell::new(Counts {
            pulls_per_colo: vec![0; p.colos],
            ..Counts::default()
        }),
        config,
        p: p.clone(),
    });
    if !p.cold {
        // Steady state: the colo's first isolate has just pulled; KV holds the same.
        let keep = u64::from(p.ttl_secs + p.swr_secs) * 1_000;
        for (colo, cache) in world.caches.iter().enumerate() {
            let owner = (colo * p.isolates_per_colo) as u64 + 1;
            let snap = Snapshot::new(state(0), T0, T0).owned_by(owner);
            *cache.borrow_mut() = Some((snap.encode(), keep));
        }
        let seeded = Snapshot::new(state(0), T0, T0).encode();
        world.kv.borrow_mut().insert(LKG_KEY, seeded);
    }

    let isolates: Vec<Isolate> = (0..p.colos * p.isolates_per_colo)
        .map(|i| Isolate {
            world: world.clone(),
            colo: i / p.isolates_per_colo,
            memory: Rc::new(Memory::new(i as u64 + 1)),
        })
        .collect();
    let end_ms = u64::from(p.secs) * 1_000;
    let interval = 1_000 / u64::from(p.rps_per_isolate.max(1));
    let mut arrivals: BinaryHeap<Reverse<(u64, usize)>> = (0..isolates.len())
        .map(|i| Reverse((mix(i as u64) % interval.max(1), i)))
        .collect();
    let every = end_ms / (u64::from(p.changes) + 1);
    let mut changes: Vec<(u64, bool)> = (1..=u64::from(p.changes))
        .flat_map(|j| [(j * every, false), (j * every + 50, true)])
        .filter(|&(_, push)| !push || p.pushes)
        .collect();
    changes.reverse();
    let mut exec = Exec::default();
    let mut version = 0;
    loop {
        let next_timer = world.timers.borrow().peek().map(|Reverse((t, _))| *t);
        let next = [
            arrivals.peek().map(|Reverse((t, _))| *t),
            changes.last().map(|(t, _)| *t),
            next_timer,
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(now) = next.filter(|&t| t < end_ms) else {
            break;
        };
        world.now_ms.set(now);
        loop {
            let due = world.timers.borrow().peek().copied();
            let Some(Reverse((_, seq))) = due.filter(|Reverse((t, _))| *t <= now) else {
                break;
            };
            world.timers.borrow_mut().pop();
            let waker = world.wakers.borrow_mut().remove(&seq);
            if let Some(w) = waker {
                w.wake();
            }
        }
        while changes.last().is_some_and(|(t, _)| *t <= now) {
            let (_, push) = changes.pop().expect("peeked");
            if !push {
                version += 1;
                *world.origin.borrow_mut() = state(version);
                continue;
            }
            let target = isolates[(mix(u64::from(version) + 7) as usize) % isolates.len()].clone();
            let w = world.clone();
            exec.add(Box::pin(async move {
                let mut report = state(version);
                let ts = w.now();
                report.generated_at = stamp(ts);
                let body = serde_json::to_vec(&report).expect("serialises");
                let sig = sign(SECRET, ts, "POST", "/ingest", &body).expect("signs");
                let ts_s = ts.to_string();
                let req = Request {
                    method: "POST",
                    path: "/ingest",
                    timestamp: Some(&ts_s),
                    signature: Some(&sig),
                    content_length: Some(body.len() as u64),
                    ..Request::default()
                };
                let r = Edge::new(target)
                    .handle(&req, Chunks::new(&body, 4096))
                    .await;
                if r.status == 202 {
                    w.count(|c| c.pushes_accepted += 1);
                }
            }));
        }
        while let Some(&Reverse((t, i))) = arrivals.peek() {
            if t > now {
                break;
            }
            arrivals.pop();
            arrivals.push(Reverse((t + interval.max(1), i)));
            let (isolate, w) = (isolates[i].clone(), world.clone());
            exec.add(Box::pin(async move {
                let req = Request {
                    method: "GET",
                    path: "/status",
                    ..Request::default()
                };
                let r = Edge::new(isolate).handle(&req, NoBody).await;
                w.count(|c| {
                    c.requests += 1;
                    c.answered_200 += u64::from(r.status == 200);
                });
            }));
        }
        exec.run(&world);
    }
    world.counts.borrow().clone()
}

#[cfg(test)]
mod tests;
