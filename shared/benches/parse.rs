//! Event and preset parsing.
//!
//! Baselines from the same run: `event_parse/json_value` decodes the same event text into
//! a bare `serde_json::Value`, `preset_parse/yaml_value` the same preset files into a bare
//! `serde_yaml::Value`, so the ratios show what typing and validation add.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_shared::ImageStateChange;
use kiln_shared::preset::{PresetSource, parse_all};

const AVAILABLE: &str = include_str!("../tests/fixtures/events/available.json");

fn event_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_parse");
    g.throughput(Throughput::Bytes(AVAILABLE.len() as u64));
    g.bench_function("image_state_change", |b| {
        b.iter(|| ImageStateChange::parse(black_box(AVAILABLE)).expect("fixture parses"))
    });
    g.bench_function("json_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(AVAILABLE)).expect("JSON"))
    });
    g.finish();
}

/// The example presets shipped in `presets/` (whatever is there now).
fn example_presets() -> Vec<PresetSource> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../presets");
    let mut sources: Vec<PresetSource> = std::fs::read_dir(dir)
        .expect("presets/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|p| PresetSource {
            file: p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned(),
            text: std::fs::read_to_string(&p).expect("preset readable"),
        })
        .collect();
    sources.sort_by(|a, b| a.file.cmp(&b.file));
    sources
}

fn preset_parse(c: &mut Criterion) {
    let sources = example_presets();
    let presets = parse_all("presets", &sources).expect("example presets are valid");
    eprintln!(
        "preset_parse: {} files -> {} presets",
        sources.len(),
        presets.len()
    );
    let mut g = c.benchmark_group("preset_parse");
    g.throughput(Throughput::Elements(sources.len() as u64));
    g.bench_function("parse_all", |b| {
        b.iter(|| parse_all("presets", black_box(&sources)).expect("valid"))
    });
    g.bench_function("yaml_value", |b| {
        b.iter(|| {
            for s in black_box(&sources) {
                black_box(serde_yaml::from_str::<serde_yaml::Value>(&s.text).expect("YAML"));
            }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = event_parse, preset_parse
}
criterion_main!(benches);
