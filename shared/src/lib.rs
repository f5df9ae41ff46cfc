//! kiln's pure model, shared by the Lambdas, the CLI, the Worker and the page.
//!
//! Nothing here does I/O, spawns tasks or reads a clock: callers pass the time in. That
//! keeps every rule testable in isolation and lets the crate compile for
//! `wasm32-unknown-unknown` (the Worker) as well as native (Lambdas, CLI).

pub mod build;
pub mod event;
pub mod feeds;
/// Invariant checks for the fuzz targets and their seed test (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod preset;
pub mod region;
pub mod registry;
pub mod retention;
pub mod runner_config;
pub mod signing;
pub mod state;
pub mod status;
pub mod table;
pub mod time;
pub mod validation;

pub use event::{EventError, ImageArn, ImageStateChange};
pub use preset::{Architecture, BaseImage, Preset, PresetError, PresetErrors};
pub use state::{AmiRecord, BuildStatus, ImageState, Observation, Transition};
pub use status::{OverallStatus, PresetReport, PresetStatus, StatusReport};
