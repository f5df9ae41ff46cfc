//! Both preset formats in one directory through the real `kiln` binary: validate, synth
//! (per-architecture values in each runner config), import, and the JSON Schema checked
//! by an independent validator (python-jsonschema).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use kiln_shared::Preset;
use serde_json::Value;

/// The design's example template, verbatim.
fn design_example() -> String {
    std::fs::read_to_string(repo_root().join("docs/examples/r-research.yml")).unwrap()
}

fn fixture_is_the_example() {
    let fixture = std::fs::read_to_string(
        repo_root().join("shared/tests/fixtures/presets/template/r-research.yml"),
    )
    .unwrap();
    assert_eq!(fixture, design_example());
}

/// Every preset handed to preset-init by the synthesized templates in `dir`.
fn synthesized_presets(dir: &Path) -> Vec<Preset> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let t: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for r in t["Resources"].as_object().unwrap().values() {
            if r["Type"] == "Custom::KilnPresets" {
                let text = r["Properties"]["Presets"].as_str().unwrap();
                out.extend(serde_json::from_str::<Vec<Preset>>(text).unwrap());
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
fn the_design_example_validates_and_synths_beside_kiln_presets() {
    fixture_is_the_example();
    let linux = preset_yaml("linux", "");
    let dir = preset_dir(&[
        ("r-research.yml", &design_example()),
        ("linux.yaml", &linux),
    ]);
    let out = kiln().arg("validate").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 presets from 2 files"), "{stdout}");
    assert!(
        stdout.contains("r-research-x64") && stdout.contains("r-research-arm64"),
        "{stdout}"
    );

    let templates = tempfile::tempdir().unwrap();
    let out = kiln()
        .arg("synth")
        .arg("--presets")
        .arg(dir.path())
        .arg("--out")
        .arg(templates.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let presets = synthesized_presets(templates.path());
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["linux", "r-research-arm64", "r-research-x64"]);
    let mut costs = Vec::new();
    for p in presets.iter().filter(|p| p.template == "r-research") {
        assert_eq!(p.display_name.as_deref(), Some("R Research Environment"));
        let config = kiln_shared::runner_config::initial(p, "us-east-1");
        costs.push((p.name.clone(), config["estimatedCostPerHour"].clone()));
        assert_eq!(config["ports"], serde_json::json!([22, 8787]));
        assert_eq!(config["architecture"], p.architecture.as_str());
    }
    assert_eq!(
        costs,
        [
            ("r-research-arm64".to_owned(), serde_json::json!(0.0368)),
            ("r-research-x64".to_owned(), serde_json::json!(0.0464)),
        ]
    );
    // Both architectures get a pipeline.
    let all: String = std::fs::read_dir(templates.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for arch in ["x64", "arm64"] {
        assert!(
            all.contains(&format!("r-research-{arch}")),
            "no pipeline for {arch}"
        );
    }
}

#[test]
fn template_errors_keep_file_field_reason() {
    let dir = preset_dir(&[(
        "Bad_Name.yml",
        "name: Bad\nbase_ami:\n  source: windows-11\n  architecture: [x86_64, arm64]\nsetup_script: echo\nestimated_cost_per_hour: {x86_64: 0.1}\n",
    )]);
    let out = kiln().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = text(&out.stderr);
    let f = format!("{}/Bad_Name.yml", dir.path().display());
    let expected = format!("{f}: base_ami.source: unknown base image 'windows-11'");
    assert!(err.contains(&expected), "missing {expected:?} in\n{err}");
    let dir = preset_dir(&[(
        "bad-name.yml",
        "name: Bad\nbase_ami:\n  source: ubuntu-24.04-lts\n  architecture: [x86_64, arm64]\nsetup_script: echo\nestimated_cost_per_hour: {x86_64: 0.1}\n",
    )]);
    let out = kiln().arg("validate").arg(dir.path()).output().unwrap();
    let err = text(&out.stderr);
    let f = format!("{}/bad-name.yml", dir.path().display());
    assert!(
        err.contains(&format!(
            "{f}: estimated_cost_per_hour: no value for architecture arm64"
        )),
        "{err}"
    );
}

#[test]
fn import_rewrites_a_template_as_the_same_presets() {
    let dir = preset_dir(&[("r-research.yml", &design_example())]);
    let before = kiln().arg("validate").arg(dir.path()).output().unwrap();
    assert!(before.status.success(), "{}", describe(&before));

    let file = dir.path().join("r-research.yml");
    let out_dir = tempfile::tempdir().unwrap();
    let out = kiln()
        .arg("import")
        .arg(&file)
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let converted = std::fs::read_to_string(out_dir.path().join("r-research.yaml")).unwrap();
    assert!(converted.contains("name: r-research\n"), "{converted}");
    assert!(
        converted.contains("display_name: R Research Environment"),
        "{converted}"
    );
    assert!(
        converted.contains("base_image: ubuntu-22.04\n"),
        "{converted}"
    );
    assert!(!converted.contains("base_ami"), "{converted}");
    // The original is untouched with --out.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), design_example());

    let synth = |presets: &Path| -> Vec<String> {
        let t = tempfile::tempdir().unwrap();
        let out = kiln()
            .arg("synth")
            .arg("--presets")
            .arg(presets)
            .arg("--out")
            .arg(t.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        synthesized_presets(t.path())
            .iter()
            .map(Preset::content_hash)
            .collect()
    };
    assert_eq!(synth(dir.path()), synth(out_dir.path()));

    // In place: the same file now holds a kiln preset; importing it again is refused.
    let out = kiln().arg("import").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("base_ami"));
    let again = kiln().arg("import").arg(&file).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already a kiln preset"),
        "{}",
        describe(&again)
    );
    // An invalid template is reported and not written.
    let bad = preset_dir(&[(
        "x.yml",
        "name: X\nbase_ami: {source: nope, architecture: arm64}\n",
    )]);
    let out = kiln()
        .arg("import")
        .arg(bad.path().join("x.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("base_ami.source"),
        "{}",
        describe(&out)
    );
    assert!(
        std::fs::read_to_string(bad.path().join("x.yml"))
            .unwrap()
            .contains("base_ami")
    );
}

/// python-jsonschema, from the project's venv, as an independent check of the schema.
fn jsonschema_check(schema: &Path, documents: &[PathBuf]) -> Option<Vec<(PathBuf, bool)>> {
    let python = tool("python3").filter(|_| repo_root().join(".venv/bin/python3").is_file())?;
    let python = if repo_root().join(".venv/bin/python3").is_file() {
        repo_root().join(".venv/bin/python3")
    } else {
        python
    };
    let script = [
        "import json,sys,yaml,jsonschema",
        "s=json.load(open(sys.argv[1]))",
        "for f in sys.argv[2:]:",
        "    d=yaml.safe_load(open(f))",
        "    ok=not list(jsonschema.Draft202012Validator(s).iter_errors(d))",
        "    print('ok' if ok else 'bad')",
    ]
    .join("\n");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(schema)
        .args(documents)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    Some(
        documents
            .iter()
            .cloned()
            .zip(text(&out.stdout).lines().map(|l| l == "ok"))
            .collect(),
    )
}

#[test]
fn the_json_schema_accepts_both_formats_and_refuses_a_mix() {
    let schema_out = kiln().arg("schema").output().unwrap();
    let dir = preset_dir(&[
        ("schema.json", &text(&schema_out.stdout)),
        ("r-research.yml", &design_example()),
        ("per-arch.yaml", &preset_yaml("per-arch", "architectures: [x86_64, arm64]\nestimated_cost_per_hour: {x86_64: 0.2, arm64: 0.1}\n").replace("architecture: x86_64\n", "")),
        ("mixed.yml", "name: X\nbase_ami: {source: ubuntu-22.04-lts, architecture: arm64}\nbase_image: ubuntu-22.04\n"),
        ("bad-arch-map.yaml", "name: x\narchitecture: arm64\nbase_image: ubuntu-22.04\nports: {sparc: [1]}\n"),
    ]);
    let mut docs: Vec<PathBuf> = [
        "r-research.yml",
        "per-arch.yaml",
        "mixed.yml",
        "bad-arch-map.yaml",
    ]
    .iter()
    .map(|f| dir.path().join(f))
    .collect();
    for entry in std::fs::read_dir(repo_root().join("presets")).unwrap() {
        docs.push(entry.unwrap().path());
    }
    let Some(results) = jsonschema_check(&dir.path().join("schema.json"), &docs) else {
        return;
    };
    for (doc, ok) in results {
        let name = doc.file_name().unwrap().to_string_lossy().into_owned();
        let expected = !matches!(name.as_str(), "mixed.yml" | "bad-arch-map.yaml");
        assert_eq!(ok, expected, "{name}");
    }
}
