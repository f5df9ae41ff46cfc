//! Per-preset warnings of the public status: derived from the record (its current
//! build, its release and the health `reconcile` observed) at the report's time, so a
//! new build clears an old AMI's warning at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::AmiRecord;
use crate::state::health::AmiProblem;
use crate::state::release::ReleaseKind;

pub const AMI_TOO_OLD: &str = "ami_too_old";
pub const PIPELINE_DISABLED: &str = "pipeline_disabled";
pub const AMI_MISSING: &str = "ami_missing";
pub const REVOKED: &str = "revoked";
pub const NO_RECENT_SUCCESS: &str = "no_recent_success";

/// One warning: a stable `code`, a plain message, and the region it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warning {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Warning {
    /// `code` or `code:region`: what alerts compare between runs.
    pub fn key(&self) -> String {
        match &self.region {
            Some(r) => format!("{}:{r}", self.code),
            None => self.code.clone(),
        }
    }

    /// A few words for the overall message ("pipeline disabled").
    pub fn short(&self) -> String {
        match (self.code.as_str(), &self.region) {
            (AMI_MISSING, Some(r)) => format!("AMI missing in {r}"),
            (code, _) => code.replace('_', " ").replace("ami", "AMI"),
        }
    }
}

fn warning(code: &str, message: String, region: Option<&str>) -> Warning {
    Warning {
        code: code.into(),
        message,
        region: region.map(str::to_owned),
    }
}

fn days(n: i64) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

/// The warnings of one record at `now`, in a fixed order.
pub fn warnings(r: &AmiRecord, now: DateTime<Utc>) -> Vec<Warning> {
    let mut out = Vec::new();
    let max_age = i64::from(r.max_age_days());
    let current = r.current();
    if let Some(release) = &r.release
        && release.kind == ReleaseKind::Revoked
    {
        out.push(warning(
            REVOKED,
            format!(
                "The newest build was revoked; runners rolled back to build {}",
                release.version
            ),
            None,
        ));
    }
    if let Some(built) = current.built_at {
        let age = (now - built).num_days();
        if age >= max_age {
            out.push(warning(
                AMI_TOO_OLD,
                format!(
                    "The AMI runners use was built {} ago (limit: {})",
                    days(age),
                    days(max_age)
                ),
                None,
            ));
        }
    }
    if let Some(last) = r.last_success_at()
        && (now - last).num_days() >= max_age
    {
        out.push(warning(
            NO_RECENT_SUCCESS,
            format!(
                "No successful build in the last {} (the last one finished {} ago)",
                days(max_age),
                days((now - last).num_days())
            ),
            None,
        ));
    }
    let Some(health) = &r.health else {
        return out;
    };
    if health.pipeline_disabled {
        out.push(warning(
            PIPELINE_DISABLED,
            "The image pipeline is disabled: scheduled rebuilds do not run".into(),
            None,
        ));
    }
    for (region, p) in &health.regions {
        // About the AMI runners use now: a newer AMI there clears it.
        if p.ami.as_deref() != current.amis.get(region).map(String::as_str) {
            continue;
        }
        let message = match (&p.ami, p.problem) {
            (_, AmiProblem::NotDistributed) | (None, _) => {
                format!("The current build has no AMI in {region}")
            }
            (Some(ami), problem) => format!("AMI {ami} in {region} is {}", problem.describe()),
        };
        out.push(warning(AMI_MISSING, message, Some(region)));
    }
    out
}

#[cfg(test)]
#[path = "warnings_tests.rs"]
mod tests;
