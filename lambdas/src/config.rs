//! Lambda configuration from environment variables (documented in lambdas/README.md).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} = '{value}': {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `KILN_TABLE`: the DynamoDB table.
    pub table: String,
    /// `KILN_PREFIX` (default `spot-runner`): pipeline names `<prefix>-<preset>`,
    /// parameters `/<prefix>/configs/<preset>`.
    pub prefix: String,
    /// `AWS_REGION` (set by Lambda): the stack region, default distribution region.
    pub stack_region: String,
    /// `KILN_STALE_AFTER_MINUTES` (default 30): a `building` record older than this is
    /// checked against Image Builder.
    pub stale_after: Duration,
    /// `KILN_RECONCILE_CONCURRENCY` (default 4).
    pub reconcile_concurrency: usize,
    /// `KILN_STATUS_RECONCILE_BUDGET_MS` (default 800): inline reconcile in
    /// status-origin gives up after this, well inside the edge's 2.5 s origin timeout.
    pub status_budget: Duration,
    /// `KILN_STATUS_RECONCILE_MEMO_SECS` (default 300): a preset reconciled inline is not
    /// retried by the same container within this.
    pub status_memo: Duration,
    /// `KILN_EDGE_URL`: the Worker's base URL for `/ingest` pushes (unset: no pushes).
    pub edge_url: Option<String>,
    /// `KILN_EDGE_SECRET_ARN`: the Secrets Manager secret shared with the edge (read at
    /// init, cached, refreshed): AWSCURRENT signs pushes and responses, AWSCURRENT and
    /// AWSPREVIOUS verify the edge's requests. Only the ARN is in the environment.
    pub edge_secret_arn: Option<String>,
    /// `KILN_EDGE_SECRET_TTL_SECS` (default 300): the cached secret is read again after
    /// this, so a rotation reaches warm containers; a signature that verifies against
    /// neither cached version also triggers a read, at most once per
    /// [`crate::secret::MIN_REFRESH`].
    pub edge_secret_ttl: Duration,
    /// `KILN_EDGE_TIMEOUT_MS` (default 2000).
    pub edge_timeout: Duration,
    /// `KILN_MAX_EVENT_SKEW_SECS` (default 300): an event dated further ahead of this
    /// handler's clock is acknowledged and not applied; stored ordering keys further
    /// ahead are not trusted (so a forged or broken event cannot freeze a preset).
    pub max_event_skew: Duration,
    /// `KILN_ALERTS_TOPIC_ARN`: the SNS topic for alerts (build failed, warning raised
    /// or cleared); unset: no alerts.
    pub alerts_topic_arn: Option<String>,
}

impl std::fmt::Debug for Config {
    // Lists what a log line may show (no secret is held here: only its ARN).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("prefix", &self.prefix)
            .field("stack_region", &self.stack_region)
            .field("stale_after", &self.stale_after)
            .field("reconcile_concurrency", &self.reconcile_concurrency)
            .field("status_budget", &self.status_budget)
            .field("max_event_skew", &self.max_event_skew)
            .field("edge_url", &self.edge_url)
            .field("edge_secret_arn", &self.edge_secret_arn)
            .field("edge_secret_ttl", &self.edge_secret_ttl)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_PREFIX: &str = "spot-runner";
/// Clocks that disagree by more than a day are broken, not skewed.
pub const MAX_EVENT_SKEW_SECS: u64 = 86_400;

impl Config {
    /// A config with defaults, for tests and the local stack.
    pub fn new(table: impl Into<String>, stack_region: impl Into<String>) -> Self {
        Config {
            table: table.into(),
            prefix: DEFAULT_PREFIX.into(),
            stack_region: stack_region.into(),
            stale_after: Duration::from_secs(30 * 60),
            reconcile_concurrency: 4,
            status_budget: Duration::from_millis(800),
            status_memo: Duration::from_secs(300),
            edge_url: None,
            edge_secret_arn: None,
            edge_secret_ttl: Duration::from_secs(300),
            edge_timeout: Duration::from_millis(2000),
            max_event_skew: Duration::from_secs(300),
            alerts_topic_arn: None,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let table = get("KILN_TABLE").ok_or(ConfigError::Missing("KILN_TABLE"))?;
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or(ConfigError::Missing("AWS_REGION"))?;
        let mut c = Config::new(table, region);
        if let Some(p) = get("KILN_PREFIX") {
            c.prefix = p;
        }
        let num = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|e| ConfigError::Invalid {
                        name,
                        value: v.clone(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        if let Some(m) = num("KILN_STALE_AFTER_MINUTES")? {
            c.stale_after = Duration::from_secs(m * 60);
        }
        // Seconds win over minutes: the local stack heals lost events within seconds.
        if let Some(secs) = num("KILN_STALE_AFTER_SECS")? {
            c.stale_after = Duration::from_secs(secs);
        }
        if let Some(n) = num("KILN_RECONCILE_CONCURRENCY")? {
            if n == 0 {
                return Err(ConfigError::Invalid {
                    name: "KILN_RECONCILE_CONCURRENCY",
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
            c.reconcile_concurrency = n as usize;
        }
        if let Some(ms) = num("KILN_STATUS_RECONCILE_BUDGET_MS")? {
            c.status_budget = Duration::from_millis(ms);
        }
        if let Some(s) = num("KILN_STATUS_RECONCILE_MEMO_SECS")? {
            c.status_memo = Duration::from_secs(s);
        }
        if let Some(ms) = num("KILN_EDGE_TIMEOUT_MS")? {
            c.edge_timeout = Duration::from_millis(ms);
        }
        if let Some(s) = num("KILN_MAX_EVENT_SKEW_SECS")? {
            if s > MAX_EVENT_SKEW_SECS {
                return Err(ConfigError::Invalid {
                    name: "KILN_MAX_EVENT_SKEW_SECS",
                    value: s.to_string(),
                    reason: format!("at most {MAX_EVENT_SKEW_SECS} (one day)"),
                });
            }
            c.max_event_skew = Duration::from_secs(s);
        }
        c.edge_url = get("KILN_EDGE_URL");
        if let Some(s) = num("KILN_EDGE_SECRET_TTL_SECS")? {
            c.edge_secret_ttl = Duration::from_secs(s);
        }
        c.edge_secret_arn = get("KILN_EDGE_SECRET_ARN");
        c.alerts_topic_arn = get("KILN_ALERTS_TOPIC_ARN");
        Ok(c)
    }

    /// [`Config::max_event_skew`] as a chrono duration (at most a day).
    pub fn event_skew(&self) -> chrono::Duration {
        let secs = self.max_event_skew.as_secs().min(MAX_EVENT_SKEW_SECS);
        chrono::Duration::seconds(secs as i64)
    }

    /// The latest event time trusted at `now`: `now` plus the allowed skew (saturating).
    pub fn trust_until(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now.checked_add_signed(self.event_skew())
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// `/<prefix>/configs/<preset>`.
    pub fn parameter_name(&self, preset: &str) -> String {
        format!("/{}/configs/{preset}", self.prefix)
    }

    /// `/<prefix>/ami/<preset>` (data type `aws:ec2:image`).
    pub fn ami_parameter_name(&self, preset: &str) -> String {
        kiln_aws::release::ami_parameter_name(&self.prefix, preset)
    }

    /// `<prefix>-<preset>`.
    pub fn pipeline_name(&self, preset: &str) -> String {
        format!("{}-{preset}", self.prefix)
    }

    /// The preset an image build version ARN's recipe segment names, if it has this
    /// deployment's form `<prefix>-<preset>` (ARNs carry names lowercased). A longer
    /// prefix of another stack (`spot-runner-x-…`) yields a candidate that no PRESET
    /// item matches, so callers still look the preset up before any Image Builder call.
    pub fn preset_of_recipe<'a>(&self, recipe: &'a str) -> Option<&'a str> {
        let head = recipe.get(..self.prefix.len())?;
        if !head.eq_ignore_ascii_case(&self.prefix) {
            return None;
        }
        recipe[self.prefix.len()..]
            .strip_prefix('-')
            .filter(|p| looks_like_preset(p))
    }

    /// The preset a pipeline belongs to, if it is one of ours.
    pub fn preset_of_pipeline<'a>(&self, pipeline: &'a str) -> Option<&'a str> {
        pipeline
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')
            .filter(|p| !p.is_empty())
    }
}

/// A preset name after architecture expansion: `[a-z0-9-]`, at most 40 + `-arm64`.
fn looks_like_preset(name: &str) -> bool {
    (1..=46).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(lookup(&[("KILN_TABLE", "t"), ("AWS_REGION", "eu-west-1")]))
            .unwrap();
        assert_eq!(c.prefix, "spot-runner");
        assert_eq!(c.stale_after, Duration::from_secs(1800));
        assert_eq!(c.edge_url, None);
        let c = Config::from_lookup(lookup(&[
            ("KILN_TABLE", "t"),
            ("AWS_REGION", "eu-west-1"),
            ("KILN_PREFIX", "ci"),
            ("KILN_STALE_AFTER_MINUTES", "5"),
            (
                "KILN_EDGE_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:s",
            ),
            ("KILN_EDGE_SECRET_TTL_SECS", "60"),
        ]))
        .unwrap();
        assert_eq!(c.stale_after, Duration::from_secs(300));
        let secs = Config::from_lookup(lookup(&[
            ("KILN_TABLE", "t"),
            ("AWS_REGION", "eu-west-1"),
            ("KILN_STALE_AFTER_MINUTES", "5"),
            ("KILN_STALE_AFTER_SECS", "7"),
        ]))
        .unwrap();
        assert_eq!(secs.stale_after, Duration::from_secs(7));
        assert_eq!(
            c.edge_secret_arn.as_deref(),
            Some("arn:aws:secretsmanager:eu-west-1:1:secret:s")
        );
        assert_eq!(c.edge_secret_ttl, Duration::from_secs(60));
        assert_eq!(c.parameter_name("linux-x64"), "/ci/configs/linux-x64");
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            Config::from_lookup(lookup(&[("AWS_REGION", "x")])).unwrap_err(),
            ConfigError::Missing("KILN_TABLE")
        );
        let e = Config::from_lookup(lookup(&[
            ("KILN_TABLE", "t"),
            ("AWS_REGION", "x"),
            ("KILN_STALE_AFTER_MINUTES", "soon"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("KILN_STALE_AFTER_MINUTES"), "{e}");
    }

    #[test]
    fn pipeline_to_preset_is_by_prefix_not_regex() {
        let c = Config::new("t", "us-east-1");
        assert_eq!(
            c.preset_of_pipeline("spot-runner-linux-x64"),
            Some("linux-x64")
        );
        assert_eq!(c.preset_of_pipeline("spot-runner-"), None);
        assert_eq!(c.preset_of_pipeline("spot-runnerx-a"), None);
        assert_eq!(c.preset_of_pipeline("other-linux"), None);
    }

    #[test]
    fn recipe_to_preset_needs_the_exact_prefix_and_a_dash() {
        let c = Config::new("t", "us-east-1");
        assert_eq!(
            c.preset_of_recipe("spot-runner-linux-x64"),
            Some("linux-x64")
        );
        // Another stack whose prefix extends ours: only a candidate, never our preset
        // unless a PRESET item of that exact name exists.
        assert_eq!(c.preset_of_recipe("spot-runner-x-linux"), Some("x-linux"));
        for foreign in [
            "spot-runnerx-linux",
            "spot-runner-",
            "spot-runner",
            "linux-x64",
            "spot",
            "spot-runner-a/b",
            "spot-runner-Üx",
        ] {
            assert_eq!(c.preset_of_recipe(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn skew_and_budget_defaults_and_override() {
        let base = [("KILN_TABLE", "t"), ("AWS_REGION", "eu-west-1")];
        let c = Config::from_lookup(lookup(&base)).unwrap();
        assert_eq!(c.max_event_skew, Duration::from_secs(300));
        assert!(
            c.status_budget <= Duration::from_millis(1000),
            "inline reconcile well under the edge's 2.5 s origin timeout"
        );
        let c = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("KILN_MAX_EVENT_SKEW_SECS", "60"),
        ]))
        .unwrap();
        assert_eq!(c.max_event_skew, Duration::from_secs(60));
        for bad in ["-1", "86401", "soon"] {
            assert!(
                Config::from_lookup(lookup(&[
                    base[0],
                    base[1],
                    ("KILN_MAX_EVENT_SKEW_SECS", bad)
                ]))
                .is_err(),
                "{bad}"
            );
        }
    }
}
