//! Which handler a request goes to: method and path only, no I/O.

use kiln_shared::signing::INGEST_PATH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /status`; `require_ready` from `?require=ready`.
    Status {
        require_ready: bool,
    },
    Page,
    BadgeSvg,
    BadgeJson,
    Healthz,
    Ingest,
    /// `/history.json`, `/feed.atom`, `/api/v2/summary.json`, `/api/v2/status.json`.
    Doc(Doc),
    /// `/badge.svg` or `/badge.json` (`svg: false`) with `?metric=uptime30d|age`.
    MetricBadge {
        svg: bool,
        metric: Metric,
    },
    /// CORS preflight for one of the public GET routes.
    Preflight,
}

/// A document rendered by the origin and carried in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    History,
    Atom,
    Summary,
    SpStatus,
}

/// A badge metric other than the overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Uptime30d,
    Age,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("unsupported query: `require` accepts only `ready`")]
    BadQuery,
    #[error("unsupported query: `metric` accepts `status`, `uptime30d` or `age`")]
    BadMetric,
}

pub const ALLOW_READ: &str = "GET, HEAD, OPTIONS";
pub const ALLOW_INGEST: &str = "POST";

/// Routes a request. `query` is the raw query string without `?`.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let read = |r: Route| match method {
        "GET" | "HEAD" => Ok(r),
        "OPTIONS" => Ok(Route::Preflight),
        _ => Err(RouteError::MethodNotAllowed { allow: ALLOW_READ }),
    };
    match path {
        "/status" => {
            let mut require_ready = false;
            for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k == "require" {
                    if v != "ready" {
                        return Err(RouteError::BadQuery);
                    }
                    require_ready = true;
                }
                // Other parameters (cache busters like `?t=…`) are ignored.
            }
            read(Route::Status { require_ready })
        }
        "/" | "/index.html" => read(Route::Page),
        "/badge.svg" | "/badge.json" => {
            let svg = path == "/badge.svg";
            let metric = query
                .unwrap_or("")
                .split('&')
                .filter_map(|p| p.strip_prefix("metric="))
                .next_back();
            match metric {
                None | Some("status") if svg => read(Route::BadgeSvg),
                None | Some("status") => read(Route::BadgeJson),
                Some("uptime30d") => read(Route::MetricBadge {
                    svg,
                    metric: Metric::Uptime30d,
                }),
                Some("age") => read(Route::MetricBadge {
                    svg,
                    metric: Metric::Age,
                }),
                Some(_) => Err(RouteError::BadMetric),
            }
        }
        "/history.json" => read(Route::Doc(Doc::History)),
        "/feed.atom" => read(Route::Doc(Doc::Atom)),
        "/api/v2/summary.json" => read(Route::Doc(Doc::Summary)),
        "/api/v2/status.json" => read(Route::Doc(Doc::SpStatus)),
        "/healthz" => read(Route::Healthz),
        p if p == INGEST_PATH => match method {
            "POST" => Ok(Route::Ingest),
            _ => Err(RouteError::MethodNotAllowed {
                allow: ALLOW_INGEST,
            }),
        },
        _ => Err(RouteError::NotFound),
    }
}

/// `scheme://host[:port]`, path and query of an absolute URL as the runtime serialises it.
pub struct UrlParts<'a> {
    pub origin: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    pub fn split(url: &'a str) -> UrlParts<'a> {
        let url = url.split('#').next().unwrap_or(url);
        let host_start = url.find("://").map_or(0, |i| i + 3);
        let path_start = url[host_start..]
            .find('/')
            .map_or(url.len(), |i| host_start + i);
        let (origin, rest) = url.split_at(path_start);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        UrlParts {
            origin,
            path: if path.is_empty() { "/" } else { path },
            query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let ok = |m, p, q| route(m, p, q).unwrap();
        assert_eq!(
            ok("GET", "/status", None),
            Route::Status {
                require_ready: false
            }
        );
        assert_eq!(
            ok("HEAD", "/status", Some("")),
            Route::Status {
                require_ready: false
            }
        );
        assert_eq!(
            ok("GET", "/status", Some("require=ready")),
            Route::Status {
                require_ready: true
            }
        );
        assert_eq!(
            ok("GET", "/status", Some("t=1&require=ready")),
            Route::Status {
                require_ready: true
            }
        );
        assert_eq!(ok("GET", "/", None), Route::Page);
        assert_eq!(ok("GET", "/badge.svg", None), Route::BadgeSvg);
        assert_eq!(ok("HEAD", "/badge.json", None), Route::BadgeJson);
        assert_eq!(ok("GET", "/healthz", None), Route::Healthz);
        assert_eq!(ok("POST", "/ingest", None), Route::Ingest);
        assert_eq!(ok("OPTIONS", "/status", None), Route::Preflight);
        assert_eq!(
            ok("GET", "/badge.svg", Some("metric=status")),
            Route::BadgeSvg
        );
        assert_eq!(
            ok("GET", "/badge.json", Some("metric=uptime30d")),
            Route::MetricBadge {
                svg: false,
                metric: Metric::Uptime30d
            }
        );
        assert_eq!(
            ok("HEAD", "/badge.svg", Some("x=1&metric=age")),
            Route::MetricBadge {
                svg: true,
                metric: Metric::Age
            }
        );
        assert_eq!(ok("GET", "/history.json", None), Route::Doc(Doc::History));
        assert_eq!(ok("GET", "/feed.atom", None), Route::Doc(Doc::Atom));
        assert_eq!(
            ok("GET", "/api/v2/summary.json", None),
            Route::Doc(Doc::Summary)
        );
        assert_eq!(
            ok("GET", "/api/v2/status.json", None),
            Route::Doc(Doc::SpStatus)
        );
        assert_eq!(ok("OPTIONS", "/feed.atom", None), Route::Preflight);
        assert_eq!(
            route("GET", "/badge.svg", Some("metric=nope")),
            Err(RouteError::BadMetric)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(route("GET", "/nope", None), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/status/", None), Err(RouteError::NotFound));
        assert_eq!(
            route("POST", "/status", None),
            Err(RouteError::MethodNotAllowed { allow: ALLOW_READ })
        );
        assert_eq!(
            route("GET", "/ingest", None),
            Err(RouteError::MethodNotAllowed {
                allow: ALLOW_INGEST
            })
        );
        assert_eq!(
            route("GET", "/status", Some("require=building")),
            Err(RouteError::BadQuery)
        );
    }

    #[test]
    fn splits_runtime_urls() {
        let p = UrlParts::split("https://status.example.com:8443/status?require=ready#x");
        assert_eq!(
            (p.origin, p.path, p.query),
            (
                "https://status.example.com:8443",
                "/status",
                Some("require=ready")
            )
        );
        let p = UrlParts::split("http://127.0.0.1:8787");
        assert_eq!(
            (p.origin, p.path, p.query),
            ("http://127.0.0.1:8787", "/", None)
        );
        let p = UrlParts::split("http://h/a%3Fb?");
        assert_eq!((p.path, p.query), ("/a%3Fb", Some("")));
    }
}
