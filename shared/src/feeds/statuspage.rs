//! Atlassian Statuspage's public API shape (`/api/v2/summary.json`, `/api/v2/status.json`):
//! one component per preset, failed builds as incidents until the next success.

use serde::{Deserialize, Serialize};

use crate::StatusReport;
use crate::history::PresetHistory;
use crate::status::PresetStatus;

use super::{has_warnings, open_failures, serving};

/// The `page` id in every document (one kiln deployment is one page).
pub const PAGE_ID: &str = "kiln";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub id: String,
    pub name: String,
    pub url: String,
    pub time_zone: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `none` | `minor` | `major` | `critical`.
    pub indicator: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub id: String,
    pub name: String,
    /// `operational` | `degraded_performance` | `partial_outage` | `major_outage`.
    pub status: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub position: u32,
    pub description: Option<String>,
    pub showcase: bool,
    pub start_date: Option<String>,
    pub group_id: Option<String>,
    pub page_id: String,
    pub group: bool,
    pub only_show_if_degraded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    pub id: String,
    pub status: String,
    pub body: String,
    pub incident_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub display_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub name: String,
    /// Open incidents only: `investigating` (rebuild not yet started) or `monitoring`
    /// (a rebuild is under way).
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub monitoring_at: Option<String>,
    pub resolved_at: Option<String>,
    /// `minor` (runners keep the previous image) | `major` (no image).
    pub impact: String,
    pub shortlink: Option<String>,
    pub started_at: String,
    pub page_id: String,
    pub incident_updates: Vec<IncidentUpdate>,
    pub components: Vec<Component>,
}

/// `summary.json` without `page` and `status`, which the edge adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRest {
    pub components: Vec<Component>,
    pub incidents: Vec<Incident>,
    pub scheduled_maintenances: Vec<Incident>,
}

/// The whole `summary.json` (as clients read it; tests and clients parse with this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub page: Page,
    pub status: Status,
    pub components: Vec<Component>,
    pub incidents: Vec<Incident>,
    pub scheduled_maintenances: Vec<Incident>,
}

/// A preset's component status.
pub fn component_status(p: &crate::status::PresetReport) -> &'static str {
    match p.status {
        _ if !serving(p) => "major_outage",
        PresetStatus::Failed => "partial_outage",
        _ if has_warnings(p) => "degraded_performance",
        _ => "operational",
    }
}

/// `(status, rest)` for `report` and the presets' histories.
pub fn build(report: &StatusReport, histories: &[PresetHistory]) -> (Status, SummaryRest) {
    let mut components = Vec::new();
    let mut incidents = Vec::new();
    for (i, p) in report.presets.iter().enumerate() {
        let h = histories.iter().find(|h| h.name == p.name);
        let component = Component {
            id: p.name.clone(),
            name: p.name.clone(),
            status: component_status(p).into(),
            created_at: h
                .and_then(|h| h.builds.last())
                .map(|b| b.started_at.clone()),
            updated_at: p.updated_at.clone(),
            position: i as u32 + 1,
            description: p
                .architecture
                .map(|a| format!("{} runner image", a.as_str())),
            showcase: true,
            start_date: h
                .and_then(|h| h.builds.last())
                .map(|b| b.started_at[..10].to_owned()),
            group_id: None,
            page_id: PAGE_ID.into(),
            group: false,
            only_show_if_degraded: false,
        };
        for b in h.map(open_failures).unwrap_or_default() {
            let at = b
                .finished_at
                .clone()
                .unwrap_or_else(|| b.started_at.clone());
            let id = format!("{}-{}", p.name, b.version.replace('/', "-"));
            let rebuilding = p.status == PresetStatus::Building;
            let status = if rebuilding {
                "monitoring"
            } else {
                "investigating"
            };
            let impact = if serving(p) { "minor" } else { "major" };
            let body = format!(
                "Build {} of {} {}. {}",
                b.version,
                p.name,
                b.outcome.as_str(),
                if serving(p) {
                    "Runners keep using the previous image."
                } else {
                    "No image is available for runners."
                }
            );
            incidents.push(Incident {
                id: id.clone(),
                name: format!("{}: build {} {}", p.name, b.version, b.outcome.as_str()),
                status: status.into(),
                created_at: at.clone(),
                updated_at: at.clone(),
                monitoring_at: None,
                resolved_at: None,
                impact: impact.into(),
                shortlink: None,
                started_at: at.clone(),
                page_id: PAGE_ID.into(),
                incident_updates: vec![IncidentUpdate {
                    id: format!("{id}-1"),
                    status: "investigating".into(),
                    body,
                    incident_id: id,
                    created_at: at.clone(),
                    updated_at: at.clone(),
                    display_at: at,
                }],
                components: vec![component.clone()],
            });
        }
        components.push(component);
    }
    let worst = |s: &str| components.iter().filter(|c| c.status == s).count();
    let indicator = if components.is_empty() {
        "none"
    } else if worst("major_outage") == components.len() {
        "critical"
    } else if worst("major_outage") > 0 {
        "major"
    } else if worst("partial_outage") + worst("degraded_performance") > 0 {
        "minor"
    } else {
        "none"
    };
    (
        Status {
            indicator: indicator.into(),
            description: report.message.clone(),
        },
        SummaryRest {
            components,
            incidents,
            scheduled_maintenances: vec![],
        },
    )
}
