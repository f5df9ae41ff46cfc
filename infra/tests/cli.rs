//! The `kiln` binary's offline commands: validate, schema, completions, status, wait.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

#[test]
fn validate_examples_succeeds_with_a_summary() {
    let out = kiln()
        .arg("validate")
        .arg(repo_root().join("presets"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("4 presets from 3 files"), "{stdout}");
    assert!(stdout.contains("r-research-arm64"), "{stdout}");
}

#[test]
fn validate_prints_every_problem_as_file_field_reason() {
    let dir = preset_dir(&[
        ("a.yaml", &preset_yaml("dup", "")),
        ("b.yml", &preset_yaml("dup", "")),
        (
            "c.yaml",
            "name: graviton\narchitecture: x86_64\nbase_image: ubuntu-24.04\ninstance_types: [m7g]\nsetup_script: x\nschedule: every day\nsurprise: 1\n",
        ),
        (
            "empty.yaml",
            "name: empty\narchitecture: arm64\nbase_image: ubuntu-22.04\n",
        ),
        ("notes.txt", "not a preset"),
    ]);
    let out = kiln().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = text(&out.stderr);
    let d = dir.path().display();
    for expected in [
        format!("{d}/b.yml: name: duplicate preset name 'dup' (also defined in {d}/a.yaml)"),
        format!("{d}/c.yaml: instance_types[0]: 'm7g' is an arm64 instance type"),
        format!("{d}/empty.yaml: setup_script: empty setup_script and no additional_docker_images"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in\n{err}");
    }
    // Unknown fields and malformed cron in the same file are both reported.
    assert!(
        err.contains("c.yaml: surprise") || err.contains("c.yaml: (file)"),
        "{err}"
    );
    assert!(
        err.lines().last().unwrap().ends_with("problems found"),
        "{err}"
    );
    // Every line but the summary is `file: field: reason`.
    for line in err.lines().filter(|l| !l.ends_with("found")) {
        assert!(
            line.starts_with(&d.to_string()) && line.matches(": ").count() >= 2,
            "{line}"
        );
    }
}

#[test]
fn validate_of_a_missing_directory_names_it() {
    let out = kiln()
        .args(["validate", "/nonexistent/kiln-presets"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/kiln-presets"),
        "{}",
        describe(&out)
    );
}

#[test]
fn schema_is_the_shared_json_schema() {
    let out = kiln().arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "kiln preset");
    assert!(schema["oneOf"][0]["properties"]["setup_script"].is_object());
    assert!(schema["oneOf"][1]["properties"]["base_ami"].is_object());
}

#[test]
fn completions_cover_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kiln().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", describe(&out));
        let script = text(&out.stdout);
        for cmd in ["synth", "validate", "cleanup", "build-all"] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
}

/// A local `/status` server answering the given documents in turn (the last repeats).
struct StatusServer {
    url: String,
    hits: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn report(status: &str, message: &str) -> String {
    serde_json::json!({
        "status": status,
        "message": message,
        "presets": [{
            "name": "linux-x64", "status": if status == "ready" { "ready" } else { "building" },
            "amiId": if status == "ready" { Some("ami-0123456789abcdef0") } else { None },
            "updatedAt": "2026-01-27T12:00:00Z", "architecture": "x86_64",
            "amis": {},
        }],
        "generatedAt": "2026-01-27T12:00:05Z",
        "stale": false,
    })
    .to_string()
}

fn serve(bodies: Vec<(u16, String)>) -> StatusServer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counter = hits.clone();
    let bodies = Arc::new(bodies);
    let app = axum::Router::new().route(
        "/status",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let (code, body) = bodies[n.min(bodies.len() - 1)].clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(code).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    StatusServer {
        url,
        hits,
        _runtime: runtime,
    }
}

#[test]
fn status_prints_human_and_json() {
    let server = serve(vec![(200, report("ready", "All 1 preset ready"))]);
    let out = kiln()
        .args(["status", "--url", &server.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let human = text(&out.stdout);
    assert!(human.starts_with("ready: All 1 preset ready"), "{human}");
    assert!(human.contains("ami-0123456789abcdef0"), "{human}");
    let out = kiln()
        .args([
            "status",
            "--json",
            "--url",
            &format!("{}/status", server.url),
        ])
        .output()
        .unwrap();
    let parsed: kiln_shared::StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.status, kiln_shared::OverallStatus::Ready);
}

#[test]
fn status_of_a_non_status_document_is_a_clear_error() {
    let server = serve(vec![(200, "{\"hello\":1}".into())]);
    let out = kiln()
        .args(["status", "--url", &server.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a kiln status document"),
        "{}",
        describe(&out)
    );
}

#[test]
fn wait_exits_0_once_ready_after_errors_and_building() {
    let server = serve(vec![
        (502, "bad gateway".into()),
        (200, report("not_configured", "No presets configured")),
        (200, report("building", "1 preset building")),
        (200, report("ready", "All 1 preset ready")),
    ]);
    let out = kiln()
        .args([
            "wait",
            "--url",
            &server.url,
            "--until",
            "ready",
            "--timeout",
            "30s",
            "--interval",
            "50ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(server.hits.load(Ordering::SeqCst), 4);
    let err = text(&out.stderr);
    assert!(err.contains("HTTP 502"), "{err}");
    assert!(err.contains("building: 1 preset building"), "{err}");
}

#[test]
fn wait_exits_1_on_degraded() {
    let server = serve(vec![
        (200, report("building", "1 preset building")),
        (
            503,
            report("degraded", "0 of 1 presets ready; linux-x64 failed"),
        ),
    ]);
    let out = kiln()
        .args([
            "wait",
            "--url",
            &server.url,
            "--timeout",
            "30s",
            "--interval",
            "50ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("linux-x64 failed"),
        "{}",
        describe(&out)
    );
}

/// A degraded document with the given per-preset states.
fn degraded(presets: &[(&str, &str)]) -> String {
    let presets: Vec<_> = presets
        .iter()
        .map(|(name, status)| {
            serde_json::json!({
                "name": name, "status": status, "amiId": null,
                "updatedAt": "2026-01-27T12:00:00Z", "architecture": "x86_64", "amis": {},
            })
        })
        .collect();
    serde_json::json!({
        "status": "degraded", "message": "linux-x64 failed", "presets": presets,
        "generatedAt": "2026-01-27T12:00:05Z", "stale": false,
    })
    .to_string()
}

#[test]
fn wait_until_settled_waits_out_the_other_builds_after_a_failure() {
    let server = serve(vec![
        (
            503,
            degraded(&[("linux-x64", "failed"), ("linux-arm64", "building")]),
        ),
        (
            503,
            degraded(&[("linux-x64", "failed"), ("linux-arm64", "building")]),
        ),
        (
            503,
            degraded(&[("linux-x64", "failed"), ("linux-arm64", "ready")]),
        ),
    ]);
    let out = kiln()
        .args([
            "wait",
            "--url",
            &server.url,
            "--until",
            "settled",
            "--timeout",
            "30s",
            "--interval",
            "50ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(server.hits.load(Ordering::SeqCst), 3, "{}", describe(&out));
}

#[test]
fn wait_until_reachable_ends_on_the_first_status_document() {
    let server = serve(vec![
        (502, "bad gateway".into()),
        (200, report("building", "1 preset building")),
    ]);
    let out = kiln()
        .args([
            "wait",
            "--url",
            &server.url,
            "--until",
            "reachable",
            "--timeout",
            "30s",
            "--interval",
            "50ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn wait_exits_2_on_timeout() {
    let server = serve(vec![(200, report("building", "1 preset building"))]);
    let started = std::time::Instant::now();
    let out = kiln()
        .args([
            "wait",
            "--url",
            &server.url,
            "--timeout",
            "700ms",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(server.hits.load(Ordering::SeqCst) >= 3);
    assert!(
        text(&out.stderr).contains("not ready after"),
        "{}",
        describe(&out)
    );
}

#[test]
fn wait_on_an_unreachable_url_times_out_with_the_error() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = kiln()
        .args([
            "wait",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "300ms",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("never got a status"),
        "{}",
        describe(&out)
    );
}
