//! `kiln test` end to end under the local stack: the real `kiln` binary, with the
//! environment `kiln dev` writes, launches instances in moto's EC2 from the AMIs the
//! local Image Builder registered and runs the presets' validation tests through the
//! local SSM Run Command endpoint (the real SDK clients over HTTP). Passing, a failing
//! test, an agent that never comes online and Ctrl-C during a hung test: each reported,
//! recorded (or not) on the build and in the registry, and every instance terminated.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use kiln_devstack::runcommand::Faults;
use kiln_devstack::stack::DevStack;
use kiln_tests::bins::{describe, kiln_with_env};
use serde_json::Value;

const PY_LAB: &str = "name: py-lab\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: echo hi\nregions: [us-east-1]\nvalidation_tests:\n  - {name: python, command: python3 --version, expected_contains: Python 3.12}\n  - {name: docker, command: systemctl is-active docker, expected: active}\n";

fn presets() -> Vec<kiln_shared::Preset> {
    kiln_tests::stack::design_example_and("py-lab", PY_LAB)
}

fn kiln(env_file: &Path, args: &[&str]) -> Output {
    kiln_with_env(env_file)
        .args(args)
        .output()
        .expect("run kiln")
}

async fn set_faults(stack: &DevStack, faults: &Faults) {
    let resp = reqwest::Client::new()
        .put(format!("{}/_kiln/faults", stack.runcommand.endpoint()))
        .json(faults)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

fn registry_entry<'a>(registry: &'a Value, template: &str, region: &str, arch: &str) -> &'a Value {
    &registry["templates"][template]["amis"][region][arch]
}

/// Every instance moto's EC2 has in `region`: (id, state).
async fn instances(stack: &DevStack, region: &str) -> Vec<(String, String)> {
    let ec2 = aws_sdk_ec2::Client::new(&stack.aws.moto_config(region));
    let out = ec2.describe_instances().send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_owned(),
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kiln_test_runs_the_validation_tests_on_a_short_lived_instance_and_records_them() {
    let Some(stack) = kiln_tests::stack::start(presets(), |o| {
        o.build_time = Duration::from_secs(3);
    })
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("dev.env");
    std::fs::write(
        &env_file,
        kiln_devstack::cli_env::env_file_text(&stack.cli_env()),
    )
    .unwrap();
    kiln_tests::stack::wait_all_ready(&stack.status_url(), Duration::from_secs(120)).await;

    // Passing: both architectures of the template, each test with its output.
    let out = kiln(&env_file, &["test", "r-research", "--poll", "100ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for arch in ["x64", "arm64"] {
        assert!(
            text.contains(&format!("r-research-{arch}: testing ami-")),
            "{text}"
        );
    }
    assert_eq!(
        text.matches("✓ passed RStudio Server running").count(),
        2,
        "{text}"
    );
    assert!(text.contains("      active"), "the test's output: {text}");
    assert_eq!(text.matches("recorded on build").count(), 2, "{text}");
    assert_eq!(text.matches("terminated i-").count(), 2, "{text}");
    let out = kiln(&env_file, &["test", "py-lab", "--poll", "100ms", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let steps: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let kinds: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "target",
            "launched",
            "ready",
            "test",
            "test",
            "recorded",
            "terminated",
            "summary"
        ]
    );
    assert_eq!(steps[3]["name"], "python");
    assert_eq!(steps[3]["output"], "Python 3.12");
    assert_eq!(steps[7]["verdict"], "passed");
    let out = kiln(&env_file, &["list", "--preset", "py-lab"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("passed 2/2 (kiln test "),
        "{}",
        describe(&out)
    );

    let out = kiln(&env_file, &["registry", "export"]);
    assert!(out.status.success(), "{}", describe(&out));
    let registry: Value = serde_json::from_slice(&out.stdout).unwrap();
    let x64 = registry_entry(&registry, "r-research", "us-east-1", "x86_64");
    assert_eq!(x64["validated"], true, "{x64}");
    assert_eq!(x64["tests"][0]["name"], "RStudio Server running", "{x64}");
    assert_eq!(x64["tests"][0]["passed"], true);
    assert_eq!(x64["tests"][0]["output"], "active");
    let py = registry_entry(&registry, "py-lab", "us-east-1", "x86_64");
    assert_eq!(py["tests"].as_array().map(Vec::len), Some(2), "{py}");

    // `kiln build --region`: a one-off build distributed to one region. Runners there
    // move to it; the other regions keep theirs; the pipeline is untouched.
    let one_off_build = |extra: &[&str]| {
        let build = [
            "build",
            "r-research",
            "--architecture",
            "x86_64",
            "--region",
            "us-east-2",
        ];
        kiln(&env_file, &[&build[..], extra].concat())
    };
    let out = one_off_build(&["--dry-run"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("distributed to us-east-2 only"),
        "{}",
        describe(&out)
    );
    let before = registry["templates"]["r-research"]["amis"].clone();
    let out = one_off_build(&["--wait", "--json", "--interval", "200ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let summary: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["step"] == "summary")
        .expect("a summary line");
    let amis = summary["amis"].as_object().expect("amis");
    assert_eq!(amis.keys().collect::<Vec<_>>(), ["us-east-2"], "{summary}");
    let one_off = amis["us-east-2"].as_str().unwrap().to_owned();
    let x64 = presets()
        .into_iter()
        .find(|p| p.name == "r-research-x64")
        .unwrap();
    let runner_ami = |region: &'static str| {
        let name = x64.parameter_name(&stack.options.prefix);
        let config = stack.aws.moto_config(region);
        async move {
            let ssm = aws_sdk_ssm::Client::new(&config);
            let p = ssm.get_parameter().name(name).send().await.unwrap();
            let v: Value = serde_json::from_str(p.parameter().unwrap().value().unwrap()).unwrap();
            v["amiId"].as_str().unwrap_or_default().to_owned()
        }
    };
    // ami-update applies the AVAILABLE event just after the build reports it.
    let mut moved = false;
    for _ in 0..50 {
        if runner_ami("us-east-2").await == one_off {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(moved, "runners in us-east-2 did not move to {one_off}");
    let east1 = before["us-east-1"]["x86_64"]["ami_id"].as_str().unwrap();
    assert_eq!(
        runner_ami("us-east-1").await,
        east1,
        "other regions keep theirs"
    );
    let images = stack.imagebuilder.images();
    let one_offs: Vec<_> = images
        .iter()
        .filter(|i| i.pipeline_name.is_empty())
        .collect();
    assert_eq!(one_offs.len(), 1, "one CreateImage build");
    assert_eq!(one_offs[0].amis.len(), 1);
    assert!(
        images
            .iter()
            .filter(|i| i.pipeline_name.contains("r-research"))
            .all(|i| i.amis.len() == 4),
        "the pipeline's own builds still distribute to all four regions"
    );

    // A failing test, in another of the template's regions: exit 1, recorded.
    set_faults(
        &stack,
        &Faults {
            fail_tests: vec!["RStudio Server running".into()],
            ..Faults::default()
        },
    )
    .await;
    let out = kiln(
        &env_file,
        &[
            "test",
            "r-research",
            "--architecture",
            "arm64",
            "--region",
            "us-east-2",
            "--poll",
            "100ms",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("✗ FAILED RStudio Server running"), "{text}");
    assert!(text.contains("simulated failure"), "{text}");
    assert!(text.contains("in us-east-2"), "{text}");
    assert!(text.contains("1 of 1 tests FAILED"), "{text}");
    let out = kiln(&env_file, &["registry", "export"]);
    let registry: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arm = registry_entry(&registry, "r-research", "us-east-2", "arm64");
    assert_eq!(arm["validated"], false, "{arm}");
    assert_eq!(arm["tests"][0]["passed"], false, "{arm}");
    assert_eq!(
        registry_entry(&registry, "r-research", "us-east-1", "x86_64")["validated"],
        true,
        "the other architecture keeps its own outcome"
    );

    // An agent that never registers: exit 2, nothing recorded.
    set_faults(
        &stack,
        &Faults {
            agent_offline: true,
            ..Faults::default()
        },
    )
    .await;
    let out = kiln(
        &env_file,
        &["test", "py-lab", "--ready-timeout", "2s", "--poll", "200ms"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SSM agent"), "{text}");
    assert!(text.contains("terminated i-"), "{text}");
    let out = kiln(&env_file, &["registry", "export"]);
    let registry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        registry_entry(&registry, "py-lab", "us-east-1", "x86_64")["validated"],
        true,
        "an infrastructure failure is not the AMI's"
    );

    // Ctrl-C while a test hangs: the instance is terminated, exit 2.
    set_faults(
        &stack,
        &Faults {
            hang: true,
            ..Faults::default()
        },
    )
    .await;
    let mut child = kiln_with_env(&env_file)
        .args(["test", "py-lab", "--poll", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let online = line.contains("SSM agent online");
        seen.push(line);
        if online {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("SSM agent online")),
        "{seen:?}"
    );
    // Let the first command be sent and hang, then interrupt.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines.map(|l| l.unwrap()));
    let code = child.wait().unwrap().code();
    let text = seen.join("\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("interrupted (Ctrl-C)"), "{text}");
    assert!(text.contains("terminated i-"), "{text}");

    // Every instance kiln test launched is gone.
    let mut all = instances(&stack, "us-east-1").await;
    all.extend(instances(&stack, "us-east-2").await);
    assert_eq!(all.len(), 6, "launched: {all:?}");
    assert!(
        all.iter().all(|(_, state)| state == "terminated"),
        "{all:?}"
    );
}
