//! kiln-infra: everything behind the `kiln` operator CLI.
//!
//! - [`presets`]: read and validate a presets directory;
//! - [`template`]: render the CloudFormation template (`kiln synth`);
//! - [`build`], [`history`], [`cleanup`], [`status`]: the operating commands, on real
//!   AWS SDK clients (or any endpoint speaking the same APIs).
//!
//! `main.rs` only parses arguments and prints; every decision lives here.

pub mod aws;
pub mod build;
pub mod cleanup;
pub mod cli;
pub mod dev;
pub mod history;
pub mod presets;
pub mod status;
pub mod template;
