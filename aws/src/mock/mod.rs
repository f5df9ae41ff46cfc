//! Test doubles for every client trait (feature `mock`): [`faults`] wraps any
//! implementation to count calls per IAM action and inject failures; [`fakes`] are
//! in-memory implementations that keep the contracts that matter; [`testbed`] fakes `kiln test`'s EC2 instance and SSM Run Command; [`deploy`] fakes the
//! deploy's S3 and Secrets Manager clients.

pub mod deploy;
pub mod fakes;
pub mod faults;
pub mod testbed;
