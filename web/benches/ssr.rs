//! Server-side rendering of the readiness page for 10, 100 and 1000 presets.
//!
//! Baseline measured in the same run: `serde_json::to_string` of the same
//! `StatusReport` (what `/status` sends). The ratio `ssr/page/N` ÷ `ssr/json/N` is how
//! much dearer the HTML page is than the JSON contract for the same fleet.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_shared::history::{BuildSummary, Day, MAX_BUILDS, Outcome, PresetHistory, Tests, Uptime};
use kiln_shared::state::{AmiRecord, BuildStatus};
use kiln_shared::status::KnownPreset;
use kiln_shared::{Architecture, StatusReport};
use kiln_web::{PageOptions, render_history, render_page, render_page_with};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid time")
}

/// `n` presets in a realistic mix: mostly ready in two regions, every tenth building,
/// one failed (so the page shows every kind of row and a degraded banner).
fn report(n: usize) -> StatusReport {
    let known: Vec<KnownPreset> = (0..n)
        .map(|i| KnownPreset {
            name: format!("preset-{i:04}"),
            architecture: Some(Architecture::ALL[i % 2]),
            display_name: None,
        })
        .collect();
    let records: Vec<AmiRecord> = (0..n)
        .map(|i| {
            let mut r = AmiRecord::initial(&format!("preset-{i:04}"), None, at(-(i as i64) * 60));
            r.status = match i % 10 {
                0 => BuildStatus::Building,
                7 if i == 7 => BuildStatus::Failed,
                _ => BuildStatus::Ready,
            };
            if r.status != BuildStatus::Building {
                r.ami_id = Some(format!("ami-{i:017x}"));
                r.amis = BTreeMap::from([
                    ("us-east-1".to_owned(), format!("ami-{i:017x}")),
                    ("eu-west-1".to_owned(), format!("ami-e{i:016x}")),
                ]);
            }
            r
        })
        .collect();
    StatusReport::build(&known, &records, at(5))
}

/// Full history for every preset of `r`: 90 days (some partial) and 20 builds.
fn histories(r: &StatusReport) -> Vec<PresetHistory> {
    r.presets
        .iter()
        .enumerate()
        .map(|(i, p)| PresetHistory {
            name: p.name.clone(),
            days: (0..90)
                .map(|d| Day {
                    date: format!("2026-{:02}-{:02}", 9 + d / 30, d % 30 + 1),
                    ready: Some(if (d + i) % 13 == 0 { 0.75 } else { 1.0 }),
                })
                .collect(),
            uptime: Uptime {
                h24: Some(1.0),
                d7: Some(0.99),
                d30: Some(0.995),
                d90: Some(0.998),
            },
            builds: (0..MAX_BUILDS)
                .map(|b| BuildSummary {
                    version: format!("1.0.{b}/1"),
                    outcome: if b % 7 == 3 {
                        Outcome::Failed
                    } else {
                        Outcome::Available
                    },
                    started_at: "2026-11-01T00:00:00Z".into(),
                    finished_at: Some("2026-11-01T00:25:00Z".into()),
                    amis: BTreeMap::from([("us-east-1".to_owned(), format!("ami-{b:017x}"))]),
                    tests: Tests {
                        passed: Some(3),
                        failed: Some(0),
                    },
                })
                .collect(),
        })
        .collect()
}

fn ssr(c: &mut Criterion) {
    let opts = PageOptions::default();
    let mut g = c.benchmark_group("ssr");
    for n in [10, 100, 1000] {
        let r = report(n);
        let html = render_page(&r, at(30), &opts);
        assert!(html.contains("preset-0001"), "the page lists the presets");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("page", n), &n, |b, _| {
            b.iter(|| render_page(black_box(&r), at(30), &opts))
        });
        g.bench_with_input(BenchmarkId::new("json", n), &n, |b, _| {
            b.iter(|| serde_json::to_string(black_box(&r)).expect("report serialises"))
        });
        if n == 100 {
            // Budget: ≤ 5 ms for 100 presets with full history. The Worker renders
            // `page_with_history` (the section comes rendered from the origin); the
            // origin renders `history` once per snapshot.
            let h = histories(&r);
            let section = render_history(&h, at(30));
            assert_eq!(section.matches("data-day=").count(), 90 * n);
            g.bench_with_input(BenchmarkId::new("page_with_history", n), &n, |b, _| {
                b.iter(|| render_page_with(black_box(&r), at(30), &opts, &section))
            });
            g.bench_with_input(BenchmarkId::new("history", n), &n, |b, _| {
                b.iter(|| render_history(black_box(&h), at(30)))
            });
        }
    }
    g.finish();
}

/// Short by default so `make bench` stays within minutes; criterion's own flags
/// (`--measurement-time` …) still override.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = ssr
}
criterion_main!(benches);
