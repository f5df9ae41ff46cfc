//! State-machine step, status aggregation and the SSM runner-config merge.
//!
//! `state/clone_record` is the baseline for `state/apply_*`: a step necessarily copies
//! the record, so the ratio shows what the rules themselves cost on top of that copy.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_shared::preset::{PresetSource, parse_all};
use kiln_shared::state::{AmiRecord, BuildStatus, ImageState, Observation, Transition, apply};
use kiln_shared::status::KnownPreset;
use kiln_shared::{Architecture, StatusReport, runner_config};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid time")
}

fn observation(build: u32, state: ImageState, secs: i64) -> Observation {
    Observation {
        preset: "linux-x64".into(),
        architecture: Some(Architecture::X86_64),
        state,
        at: at(secs),
        build_id: format!(
            "arn:aws:imagebuilder:us-east-1:123456789012:image/linux-x64/1.0.0/{build}"
        ),
        amis: if state == ImageState::Available {
            BTreeMap::from([
                ("us-east-1".to_owned(), format!("ami-{build:017x}")),
                ("eu-west-1".to_owned(), format!("ami-e{build:016x}")),
            ])
        } else {
            BTreeMap::new()
        },
        home_region: "us-east-1".into(),
        reason: None,
        started: None,
    }
}

fn written(current: Option<&AmiRecord>, obs: &Observation) -> AmiRecord {
    match apply(current, obs) {
        Transition::Write { record, .. } => *record,
        Transition::NoOp(n) => panic!("expected a write, got {n:?}"),
    }
}

fn state_machine(c: &mut Criterion) {
    let ready = written(None, &observation(1, ImageState::Available, 0));
    let building = written(Some(&ready), &observation(2, ImageState::Building, 60));
    let rebuild = observation(2, ImageState::Building, 60);
    let available = observation(2, ImageState::Available, 120);
    let duplicate = observation(1, ImageState::Available, 0);

    let mut g = c.benchmark_group("state");
    g.bench_function("clone_record", |b| b.iter(|| black_box(&ready).clone()));
    g.bench_function("apply_building", |b| {
        b.iter(|| apply(Some(black_box(&ready)), black_box(&rebuild)))
    });
    g.bench_function("apply_available", |b| {
        b.iter(|| apply(Some(black_box(&building)), black_box(&available)))
    });
    g.bench_function("apply_duplicate", |b| {
        b.iter(|| apply(Some(black_box(&ready)), black_box(&duplicate)))
    });
    g.finish();
}

/// `n` presets in a realistic mix: mostly ready, some building, one failed.
fn fleet(n: usize) -> (Vec<KnownPreset>, Vec<AmiRecord>) {
    let known = (0..n)
        .map(|i| KnownPreset {
            name: format!("preset-{i:04}"),
            architecture: Some(Architecture::ALL[i % 2]),
            display_name: None,
        })
        .collect();
    let records = (0..n)
        .map(|i| {
            let mut r = AmiRecord::initial(&format!("preset-{i:04}"), None, at(0));
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
    (known, records)
}

fn aggregation(c: &mut Criterion) {
    let mut g = c.benchmark_group("status_build");
    for n in [10, 100, 1000] {
        let (known, records) = fleet(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| StatusReport::build(black_box(&known), black_box(&records), at(5)))
        });
    }
    g.finish();
}

fn ssm_merge(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../presets/linux-x64.yaml"
    ))
    .expect("example preset");
    let presets = parse_all(
        "presets",
        &[PresetSource {
            file: "linux-x64.yaml".into(),
            text,
        }],
    )
    .expect("example preset is valid");
    let settings = runner_config::initial(&presets[0], "us-east-1");
    // What SSM holds after a deploy and an operator's own keys.
    let mut stored = settings.clone();
    stored.insert("maxRunners".into(), 8.into());
    stored.insert(
        "subnetIds".into(),
        serde_json::json!(["subnet-1", "subnet-2"]),
    );
    let stored = serde_json::to_string(&stored).expect("config serialises");

    let mut g = c.benchmark_group("ssm_merge");
    g.bench_function("merge_ami", |b| {
        b.iter(|| {
            runner_config::merge_ami(Some(black_box(&stored)), "ami-0123456789abcdef0", at(9))
        })
    });
    g.bench_function("merge_settings", |b| {
        b.iter(|| runner_config::merge_settings(Some(black_box(&stored)), black_box(&settings)))
    });
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
    targets = state_machine, aggregation, ssm_merge
}
criterion_main!(benches);
