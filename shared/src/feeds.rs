//! The documents the edge serves beside `/status` (DESIGN.md, "History and feeds"),
//! rendered once by the origin and carried, signed, in the snapshot ([`Published`]).
//!
//! The Worker's wasm is counted against a size budget, so it does not build these
//! documents: it holds the origin's text and only wraps the per-request parts around it
//! (`generatedAt`, `stale`, Statuspage's `page` with the public URL). What is in them is
//! allow-listed here, field by field, from the public report and the history entries.

use serde::{Deserialize, Serialize};

use crate::StatusReport;
use crate::history::{BuildSummary, PresetHistory};
use crate::state::health::WarningTransition;
use crate::status::{PresetReport, PresetStatus};

pub mod atom;
pub mod statuspage;

/// The pre-rendered documents, as carried in the snapshot.
///
/// On the wire a JSON array of strings in field order (the order of the fields below): the
/// Worker's wasm then needs no field-matching deserialiser for it (its size is budgeted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Feeds {
    /// Content tag of all of the below (the documents' ETags derive from it).
    pub tag: String,
    /// JSON array: `/history.json`'s `presets`.
    pub history: String,
    /// JSON object: Statuspage's `status` (`indicator`, `description`).
    pub status: String,
    /// JSON members after `page` and `status` in Statuspage's `summary.json`:
    /// `"components":[…],"incidents":[…],"scheduled_maintenances":[]`.
    pub summary: String,
    /// The Atom feed, complete.
    pub atom: String,
    /// Badge message `uptime30d` ("99.9 %") with its tone (`good` | `warn` | `bad` |
    /// `none`).
    pub uptime30d: [String; 2],
    /// The age badge's input: when the oldest preset's current image was built (Unix
    /// seconds; empty without one), and an unused slot. [`age_badge`] renders it.
    pub age: [String; 2],
    /// The page's history section (HTML, rendered by `kiln-web`), empty when absent.
    pub page: String,
}

impl From<Feeds> for Vec<String> {
    fn from(f: Feeds) -> Vec<String> {
        let [u, ut] = f.uptime30d;
        let [a, at] = f.age;
        vec![
            f.tag, f.history, f.status, f.summary, f.atom, u, ut, a, at, f.page,
        ]
    }
}

impl TryFrom<Vec<String>> for Feeds {
    type Error = &'static str;
    fn try_from(v: Vec<String>) -> Result<Feeds, &'static str> {
        let Ok([tag, history, status, summary, atom, u, ut, a, at, page]) =
            <[String; 10]>::try_from(v)
        else {
            return Err("feeds: expected 10 strings");
        };
        Ok(Feeds {
            tag,
            history,
            status,
            summary,
            atom,
            uptime30d: [u, ut],
            age: [a, at],
            page,
        })
    }
}

/// What the origin answers and the Lambdas push: the report and the documents. On the
/// wire `[report, feeds]`, so a reader tells it from a bare report by the first byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(StatusReport, Feeds)", into = "(StatusReport, Feeds)")]
pub struct Published {
    pub report: StatusReport,
    pub feeds: Feeds,
}

impl From<(StatusReport, Feeds)> for Published {
    fn from((report, feeds): (StatusReport, Feeds)) -> Published {
        Published { report, feeds }
    }
}

impl From<Published> for (StatusReport, Feeds) {
    fn from(p: Published) -> (StatusReport, Feeds) {
        (p.report, p.feeds)
    }
}

impl Feeds {
    /// Renders every document from the public report, the presets' histories (in the
    /// report's order) and their warning transitions (`(preset, transition)`, for the
    /// feed). `page` is left empty for the caller (`kiln-web` renders it).
    pub fn build(
        report: &StatusReport,
        histories: &[PresetHistory],
        transitions: &[(String, WarningTransition)],
    ) -> Feeds {
        let history = serde_json::to_string(histories).expect("history serialises");
        let (status, rest) = statuspage::build(report, histories);
        let status = serde_json::to_string(&status).expect("status serialises");
        let rest = serde_json::to_string(&rest).expect("summary serialises");
        // `{"components":…}` → `"components":…`: members to follow `page` and `status`.
        let summary = rest[1..rest.len() - 1].to_owned();
        let fallback = report
            .presets
            .iter()
            .filter_map(|p| p.updated_at.as_deref())
            .max()
            .unwrap_or("1970-01-01T00:00:00Z");
        let atom = atom::render(histories, transitions, fallback);

        let uptime = histories
            .iter()
            .filter_map(|h| h.uptime.d30)
            .reduce(f64::min);
        let tone = match uptime {
            None => "none",
            Some(u) if u >= 0.99 => "good",
            Some(u) if u >= 0.95 => "warn",
            Some(_) => "bad",
        };
        let uptime30d = [percent(uptime), tone.to_owned()];
        let oldest = histories
            .iter()
            .filter_map(|h| last_success(h).and_then(BuildSummary::finished))
            .min();
        // The edge renders the text at request time, so the age keeps counting while
        // its copy is stale.
        let age = [
            oldest.map_or(String::new(), |t| t.timestamp().to_string()),
            String::new(),
        ];
        let mut feeds = Feeds {
            tag: String::new(),
            history,
            status,
            summary,
            atom,
            uptime30d,
            age,
            page: String::new(),
        };
        feeds.retag();
        feeds
    }

    /// Recomputes [`Feeds::tag`] from the content (after changing `page`).
    pub fn retag(&mut self) {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            &self.history,
            &self.status,
            &self.summary,
            &self.atom,
            &self.uptime30d[0],
            &self.uptime30d[1],
            &self.age[0],
            &self.age[1],
            &self.page,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        self.tag = hex::encode(&h.finalize()[..12]);
    }
}

/// Uptime as a badge/page text: `99.95 %`, `100 %`, `n/a`.
pub fn percent(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(v) => {
            let p = (v * 10_000.0).round() / 100.0;
            let s = format!("{p:.2}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            format!("{s} %")
        }
    }
}

/// The age badge's `[message, tone]` from [`Feeds::age`] at `now` (Unix seconds).
pub fn age_badge(age: &[String; 2], now: i64) -> [String; 2] {
    let Ok(built) = age[0].parse::<i64>() else {
        return ["no image".to_owned(), "none".to_owned()];
    };
    let secs = now - built;
    let tone = match secs / 86_400 {
        d if d < 7 => "good",
        d if d < 30 => "warn",
        _ => "bad",
    };
    [age_text(secs), tone.to_owned()]
}

/// Age in whole units: `5 minutes`, `3 hours`, `12 days`.
pub fn age_text(secs: i64) -> String {
    let secs = secs.max(0);
    let (n, unit) = if secs < 3600 {
        (secs / 60, "minute")
    } else if secs < 86_400 {
        (secs / 3600, "hour")
    } else {
        (secs / 86_400, "day")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The newest successful build of a preset (what its AMI came from).
pub fn last_success(h: &PresetHistory) -> Option<&BuildSummary> {
    h.builds
        .iter()
        .find(|b| b.outcome == crate::history::Outcome::Available)
}

/// Failed or cancelled builds since the preset's last success, newest first: the open
/// incidents.
pub fn open_failures(h: &PresetHistory) -> Vec<&BuildSummary> {
    h.builds
        .iter()
        .take_while(|b| b.outcome != crate::history::Outcome::Available)
        .filter(|b| b.outcome.is_failure())
        .collect()
}

/// A preset with a `/status` warning (too old, pipeline disabled, AMI missing, revoked,
/// no recent success) is degraded; kept as a function so the mapping has one home.
pub fn has_warnings(p: &PresetReport) -> bool {
    !p.warnings.is_empty()
}

/// Whether runners of this preset have an image now.
pub fn serving(p: &PresetReport) -> bool {
    p.ami_id.is_some() && p.status != PresetStatus::NotConfigured
}

#[cfg(test)]
mod tests;
