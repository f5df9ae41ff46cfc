//! The platform-neutral response the service produces; the glue turns it into a
//! `worker::Response` (and the tests read it directly).

use std::rc::Rc;

use crate::snapshot::Snapshot;

#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Text(String),
    /// The `/status` bytes of a stored snapshot: served without copying or serialising.
    Snapshot(Rc<Snapshot>),
}

impl Body {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Empty => b"",
            Body::Text(t) => t.as_bytes(),
            Body::Snapshot(s) => s.body.as_bytes(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub const JSON: &str = "application/json; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";
pub const SVG: &str = "image/svg+xml; charset=utf-8";
pub const NO_STORE: &str = "no-store";
/// The page loads nothing: inline CSS only, no scripts, no images beyond data URIs.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: Body) -> Reply {
        Reply {
            status,
            headers: vec![
                ("content-type", content_type.to_owned()),
                ("access-control-allow-origin", "*".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body,
        }
    }

    /// `{"error": code, "message": message}` with `Cache-Control: no-store`.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        // Typed, not `json!`: `serde_json::Value` would pull float formatting into the wasm.
        #[derive(serde::Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            message: &'a str,
        }
        let body = serde_json::to_string(&ErrorBody {
            error: code,
            message,
        })
        .expect("plain strings serialise");
        Reply::new(status, JSON, Body::Text(body)).with("cache-control", NO_STORE)
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(self.body.as_bytes()).unwrap_or("")
    }
}
