//! The `kiln` CLI against `kiln dev`'s stack, as a new user meets it: the design's
//! example template (verbatim) next to a kiln preset, built by the local Image Builder,
//! its AMIs and snapshots registered in moto's EC2; the real `kiln` binary run with the
//! environment `kiln dev` writes (DynamoDB Local keys its database by access key):
//! `list`, `list --images` with sizes, `registry export` in the design's shape with both
//! architectures, `cleanup --dry-run` after two builds; and, with other keys, an error
//! a person can act on.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use kiln_devstack::stack::DevStack;
use kiln_tests::bins::{describe, kiln_with_env};

fn presets() -> Vec<kiln_shared::Preset> {
    kiln_tests::stack::design_example_and(
        "tiny",
        "name: tiny\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: echo hi\nregions: [us-east-1]\n",
    )
}

async fn start() -> Option<DevStack> {
    kiln_tests::stack::start(presets(), |options| {
        options.build_time = Duration::from_secs(3);
    })
    .await
}

fn kiln(env_file: &Path, args: &[&str]) -> Output {
    kiln_with_env(env_file)
        .args(args)
        .output()
        .expect("run kiln")
}

#[tokio::test(flavor = "multi_thread")]
async fn kiln_commands_work_against_the_local_stack_with_its_env_file() {
    let Some(stack) = start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("dev.env");
    let env = stack.cli_env();
    std::fs::write(&env_file, kiln_devstack::cli_env::env_file_text(&env)).unwrap();
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_IMAGEBUILDER",
        "KILN_TABLE",
        "KILN_STATUS_URL",
    ] {
        assert!(
            env.iter().any(|(k, _)| k == key),
            "{key} missing from the env"
        );
    }

    let report =
        kiln_tests::stack::wait_all_ready(&stack.status_url(), Duration::from_secs(120)).await;
    let names: Vec<&str> = report.presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["r-research-arm64", "r-research-x64", "tiny"]);
    // The template's `name` is its display name: in /status and on the page.
    let shown: Vec<Option<&str>> = report
        .presets
        .iter()
        .map(|p| p.display_name.as_deref())
        .collect();
    assert_eq!(
        shown,
        [
            Some("R Research Environment"),
            Some("R Research Environment"),
            None
        ]
    );
    let page = reqwest::get(stack.page_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for arch in ["x64", "arm64"] {
        let row = format!("R Research Environment (r-research-{arch})");
        assert!(page.contains(&row), "{row} missing from the page");
    }

    // Build history through DynamoDB Local, with the env's keys.
    let out = kiln(&env_file, &["list"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for p in ["r-research-arm64", "r-research-x64", "tiny"] {
        assert!(stdout.contains(p), "{p} missing from kiln list:\n{stdout}");
    }

    // The AMIs and their snapshots are in moto's EC2, in every distribution region.
    let out = kiln(
        &env_file,
        &[
            "list",
            "--images",
            "--json",
            "--regions",
            "us-east-1,us-west-2",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let images: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = images.as_array().unwrap();
    let of = |preset: &str, region: &str| {
        images
            .iter()
            .filter(|i| i["preset"] == preset && i["region"] == region)
            .count()
    };
    assert_eq!(of("r-research-x64", "us-east-1"), 1, "{images:#?}");
    assert_eq!(of("r-research-arm64", "us-west-2"), 1, "{images:#?}");
    assert_eq!(
        of("tiny", "us-west-2"),
        0,
        "tiny distributes to us-east-1 only"
    );
    for i in images {
        assert!(!i["snapshots"].as_array().unwrap().is_empty(), "{i}");
        assert!(i["sizeGb"].as_u64().is_some_and(|gb| gb > 0), "{i}");
    }

    // The registry: the design's shape, both architectures, display name, costs.
    let out = kiln(&env_file, &["registry", "export"]);
    assert!(out.status.success(), "{}", describe(&out));
    let registry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &registry["templates"]["r-research"];
    assert_eq!(t["display_name"], "R Research Environment");
    assert_eq!(t["description"], "R + RStudio Server + tidyverse packages");
    assert_eq!(t["ports"], serde_json::json!([22, 8787]));
    assert_eq!(t["estimated_cost_per_hour"]["x86_64"], 0.0464);
    assert_eq!(t["estimated_cost_per_hour"]["arm64"], 0.0368);
    for region in ["us-east-1", "us-east-2", "us-west-1", "us-west-2"] {
        for arch in ["x86_64", "arm64"] {
            let e = &t["amis"][region][arch];
            assert!(
                e["ami_id"].as_str().is_some_and(|a| a.starts_with("ami-")),
                "{region}/{arch}: {t:#}"
            );
            assert!(e["size_gb"].as_u64().is_some(), "{region}/{arch}: {e}");
            assert!(e["created"].as_str().is_some(), "{e}");
        }
    }

    // Template names build every architecture; --architecture narrows; --dry-run starts
    // nothing.
    let out = kiln(&env_file, &["build", "r-research", "--dry-run"]);
    assert!(out.status.success(), "{}", describe(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("would start spot-runner-r-research-x64"),
        "{plan}"
    );
    assert!(
        plan.contains("would start spot-runner-r-research-arm64"),
        "{plan}"
    );
    let out = kiln(
        &env_file,
        &[
            "build",
            "r-research",
            "--architecture",
            "arm64",
            "--dry-run",
        ],
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("r-research-arm64") && !plan.contains("r-research-x64"),
        "{plan}"
    );
    let out = kiln(
        &env_file,
        &[
            "build-all",
            "--templates",
            "r-research,tiny",
            "--architecture",
            "x86_64",
            "--dry-run",
        ],
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(plan.matches("would start").count(), 2, "{plan}");
    let out = kiln(&env_file, &["build", "nope", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no preset or template 'nope'"),
        "{}",
        describe(&out)
    );

    // A second build of tiny, followed with the JSON-lines report; then cleanup finds the
    // older AMI to delete (dry run).
    let out = kiln(
        &env_file,
        &[
            "build",
            "tiny",
            "--wait",
            "--json",
            "--interval",
            "1s",
            "--timeout",
            "2m",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let steps: Vec<&str> = events.iter().map(|e| e["step"].as_str().unwrap()).collect();
    for step in [
        "base-image",
        "setup",
        "test",
        "ami",
        "distribution",
        "summary",
    ] {
        assert!(steps.contains(&step), "no {step} in {steps:?}");
    }
    let summary = events.last().unwrap();
    assert_eq!(summary["outcome"], "done");
    assert!(
        summary["amis"]["us-east-1"]
            .as_str()
            .unwrap()
            .starts_with("ami-"),
        "{summary}"
    );
    assert!(summary["seconds"].as_u64().is_some(), "{summary}");
    let out = kiln(&env_file, &["cleanup", "--keep-latest", "1", "--dry-run"]);
    assert!(out.status.success(), "{}", describe(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    // Both builds' AMIs are registered locally, so cleanup sees them: the newest is kept
    // and, with two builds, the older one is the rollback target (never deleted).
    let tiny: Vec<&str> = plan.lines().filter(|l| l.contains(" tiny ")).collect();
    assert_eq!(
        tiny.len(),
        2,
        "cleanup does not see both builds' AMIs:\n{plan}"
    );
    assert!(
        tiny.iter().any(|l| l.contains("rollback target")),
        "the older AMI is not kept as the rollback target:\n{plan}"
    );

    // Other keys: DynamoDB Local shows another (empty) database. Two plain lines.
    let wrong = dir.path().join("wrong.env");
    let text = std::fs::read_to_string(&env_file).unwrap().replace(
        "AWS_ACCESS_KEY_ID='kilnlocal'",
        "AWS_ACCESS_KEY_ID='someoneelse'",
    );
    std::fs::write(&wrong, text).unwrap();
    let out = kiln(&wrong, &["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().count() <= 2, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("spot-runner-state") || err.contains("table"),
        "{err}"
    );
    assert!(err.contains("check: "), "{err}");
    assert!(err.contains("dev.env"), "{err}");
    assert!(!err.contains("ServiceError"), "{err}");
    let out = kiln(&wrong, &["-v", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("details:"),
        "{}",
        describe(&out)
    );
}
