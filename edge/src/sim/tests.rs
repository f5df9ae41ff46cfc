//! The cost targets of issue 11, as counts over a simulated hour.

use super::*;

fn check(p: &Params) -> Counts {
    let c = run(p);
    eprintln!("{p:?}\n  {c:?}");
    assert!(c.requests > 0);
    assert_eq!(
        c.answered_200, c.requests,
        "every request answered 200: {c:?}"
    );
    assert!(
        c.kv_writes <= p.ideal_kv_writes(),
        "KV writes {} > {} (K + 1): {p:?}",
        c.kv_writes,
        p.ideal_kv_writes()
    );
    for (colo, pulls) in c.pulls_per_colo.iter().enumerate() {
        assert!(
            *pulls <= p.ideal_pulls_per_colo(),
            "colo {colo}: {pulls} pulls > {} (1 per TTL): {p:?}",
            p.ideal_pulls_per_colo()
        );
    }
    if p.pushes {
        assert_eq!(c.pushes_accepted, u64::from(p.changes));
    }
    c
}

#[test]
fn an_hour_with_pushes_meets_the_targets() {
    let p = Params {
        colos: 2,
        isolates_per_colo: 3,
        rps_per_isolate: 5,
        ..Params::default()
    };
    let c = check(&p);
    // Pulls are not far below the ideal either: the status stays fresh.
    assert!(
        c.origin_pulls * 10 >= p.ideal_pulls_per_colo() * 2 * 8,
        "{c:?}"
    );
}

#[test]
fn an_hour_of_pulls_alone_meets_the_targets() {
    check(&Params {
        colos: 2,
        isolates_per_colo: 3,
        rps_per_isolate: 5,
        pushes: false,
        ..Params::default()
    });
}

#[test]
fn the_targets_hold_whatever_the_request_rate() {
    for rps in [1, 20, 200] {
        check(&Params {
            colos: 2,
            isolates_per_colo: 4,
            rps_per_isolate: rps,
            secs: if rps > 20 { 600 } else { 3_600 },
            changes: 2,
            ..Params::default()
        });
    }
}

#[test]
fn a_cold_start_costs_one_herd_then_meets_the_targets() {
    let p = Params {
        colos: 2,
        isolates_per_colo: 3,
        rps_per_isolate: 5,
        cold: true,
        ..Params::default()
    };
    let c = run(&p);
    eprintln!("{c:?}");
    assert_eq!(c.answered_200, c.requests);
    // Isolates that start together with nothing cached each pull once; after that the
    // colo settles on one puller.
    let herd = p.isolates_per_colo as u64 - 1;
    for pulls in &c.pulls_per_colo {
        assert!(*pulls <= p.ideal_pulls_per_colo() + herd, "{c:?}");
    }
    assert!(c.kv_writes <= p.ideal_kv_writes() + (p.colos * p.isolates_per_colo) as u64);
}
