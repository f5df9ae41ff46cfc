//! The local system as the end-to-end tests start it: the workspace's binaries and the
//! Worker built once, `configure` applied to the options, and a missing tool a skip
//! (unless `KILN_REQUIRE_TOOLS=1`) rather than a failure.

use kiln_devstack::stack::{DevError, DevOptions, DevStack};
use kiln_devstack::{ProcessError, tools_required};
use std::time::Duration;

use kiln_shared::Preset;

pub async fn start(
    presets: Vec<Preset>,
    configure: impl FnOnce(&mut DevOptions),
) -> Option<DevStack> {
    let lambda_dir = tokio::task::spawn_blocking(crate::bins::bin_dir_and_edge)
        .await
        .unwrap();
    let mut options = DevOptions::new(presets, lambda_dir);
    configure(&mut options);
    match DevStack::start(options, |line| eprintln!("stack: {line}")).await {
        Ok(stack) => Some(stack),
        Err(DevError::Process(e @ ProcessError::ToolMissing { .. })) if !tools_required() => {
            eprintln!("SKIP: {e}");
            None
        }
        Err(e) => panic!("starting the local system: {e}"),
    }
}

/// The repository's example presets (`presets/`).
pub fn example_presets() -> Vec<Preset> {
    kiln_infra::presets::load(&kiln_devstack::emulators::kiln_root().join("presets"))
        .expect("example presets")
}

/// Polls the public `/status` at `url` until every preset is ready; panics after `limit`.
pub async fn wait_all_ready(url: &str, limit: Duration) -> kiln_shared::StatusReport {
    let start = std::time::Instant::now();
    loop {
        if let Ok(resp) = reqwest::get(url).await
            && let Ok(report) = resp.json::<kiln_shared::StatusReport>().await
            && !report.presets.is_empty()
            && report
                .presets
                .iter()
                .all(|p| p.status == kiln_shared::PresetStatus::Ready)
        {
            return report;
        }
        assert!(start.elapsed() < limit, "not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The design's example template (`docs/examples/r-research.yml`, verbatim) beside one
/// kiln preset `<name>.yaml` with `text`, parsed as one presets directory.
pub fn design_example_and(name: &str, text: &str) -> Vec<Preset> {
    use kiln_shared::preset::{PresetSource, parse_all};
    let root = kiln_devstack::emulators::kiln_root();
    let template = std::fs::read_to_string(root.join("docs/examples/r-research.yml"))
        .expect("the design's example");
    parse_all(
        "presets",
        &[
            PresetSource {
                file: "presets/r-research.yml".into(),
                text: template,
            },
            PresetSource {
                file: format!("presets/{name}.yaml"),
                text: text.into(),
            },
        ],
    )
    .expect("valid presets")
}
