//! `kiln synth` end to end: the binary renders templates (a core and one nested template
//! per group of presets) that the real cfn-lint and cfn-guard (with kiln's own rules)
//! accept, every one of them, and the rules reject broken templates.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Runs `kiln synth` over a presets directory into `<out_dir>/<name>/`; returns that
/// directory.
fn synth(presets: &Path, out_dir: &Path, name: &str) -> PathBuf {
    let out = out_dir.join(name);
    let run = kiln()
        .args(["synth", "--presets"])
        .arg(presets)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", describe(&run));
    out
}

/// Every template in a synth directory, the core first.
fn templates_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".template.json"))
        .collect();
    files.sort_by_key(|p| (!p.ends_with("core.template.json"), p.clone()));
    assert!(files[0].ends_with("core.template.json"), "{files:?}");
    files
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Resources of the given type over every template of a synth directory.
fn count_of_type(dir: &Path, ty: &str) -> usize {
    templates_in(dir)
        .iter()
        .map(|t| {
            read(t)["Resources"]
                .as_object()
                .unwrap()
                .values()
                .filter(|r| r["Type"] == ty)
                .count()
        })
        .sum()
}

fn cfn_lint(templates: &[PathBuf]) {
    let Some(lint) = tool("cfn-lint") else { return };
    // Regions matter: resource types and instance types are checked per region.
    let out = Command::new(lint)
        .args(["--regions", "us-east-1", "eu-west-1", "--"])
        .args(templates)
        .output()
        .unwrap();
    assert!(out.status.success(), "cfn-lint: {}", describe(&out));
}

fn guard_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guard/kiln.guard")
}

/// (passed, output)
fn cfn_guard(template: &Path) -> Option<(bool, String)> {
    let guard = tool("cfn-guard")?;
    let out = Command::new(guard)
        .args(["validate", "--show-summary", "all", "-r"])
        .arg(guard_rules())
        .arg("-d")
        .arg(template)
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(19),
        "cfn-guard itself failed: {}",
        describe(&out)
    );
    Some((code == Some(0), text(&out.stdout) + &text(&out.stderr)))
}

fn examples() -> PathBuf {
    repo_root().join("presets")
}

fn many_presets(n: usize) -> tempfile::TempDir {
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            let extra = match i % 3 {
                0 => "regions: [us-east-1, eu-west-1]\nschedule: cron(0 2 ? * MON *)\n".to_owned(),
                1 => "disk_size_gb: 64\ninstance_types: [m7i, c7i.xlarge]\n".to_owned(),
                _ => "build_instance_types: [c7i.xlarge]\n".to_owned(),
            };
            (
                format!("p{i:03}.yaml"),
                preset_yaml(&format!("preset-{i:03}"), &extra),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    preset_dir(&refs)
}

#[test]
fn every_edge_case_template_passes_cfn_lint_and_cfn_guard() {
    let out = tempfile::tempdir().unwrap();
    let one = preset_dir(&[("one.yaml", &preset_yaml("one", ""))]);
    let many = many_presets(12);
    let three_hundred = many_presets(300);
    let multi_arch = preset_dir(&[(
        "ma.yaml",
        "name: ma\narchitectures: [x86_64, arm64]\nbase_image: amazon-linux-2023\nsetup_script: dnf install -y git\ndisk_size_gb: 40\n",
    )]);
    let multi_region = preset_dir(&[(
        "mr.yaml",
        &preset_yaml(
            "mr",
            "regions: [eu-central-1, us-east-1, us-west-2, ap-southeast-2, sa-east-1]\n",
        ),
    )]);
    let ami = preset_dir(&[(
        "ami.yaml",
        "name: custom\narchitecture: arm64\nbase_image: ami-0123456789abcdef0\nsetup_script: echo custom\n",
    )]);
    let dirs = [
        synth(&examples(), out.path(), "examples"),
        synth(one.path(), out.path(), "one"),
        synth(many.path(), out.path(), "many"),
        synth(multi_arch.path(), out.path(), "multi-arch"),
        synth(multi_region.path(), out.path(), "multi-region"),
        synth(ami.path(), out.path(), "ami"),
        synth(three_hundred.path(), out.path(), "three-hundred"),
    ];
    assert_eq!(
        count_of_type(&dirs[2], "AWS::ImageBuilder::ImagePipeline"),
        12
    );
    assert_eq!(
        count_of_type(&dirs[6], "AWS::ImageBuilder::ImagePipeline"),
        300
    );
    // One custom resource and one nested stack per group, every group non-empty.
    let groups = templates_in(&dirs[6]).len() - 1;
    assert!(groups > 40, "{groups}");
    assert_eq!(
        count_of_type(&dirs[6], "AWS::CloudFormation::Stack"),
        groups
    );
    assert_eq!(count_of_type(&dirs[6], "Custom::KilnPresets"), groups);

    let templates: Vec<PathBuf> = dirs.iter().flat_map(|d| templates_in(d)).collect();
    cfn_lint(&templates);
    for t in &templates {
        if let Some((passed, output)) = cfn_guard(t) {
            assert!(passed, "{}: {output}", t.display());
            assert!(!output.contains("FAIL"), "{output}");
        }
    }
}

#[test]
fn golden_snapshot_of_the_example_templates() {
    let out = tempfile::tempdir().unwrap();
    let dir = synth(&examples(), out.path(), "examples");
    // Same input, byte-identical output.
    let again = synth(&examples(), out.path(), "again");
    let files = |d: &Path| -> Vec<(String, String)> {
        templates_in(d)
            .iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect()
    };
    let rendered = files(&dir);
    assert_eq!(rendered, files(&again));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/examples");
    if std::env::var("KILN_BLESS").as_deref() == Ok("1") {
        let _ = std::fs::remove_dir_all(&golden);
        std::fs::create_dir_all(&golden).unwrap();
        for (name, text) in &rendered {
            std::fs::write(golden.join(name), text).unwrap();
        }
        return;
    }
    let expected = if golden.is_dir() {
        files(&golden)
    } else {
        panic!(
            "{}: missing (run with KILN_BLESS=1 to create it)",
            golden.display()
        )
    };
    assert_eq!(
        rendered.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        expected.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "the example templates changed (files). If intended, re-bless: KILN_BLESS=1 cargo test -p kiln-infra --test synth"
    );
    for ((name, rendered), (_, expected)) in rendered.iter().zip(&expected) {
        if rendered != expected {
            let first = rendered
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(rendered.lines().count().min(expected.lines().count()));
            panic!(
                "{name} changed at line {}:\n  now:    {:?}\n  golden: {:?}\nIf intended, re-bless: KILN_BLESS=1 cargo test -p kiln-infra --test synth",
                first + 1,
                rendered.lines().nth(first),
                expected.lines().nth(first)
            );
        }
    }
}

#[test]
fn yaml_output_is_the_same_core_template() {
    let out = tempfile::tempdir().unwrap();
    let json_dir = synth(&examples(), out.path(), "examples");
    let yaml_dir = out.path().join("yaml");
    let yaml = kiln()
        .args(["synth", "--format", "yaml", "--presets"])
        .arg(examples())
        .arg("--out")
        .arg(&yaml_dir)
        .output()
        .unwrap();
    assert!(yaml.status.success(), "{}", describe(&yaml));
    let from_yaml: Value = serde_yaml::from_str(
        &std::fs::read_to_string(yaml_dir.join("core.template.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(from_yaml, read(&json_dir.join("core.template.json")));
    // Nested templates are JSON either way: the core's TemplateURLs hash those bytes.
    for t in templates_in(&json_dir).iter().skip(1) {
        let name = t.file_name().unwrap();
        assert_eq!(
            std::fs::read(t).unwrap(),
            std::fs::read(yaml_dir.join(name)).unwrap()
        );
    }
    // Without --out there is nowhere to put several templates.
    let run = kiln()
        .args(["synth", "--presets"])
        .arg(examples())
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("--out DIR"),
        "{}",
        describe(&run)
    );
}

#[test]
fn a_removed_group_leaves_no_stale_file() {
    let out = tempfile::tempdir().unwrap();
    let many = many_presets(12);
    let dir = synth(many.path(), out.path(), "t");
    let before = templates_in(&dir).len();
    for i in 1..12 {
        std::fs::remove_file(many.path().join(format!("p{i:03}.yaml"))).unwrap();
    }
    let dir = synth(many.path(), out.path(), "t");
    assert!(before > 2);
    assert_eq!(templates_in(&dir).len(), 2);
}

#[test]
fn synth_of_invalid_presets_prints_every_problem_and_writes_nothing() {
    let dir = preset_dir(&[(
        "bad.yaml",
        "name: Bad\narchitecture: sparc\nbase_image: ubuntu-24.04\n",
    )]);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("t.json");
    let run = kiln()
        .args(["synth", "--presets"])
        .arg(dir.path())
        .arg("--out")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", describe(&run));
    let err = text(&run.stderr);
    assert!(
        err.contains("bad.yaml: name: 'Bad' is not a valid name"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml: architecture: unknown architecture 'sparc'"),
        "{err}"
    );
    assert!(!target.exists());
}

/// Each guard rule, shown able to fail: break the example template one way at a time.
#[test]
fn guard_rules_reject_broken_templates() {
    let out = tempfile::tempdir().unwrap();
    // The core with every group's resources merged in: one document to break.
    let dir = synth(&examples(), out.path(), "examples");
    let mut good = Value::Null;
    for t in templates_in(&dir) {
        let t = read(&t);
        if good.is_null() {
            good = t;
            continue;
        }
        for (id, r) in t["Resources"].as_object().unwrap() {
            let resources = good["Resources"].as_object_mut().unwrap();
            let id = if resources.contains_key(id) {
                format!("{id}{}", resources.len())
            } else {
                id.clone()
            };
            resources.insert(id, r.clone());
        }
    }
    let nested_stack = good["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::CloudFormation::Stack")
        .map(|(id, _)| id.clone())
        .unwrap();
    type Breaker = fn(&mut Value);
    let cases: Vec<(&str, Breaker)> = vec![
        ("no_wildcard_resource_on_write_actions", |t| {
            t["Resources"]["AmiUpdateRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                [1]["Resource"] = json!(["*"]);
        }),
        ("no_wildcard_resource_on_write_actions", |t| {
            t["Resources"]["PresetInitRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                [0] = json!({ "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": "*" });
        }),
        ("no_wildcard_resource_on_write_actions_in_policies", |t| {
            t["Resources"]["Extra"] = json!({
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "extra",
                    "Roles": [{ "Ref": "AmiUpdateRole" }],
                    "PolicyDocument": { "Version": "2012-10-17", "Statement": [
                        { "Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "*" }
                    ] },
                },
            });
        }),
        ("table_encrypted", |t| {
            t["Resources"]["StateTable"]["Properties"]["SSESpecification"]["SSEEnabled"] =
                json!(false);
        }),
        ("table_encrypted", |t| {
            t["Resources"]["StateTable"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("PointInTimeRecoverySpecification");
        }),
        ("every_pipeline_scheduled", |t| {
            t["Resources"]["LinuxX64Pipeline"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("Schedule");
        }),
        ("image_state_rule_covers_failures", |t| {
            t["Resources"]["ImageStateChangeRule"]["Properties"]["EventPattern"]["detail"]["state"]
                ["status"] = json!(["BUILDING", "TESTING", "DISTRIBUTING", "AVAILABLE"]);
        }),
        ("image_state_rule_covers_failures", |t| {
            t["Resources"]["FailedBuildsRule"]["Properties"]["EventPattern"]["detail"]["state"]["status"] =
                json!(["FAILED"]);
        }),
        ("image_state_rule_present", |t| {
            let r = t["Resources"].as_object_mut().unwrap();
            r.remove("ImageStateChangeRule");
            r.remove("FailedBuildsRule");
        }),
        ("dlq_present", |t| {
            t["Resources"]["ImageStateChangeRule"]["Properties"]["Targets"][0]
                .as_object_mut()
                .unwrap()
                .remove("DeadLetterConfig");
        }),
        ("lambdas_arm64", |t| {
            t["Resources"]["ReconcileFunction"]["Properties"]["Architectures"] = json!(["x86_64"]);
        }),
        ("lambdas_arm64", |t| {
            t["Resources"]["StatusOriginFunction"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("Architectures");
        }),
    ];
    type Boxed = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Boxed)> = cases
        .into_iter()
        .map(|(r, b)| (r, Box::new(b) as Boxed))
        .chain([
            (
                "preset_init_has_a_service_timeout",
                Box::new(|t: &mut Value| {
                    t["Resources"]["PresetInit"]["Properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("ServiceTimeout");
                }) as Boxed,
            ),
            (
                "nested_stacks_wait_for_the_event_rule",
                Box::new(move |t: &mut Value| {
                    t["Resources"][&nested_stack]["DependsOn"] = json!(["StateTable"]);
                }),
            ),
        ])
        .collect();
    for (i, (rule, breaker)) in cases.iter().enumerate() {
        let mut broken = good.clone();
        breaker(&mut broken);
        let file = out.path().join(format!("broken-{i}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&broken).unwrap()).unwrap();
        let Some((passed, output)) = cfn_guard(&file) else {
            return;
        };
        assert!(!passed, "case {i} ({rule}) passed:\n{output}");
        let failed_line = output
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("kiln.guard/{rule} ")))
            .unwrap_or_else(|| panic!("case {i}: no summary line for {rule}:\n{output}"));
        assert!(
            failed_line.contains("FAIL"),
            "case {i}: {failed_line}\n{output}"
        );
    }
}
