//! kiln's one AWS layer, used by the Lambdas and the `kiln` CLI alike.
//!
//! Every AWS service kiln speaks to sits behind a small object-safe trait with one real
//! implementation on the official SDK client:
//!
//! - [`store::StateStore`] — the DynamoDB state table (AMI records, PRESET items, BUILD
//!   history) with the one item ↔ record conversion ([`attr`], numbers exact);
//! - [`ssm::RunnerConfigs`] — the SSM runner configs, per region;
//! - [`images::ImageBuilderApi`] — EC2 Image Builder pipelines and images;
//! - [`ec2::Ec2Images`] — EC2 AMIs and their snapshots, per region;
//! - [`testbed::TestInstances`] and [`testbed::RunCommand`] — `kiln test`'s short-lived
//!   instance and SSM Run Command on it, per region;
//! - [`alerts::Alerts`] — the SNS alerts topic (one message per transition);
//! - [`edge::EdgePusher`] — the signed push of a status snapshot to the Worker;
//! - [`release`] — the compare-and-swap loop for writes that are not observations
//!   (release control, health) and the sync of runner configs and AMI parameters;
//! - for `kiln deploy`: [`cfn::Stacks`] (CloudFormation change sets, events, outputs),
//!   [`artifacts::Artifacts`] (the S3 artifacts bucket, content-addressed uploads) and
//!   [`secrets::Secrets`] (the edge secret in Secrets Manager, generated once),
//!   [`account::Account`] (the account id, STS) and [`account::Tables`] (a state table
//!   kept by an earlier stack: adopted, or deleted with `--delete-data`).
//!
//! [`sdk`] builds the real clients from one SDK configuration. Behind the `mock` cargo
//! feature, [`mock`] adds a failure-injecting, call-counting wrapper for every trait
//! and in-memory fakes; release builds do not enable it.

use std::future::Future;
use std::pin::Pin;

pub mod account;
pub mod alerts;
pub mod artifacts;
pub mod attr;
pub mod cfn;
pub mod ec2;
pub mod edge;
pub mod error;
pub mod images;
#[cfg(feature = "mock")]
pub mod mock;
pub mod regional;
pub mod release;
pub mod retention;
pub mod sdk;
pub mod secrets;
pub mod ssm;
pub mod store;
pub mod testbed;

pub use error::{AwsError, AwsErrorKind};

/// The future every client trait method returns (object-safe async).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
