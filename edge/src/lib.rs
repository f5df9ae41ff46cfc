//! kiln's edge: the Cloudflare Worker in front of the status origin.
//!
//! Everything that decides anything (routing, freshness, ETags, signatures, the
//! last-known-good fallback) lives in plain Rust behind the small [`service::Platform`]
//! trait, so it is unit-tested natively. The wasm32-only `glue` module maps that trait
//! onto workers-rs (Cache API, KV, fetch, `waitUntil`) and does nothing else.

pub mod body;
pub mod config;
pub mod http;
pub mod origin;
pub mod route;
pub mod service;
pub mod snapshot;

#[cfg(not(target_arch = "wasm32"))]
pub mod signal;
#[cfg(not(target_arch = "wasm32"))]
pub mod sim;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use config::{Config, ConfigError};
pub use http::{Body, Reply};
pub use route::{Route, RouteError};
pub use service::{Edge, Memory, Platform};
pub use snapshot::Snapshot;
