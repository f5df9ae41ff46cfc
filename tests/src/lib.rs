//! placeholder until its issue lands
pub mod lambdas_kit;
