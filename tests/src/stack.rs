//! The local system as the end-to-end tests start it: the workspace's binaries and the
//! Worker built once, `configure` applied to the options, and a missing tool a skip
//! (unless `KILN_REQUIRE_TOOLS=1`) rather than a failure.

use kiln_devstack::stack::{DevError, DevOptions, DevStack};
use kiln_devstack::{ProcessError, tools_required};
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
