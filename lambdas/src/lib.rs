//! kiln's AWS side: the DynamoDB state store, SSM runner configs and EC2 Image Builder
//! behind small traits (real SDK implementations plus a failure-injecting wrapper), and
//! the logic of the four Lambdas. The binaries in `src/bin` are thin `main`s over
//! [`ami_update::handle_event`], [`reconcile::reconcile`], [`status::handle_request`]
//! and [`preset_init::handle_custom_resource`].

use std::future::Future;
use std::pin::Pin;

pub mod ami_update;
pub mod attr;
pub mod config;
pub mod deps;
pub mod edge;
pub mod error;
pub mod faults;
pub mod images;
pub mod logging;
pub mod preset_init;
pub mod reconcile;
pub mod runner_configs;
pub mod status;
pub mod store;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use config::Config;
pub use deps::{Deps, Endpoints};
pub use error::{AwsError, AwsErrorKind};

/// The future every client trait method returns (object-safe async).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
