//! `kiln status` and `kiln wait`: read the public `/status` like any user's script would.

use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kiln_shared::{OverallStatus, PresetStatus, StatusReport};

use crate::cli::Until;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: HTTP {status}")]
    BadStatus { url: String, status: u16 },
    #[error("GET {url}: not a kiln status document: {reason}")]
    BadBody { url: String, reason: String },
    #[error("'{0}' is not an http(s) URL")]
    BadUrl(String),
}

/// `https://kiln.example.com` → `https://kiln.example.com/status`; a URL with a path
/// is used as given.
pub fn status_url(base: &str) -> Result<String, StatusError> {
    let Some(rest) = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
    else {
        return Err(StatusError::BadUrl(base.to_owned()));
    };
    if rest.is_empty() {
        return Err(StatusError::BadUrl(base.to_owned()));
    }
    Ok(match rest.find('/') {
        None => format!("{base}/status"),
        Some(i) if rest[i..] == *"/" => format!("{}status", base),
        Some(_) => base.to_owned(),
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds")
}

/// One GET of the status document.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<StatusReport, StatusError> {
    let http = |source| StatusError::Http {
        url: url.to_owned(),
        source,
    };
    let response = client.get(url).send().await.map_err(http)?;
    let status = response.status();
    // `?require=ready` answers 503 with the document; anything else non-2xx is an error.
    if !status.is_success() && status.as_u16() != 503 {
        return Err(StatusError::BadStatus {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let body = response.bytes().await.map_err(http)?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadBody {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// Human rendering: the headline, then one row per preset.
pub fn render_human(report: &StatusReport) -> String {
    let mut out = format!("{}: {}", report.status, report.message);
    if report.stale {
        out.push_str(" (stale: the edge could not reach the origin)");
    }
    out.push_str(&format!("\ngenerated at {}\n", report.generated_at));
    if !report.presets.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["preset", "arch", "status", "AMI", "regions", "updated"]);
        for p in &report.presets {
            table.add_row([
                p.name.clone(),
                p.architecture
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
                p.status.as_str().to_owned(),
                p.ami_id.clone().unwrap_or_else(|| "-".into()),
                p.amis
                    .iter()
                    .map(|(r, a)| format!("{r}: {a}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                p.updated_at.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out
}

/// How `kiln wait` ended; the exit code is the contract CI scripts use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    Ready(StatusReport),
    Degraded(StatusReport),
    TimedOut {
        last: Option<StatusReport>,
        last_error: Option<String>,
    },
}

impl WaitOutcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            WaitOutcome::Ready(_) => 0,
            WaitOutcome::Degraded(_) => 1,
            WaitOutcome::TimedOut { .. } => 2,
        }
    }
}

/// Whether `report` ends a wait for `until`; `None` keeps polling.
pub fn settles(until: Until, report: &StatusReport) -> Option<bool> {
    let in_flight = report.presets.iter().any(|p| {
        matches!(
            p.status,
            PresetStatus::Building | PresetStatus::NotConfigured
        )
    });
    match (until, report.status) {
        (Until::Reachable, _) => Some(true),
        (_, OverallStatus::Ready) => Some(true),
        (Until::Ready, OverallStatus::Degraded) => Some(false),
        (Until::Settled, OverallStatus::Degraded) if !in_flight => Some(false),
        _ => None,
    }
}

/// Polls until `until` holds (0), the wait ends degraded (1) or the deadline (2). Fetch
/// errors and `not_configured`/`building` keep waiting: right after a deploy the edge and
/// the first builds are still coming up. `progress` sees every poll's result.
pub async fn wait(
    client: &reqwest::Client,
    url: &str,
    until: Until,
    timeout: Duration,
    interval: Duration,
    mut progress: impl FnMut(&Result<StatusReport, StatusError>),
) -> WaitOutcome {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    let mut last_error = None;
    loop {
        let result = fetch(client, url).await;
        progress(&result);
        match result {
            Ok(report) => match settles(until, &report) {
                Some(true) => return WaitOutcome::Ready(report),
                Some(false) => return WaitOutcome::Degraded(report),
                None => last = Some(report),
            },
            Err(e) => last_error = Some(e.to_string()),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return WaitOutcome::TimedOut { last, last_error };
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: OverallStatus, presets: &[PresetStatus]) -> StatusReport {
        StatusReport {
            status,
            message: String::new(),
            presets: presets
                .iter()
                .enumerate()
                .map(|(i, s)| kiln_shared::PresetReport {
                    name: format!("p{i}"),
                    status: *s,
                    ami_id: None,
                    updated_at: None,
                    architecture: None,
                    amis: Default::default(),
                    built_at: None,
                    pinned: false,
                    warnings: Vec::new(),
                    display_name: None,
                })
                .collect(),
            generated_at: "2026-01-27T12:00:00Z".into(),
            stale: false,
        }
    }

    #[test]
    fn each_until_mode_ends_on_its_own_condition() {
        use OverallStatus as O;
        use PresetStatus as P;
        let failed_while_building = report(O::Degraded, &[P::Failed, P::Building]);
        let failed_settled = report(O::Degraded, &[P::Failed, P::Ready]);
        let building = report(O::Building, &[P::Building]);
        let unconfigured = report(O::NotConfigured, &[]);
        let ready = report(O::Ready, &[P::Ready]);

        assert_eq!(settles(Until::Ready, &failed_while_building), Some(false));
        assert_eq!(settles(Until::Ready, &building), None);
        assert_eq!(settles(Until::Ready, &ready), Some(true));

        assert_eq!(settles(Until::Settled, &failed_while_building), None);
        assert_eq!(settles(Until::Settled, &failed_settled), Some(false));
        assert_eq!(settles(Until::Settled, &building), None);
        assert_eq!(settles(Until::Settled, &ready), Some(true));

        for r in [&failed_while_building, &building, &unconfigured, &ready] {
            assert_eq!(settles(Until::Reachable, r), Some(true));
        }
        assert_eq!(settles(Until::Ready, &unconfigured), None);
    }

    #[test]
    fn status_url_appends_the_path_only_to_a_bare_origin() {
        assert_eq!(
            status_url("https://kiln.example.com").unwrap(),
            "https://kiln.example.com/status"
        );
        assert_eq!(
            status_url("https://kiln.example.com/").unwrap(),
            "https://kiln.example.com/status"
        );
        assert_eq!(
            status_url("http://127.0.0.1:8787/status?require=ready").unwrap(),
            "http://127.0.0.1:8787/status?require=ready"
        );
        assert!(status_url("kiln.example.com").is_err());
        assert!(status_url("https://").is_err());
    }
}
