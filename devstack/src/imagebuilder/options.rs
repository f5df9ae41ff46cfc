//! How a local Image Builder is started and how its builds behave: timing, list order,
//! start options, and the pipelines registered through the Rust convenience.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_shared::{Architecture, ImageState};
use serde::{Deserialize, Serialize};

use super::RULE_STATES;

/// How long a simulated build spends in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub pending_ms: u64,
    pub building_ms: u64,
    pub testing_ms: u64,
    pub distributing_ms: u64,
    /// Builds only move when [`LocalImageBuilder::step`] is called (deterministic tests).
    #[serde(default)]
    pub manual: bool,
}

impl Default for Timing {
    /// 12 s per build: `kiln dev` shows every preset building, then ready, well within a
    /// minute, with each state visible for a few seconds.
    fn default() -> Self {
        Timing::total(Duration::from_secs(12))
    }
}

impl Timing {
    /// A build of `total` duration, split 10 / 45 / 25 / 20 % over the four states.
    pub fn total(total: Duration) -> Self {
        let ms = total.as_millis() as u64;
        Timing {
            pending_ms: ms / 10,
            building_ms: ms * 45 / 100,
            testing_ms: ms / 4,
            distributing_ms: ms - ms / 10 - ms * 45 / 100 - ms / 4,
            manual: false,
        }
    }

    /// Builds wait in each state until stepped.
    pub fn manual() -> Self {
        Timing {
            pending_ms: 0,
            building_ms: 0,
            testing_ms: 0,
            distributing_ms: 0,
            manual: true,
        }
    }

    pub(super) fn in_state(&self, state: ImageState) -> Duration {
        Duration::from_millis(match state {
            ImageState::Pending => self.pending_ms,
            ImageState::Building => self.building_ms,
            ImageState::Testing => self.testing_ms,
            ImageState::Distributing => self.distributing_ms,
            _ => 0,
        })
    }
}

/// Order of ListImagePipelineImages. AWS does not document one and has returned an older
/// build first, so clients must sort by `dateCreated` themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    #[default]
    NewestFirst,
    /// The misleading order: oldest build first.
    OldestFirst,
}

/// Start options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The endpoint's region (pipelines, image ARNs, the event envelope).
    pub region: String,
    /// 12-digit account id in ARNs and AMIs.
    pub account_id: String,
    pub timing: Timing,
    /// Fixed port; `None` picks a free one.
    pub port: Option<u16>,
    /// States delivered to sinks (the EventBridge rule's pattern).
    pub rule_states: Vec<ImageState>,
    /// An EC2 emulator (moto) in which finished builds register their AMIs, tagged
    /// with the distribution's `amiTags`; `None`: AMI ids are only made up.
    pub ec2_endpoint: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            region: crate::emulators::DEFAULT_REGION.to_owned(),
            account_id: "123456789012".to_owned(),
            timing: Timing::default(),
            port: None,
            rule_states: RULE_STATES.to_vec(),
            ec2_endpoint: None,
        }
    }
}

/// A pipeline registered through the Rust convenience: recipe, infrastructure and
/// distribution configuration are created alongside.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// Pipeline name (kiln: `<prefix>-<preset>`).
    pub name: String,
    /// Distribution regions; the first is the home region. Empty: the endpoint's region.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub architecture: Option<Architecture>,
    /// Recipe name (the ARN's `image/<recipe>/…` segment); defaults to the pipeline name.
    #[serde(default)]
    pub recipe_name: Option<String>,
    /// Recipe semantic version; defaults to `1.0.0`.
    #[serde(default)]
    pub recipe_version: Option<String>,
    /// Tags the distribution puts on the AMIs (`amiDistributionConfiguration.amiTags`).
    #[serde(default)]
    pub ami_tags: BTreeMap<String, String>,
    /// The pipeline's `schedule` (`scheduleExpression`, `autoDisablePolicy`, …), as
    /// CreateImagePipeline takes it.
    #[serde(default)]
    pub schedule: Option<serde_json::Value>,
}

impl PipelineSpec {
    pub fn new<I, S>(name: &str, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PipelineSpec {
            name: name.to_owned(),
            regions: regions.into_iter().map(Into::into).collect(),
            architecture: None,
            recipe_name: None,
            recipe_version: None,
            ami_tags: BTreeMap::new(),
            schedule: None,
        }
    }

    /// A schedule whose AutoDisablePolicy disables the pipeline after `failures`
    /// consecutive failed scheduled builds (as the template renders it).
    pub fn auto_disable_after(mut self, failures: u32) -> Self {
        self.schedule = Some(serde_json::json!({
            "scheduleExpression": "cron(0 4 ? * SUN *)",
            "pipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
            "autoDisablePolicy": { "failureCount": failures },
        }));
        self
    }

    pub fn ami_tag(mut self, key: &str, value: &str) -> Self {
        self.ami_tags.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn architecture(mut self, arch: Architecture) -> Self {
        self.architecture = Some(arch);
        self
    }
}
