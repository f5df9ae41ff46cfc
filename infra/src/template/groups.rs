//! Nested stacks of presets: which group a preset belongs to, the group's template
//! (its presets' image resources and its own preset-init custom resource) and the
//! core's `AWS::CloudFormation::Stack` resource that deploys it.
//!
//! A preset's group is a fixed bucket chosen by a hash of its name alone, never by
//! position or count: adding, removing or changing other presets never moves it. Moving
//! would create its pipeline and components (fixed names) in the new nested stack
//! before CloudFormation deletes them from the old one ("already exists").
//! [`BUCKETS`] is therefore part of the deployed layout: changing it moves presets.

use kiln_shared::Preset;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::cfn::{get_att, insert_new, reference, sub};
use super::functions::PRESET_INIT;
use super::ids::LogicalIds;
use super::{SynthError, pipelines, stack};

/// How many groups presets are spread over. With 1,000 presets the fullest group
/// holds about 30 (at most 7 resources each): far under 500 resources per template.
pub const BUCKETS: u32 = 64;

/// How long CloudFormation waits for preset-init's answer (its Lambda timeout).
pub const SERVICE_TIMEOUT_SECS: u32 = 300;

/// Core resources each nested stack waits for: the rule (with its invoke permission)
/// that delivers the first builds' events. The table comes first without being named:
/// the stack takes preset-init's ARN, and that function's `KILN_TABLE` refers to the
/// table (a `DependsOn` on the conditional `StateTable` would not validate when a kept
/// table is adopted).
pub(super) const NESTED_DEPENDS_ON: [&str; 2] =
    ["AmiUpdateInvokePermission", "ImageStateChangeRule"];

/// The parameters the core hands every nested stack, in the core's terms.
fn nested_parameters() -> Value {
    json!({
        "Prefix": reference("Prefix"),
        "PresetInitFunctionArn": get_att(&PRESET_INIT.resource(), "Arn"),
        "ImageBuilderInstanceProfile": reference("ImageBuilderInstanceProfile"),
        "BuildSubnetId": reference("BuildSubnetId"),
        "BuildSecurityGroupIds": reference("BuildSecurityGroupIds"),
    })
}

/// The group (`0..BUCKETS`) of a preset name: the first four bytes of its SHA-256.
pub fn bucket(name: &str) -> u32 {
    let digest = Sha256::digest(name.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % BUCKETS
}

/// The core's logical id of a group's nested stack (`PresetGroup07`).
pub fn logical_id(bucket: u32) -> String {
    format!("PresetGroup{bucket:02}")
}

/// The file (and S3 object name) of a group's template (`presets-07.template.json`).
pub fn file_name(bucket: u32) -> String {
    format!("presets-{bucket:02}.template.json")
}

/// `kiln/<sha256>/<file>`: where a group's template lives in the artifacts bucket,
/// decided by its content, so an unchanged group keeps its URL (and CloudFormation
/// leaves its nested stack alone) while a changed one always gets a new one.
pub fn content_key(text: &str, file: &str) -> String {
    format!(
        "kiln/{}/{file}",
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

/// The nested stack resource of the core for a group whose template is at `key` in
/// the artifacts bucket (the `CodeBucket` parameter).
pub(super) fn nested_stack(key: &str) -> Value {
    json!({
        "Type": "AWS::CloudFormation::Stack",
        "DependsOn": NESTED_DEPENDS_ON,
        "Properties": {
            "TemplateURL": sub(format!("https://${{CodeBucket}}.s3.${{AWS::Region}}.${{AWS::URLSuffix}}/{key}")),
            "Parameters": nested_parameters(),
        },
    })
}

/// The core's optional build network: every infrastructure configuration uses it when
/// set, so builds do not need a default VPC.
pub(super) fn build_network_parameters(parameters: &mut Value) {
    parameters["BuildSubnetId"] = json!({
        "Type": "String",
        "Default": "",
        "AllowedPattern": "^(subnet-[0-9a-f]+)?$",
        "Description": "Subnet of Image Builder's build and test instances (it needs a route to the internet or VPC endpoints for SSM and S3). Empty: the default VPC.",
    });
    parameters["BuildSecurityGroupIds"] = json!({
        "Type": "String",
        "Default": "",
        "AllowedPattern": "^(sg-[0-9a-f]+(,sg-[0-9a-f]+)*)?$",
        "Description": "Comma-separated security groups of build instances (required with BuildSubnetId; outbound HTTPS at least). Empty: the VPC's default.",
    });
}

/// Image Builder refuses a subnet without security groups: say so before any resource.
pub(super) fn rules() -> Value {
    json!({
        "SecurityGroupsWithSubnet": {
            "RuleCondition": { "Fn::Not": [{ "Fn::Equals": [reference("BuildSubnetId"), ""] }] },
            "Assertions": [{
                "Assert": { "Fn::Not": [{ "Fn::Equals": [reference("BuildSecurityGroupIds"), ""] }] },
                "AssertDescription": "BuildSecurityGroupIds is required when BuildSubnetId is set",
            }],
        },
    })
}

fn group_parameters() -> Value {
    json!({
        "Prefix": {
            "Type": "String",
            "AllowedPattern": "^[a-z][a-z0-9-]{0,29}$",
            "Description": "The core stack's Prefix.",
        },
        "PresetInitFunctionArn": {
            "Type": "String",
            "Description": "The core stack's preset-init function (the custom resource's ServiceToken).",
        },
        "ImageBuilderInstanceProfile": {
            "Type": "String",
            "Description": "The core stack's instance profile of build and test instances.",
        },
        "BuildSubnetId": {
            "Type": "String",
            "Default": "",
            "Description": "Subnet of build instances; empty: the default VPC.",
        },
        "BuildSecurityGroupIds": {
            "Type": "String",
            "Default": "",
            "Description": "Comma-separated security groups of build instances; empty: the VPC's default.",
        },
    })
}

/// The custom resource applying this group's presets; the only one that knows them.
fn preset_init(bucket: u32, presets: &[&Preset], ids: &LogicalIds) -> Value {
    // Each pipeline's ARN, so no kiln role needs ListImagePipelines (which cannot be
    // scoped to resources). The GetAtt also orders the pipelines before preset-init
    // starts their first builds.
    let pipelines: Map<String, Value> = presets
        .iter()
        .map(|p| (p.name.clone(), get_att(&ids.pipeline(p), "Arn")))
        .collect();
    let owned: Vec<Preset> = presets.iter().map(|p| (*p).clone()).collect();
    json!({
        "Type": "Custom::KilnPresets",
        "Properties": {
            "ServiceToken": reference("PresetInitFunctionArn"),
            "ServiceTimeout": SERVICE_TIMEOUT_SECS,
            "Prefix": reference("Prefix"),
            // Marks a group's resource: its Delete removes the group's presets.
            "Group": logical_id(bucket),
            "Presets": stack::presets_property(&owned),
            "Pipelines": pipelines,
        },
    })
}

/// A group's whole template.
pub(super) fn template(bucket: u32, presets: &[&Preset]) -> Result<Value, SynthError> {
    let owned: Vec<Preset> = presets.iter().map(|p| (*p).clone()).collect();
    let ids = LogicalIds::new(&owned);
    let mut resources = Map::new();
    for p in presets {
        pipelines::resources(p, ids.stem(p), &mut resources)?;
    }
    insert_new(
        &mut resources,
        "PresetInit".into(),
        preset_init(bucket, presets, &ids),
    )?;
    if resources.len() > super::MAX_RESOURCES {
        return Err(SynthError::TooManyResources {
            template: file_name(bucket),
            count: resources.len(),
        });
    }
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    let mut description = format!("kiln: presets {}", names.join(", "));
    if description.len() > 1024 {
        description = format!("kiln: {} presets (group {bucket:02})", presets.len());
    }
    Ok(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": group_parameters(),
        "Conditions": pipelines::conditions(),
        "Resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_depends_on_the_name_alone() {
        assert_eq!(bucket("linux-x64"), bucket("linux-x64"));
        assert!((0..1000).all(|i| bucket(&format!("p-{i}")) < BUCKETS));
        // Spread: 1,000 names reach nearly every bucket.
        let used: std::collections::BTreeSet<u32> =
            (0..1000).map(|i| bucket(&format!("p-{i}"))).collect();
        assert!(used.len() > 60, "{}", used.len());
        // A known value: changing the hash or BUCKETS moves every deployed preset.
        assert_eq!(bucket("linux-x64"), {
            let d = Sha256::digest(b"linux-x64");
            u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 64
        });
    }

    #[test]
    fn keys_follow_the_content() {
        let a = content_key("{}", "presets-01.template.json");
        assert!(a.starts_with("kiln/") && a.ends_with("/presets-01.template.json"));
        assert_eq!(a, content_key("{}", "presets-01.template.json"));
        assert_ne!(a, content_key("{ }", "presets-01.template.json"));
    }
}
