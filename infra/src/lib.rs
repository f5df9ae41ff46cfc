//! kiln-infra: everything behind the `kiln` operator CLI.
//!
//! - [`presets`]: read and validate a presets directory; [`import`]: template files
//!   rewritten as kiln presets;
//! - [`template`]: render the CloudFormation template (`kiln synth`);
//! - [`build`], [`history`], [`cleanup`]: the operating commands, over the clients of
//!   the AWS layer ([`kiln_aws`]; [`aws`] builds them from the command line);
//! - [`status`]: `kiln status` / `kiln wait` against the public `/status`;
//! - [`deploy`]: `kiln deploy` / `kiln destroy` (change sets, artifacts, edge secret,
//!   the Worker through the pinned wrangler);
//! - `dev` (feature `dev`, on by default): `kiln dev`, the local stack of
//!   `kiln_devstack`.
//!
//! `main.rs` only parses arguments and prints; every decision lives here.

pub mod aws;
pub mod build;
pub mod cleanup;
pub mod cli;
pub mod deploy;
#[cfg(feature = "dev")]
pub mod dev;
pub mod explain;
pub mod history;
pub mod import;
pub mod presets;
pub mod progress;
pub mod release;
pub mod report;
pub mod select;
pub mod status;
pub mod template;
pub mod testrun;
