//! Per-preset image resources: components, recipe, build infrastructure, distribution
//! and the scheduled pipeline.

use kiln_shared::Preset;
use kiln_shared::preset::BaseImage;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::cfn::insert_new;
use super::cfn::{reference, sub};
use super::{SynthError, TAG_ARCHITECTURE, TAG_PREFIX, TAG_PRESET, TAG_TEMPLATE, component};

fn preset_tags(p: &Preset) -> Value {
    json!({
        TAG_PRESET: p.name,
        TAG_PREFIX: reference("Prefix"),
        TAG_ARCHITECTURE: p.architecture.as_str(),
        TAG_TEMPLATE: p.template,
    })
}

/// Root device of the base image, so `disk_size_gb` resizes it instead of adding a disk:
/// Ubuntu's cloud images use `/dev/sda1`, Amazon Linux `/dev/xvda`; an explicit AMI says
/// its own (`root_device_name`, required by validation when it matters).
fn root_device(p: &Preset) -> &str {
    match (&p.base_image, &p.root_device_name) {
        (BaseImage::Ami(_), Some(device)) => device,
        (BaseImage::Alias(alias), _) if alias.starts_with("ubuntu") => "/dev/sda1",
        _ => "/dev/xvda",
    }
}

/// The components' and the recipe's shared `Version`: `1.0.<n>` (`n < 2^30`, Image
/// Builder's per-field limit) from a hash of everything rendered into them, with the
/// renderer's own version. Every property of both is create-only, and Name + Version must
/// be new for each replacement: hashing the preset alone would let a kiln upgrade that
/// renders a component differently reuse a version ("already exists" on update).
fn rendered_version<'a>(rendered: impl Iterator<Item = &'a Value>) -> String {
    let mut hash = Sha256::new();
    hash.update(concat!("kiln-infra/", env!("CARGO_PKG_VERSION")).as_bytes());
    for properties in rendered {
        // serde_json's maps are sorted: the same properties always give the same bytes.
        hash.update(serde_json::to_vec(properties).expect("template JSON serialises"));
    }
    let digest = hash.finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & ((1 << 30) - 1);
    format!("1.0.{n}")
}

const HAS_BUILD_SUBNET: &str = "HasBuildSubnet";
const HAS_BUILD_SECURITY_GROUPS: &str = "HasBuildSecurityGroups";

/// The conditions the infrastructure configurations use (parameters `BuildSubnetId`
/// and `BuildSecurityGroupIds`, empty when unset).
pub(super) fn conditions() -> Value {
    json!({
        HAS_BUILD_SUBNET: { "Fn::Not": [{ "Fn::Equals": [reference("BuildSubnetId"), ""] }] },
        HAS_BUILD_SECURITY_GROUPS: { "Fn::Not": [{ "Fn::Equals": [reference("BuildSecurityGroupIds"), ""] }] },
    })
}

pub(super) fn resources(
    p: &Preset,
    stem: &str,
    resources: &mut Map<String, Value>,
) -> Result<(), SynthError> {
    let tags = preset_tags(p);
    let mut components = Vec::new();
    for doc in component::documents(p) {
        let data = doc.render();
        let len = component::data_len(&data);
        if len > component::MAX_DATA_CHARS {
            return Err(SynthError::ComponentTooLarge {
                file: p.source_file.clone(),
                preset: p.name.clone(),
                component: doc.kind.as_str(),
                len,
                max: component::MAX_DATA_CHARS,
            });
        }
        let id = format!("{stem}{}Component", doc.kind.logical_suffix());
        let properties = json!({
            "Name": sub(format!("${{Prefix}}-{}-{}", p.name, doc.kind.as_str())),
            "Description": format!("kiln {} for preset {}", doc.kind.description(), p.name),
            "Platform": "Linux",
            "Data": data,
            "Tags": tags,
        });
        components.push((id, properties));
    }
    let component_refs: Vec<Value> = components
        .iter()
        .map(|(id, _)| json!({ "ComponentArn": reference(id) }))
        .collect();

    let mut recipe = json!({
        "Name": sub(format!("${{Prefix}}-{}", p.name)),
        "Description": p.description.clone().unwrap_or_else(|| format!("kiln preset {}", p.name)),
        "ParentImage": p.base_image.parent_image(p.architecture),
        "Components": component_refs,
        "WorkingDirectory": "/tmp",
        "Tags": tags,
    });
    if let Some(size) = p.disk_size_gb {
        recipe["BlockDeviceMappings"] = json!([{
            "DeviceName": root_device(p),
            "Ebs": {
                "VolumeSize": size,
                "VolumeType": "gp3",
                "DeleteOnTermination": true,
                "Encrypted": true,
            },
        }]);
    }

    let version = rendered_version(components.iter().map(|(_, c)| c).chain([&recipe]));
    for (id, mut properties) in components {
        properties["Version"] = json!(version);
        insert_new(
            resources,
            id,
            json!({ "Type": "AWS::ImageBuilder::Component", "Properties": properties }),
        )?;
    }
    recipe["Version"] = json!(version);
    insert_new(
        resources,
        format!("{stem}Recipe"),
        json!({ "Type": "AWS::ImageBuilder::ImageRecipe", "Properties": recipe }),
    )?;

    insert_new(
        resources,
        format!("{stem}Infrastructure"),
        json!({
            "Type": "AWS::ImageBuilder::InfrastructureConfiguration",
            "Properties": {
                "Name": sub(format!("${{Prefix}}-{}", p.name)),
                "Description": format!("kiln build instances for preset {}", p.name),
                "InstanceProfileName": reference("ImageBuilderInstanceProfile"),
                "InstanceTypes": p.build_instance_types,
                "TerminateInstanceOnFailure": true,
                // IMDSv2 only; hop limit 2 so containers on the build host reach it.
                "InstanceMetadataOptions": { "HttpTokens": "required", "HttpPutResponseHopLimit": 2 },
                // The deployment's own network when given; else the default VPC.
                "SubnetId": {
                    "Fn::If": [HAS_BUILD_SUBNET, reference("BuildSubnetId"), reference("AWS::NoValue")],
                },
                "SecurityGroupIds": {
                    "Fn::If": [
                        HAS_BUILD_SECURITY_GROUPS,
                        { "Fn::Split": [",", reference("BuildSecurityGroupIds")] },
                        reference("AWS::NoValue"),
                    ],
                },
                "ResourceTags": tags,
                "Tags": tags,
            },
        }),
    )?;

    let regions: Vec<Value> = if p.regions.is_empty() {
        vec![reference("AWS::Region")]
    } else {
        p.regions.iter().map(|r| json!(r)).collect()
    };
    let distributions: Vec<Value> = regions
        .into_iter()
        .map(|region| {
            json!({
                "Region": region,
                "AmiDistributionConfiguration": {
                    "Name": sub(format!("${{Prefix}}-{}-{{{{ imagebuilder:buildDate }}}}", p.name)),
                    "Description": format!("kiln preset {}", p.name),
                    "AmiTags": tags,
                },
            })
        })
        .collect();
    insert_new(
        resources,
        format!("{stem}Distribution"),
        json!({
            "Type": "AWS::ImageBuilder::DistributionConfiguration",
            "Properties": {
                "Name": sub(format!("${{Prefix}}-{}", p.name)),
                "Description": format!("kiln distribution for preset {}", p.name),
                "Distributions": distributions,
                "Tags": tags,
            },
        }),
    )?;

    insert_new(
        resources,
        format!("{stem}Pipeline"),
        json!({
            "Type": "AWS::ImageBuilder::ImagePipeline",
            "Properties": {
                "Name": sub(format!("${{Prefix}}-{}", p.name)),
                "Description": format!("kiln pipeline for preset {}", p.name),
                "ImageRecipeArn": reference(&format!("{stem}Recipe")),
                "InfrastructureConfigurationArn": reference(&format!("{stem}Infrastructure")),
                "DistributionConfigurationArn": reference(&format!("{stem}Distribution")),
                "Status": "ENABLED",
                "EnhancedImageMetadataEnabled": true,
                "ImageTestsConfiguration": { "ImageTestsEnabled": true, "TimeoutMinutes": 60 },
                "Schedule": {
                    "ScheduleExpression": p.schedule,
                    // By default rebuild on schedule even when nothing changed (base
                    // images get patches); `rebuild_on_dependency_updates` builds only
                    // when the base image or a component has a newer version.
                    "PipelineExecutionStartCondition": if p.rebuild_on_dependency_updates {
                        "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE"
                    } else {
                        "EXPRESSION_MATCH_ONLY"
                    },
                    // Explicit, so the behaviour is in the template, not a service
                    // default: after this many consecutive failed scheduled builds
                    // Image Builder disables the pipeline (reconcile reports it).
                    "AutoDisablePolicy": { "FailureCount": AUTO_DISABLE_FAILURES },
                },
                "Tags": tags,
            },
        }),
    )?;
    Ok(())
}

/// Consecutive failed scheduled builds after which Image Builder disables a pipeline.
pub const AUTO_DISABLE_FAILURES: u32 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_every_rendered_property() {
        let component = json!({ "Name": "p-setup", "Data": "phases: []", "Platform": "Linux" });
        let recipe = json!({ "Name": "p", "ParentImage": "ami-1", "WorkingDirectory": "/tmp" });
        let base = rendered_version([&component, &recipe].into_iter());
        assert_eq!(base, rendered_version([&component, &recipe].into_iter()));
        assert!(base.starts_with("1.0."), "{base}");
        // A renderer that writes a different document for the same preset.
        let mut rerendered = component.clone();
        rerendered["Data"] = json!("phases: [{name: build}]");
        assert_ne!(base, rendered_version([&rerendered, &recipe].into_iter()));
        let mut moved = recipe.clone();
        moved["WorkingDirectory"] = json!("/var/tmp");
        assert_ne!(base, rendered_version([&component, &moved].into_iter()));
    }
}
