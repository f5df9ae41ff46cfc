//! Per-preset image resources: components, recipe, build infrastructure, distribution
//! and the scheduled pipeline.

use kiln_shared::Preset;
use kiln_shared::preset::BaseImage;
use serde_json::{Map, Value, json};

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

/// Root device of the base image, so `disk_size_gb` resizes it instead of adding a disk.
fn root_device(base: &BaseImage) -> &'static str {
    match base {
        BaseImage::Alias(alias) if alias.starts_with("ubuntu") => "/dev/sda1",
        _ => "/dev/xvda",
    }
}

pub(super) fn resources(
    p: &Preset,
    stem: &str,
    resources: &mut Map<String, Value>,
) -> Result<(), SynthError> {
    let version = p.semantic_version();
    let tags = preset_tags(p);
    let mut component_refs = Vec::new();
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
        insert_new(
            resources,
            id.clone(),
            json!({
                "Type": "AWS::ImageBuilder::Component",
                "Properties": {
                    "Name": sub(format!("${{Prefix}}-{}-{}", p.name, doc.kind.as_str())),
                    "Description": format!("kiln {} for preset {}", doc.kind.description(), p.name),
                    "Platform": "Linux",
                    "Version": version,
                    "Data": data,
                    "Tags": tags,
                },
            }),
        )?;
        component_refs.push(json!({ "ComponentArn": reference(&id) }));
    }

    let mut recipe = json!({
        "Name": sub(format!("${{Prefix}}-{}", p.name)),
        "Description": p.description.clone().unwrap_or_else(|| format!("kiln preset {}", p.name)),
        "Version": version,
        "ParentImage": p.base_image.parent_image(p.architecture),
        "Components": component_refs,
        "WorkingDirectory": "/tmp",
        "Tags": tags,
    });
    if let Some(size) = p.disk_size_gb {
        recipe["BlockDeviceMappings"] = json!([{
            "DeviceName": root_device(&p.base_image),
            "Ebs": {
                "VolumeSize": size,
                "VolumeType": "gp3",
                "DeleteOnTermination": true,
                "Encrypted": true,
            },
        }]);
    }
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
                    // Rebuild on schedule even when nothing changed: base images get patches.
                    "PipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
                },
                "Tags": tags,
            },
        }),
    )?;
    Ok(())
}
