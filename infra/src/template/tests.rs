use super::*;
use kiln_shared::preset::{PresetSource, parse_all};

fn presets(yaml: &[(&str, &str)]) -> Vec<Preset> {
    let sources: Vec<PresetSource> = yaml
        .iter()
        .map(|(file, text)| PresetSource {
            file: (*file).into(),
            text: (*text).into(),
        })
        .collect();
    parse_all("presets", &sources).expect("valid presets")
}

const ONE: &str =
    "name: solo\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: echo hi\n";

/// The core with every group's resources merged in (a group's id prefixes a logical
/// id another group already used, such as `PresetInit`): one view to assert on.
fn merged(s: &Synthesized) -> Value {
    let mut t = s.core.clone();
    let resources = t["Resources"].as_object_mut().unwrap();
    for g in &s.groups {
        for (id, r) in g.template["Resources"].as_object().unwrap() {
            let id = if resources.contains_key(id) {
                format!("{}{id}", g.id)
            } else {
                id.clone()
            };
            resources.insert(id, r.clone());
        }
    }
    t
}

fn synth_default(p: &[Preset]) -> Value {
    merged(&synth(p, &SynthOptions::default()).unwrap())
}

fn resources_of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .collect()
}

#[test]
fn logical_ids_are_alphanumeric_and_unique_even_when_names_collide() {
    let p = presets(&[
        (
            "a.yaml",
            "name: a-b\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n",
        ),
        (
            "b.yaml",
            "name: a--b\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n",
        ),
    ]);
    let t = synth_default(&p);
    let pipelines = resources_of_type(&t, "AWS::ImageBuilder::ImagePipeline");
    assert_eq!(pipelines.len(), 2);
    for id in t["Resources"].as_object().unwrap().keys() {
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
}

#[test]
fn a_changed_script_changes_component_and_recipe_versions() {
    let before = synth_default(&presets(&[("s.yaml", ONE)]));
    let after = synth_default(&presets(&[("s.yaml", &ONE.replace("echo hi", "echo bye"))]));
    let version = |t: &Value, id: &str| t["Resources"][id]["Properties"]["Version"].clone();
    assert_ne!(
        version(&before, "SoloSetupComponent"),
        version(&after, "SoloSetupComponent")
    );
    assert_ne!(
        version(&before, "SoloRecipe"),
        version(&after, "SoloRecipe")
    );
    assert_eq!(
        version(&before, "SoloRecipe"),
        version(&before, "SoloSetupComponent")
    );
    // …and an unchanged preset keeps them (no needless rebuild).
    assert_eq!(
        before,
        synth_default(&presets(&[("other-dir/s.yaml", ONE)]))
    );
}

#[test]
fn recipe_uses_the_base_image_per_architecture_and_disk_size() {
    let p = presets(&[(
        "r.yaml",
        "name: r\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-22.04\nsetup_script: x\ndisk_size_gb: 200\n",
    )]);
    let t = synth_default(&p);
    let x = &t["Resources"]["RX64Recipe"]["Properties"];
    let a = &t["Resources"]["RArm64Recipe"]["Properties"];
    assert_eq!(
        x["ParentImage"],
        p[1].base_image.parent_image(p[1].architecture)
    );
    assert!(x["ParentImage"].as_str().unwrap().contains("/amd64/"));
    assert!(a["ParentImage"].as_str().unwrap().contains("/arm64/"));
    assert_eq!(x["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"], 200);
    assert_eq!(x["BlockDeviceMappings"][0]["DeviceName"], "/dev/sda1");
    let infra = &t["Resources"]["RArm64Infrastructure"]["Properties"];
    assert_eq!(infra["InstanceTypes"], json!(["c7g.large"]));
}

#[test]
fn an_explicit_ami_is_resized_on_the_root_device_it_names() {
    let p = presets(&[(
        "c.yaml",
        "name: c\narchitecture: x86_64\nbase_image: ami-0123456789abcdef0\nsetup_script: x\ndisk_size_gb: 50\nroot_device_name: /dev/sda1\n",
    )]);
    let t = synth_default(&p);
    let mapping = &t["Resources"]["CRecipe"]["Properties"]["BlockDeviceMappings"][0];
    assert_eq!(mapping["DeviceName"], "/dev/sda1");
    assert_eq!(mapping["Ebs"]["VolumeSize"], 50);
}

#[test]
fn pipeline_is_named_scheduled_and_distributes_to_every_region() {
    let p = presets(&[(
        "m.yaml",
        "name: multi\narchitecture: arm64\nbase_image: amazon-linux-2023\nsetup_script: x\nregions: [eu-west-1, us-east-1, ap-southeast-2]\nschedule: 0 5 ? * MON *\n",
    )]);
    let t = synth_default(&p);
    let pipeline = &t["Resources"]["MultiPipeline"]["Properties"];
    assert_eq!(pipeline["Name"], json!({ "Fn::Sub": "${Prefix}-multi" }));
    assert_eq!(
        pipeline["Schedule"]["ScheduleExpression"],
        "cron(0 5 ? * MON *)"
    );
    let regions: Vec<&str> = t["Resources"]["MultiDistribution"]["Properties"]["Distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, vec!["eu-west-1", "us-east-1", "ap-southeast-2"]);
    // Runner configs may be written in each of those regions.
    let policy = serde_json::to_string(&t["Resources"]["AmiUpdateRole"]).unwrap();
    for r in ["eu-west-1", "us-east-1", "ap-southeast-2"] {
        assert!(
            policy.contains(&format!("ssm:{r}:")),
            "{r} missing in {policy}"
        );
    }
}

#[test]
fn preset_without_regions_distributes_to_the_stack_region() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let d = &t["Resources"]["SoloDistribution"]["Properties"]["Distributions"];
    assert_eq!(d[0]["Region"], json!({ "Ref": "AWS::Region" }));
}

#[test]
fn status_origin_url_is_public_only_through_the_url() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let r = &t["Resources"];
    assert_eq!(r["StatusOriginUrl"]["Properties"]["AuthType"], "NONE");
    let url = &r["StatusOriginUrlPermission"]["Properties"];
    assert_eq!(url["Action"], "lambda:InvokeFunctionUrl");
    assert_eq!(url["FunctionUrlAuthType"], "NONE");
    let invoke = &r["StatusOriginUrlInvokePermission"]["Properties"];
    assert_eq!(invoke["Action"], "lambda:InvokeFunction");
    assert_eq!(invoke["InvokedViaFunctionUrl"], true);
    assert_eq!(
        t["Outputs"]["StatusOriginUrl"]["Value"],
        json!({ "Fn::GetAtt": ["StatusOriginUrl", "FunctionUrl"] })
    );
}

#[test]
fn state_rule_covers_every_status_and_has_a_dlq() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let rule = &t["Resources"]["ImageStateChangeRule"]["Properties"];
    assert_eq!(
        rule["EventPattern"]["detail"]["state"]["status"],
        json!(kiln_shared::event::TRACKED_STATES.map(kiln_shared::ImageState::as_str))
    );
    assert_eq!(rule["EventPattern"]["source"], json!(["aws.imagebuilder"]));
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({ "Fn::GetAtt": ["AmiUpdateFunction", "Arn"] })
    );
    assert!(rule["Targets"][0]["DeadLetterConfig"]["Arn"].is_object());
    let failed = &t["Resources"]["FailedBuildsRule"]["Properties"];
    assert_eq!(
        failed["EventPattern"]["detail"]["state"]["status"],
        json!(["FAILED", "CANCELLED"])
    );
    assert_eq!(
        failed["Targets"][0]["Arn"],
        json!({ "Ref": "FailedBuildsTopic" })
    );
}

#[test]
fn no_write_action_has_a_wildcard_resource() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let mut checked = 0;
    for (id, role) in resources_of_type(&t, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for s in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                // A conditional statement: [condition, statement, NoValue].
                let s = s.get("Fn::If").map_or(s, |b| &b[1]);
                let actions: Vec<&str> = s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                let wildcard = s["Resource"].as_array().unwrap().iter().any(|r| r == "*");
                // The SSM agent's channels define no resource types (as in kiln.guard).
                let resourceless =
                    |a: &str| a.starts_with("ssmmessages:") || a.starts_with("ec2messages:");
                if wildcard {
                    assert!(
                        actions.iter().all(|a| a.contains(":List")
                            || a.contains(":Get")
                            || a.contains(":Describe")
                            || resourceless(a)),
                        "{id}: {actions:?} on *"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 10);
}

#[test]
fn lambdas_are_arm64_provided_al2023_from_s3_parameters() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let functions = resources_of_type(&t, "AWS::Lambda::Function");
    assert_eq!(functions.len(), 4);
    for (_, f) in functions {
        let p = &f["Properties"];
        assert_eq!(p["Architectures"], json!(["arm64"]));
        assert_eq!(p["Runtime"], "provided.al2023");
        assert_eq!(p["Handler"], "bootstrap");
        assert_eq!(p["Code"]["S3Bucket"], json!({ "Ref": "CodeBucket" }));
        let key = p["Code"]["S3Key"]["Ref"].as_str().unwrap();
        assert!(t["Parameters"][key].is_object(), "{key}");
    }
}

#[test]
fn preset_init_gets_the_presets_without_directories() {
    let p = presets(&[("some/where/s.yaml", ONE)]);
    let t = synth_default(&p);
    let init = &t["Resources"]["PresetInit"];
    let text = init["Properties"]["Presets"].as_str().unwrap();
    let back: Vec<Preset> = serde_json::from_str(text).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].source_file, "s.yaml");
    assert_eq!(back[0].content_hash(), p[0].content_hash());
    // The pipeline's ARN from the template (which also orders the pipeline first).
    assert_eq!(
        init["Properties"]["Pipelines"],
        json!({ "solo": { "Fn::GetAtt": ["SoloPipeline", "Arn"] } })
    );
}

#[test]
fn no_role_lists_pipelines_and_build_instances_cannot_read_parameters() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let text = t.to_string();
    assert!(
        !text.contains("imagebuilder:ListImagePipelines\""),
        "{text}"
    );
    assert!(!text.contains("AmazonSSMManagedInstanceCore"));
    let role = &t["Resources"]["ImageBuilderInstanceRole"]["Properties"];
    for s in role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
    {
        for a in s["Action"].as_array().unwrap() {
            assert!(!a.as_str().unwrap().starts_with("ssm:GetParameter"), "{a}");
        }
        assert!(!s["Resource"].to_string().contains("parameter/"), "{s}");
    }
}

#[test]
fn output_is_deterministic_with_sorted_keys() {
    let p = presets(&[("s.yaml", ONE)]);
    let a = render(&synth_default(&p), Format::Json).unwrap();
    let b = render(&synth_default(&p), Format::Json).unwrap();
    assert_eq!(a, b);
    let top: Vec<&str> = a
        .lines()
        .filter(|l| l.starts_with("  \""))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    let mut sorted_top = top.clone();
    sorted_top.sort();
    assert_eq!(top, sorted_top);
    let yaml = render(&synth_default(&p), Format::Yaml).unwrap();
    let back: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, synth_default(&p));
}

#[test]
fn bad_prefix_and_oversized_components_are_refused() {
    let p = presets(&[("s.yaml", ONE)]);
    let err = synth(
        &p,
        &SynthOptions {
            prefix: "Bad_Prefix".into(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, SynthError::BadPrefix(_)));
    let big = format!(
        "name: big\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: |\n{}",
        "  echo 0123456789012345678901234567890123456789\n".repeat(500)
    );
    let err = synth(&presets(&[("big.yaml", &big)]), &SynthOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("big.yaml: big: the setup component"),
        "{text}"
    );
}

#[test]
fn description_stays_within_cloudformation_limits() {
    let files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("p{i}.yaml"),
                format!("name: a-rather-long-preset-name-number-{i:03}\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let t = synth_default(&presets(&refs));
    assert_eq!(
        t["Description"],
        "kiln: image pipelines, state and status for 40 presets"
    );
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    assert_eq!(
        t["Description"],
        "kiln: image pipelines, state and status for presets solo"
    );
}

#[test]
fn too_many_presets_for_one_stack_is_a_clear_error() {
    let files: Vec<(String, String)> = (0..80)
        .map(|i| {
            (
                format!("p{i}.yaml"),
                format!("name: p{i}\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\nadditional_docker_images: [a]\nvalidation_tests: [{{name: t, command: c, expected: e}}]\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    // Presets spread over groups: 80 fit easily (the fullest group holds a few).
    let ok = synth(&presets(&refs), &SynthOptions::default()).unwrap();
    assert!(ok.groups.len() > 30, "{}", ok.groups.len());
    // 80 of them in one group do not: the error names that group's template.
    let target = groups::bucket("p0");
    let files: Vec<(String, String)> = (0..)
        .map(|i| format!("p{i}"))
        .filter(|n| groups::bucket(n) == target)
        .take(80)
        .map(|n| {
            (
                format!("{n}.yaml"),
                format!("name: {n}\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\nadditional_docker_images: [a]\nvalidation_tests: [{{name: t, command: c, expected: e}}]\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let err = synth(&presets(&refs), &SynthOptions::default()).unwrap_err();
    assert!(
        matches!(&err, SynthError::TooManyResources { template, count }
            if *count > MAX_RESOURCES && *template == groups::file_name(target)),
        "{err}"
    );
    assert!(
        err.to_string().contains(&groups::file_name(target)),
        "{err}"
    );
}

mod scripts {
    use super::super::component::{documents, shell_quote, test_script};
    use kiln_shared::preset::ValidationTest;
    use std::process::Command;

    fn run(script: &str) -> (bool, String) {
        let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    }

    fn test(command: &str, expected: Option<&str>, contains: Option<&str>) -> ValidationTest {
        ValidationTest {
            name: "it's a test".into(),
            command: command.into(),
            expected: expected.map(Into::into),
            expected_contains: contains.map(Into::into),
        }
    }

    #[test]
    fn quoting_survives_any_text() {
        for text in ["plain", "it's", "$(rm -rf /)", "a\nb", "\"'\\"] {
            let (ok, out) = run(&format!("printf %s {}", shell_quote(text)));
            assert!(ok);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn validation_test_scripts_pass_and_fail_for_real() {
        let (ok, out) = run(&test_script(&test("echo '  ok  '", Some("ok"), None)));
        assert!(ok, "{out}");
        assert!(out.contains("kiln test it's a test: ok"), "{out}");
        let (ok, out) = run(&test_script(&test("echo nope", Some("ok"), None)));
        assert!(!ok);
        assert!(out.contains("expected ok, got nope"), "{out}");
        let (ok, _) = run(&test_script(&test(
            "echo 'R version 4.3.1'",
            None,
            Some("R version 4"),
        )));
        assert!(ok);
        let (ok, out) = run(&test_script(&test(
            "echo 'R version 3'",
            None,
            Some("R version 4"),
        )));
        assert!(!ok);
        assert!(
            out.contains("expected output containing R version 4"),
            "{out}"
        );
        let (ok, out) = run(&test_script(&test("exit 3", None, Some("x"))));
        assert!(!ok);
        assert!(out.contains("command exited 3"), "{out}");
    }

    #[test]
    fn documents_put_tests_in_the_test_phase() {
        let p = super::presets(&[(
            "t.yaml",
            "name: t\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: echo hi\nadditional_docker_images: [alpine:3]\nvalidation_tests: [{name: a b, command: 'true', expected: ''}]\n",
        )]);
        let docs = documents(&p[0]);
        let phases: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| {
                (
                    d.kind.as_str(),
                    d.body["phases"][0]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            phases,
            vec![("setup", "build"), ("docker", "build"), ("tests", "test")]
        );
        let docker = docs[1].render();
        assert!(docker.contains("docker pull 'alpine:3'"), "{docker}");
        assert_eq!(docs[2].body["phases"][0]["steps"][0]["name"], "Test1_a_b");
        // The rendered YAML is what AWSTOE parses: it must round-trip.
        let back: serde_json::Value = serde_yaml::from_str(&docs[0].render()).unwrap();
        assert_eq!(
            back["phases"][0]["steps"][0]["inputs"]["commands"][0],
            "echo hi"
        );
        assert_eq!(back["schemaVersion"], 1.0);
    }
}

#[test]
fn names_whose_hashed_stem_is_another_name_keep_every_preset() {
    let yaml = |n: &str| {
        format!("name: {n}\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n")
    };
    let image_resources = |t: &Value| {
        t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| {
                r["Type"]
                    .as_str()
                    .unwrap()
                    .starts_with("AWS::ImageBuilder::")
            })
            .count()
    };
    let one = synth_default(&presets(&[("a.yaml", &yaml("a-b"))]));
    let per_preset = image_resources(&one);
    let files = [
        ("a.yaml", yaml("a-b")),
        ("b.yaml", yaml("a--b")),
        ("c.yaml", yaml("a-bd44362d6")),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
    let t = synth_default(&presets(&refs));
    let pipelines = resources_of_type(&t, "AWS::ImageBuilder::ImagePipeline");
    assert_eq!(pipelines.len(), 3);
    // Each preset adds its components, recipe, infrastructure, distribution, pipeline.
    let preset_resources = 5;
    assert_eq!(per_preset, preset_resources);
    assert_eq!(image_resources(&t), per_preset + 2 * preset_resources);
}

#[test]
fn status_origin_has_reserved_concurrency_from_a_parameter() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let reserved =
        &t["Resources"]["StatusOriginFunction"]["Properties"]["ReservedConcurrentExecutions"];
    assert_eq!(
        reserved["Fn::If"][1],
        json!({ "Ref": "StatusOriginReservedConcurrency" })
    );
    assert_eq!(
        t["Parameters"]["StatusOriginReservedConcurrency"]["Default"],
        10
    );
    assert!(t["Conditions"]["HasStatusOriginReservedConcurrency"].is_object());
    for other in [
        "AmiUpdateFunction",
        "ReconcileFunction",
        "PresetInitFunction",
    ] {
        assert!(t["Resources"][other]["Properties"]["ReservedConcurrentExecutions"].is_null());
    }
}

#[test]
fn the_edge_secret_is_an_arn_read_only_by_the_functions_that_sign() {
    let t = synth_default(&presets(&[("s.yaml", ONE)]));
    let p = &t["Parameters"]["EdgeSecretArn"];
    assert!(p["Default"].is_null() && p["NoEcho"].is_null(), "{p}");
    assert!(t["Parameters"]["EdgeSharedSecret"].is_null());
    for (id, f) in resources_of_type(&t, "AWS::Lambda::Function") {
        let vars = f["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap();
        let role = f["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
        let statements =
            t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap();
        let grants: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Action"].to_string().contains("secretsmanager"))
            .collect();
        let signs = id != "PresetInitFunction";
        if signs {
            assert_eq!(
                vars["KILN_EDGE_SECRET_ARN"],
                json!({ "Ref": "EdgeSecretArn" })
            );
            assert_eq!(grants.len(), 1, "{id}");
            assert_eq!(
                grants[0]["Action"],
                json!(["secretsmanager:GetSecretValue"])
            );
            assert_eq!(grants[0]["Resource"], json!([{ "Ref": "EdgeSecretArn" }]));
        } else {
            assert!(grants.is_empty(), "{id}");
            assert!(!vars.contains_key("KILN_EDGE_SECRET_ARN"), "{id}");
        }
        assert!(
            vars.keys()
                .all(|k| !k.contains("SECRET") || k.ends_with("_ARN")),
            "{id}: {vars:?}"
        );
    }
}

mod nested;
