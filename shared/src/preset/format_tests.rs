//! The seed's template format and per-architecture values.

use super::*;

fn src(file: &str, text: &str) -> PresetSource {
    PresetSource {
        file: file.to_owned(),
        text: text.to_owned(),
    }
}

fn design_example() -> PresetSource {
    src(
        "presets/r-research.yml",
        include_str!("../../tests/fixtures/presets/template/r-research.yml"),
    )
}

#[track_caller]
fn errors_of(sources: &[PresetSource]) -> Vec<PresetError> {
    parse_all("presets", sources)
        .expect_err("must be rejected")
        .0
}

#[track_caller]
fn has(errors: &[PresetError], field: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.field == field && e.reason.contains(needle)),
        "expected an error on {field} containing {needle:?}, got:\n{}",
        PresetErrors(errors.to_vec())
    );
}

#[test]
fn the_design_example_template_validates_per_architecture() {
    let presets = parse_all("presets", &[design_example()]).unwrap();
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["r-research-arm64", "r-research-x64"]);
    for p in &presets {
        assert_eq!(p.template, "r-research");
        assert_eq!(p.display_name.as_deref(), Some("R Research Environment"));
        assert_eq!(p.shown_name(), "R Research Environment");
        assert_eq!(
            p.description.as_deref(),
            Some("R + RStudio Server + tidyverse packages")
        );
        assert_eq!(p.base_image, BaseImage::Alias("ubuntu-22.04".into()));
        assert_eq!(
            p.regions,
            ["us-east-1", "us-east-2", "us-west-1", "us-west-2"]
        );
        assert_eq!(p.ports, [22, 8787]);
        assert_eq!(p.validation_tests.len(), 1);
        assert_eq!(p.validation_tests[0].name, "RStudio Server running");
        assert_eq!(p.validation_tests[0].expected.as_deref(), Some("active"));
        assert!(p.setup_script.starts_with("#!/bin/bash\n"));
    }
    let cost = |name: &str| {
        presets
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .estimated_cost_per_hour
    };
    assert_eq!(cost("r-research-x64"), Some(0.0464));
    assert_eq!(cost("r-research-arm64"), Some(0.0368));
    let arm = presets
        .iter()
        .find(|p| p.name == "r-research-arm64")
        .unwrap();
    assert_eq!(arm.architecture, Architecture::Arm64);
    assert_eq!(arm.build_instance_types, ["c7g.large"]);
}

#[test]
fn both_formats_live_in_one_directory() {
    let kiln = src(
        "presets/linux.yaml",
        "name: linux\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: echo\n",
    );
    let presets = parse_all("presets", &[design_example(), kiln.clone()]).unwrap();
    assert_eq!(presets.len(), 3);
    let linux = presets.iter().find(|p| p.name == "linux").unwrap();
    assert_eq!(linux.display_name, None);
    assert_eq!(linux.shown_name(), "linux");
    // The same id from both formats is a duplicate.
    let twin = src(
        "presets/r-research.yaml",
        "name: r-research\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-22.04\nsetup_script: echo\n",
    );
    let errors = errors_of(&[design_example(), twin]);
    has(&errors, "name", "duplicate preset name 'r-research-x64'");
}

#[test]
fn template_aliases_and_single_architecture() {
    for (source, kiln) in [
        ("ubuntu-22.04-lts", "ubuntu-22.04"),
        ("ubuntu-24.04-lts", "ubuntu-24.04"),
        ("amazon-linux-2023", "amazon-linux-2023"),
        ("ubuntu-24.04", "ubuntu-24.04"),
    ] {
        let text = format!(
            "name: Dev box\nbase_ami:\n  source: {source}\n  architecture: arm64\nsetup_script: echo\n"
        );
        let presets = parse_all("presets", &[src("dev-box.yml", &text)]).unwrap();
        assert_eq!(presets.len(), 1);
        assert_eq!(
            presets[0].name, "dev-box",
            "a single architecture keeps the name"
        );
        assert_eq!(presets[0].architecture, Architecture::Arm64);
        assert_eq!(presets[0].base_image, BaseImage::Alias(kiln.into()));
    }
    // An explicit AMI per architecture.
    let text = "name: Pinned\nbase_ami:\n  source: {x86_64: ami-0123456789abcdef0, arm64: ami-0fedcba9876543210}\n  architecture: [x86_64, arm64]\nsetup_script: echo\n";
    let presets = parse_all("presets", &[src("pinned.yml", text)]).unwrap();
    let ami = |n: &str| {
        presets
            .iter()
            .find(|p| p.name == n)
            .unwrap()
            .base_image
            .clone()
    };
    assert_eq!(
        ami("pinned-x64"),
        BaseImage::Ami("ami-0123456789abcdef0".into())
    );
    assert_eq!(
        ami("pinned-arm64"),
        BaseImage::Ami("ami-0fedcba9876543210".into())
    );
}

#[test]
fn template_errors_name_the_templates_fields() {
    let text = "name: R\nbase_ami:\n  source: debian-12\n  architecture: [x86_64, sparc]\n  owner: me\nsetup_script: echo\nfoo: 1\n";
    let errors = errors_of(&[src("presets/r.yml", text)]);
    has(&errors, "base_ami.source", "unknown base image 'debian-12'");
    has(&errors, "base_ami.owner", "unknown field");
    has(&errors, "foo", "unknown field");
    assert!(errors.iter().all(|e| e.file == "presets/r.yml"));

    let text = "name: R\nbase_ami:\n  source: ubuntu-22.04-lts\n  architecture: [x86_64, sparc]\nsetup_script: echo\n";
    has(
        &errors_of(&[src("presets/r.yml", text)]),
        "base_ami.architecture[1]",
        "unknown architecture 'sparc'",
    );

    let text =
        "name: R\nbase_ami: {source: ubuntu-22.04-lts, architecture: x86_64}\nsetup_script: echo\n";
    has(
        &errors_of(&[src("presets/R_Research.yml", text)]),
        "(file name)",
        "'R_Research' is not a valid name",
    );

    let text = "name: R\nbase_ami: {source: ubuntu-22.04-lts, architecture: x86_64}\nbase_image: ubuntu-22.04\nsetup_script: echo\n";
    has(
        &errors_of(&[src("r.yml", text)]),
        "base_image",
        "under base_ami",
    );

    let text = "base_ami: {source: ubuntu-22.04-lts}\nsetup_script: echo\n";
    let errors = errors_of(&[src("r.yml", text)]);
    has(&errors, "name", "required: the display name");
    has(&errors, "base_ami.architecture", "required");

    let text = "name: R\nbase_ami: {source: ami-XYZ, architecture: x86_64}\nsetup_script: echo\n";
    has(
        &errors_of(&[src("r.yml", text)]),
        "base_ami.source",
        "unknown base image 'ami-XYZ'",
    );
}

#[test]
fn any_setting_may_be_per_architecture_in_kiln_format() {
    let text = "\
name: ci
architectures: [x86_64, arm64]
base_image: {x86_64: ubuntu-24.04, arm64: amazon-linux-2023}
instance_types: {x86_64: [m7i, c7i], arm64: [m7g]}
disk_size_gb: {x86_64: 100, arm64: 80}
estimated_cost_per_hour: {x86_64: 0.19, arm64: 0.14}
labels: [self-hosted]
setup_script: echo
runner:
  max_runners: {x86_64: 20, arm64: 10}
  idle_timeout_minutes: 15
";
    let presets = parse_all("presets", &[src("ci.yaml", text)]).unwrap();
    let x = presets.iter().find(|p| p.name == "ci-x64").unwrap();
    let a = presets.iter().find(|p| p.name == "ci-arm64").unwrap();
    assert_eq!(x.instance_types, ["m7i", "c7i"]);
    assert_eq!(a.instance_types, ["m7g"]);
    assert_eq!((x.disk_size_gb, a.disk_size_gb), (Some(100), Some(80)));
    assert_eq!(x.estimated_cost_per_hour, Some(0.19));
    assert_eq!(a.estimated_cost_per_hour, Some(0.14));
    assert_eq!(x.base_image, BaseImage::Alias("ubuntu-24.04".into()));
    assert_eq!(a.base_image, BaseImage::Alias("amazon-linux-2023".into()));
    assert_eq!(x.runner["max_runners"], 20);
    assert_eq!(a.runner["max_runners"], 10);
    assert_eq!(a.runner["idle_timeout_minutes"], 15);
    assert_eq!(x.labels, a.labels);
    // A single architecture may still use the map form.
    let one = "name: one\narchitecture: arm64\nbase_image: ubuntu-24.04\nsetup_script: echo\nestimated_cost_per_hour: {x86_64: 0.2, arm64: 0.1}\n";
    let p = parse_all("presets", &[src("one.yaml", one)]).unwrap();
    assert_eq!(p[0].estimated_cost_per_hour, Some(0.1));
}

#[test]
fn per_architecture_errors_say_which_architecture() {
    let text = "name: ci\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-24.04\nsetup_script: echo\nestimated_cost_per_hour: {x86_64: 0.19}\n";
    has(
        &errors_of(&[src("ci.yaml", text)]),
        "estimated_cost_per_hour",
        "no value for architecture arm64",
    );
    let text = "name: ci\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-24.04\nsetup_script: echo\ninstance_types: {x86_64: [m7g], arm64: [m7g]}\n";
    let errors = errors_of(&[src("ci.yaml", text)]);
    has(
        &errors,
        "instance_types.x86_64[0]",
        "does not fit architecture x86_64",
    );
    assert!(
        !errors.iter().any(|e| e.field.contains("arm64")),
        "{errors:?}"
    );
    let text = "name: ci\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-24.04\nsetup_script: echo\ndisk_size_gb: {x86_64: 100, arm64: two}\n";
    has(
        &errors_of(&[src("ci.yaml", text)]),
        "disk_size_gb.arm64",
        "invalid type",
    );
    let text = "name: ci\narchitectures: {x86_64: [x86_64]}\nbase_image: ubuntu-24.04\nsetup_script: echo\n";
    has(
        &errors_of(&[src("ci.yaml", text)]),
        "architectures",
        "cannot be given per architecture",
    );
    let text = "name: ci\narchitectures: [x86_64]\nbase_image: ubuntu-24.04\nsetup_script: echo\nrunner: {amiId: {x86_64: x}}\n";
    has(
        &errors_of(&[src("ci.yaml", text)]),
        "runner.amiId.x86_64",
        "set by kiln",
    );
    // Template format: the per-architecture path is the template's own.
    let text = "name: R\nbase_ami: {source: {x86_64: ami-0123456789abcdef0}, architecture: [x86_64, arm64]}\nsetup_script: echo\n";
    has(
        &errors_of(&[src("r.yml", text)]),
        "base_ami.source",
        "no value for architecture arm64",
    );
}

#[test]
fn schema_covers_both_formats() {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
    let variants = schema["oneOf"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert!(variants[0]["properties"]["base_image"].is_object());
    assert!(variants[1]["properties"]["base_ami"]["properties"]["source"].is_object());
    let cost = &variants[1]["properties"]["estimated_cost_per_hour"]["anyOf"][1];
    assert!(cost["properties"]["arm64"].is_object(), "{cost}");
    assert!(
        variants[0]["properties"]["name"]["anyOf"].is_null(),
        "name is never per architecture"
    );
}
