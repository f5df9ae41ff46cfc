//! `make bench` (scripts/bench-edge-cost.sh): what an hour of traffic costs the edge,
//! from the cost simulation in `kiln_edge::sim`. Counts, not time.
//!
//!   COST_COLOS=3 COST_ISOLATES=4 COST_RPS=1,10,100 COST_CHANGES=6 cargo run --release -p kiln-edge --example cost

use kiln_edge::sim::{Params, run};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn num(name: &str, default: &str) -> u32 {
    env(name, default)
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be a whole number"))
}

fn main() {
    let base = Params {
        colos: num("COST_COLOS", "3") as usize,
        isolates_per_colo: num("COST_ISOLATES", "4") as usize,
        changes: num("COST_CHANGES", "6"),
        ..Params::default()
    };
    let rates: Vec<u32> = env("COST_RPS", "1,10,100")
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .expect("COST_RPS: whole numbers, comma-separated")
        })
        .collect();
    println!(
        "edge cost: simulated {} s, {} colos x {} isolates, TTL {} s, SWR {} s, origin changes K = {}",
        base.secs, base.colos, base.isolates_per_colo, base.ttl_secs, base.swr_secs, base.changes
    );
    println!(
        "  ideal per hour: origin pulls (= status-origin Lambda invocations) <= {} ({} per colo, 1 per TTL), KV writes <= {} (K + 1)",
        base.ideal_pulls_per_colo() * base.colos as u64,
        base.ideal_pulls_per_colo(),
        base.ideal_kv_writes()
    );
    println!(
        "  {:>8} {:>6} {:>5} {:>10} {:>8} {:>14} {:>9} {:>8} {:>10} {:>10}",
        "req/s",
        "pushes",
        "start",
        "requests",
        "pulls",
        "max pulls/colo",
        "KV writes",
        "KV reads",
        "cache gets",
        "cache puts"
    );
    for &rps in &rates {
        for (pushes, cold) in [(true, false), (false, false), (true, true)] {
            let p = Params {
                rps_per_isolate: rps,
                pushes,
                cold,
                ..base.clone()
            };
            let c = run(&p);
            let total_rps = rps as usize * p.colos * p.isolates_per_colo;
            println!(
                "  {:>8} {:>6} {:>5} {:>10} {:>8} {:>14} {:>9} {:>8} {:>10} {:>10}",
                total_rps,
                if pushes { "yes" } else { "no" },
                if cold { "cold" } else { "warm" },
                c.requests,
                c.origin_pulls,
                c.pulls_per_colo.iter().max().copied().unwrap_or(0),
                c.kv_writes,
                c.kv_reads,
                c.cache_gets,
                c.cache_puts
            );
            if c.answered_200 != c.requests {
                println!(
                    "    ! {} requests not answered 200",
                    c.requests - c.answered_200
                );
            }
        }
    }
    println!(
        "  before this change (issue 11): 240 KV writes/h from one isolate with unchanged data; 20 pulls for 20 concurrent requests"
    );
}
