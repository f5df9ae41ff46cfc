//! placeholder until its issue lands
pub mod bins;
pub mod chromium;
pub mod fixtures;
pub mod lambdas_kit;
pub mod test_origin;
pub mod tools;
pub mod wrangler;
