//! kiln's public pages, rendered to HTML strings on the server (the Worker) with Leptos.
//!
//! Nothing here does I/O or reads a clock: callers pass the report and the current time,
//! so every state renders deterministically in tests and the crate compiles for
//! `wasm32-unknown-unknown` unchanged.

mod badge;
mod history;
mod page;
mod style;
mod when;

pub use badge::{Badge, badge_json, badge_svg, render_badge_json, render_badge_svg};
pub use history::render_history;
pub use page::{PageOptions, render_page, render_page_with, render_unavailable};
pub use when::{absolute_utc, relative};
