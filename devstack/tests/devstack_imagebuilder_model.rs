//! The local Image Builder as real AWS clients see it: `imagebuilder_model_check.py`
//! drives it with boto3 and the AWS CLI (v1) from the project's `.venv` and checks every
//! answer against botocore's service model (see the script's docstring). Beside the Rust
//! SDK tests in `devstack_imagebuilder.rs`, which see only what aws-sdk-rust parses.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kiln_devstack::ProcessError;
use kiln_devstack::emulators::kiln_root;
use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, Timing};
use kiln_devstack::started_or_skip;

/// The venv's python with boto3 importable, and its `aws` (v1) next to it.
fn python_with_boto3() -> Result<PathBuf, ProcessError> {
    let bin = kiln_root().join(".venv/bin");
    let python = bin.join("python");
    let missing = |tool: &str| ProcessError::ToolMissing {
        tool: tool.into(),
        hint: format!(
            "not in {}; run `make setup` (tools/requirements.txt)",
            bin.display()
        ),
    };
    if !python.is_file() {
        return Err(missing("python (.venv)"));
    }
    if !bin.join("aws").is_file() {
        return Err(missing("aws (awscli)"));
    }
    let boto3 = Command::new(&python)
        .args(["-c", "import boto3, botocore"])
        .status()
        .map_err(|source| ProcessError::Spawn {
            name: "python".into(),
            program: python.display().to_string(),
            source,
        })?;
    if !boto3.success() {
        return Err(missing("boto3"));
    }
    Ok(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_aws_cli_answers_match_the_service_model() {
    let Some(python) = started_or_skip("boto3 and the AWS CLI", python_with_boto3()) else {
        return;
    };
    let ib = LocalImageBuilder::start(Options {
        timing: Timing::total(Duration::from_millis(400)),
        ..Options::default()
    })
    .await
    .unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/imagebuilder_model_check.py");
    let endpoint = ib.endpoint();
    // Blocking wait off the runtime: the endpoint keeps serving on the worker threads.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(endpoint)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
    })
    .await
    .unwrap()
    .expect("run the model check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        output.status.success() && failed.is_empty(),
        "model check failed ({}):\n{}\n{stdout}\n{stderr}",
        output.status,
        failed.join("\n")
    );
    // The script ran its checks to the end (a crash halfway would not print this).
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("checks passed")),
        "{stdout}\n{stderr}"
    );
}
