//! Recipes, infrastructure and distribution configurations, pipelines: creation with the
//! service's validation rules, and the one-call pipeline registration for tests.

use std::collections::BTreeMap;

use chrono::Utc;
use kiln_shared::Architecture;
use kiln_shared::region::valid_region;
use serde_json::Value;

use super::engine::Shared;
use super::model::{Distribution, Infrastructure, Pipeline, Recipe};
use super::{ImageBuilderError, PipelineSpec};

impl Shared {
    pub(super) fn pipeline_arn_by_name(&self, name: &str) -> Result<String, ImageBuilderError> {
        self.lock()
            .pipelines
            .values()
            .find(|p| p.name == name)
            .map(|p| p.arn.clone())
            .ok_or_else(|| ImageBuilderError::NotFound(format!("no image pipeline named '{name}'")))
    }

    pub(super) fn create_recipe(
        &self,
        name: &str,
        version: &str,
        parent_image: &str,
        components: Vec<String>,
        description: Option<String>,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid recipe name '{name}': 1-128 letters, digits, '-', '_'"
            )));
        }
        if !valid_semver(version) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid semanticVersion '{version}': expected <major>.<minor>.<patch>"
            )));
        }
        if parent_image.is_empty() {
            return Err(ImageBuilderError::Invalid("parentImage is required".into()));
        }
        let arn = self.arn("image-recipe", &format!("{}/{version}", arn_name(name)));
        let mut st = self.lock();
        if st.recipes.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "image recipe {arn} already exists"
            )));
        }
        st.recipes.insert(
            arn.clone(),
            Recipe {
                arn: arn.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                parent_image: parent_image.to_owned(),
                components,
                description,
                created: Utc::now(),
            },
        );
        Ok(arn)
    }

    pub(super) fn create_infrastructure(
        &self,
        name: &str,
        instance_types: Vec<String>,
        instance_profile_name: &str,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid infrastructure configuration name '{name}'"
            )));
        }
        if instance_profile_name.is_empty() {
            return Err(ImageBuilderError::Invalid(
                "instanceProfileName is required".into(),
            ));
        }
        let arn = self.arn("infrastructure-configuration", &arn_name(name));
        let mut st = self.lock();
        if st.infrastructures.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "infrastructure configuration {arn} already exists"
            )));
        }
        st.infrastructures.insert(
            arn.clone(),
            Infrastructure {
                arn: arn.clone(),
                name: name.to_owned(),
                instance_types,
                instance_profile_name: instance_profile_name.to_owned(),
                created: Utc::now(),
            },
        );
        Ok(arn)
    }

    pub(super) fn create_distribution(
        &self,
        name: &str,
        regions: Vec<String>,
        ami_tags: BTreeMap<String, String>,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid distribution configuration name '{name}'"
            )));
        }
        if regions.is_empty() {
            return Err(ImageBuilderError::Invalid(
                "distributions must name at least one region".into(),
            ));
        }
        if let Some(bad) = regions.iter().find(|r| !valid_region(r)) {
            return Err(ImageBuilderError::Invalid(format!(
                "'{bad}' is not a region name"
            )));
        }
        let arn = self.arn("distribution-configuration", &arn_name(name));
        let mut st = self.lock();
        if st.distributions.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "distribution configuration {arn} already exists"
            )));
        }
        st.distributions.insert(
            arn.clone(),
            Distribution {
                arn: arn.clone(),
                name: name.to_owned(),
                regions,
                ami_tags,
                created: Utc::now(),
            },
        );
        Ok(arn)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_pipeline(
        &self,
        name: &str,
        description: Option<String>,
        recipe_arn: &str,
        infrastructure_arn: &str,
        distribution_arn: Option<&str>,
        schedule: Option<Value>,
        enabled: bool,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid pipeline name '{name}': 1-128 letters, digits, '-', '_'"
            )));
        }
        let arn = self.arn("image-pipeline", &arn_name(name));
        let mut st = self.lock();
        if !st.recipes.contains_key(recipe_arn) {
            return Err(ImageBuilderError::Invalid(format!(
                "imageRecipeArn {recipe_arn} does not exist"
            )));
        }
        if !st.infrastructures.contains_key(infrastructure_arn) {
            return Err(ImageBuilderError::Invalid(format!(
                "infrastructureConfigurationArn {infrastructure_arn} does not exist"
            )));
        }
        if let Some(d) = distribution_arn
            && !st.distributions.contains_key(d)
        {
            return Err(ImageBuilderError::Invalid(format!(
                "distributionConfigurationArn {d} does not exist"
            )));
        }
        if st.pipelines.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "image pipeline {arn} already exists"
            )));
        }
        st.pipelines.insert(
            arn.clone(),
            Pipeline {
                arn: arn.clone(),
                name: name.to_owned(),
                description,
                recipe_arn: recipe_arn.to_owned(),
                infrastructure_arn: infrastructure_arn.to_owned(),
                distribution_arn: distribution_arn.map(str::to_owned),
                schedule,
                enabled,
                created: Utc::now(),
                last_run: None,
                scheduled_failures: 0,
            },
        );
        Ok(arn)
    }

    pub(super) fn register_pipeline(
        &self,
        spec: PipelineSpec,
    ) -> Result<String, ImageBuilderError> {
        let regions = if spec.regions.is_empty() {
            vec![self.region.clone()]
        } else {
            spec.regions.clone()
        };
        let recipe_name = spec
            .recipe_name
            .clone()
            .unwrap_or_else(|| spec.name.clone());
        let version = spec
            .recipe_version
            .clone()
            .unwrap_or_else(|| "1.0.0".to_owned());
        if !valid_name(&spec.name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid pipeline name '{}'",
                spec.name
            )));
        }
        if self.pipeline_arn_by_name(&spec.name).is_ok() {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "image pipeline '{}' already exists",
                spec.name
            )));
        }
        let arch = spec.architecture.unwrap_or(Architecture::X86_64);
        let parent = format!(
            "arn:aws:imagebuilder:{}:aws:image/ubuntu-server-22-lts-{}/x.x.x",
            self.region,
            if arch == Architecture::Arm64 {
                "arm64"
            } else {
                "x86"
            }
        );
        let instance = if arch == Architecture::Arm64 {
            "m7g.large"
        } else {
            "m7i.large"
        };
        let recipe = self.create_recipe(&recipe_name, &version, &parent, vec![], None)?;
        let infra = self.create_infrastructure(
            &format!("{}-infra", spec.name),
            vec![instance.to_owned()],
            "kiln-image-builder",
        )?;
        let dist = self.create_distribution(
            &format!("{}-dist", spec.name),
            regions,
            spec.ami_tags.clone(),
        )?;
        self.create_pipeline(
            &spec.name,
            Some(format!("kiln local pipeline {}", spec.name)),
            &recipe,
            &infra,
            Some(&dist),
            spec.schedule.clone(),
            true,
        )
    }
}

fn valid_name(name: &str) -> bool {
    // Image Builder's resource name pattern: letters, digits, '-', '_' (and inner spaces).
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b' ')
        && !name.starts_with(' ')
        && !name.ends_with(' ')
}

fn valid_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u32>().is_ok())
}

/// ARN resource names are lower case, spaces as dashes (as Image Builder does).
pub(super) fn arn_name(name: &str) -> String {
    name.to_ascii_lowercase().replace(' ', "-")
}
