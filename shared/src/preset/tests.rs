use std::collections::BTreeSet;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        PresetSource {
            file: $name.to_owned(),
            text: include_str!(concat!("../../tests/fixtures/presets/bad/", $name)).to_owned(),
        }
    };
}

macro_rules! example {
    ($name:literal) => {
        PresetSource {
            file: $name.to_owned(),
            text: include_str!(concat!("../../../presets/", $name)).to_owned(),
        }
    };
}

fn examples() -> Vec<PresetSource> {
    vec![
        example!("linux-x64.yaml"),
        example!("linux-arm64.yaml"),
        example!("r-research.yaml"),
    ]
}

/// Asserts `sources` fail with an error on `field` whose reason contains `needle`.
#[track_caller]
fn assert_rejects(sources: &[PresetSource], field: &str, needle: &str) -> Vec<PresetError> {
    let errors = parse_all("presets", sources)
        .expect_err("must be rejected")
        .0;
    assert!(
        errors
            .iter()
            .any(|e| e.field == field && e.reason.contains(needle)),
        "expected an error on {field} containing {needle:?}, got:\n{}",
        PresetErrors(errors.clone())
    );
    errors
}

#[test]
fn examples_parse_and_expand() {
    let presets = parse_all("presets", &examples()).unwrap();
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "linux-arm64",
            "linux-x64",
            "r-research-arm64",
            "r-research-x64"
        ]
    );
    let r = presets
        .iter()
        .find(|p| p.name == "r-research-arm64")
        .unwrap();
    assert_eq!(r.template, "r-research");
    assert_eq!(r.architecture, Architecture::Arm64);
    assert_eq!(r.build_instance_types, ["c7g.large"]);
    assert_eq!(r.regions, ["us-east-1", "eu-central-1"]);
    assert_eq!(r.home_region("us-west-2"), "us-east-1");
    assert_eq!(r.schedule, "cron(0 3 1 * ? *)");
    assert_eq!(
        r.base_image.parent_image(r.architecture),
        "ssm:/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id"
    );
    let x = presets.iter().find(|p| p.name == "linux-x64").unwrap();
    assert_eq!(x.runner["max_runners"], 20);
    assert_eq!(x.pipeline_name("spot-runner"), "spot-runner-linux-x64");
    assert_eq!(
        x.parameter_name("spot-runner"),
        "/spot-runner/configs/linux-x64"
    );
    let arm = presets.iter().find(|p| p.name == "linux-arm64").unwrap();
    assert_eq!(arm.schedule, DEFAULT_SCHEDULE);
}

#[test]
fn single_entry_architectures_keeps_the_name() {
    let src = PresetSource {
        file: "one.yaml".into(),
        text: "name: one\narchitectures: [arm64]\nbase_image: ubuntu-24.04\nsetup_script: echo\n"
            .into(),
    };
    assert_eq!(parse_all("d", &[src]).unwrap()[0].name, "one");
}

#[test]
fn content_hash_tracks_content_not_location() {
    let a = parse_all("presets", &examples()).unwrap();
    let mut moved = examples();
    moved[0].file = "elsewhere/linux-x64.yaml".into();
    let b = parse_all("presets", &moved).unwrap();
    assert_eq!(a[1].content_hash(), b[1].content_hash());
    let mut edited = examples();
    edited[0].text = edited[0]
        .text
        .replace("apt-get update", "apt-get update -q");
    let c = parse_all("presets", &edited).unwrap();
    assert_ne!(a[1].content_hash(), c[1].content_hash());
    assert_ne!(a[1].semantic_version(), c[1].semantic_version());
    assert!(a[1].semantic_version().starts_with("1.0."));
}

#[test]
fn no_presets() {
    assert_rejects(&[], "(directory)", "no presets");
}

#[test]
fn bad_name() {
    assert_rejects(&[fixture!("bad-name.yaml")], "name", "not a valid name");
}

#[test]
fn unknown_architecture() {
    assert_rejects(
        &[fixture!("unknown-arch.yaml")],
        "architecture",
        "unknown architecture 'sparc64'",
    );
}

#[test]
fn every_unknown_field_is_reported() {
    let errors = assert_rejects(
        &[fixture!("unknown-fields.yaml")],
        "setup_scirpt",
        "unknown field",
    );
    assert!(errors.iter().any(|e| e.field == "disk_gb"));
    assert!(errors.iter().all(|e| e.file == "unknown-fields.yaml"));
}

#[test]
fn unknown_keys_that_print_as_nothing_are_quoted() {
    let source = PresetSource {
        file: "odd.yaml".into(),
        text: "\"\": 1\n\" \": 2\n7: 3\nname: odd\n".into(),
    };
    let errors = parse_one(&source).expect_err("unknown fields");
    let unknown: Vec<&str> = errors
        .iter()
        .filter(|e| e.reason == "unknown field")
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(unknown, ["\"\"", "\" \"", "7"]);
}

#[test]
fn instance_type_must_fit_architecture() {
    let errors = assert_rejects(
        &[fixture!("instance-mismatch.yaml")],
        "instance_types[1]",
        "does not fit architecture x86_64",
    );
    assert_eq!(errors.len(), 1, "m7i fits x86_64");
}

#[test]
fn empty_script_without_docker_images() {
    assert_rejects(
        &[fixture!("empty-script.yaml")],
        "setup_script",
        "empty setup_script",
    );
}

#[test]
fn malformed_cron() {
    assert_rejects(
        &[fixture!("bad-cron.yaml")],
        "schedule",
        "expected 6 fields",
    );
}

#[test]
fn invalid_yaml_names_the_file() {
    let errors = assert_rejects(&[fixture!("bad-yaml.yaml")], "(file)", "invalid YAML");
    assert_eq!(
        errors[0].to_string().split(':').next(),
        Some("bad-yaml.yaml")
    );
}

#[test]
fn unknown_base_image() {
    assert_rejects(
        &[fixture!("bad-base-image.yaml")],
        "base_image",
        "unknown base image 'windows-11'",
    );
}

#[test]
fn validation_test_rules() {
    let errors = assert_rejects(
        &[fixture!("bad-tests.yaml")],
        "validation_tests[0]",
        "not both",
    );
    assert!(
        errors
            .iter()
            .any(|e| e.field == "validation_tests[1].command")
    );
    assert!(
        errors
            .iter()
            .any(|e| e.field == "validation_tests[1]" && e.reason.contains("needs expected"))
    );
}

#[test]
fn duplicate_names_across_files() {
    assert_rejects(
        &[fixture!("dup-1.yaml"), fixture!("dup-2.yaml")],
        "name",
        "duplicate preset name 'dup-a' (also defined in dup-1.yaml)",
    );
}

#[test]
fn duplicate_names_after_expansion() {
    let errors = parse_all(
        "presets",
        &[fixture!("dup-expand-1.yaml"), fixture!("dup-expand-2.yaml")],
    )
    .unwrap_err()
    .0;
    assert!(
        errors
            .iter()
            .any(|e| e.reason.contains("duplicate preset name 'dup-arm64'")),
        "{errors:?}"
    );
}

#[test]
fn an_explicit_ami_resized_must_name_its_root_device() {
    let src = |extra: &str| PresetSource {
        file: "c.yaml".into(),
        text: format!(
            "name: c\narchitecture: arm64\nbase_image: ami-0123456789abcdef0\nsetup_script: x\n{extra}"
        ),
    };
    assert_rejects(
        &[src("disk_size_gb: 50\n")],
        "root_device_name",
        "required with disk_size_gb",
    );
    assert_rejects(
        &[src("disk_size_gb: 50\nroot_device_name: sda1\n")],
        "root_device_name",
        "not a device name",
    );
    let ok = parse_all(
        "presets",
        &[src("disk_size_gb: 50\nroot_device_name: /dev/nvme0n1\n")],
    )
    .unwrap();
    assert_eq!(ok[0].root_device_name.as_deref(), Some("/dev/nvme0n1"));
    // Without a resize, the device does not matter.
    assert!(parse_all("presets", &[src("")]).is_ok());
    let alias = PresetSource {
        file: "u.yaml".into(),
        text: "name: u\narchitecture: arm64\nbase_image: ubuntu-22.04\nsetup_script: x\nroot_device_name: /dev/sda1\n".into(),
    };
    assert_rejects(&[alias], "root_device_name", "only for an explicit");
}

#[test]
fn wrong_types_name_the_field_path() {
    assert_rejects(
        &[fixture!("wrong-type.yaml")],
        "disk_size_gb",
        "invalid type",
    );
}

#[test]
fn all_errors_of_a_directory_at_once() {
    let sources = [
        fixture!("bad-name.yaml"),
        fixture!("bad-cron.yaml"),
        fixture!("empty-script.yaml"),
        example!("linux-x64.yaml"),
    ];
    let errors = parse_all("presets", &sources).unwrap_err().0;
    let files: BTreeSet<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        files,
        BTreeSet::from(["bad-name.yaml", "bad-cron.yaml", "empty-script.yaml"])
    );
}

#[test]
fn instance_architecture_rules() {
    for (t, a) in [
        ("m7g", Some(Architecture::Arm64)),
        ("c6gn.16xlarge", Some(Architecture::Arm64)),
        ("x2gd.metal", Some(Architecture::Arm64)),
        ("im4gn.large", Some(Architecture::Arm64)),
        ("a1.medium", Some(Architecture::Arm64)),
        ("t4g.nano", Some(Architecture::Arm64)),
        ("m7i", Some(Architecture::X86_64)),
        ("g4dn.xlarge", Some(Architecture::X86_64)),
        ("m6a.large", Some(Architecture::X86_64)),
        ("c7i-flex.large", Some(Architecture::X86_64)),
        ("u-6tb1.metal", None),
        ("large", None),
        ("m7g.", None),
        ("M7G", None),
    ] {
        assert_eq!(instance_architecture(t), a, "{t}");
    }
}

#[test]
fn cron_rules() {
    for ok in [
        "cron(0 4 ? * SUN *)",
        "0 4 ? * SUN *",
        "cron(0/15 * * * ? *)",
        "cron(0 3 1 * ? *)",
        "cron(30 2 ? JAN-MAR MON-FRI 2026-2030)",
        "cron(0 12 ? * 6#3 *)",
        "cron(0 0 L * ? *)",
    ] {
        assert!(normalise_cron(ok).is_ok(), "{ok}: {:?}", normalise_cron(ok));
    }
    assert_eq!(
        normalise_cron("0 4 ? * SUN *").unwrap(),
        "cron(0 4 ? * SUN *)"
    );
    for bad in [
        "cron(0 4 * * SUN *)",
        "cron(0 4 ? * ? *)",
        "cron(61 4 ? * SUN *)",
        "cron(0 24 ? * SUN *)",
        "cron(0 4 ? * FUNDAY *)",
        "rate(1 day)",
        "cron(0 4 ? * SUN)",
        "cron(0/0 4 ? * SUN *)",
    ] {
        assert!(normalise_cron(bad).is_err(), "{bad}");
    }
}

#[test]
fn schema_is_committed_and_current() {
    let committed = include_str!("../../preset.schema.json");
    if std::env::var_os("KILN_BLESS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/preset.schema.json"),
            json_schema(),
        )
        .unwrap();
        return;
    }
    assert!(
        committed == json_schema(),
        "shared/preset.schema.json is stale: run `KILN_BLESS=1 cargo test -p kiln-shared schema`"
    );
    let v: serde_json::Value = serde_json::from_str(committed).unwrap();
    assert!(v["$defs"]["Architecture"].to_string().contains("arm64"));
    assert!(v["oneOf"][0]["properties"]["setup_script"].is_object());
}

#[test]
fn freshness_fields_default_validate_and_keep_the_hash_of_presets_without_them() {
    let src = |text: &str| PresetSource {
        file: "fresh.yaml".into(),
        text: text.into(),
    };
    let base =
        "name: fresh\narchitecture: x86_64\nbase_image: ubuntu-22.04\nsetup_script: echo hi\n";
    let plain = parse_one(&src(base)).unwrap().remove(0);
    assert_eq!(plain.max_age_days, 30);
    assert!(!plain.rebuild_on_dependency_updates);
    let json = serde_json::to_string(&plain).unwrap();
    assert!(
        !json.contains("max_age_days") && !json.contains("rebuild_on"),
        "{json}"
    );
    let set = parse_one(&src(&format!(
        "{base}max_age_days: 7\nrebuild_on_dependency_updates: true\n"
    )))
    .unwrap()
    .remove(0);
    assert_eq!(set.max_age_days, 7);
    assert!(set.rebuild_on_dependency_updates);
    assert_ne!(set.content_hash(), plain.content_hash());
    let back: Preset = serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
    assert_eq!(back, set);
    assert_rejects(
        &[src(&format!("{base}max_age_days: 0\n"))],
        "max_age_days",
        "between 1 and 3650",
    );
}
