//! Hostile and odd input: each fails fast, as a problem of that file and field.

use std::time::{Duration, Instant};

use super::*;

const BASE: &str = "name: p\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n";

fn one(text: &str) -> Result<Vec<Preset>, Vec<PresetError>> {
    parse_one(&PresetSource {
        file: "p.yaml".into(),
        text: text.into(),
    })
}

fn fields(text: &str) -> Vec<String> {
    one(text)
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn deep_flow_nesting_fails_within_a_second() {
    for hostile in [
        format!("{BASE}runner: {{x: {}}}\n", "[".repeat(200_000)),
        format!("{BASE}runner: {{x: {}}}\n", "[\"]]\", ".repeat(20_000)),
        "{a: ".repeat(40_000),
    ] {
        let started = Instant::now();
        let errors = one(&hostile).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(errors[0].field, "(file)");
    }
    // Just under both caps: still fast.
    let near = format!(
        "{BASE}runner: {{x: {}}}\n",
        "[".repeat(MAX_FLOW_OPENERS - 1)
    );
    let started = Instant::now();
    let _ = one(&near);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let text = format!("{BASE}description: '{}'\n", "x".repeat(MAX_FILE_BYTES));
    let errors = one(&text).unwrap_err();
    assert_eq!(errors[0].field, "(file)");
    assert!(errors[0].reason.contains("at most"), "{}", errors[0].reason);
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let presets = one(&format!("\u{feff}{BASE}")).unwrap();
    assert_eq!(presets[0].name, "p");
}

#[test]
fn yaml_tags_are_refused_as_problems_of_their_field() {
    assert_eq!(
        fields(&format!("{BASE}runner: {{x: !secret v}}\nlabels: [!a b]\n")),
        vec!["runner.x".to_owned(), "labels[0]".to_owned()]
    );
    let errors = one(&format!("{BASE}description: !!str d\n"));
    // `!!str` is YAML's own core tag for a string: serde_yaml resolves it, no problem.
    assert!(errors.is_ok() || errors.unwrap_err()[0].field == "description");
}

#[test]
fn runner_may_not_set_keys_kiln_owns() {
    let errors = one(&format!(
        "{BASE}runner: {{amiId: ami-1, amiUpdatedAt: x, region: us-east-1, maxRunners: 3}}\n"
    ))
    .unwrap_err();
    let found: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        found,
        vec!["runner.amiId", "runner.amiUpdatedAt", "runner.region"]
    );
    assert!(
        errors[0].reason.contains("set by kiln"),
        "{}",
        errors[0].reason
    );
    assert_eq!(errors[0].file, "p.yaml");
}

#[test]
fn runner_config_must_fit_an_ssm_parameter() {
    // Over 4 KB is fine (advanced tier); over 8 KB SSM refuses.
    let fits = one(&format!(
        "{BASE}runner: {{notes: '{}'}}\n",
        "x".repeat(5_000)
    ))
    .unwrap();
    let json = crate::runner_config::largest(&fits[0]);
    assert_eq!(
        crate::runner_config::parameter_tier(&json),
        Some(crate::runner_config::ParameterTier::Advanced)
    );
    let errors = one(&format!(
        "{BASE}runner: {{notes: '{}'}}\n",
        "x".repeat(9_000)
    ))
    .unwrap_err();
    assert_eq!(errors[0].field, "runner");
    assert!(errors[0].reason.contains("8192"), "{}", errors[0].reason);
}
