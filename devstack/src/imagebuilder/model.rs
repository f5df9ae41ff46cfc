//! The simulated Image Builder's resources and their JSON shapes (as the REST-JSON API
//! returns them; field names verified against aws-sdk-imagebuilder's deserializers).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use kiln_shared::ImageState;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Image Builder's `DateTime` strings: RFC 3339 UTC with milliseconds.
pub(crate) fn api_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `ami-` + 17 hex digits, like today's EC2 ids.
pub(crate) fn ami_id() -> String {
    let mut rng = rand::rng();
    let hex: String = (0..17)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("digit < 16"))
        .collect();
    format!("ami-{hex}")
}

#[derive(Debug, Clone)]
pub(crate) struct Recipe {
    pub arn: String,
    pub name: String,
    pub version: String,
    pub parent_image: String,
    pub components: Vec<String>,
    pub description: Option<String>,
    pub created: DateTime<Utc>,
}

impl Recipe {
    /// The owning account (the ARN's account field).
    fn owner(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or_default()
    }

    /// `ImageRecipeSummary` (ListImageRecipes).
    pub fn summary_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "name": self.name,
            "platform": "Linux",
            "owner": self.owner(),
            "parentImage": self.parent_image,
            "dateCreated": api_time(self.created),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "type": "AMI",
            "name": self.name,
            "description": self.description,
            "platform": "Linux",
            // The account id, as GetImageRecipe answers (`Self` is only a ListImageRecipes
            // owner filter value).
            "owner": self.owner(),
            "version": self.version,
            "parentImage": self.parent_image,
            "components": self.components.iter().map(|c| json!({"componentArn": c})).collect::<Vec<_>>(),
            "dateCreated": api_time(self.created),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Infrastructure {
    pub arn: String,
    pub name: String,
    pub instance_types: Vec<String>,
    pub instance_profile_name: String,
    pub created: DateTime<Utc>,
}

impl Infrastructure {
    /// `InfrastructureConfigurationSummary` (ListInfrastructureConfigurations).
    pub fn summary_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "name": self.name,
            "dateCreated": api_time(self.created),
            "instanceTypes": self.instance_types,
            "instanceProfileName": self.instance_profile_name,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "name": self.name,
            "instanceTypes": self.instance_types,
            "instanceProfileName": self.instance_profile_name,
            "terminateInstanceOnFailure": true,
            "dateCreated": api_time(self.created),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Distribution {
    pub arn: String,
    pub name: String,
    pub regions: Vec<String>,
    pub ami_tags: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
}

impl Distribution {
    /// `DistributionConfigurationSummary` (ListDistributionConfigurations).
    pub fn summary_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "name": self.name,
            "dateCreated": api_time(self.created),
            "regions": self.regions,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "name": self.name,
            "distributions": self.regions.iter().map(|r| json!({
                "region": r,
                "amiDistributionConfiguration": {"amiTags": self.ami_tags},
            })).collect::<Vec<_>>(),
            // Required in the model; 720 is the service's default (and maximum).
            "timeoutMinutes": 720,
            "dateCreated": api_time(self.created),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub arn: String,
    pub name: String,
    pub description: Option<String>,
    pub recipe_arn: String,
    pub infrastructure_arn: String,
    pub distribution_arn: Option<String>,
    pub schedule: Option<Value>,
    pub enabled: bool,
    pub created: DateTime<Utc>,
    pub last_run: Option<DateTime<Utc>>,
    /// Consecutive failed scheduled builds (AutoDisablePolicy counts these).
    pub scheduled_failures: u32,
}

impl Pipeline {
    /// `schedule.autoDisablePolicy.failureCount`, if the pipeline has one.
    pub fn auto_disable_failures(&self) -> Option<u32> {
        self.schedule
            .as_ref()?
            .get("autoDisablePolicy")?
            .get("failureCount")?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
    }
}

impl Pipeline {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "arn": self.arn,
            "name": self.name,
            "description": self.description,
            "platform": "Linux",
            "enhancedImageMetadataEnabled": true,
            "imageRecipeArn": self.recipe_arn,
            "infrastructureConfigurationArn": self.infrastructure_arn,
            "distributionConfigurationArn": self.distribution_arn,
            "status": if self.enabled { "ENABLED" } else { "DISABLED" },
            "dateCreated": api_time(self.created),
            "dateUpdated": api_time(self.created),
            "imageTestsConfiguration": {"imageTestsEnabled": true, "timeoutMinutes": 720},
        });
        if let Some(s) = &self.schedule {
            v["schedule"] = s.clone();
        }
        if let Some(at) = self.last_run {
            v["dateLastRun"] = api_time(at).into();
        }
        v
    }
}

/// How a build will end. Chosen when it starts (from the pipeline's fault queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BuildPlan {
    #[default]
    Succeed,
    /// Reach `at` (e.g. TESTING), then go FAILED with `reason`.
    Fail { at: ImageState, reason: String },
    /// Reach `at`, then go CANCELLED (as if someone called CancelImageCreation).
    Cancel { at: ImageState },
}

/// The normal life of an image.
pub(crate) const LIFECYCLE: [ImageState; 5] = [
    ImageState::Pending,
    ImageState::Building,
    ImageState::Testing,
    ImageState::Distributing,
    ImageState::Available,
];

pub(crate) fn successor(state: ImageState) -> Option<ImageState> {
    let i = LIFECYCLE.iter().position(|s| *s == state)?;
    LIFECYCLE.get(i + 1).copied()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ami {
    pub region: String,
    pub image: String,
    pub name: String,
    #[serde(rename = "accountId")]
    pub account_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub arn: String,
    pub recipe: Recipe,
    pub build: u32,
    pub pipeline_arn: String,
    pub pipeline_name: String,
    pub infrastructure: Infrastructure,
    pub distribution: Option<Distribution>,
    pub regions: Vec<String>,
    pub state: ImageState,
    pub reason: Option<String>,
    pub created: DateTime<Utc>,
    pub plan: BuildPlan,
    pub amis: Vec<Ami>,
    pub account: String,
    pub user_initiated: bool,
    /// Every state with the time it was entered.
    pub history: Vec<(ImageState, DateTime<Utc>)>,
}

impl Image {
    pub fn version(&self) -> String {
        format!("{}/{}", self.recipe.version, self.build)
    }

    /// The image version ARN: the build version ARN without its build number.
    pub fn version_arn(&self) -> String {
        self.arn
            .rsplit_once('/')
            .map_or_else(|| self.arn.clone(), |(v, _)| v.to_owned())
    }

    /// The name ARN (`…/image/<name>/x.x.x`): what ListImages `byName` lists.
    pub fn name_arn(&self) -> String {
        let version = self.version_arn();
        version
            .rsplit_once('/')
            .map_or(version.clone(), |(n, _)| format!("{n}/x.x.x"))
    }

    /// `ImageVersion` (ListImages).
    pub fn version_json(&self) -> Value {
        json!({
            "arn": self.version_arn(),
            "name": self.recipe.name,
            "type": "AMI",
            "version": self.recipe.version,
            "platform": "Linux",
            "osVersion": "Linux",
            "owner": self.account,
            "dateCreated": api_time(self.created),
            "buildType": self.build_type(),
            "imageSource": "CUSTOM",
        })
    }

    fn state_json(&self) -> Value {
        let mut s = json!({"status": self.state.as_str()});
        if let Some(r) = &self.reason {
            s["reason"] = r.clone().into();
        }
        s
    }

    fn output_resources(&self) -> Value {
        json!({"amis": self.amis.iter().map(|a| json!({
            "region": a.region, "image": a.image, "name": a.name,
            "description": format!("Built by kiln's local Image Builder from {}", self.pipeline_name),
            "accountId": a.account_id,
        })).collect::<Vec<_>>()})
    }

    fn build_type(&self) -> &'static str {
        if self.user_initiated {
            "USER_INITIATED"
        } else {
            "SCHEDULED"
        }
    }

    /// `ImageSummary` (ListImagePipelineImages).
    pub fn summary_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "name": self.recipe.name,
            "type": "AMI",
            "version": self.version(),
            "platform": "Linux",
            "osVersion": "Linux",
            "state": self.state_json(),
            "owner": self.account,
            "dateCreated": api_time(self.created),
            "outputResources": self.output_resources(),
            "buildType": self.build_type(),
            "imageSource": "CUSTOM",
        })
    }

    /// `Image` (GetImage).
    pub fn image_json(&self) -> Value {
        let mut v = json!({
            "arn": self.arn,
            "type": "AMI",
            "name": self.recipe.name,
            "version": self.version(),
            "platform": "Linux",
            "enhancedImageMetadataEnabled": true,
            "osVersion": "Linux",
            "state": self.state_json(),
            "imageRecipe": self.recipe.to_json(),
            "infrastructureConfiguration": self.infrastructure.to_json(),
            "imageTestsConfiguration": {"imageTestsEnabled": true, "timeoutMinutes": 720},
            "dateCreated": api_time(self.created),
            "outputResources": self.output_resources(),
            "buildType": self.build_type(),
            "imageSource": "CUSTOM",
        });
        if let Some(d) = &self.distribution {
            v["distributionConfiguration"] = d.to_json();
        }
        // CreateImage builds come from no pipeline.
        if !self.pipeline_arn.is_empty() {
            v["sourcePipelineName"] = json!(self.pipeline_name);
            v["sourcePipelineArn"] = json!(self.pipeline_arn);
        }
        v
    }
}

/// A read-only view of a simulated image, for tests and `kiln dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    pub arn: String,
    pub pipeline_name: String,
    pub version: String,
    pub state: ImageState,
    pub reason: Option<String>,
    pub date_created: String,
    /// Region → AMI id, once AVAILABLE.
    pub amis: BTreeMap<String, String>,
    pub plan: BuildPlan,
}

impl From<&Image> for ImageView {
    fn from(i: &Image) -> Self {
        ImageView {
            arn: i.arn.clone(),
            pipeline_name: i.pipeline_name.clone(),
            version: i.version(),
            state: i.state,
            reason: i.reason.clone(),
            date_created: api_time(i.created),
            amis: i
                .amis
                .iter()
                .map(|a| (a.region.clone(), a.image.clone()))
                .collect(),
            plan: i.plan.clone(),
        }
    }
}
