//! The logic of kiln's four Lambdas over the AWS layer of [`kiln_aws`]. The binaries in
//! `src/bin` are thin `main`s over [`ami_update::handle_event`],
//! [`reconcile::reconcile`], [`status::handle_request`] and
//! [`preset_init::handle_custom_resource`].
//!
//! Module layering (no circles): the handlers sit on [`observe`] (the one code path
//! of every observation) and [`snapshot`] (the public report and its push), which sit
//! on [`deps`] and [`config`].

pub mod alerts;
pub mod ami_update;
pub mod config;
pub mod deps;
pub mod health;
pub mod history;
pub mod logging;
pub mod observe;
pub mod preset_init;
pub mod reconcile;
pub mod replay;
pub mod retention;
pub mod secret;
pub mod snapshot;
pub mod status;

#[cfg(test)]
mod tests;

pub use config::Config;
pub use deps::Deps;
pub use kiln_aws::sdk::Endpoints;
pub use kiln_aws::{AwsError, AwsErrorKind};
