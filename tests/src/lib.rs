//! Helpers for kiln's cross-crate tests (`tests/tests/*.rs`). Processes (`wrangler dev`,
//! emulators, the local stack) come from `kiln_devstack`; this crate holds only what the
//! tests alone need:
//!
//! - [`bins`]: the workspace's binaries, built once with the workspace's feature set.
//! - [`chromium`]: headless Chromium over WebDriver, and the screenshot directory.
//! - [`fixtures`]: status reports in each overall state.
//! - [`lambdas_kit`]: the Lambda integration tests' setup (emulators, fault wrapper).
//! - [`schema`]: documents checked against committed JSON Schemas (python-jsonschema).
//! - [`stack`]: the local system started for an end-to-end test (a missing tool skips).
//! - [`test_origin`]: a controllable stand-in for the `status-origin` Lambda.
pub mod bins;
pub mod chromium;
pub mod fixtures;
pub mod lambdas_kit;
pub mod schema;
pub mod stack;
pub mod test_origin;
