//! Stack-wide pieces: the state table, the presets as preset-init reads them, the
//! outputs and the description.

use kiln_shared::Preset;
use serde_json::{Map, Value, json};

use super::RECORD_TYPE_INDEX;
use super::cfn::{get_att, reference, state_table_name, sub};

/// The DynamoDB table every function reads and writes.
pub(super) fn state_table(resources: &mut Map<String, Value>) {
    resources.insert(
        "StateTable".into(),
        json!({
            "Type": "AWS::DynamoDB::Table",
            // Absent when a table kept by an earlier stack is adopted instead.
            "Condition": "CreateStateTable",
            // Build history outlives the stack, but a failed first create takes its
            // empty table with it, so the retry does not meet "already exists".
            "DeletionPolicy": "RetainExceptOnCreate",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "TableName": sub("${Prefix}-state"),
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    { "AttributeName": "jobId", "AttributeType": "S" },
                    { "AttributeName": "recordType", "AttributeType": "S" },
                ],
                "KeySchema": [{ "AttributeName": "jobId", "KeyType": "HASH" }],
                "GlobalSecondaryIndexes": [{
                    "IndexName": RECORD_TYPE_INDEX,
                    "KeySchema": [
                        { "AttributeName": "recordType", "KeyType": "HASH" },
                        { "AttributeName": "jobId", "KeyType": "RANGE" },
                    ],
                    "Projection": { "ProjectionType": "ALL" },
                }],
                "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": true },
                "SSESpecification": { "SSEEnabled": true },
            },
        }),
    );
}

/// Presets as handed to preset-init: file names without the directory they were read
/// from, so the property (and the template) does not depend on the working directory.
pub fn presets_property(presets: &[Preset]) -> String {
    let portable: Vec<Preset> = presets
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.source_file = std::path::Path::new(&p.source_file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            p
        })
        .collect();
    serde_json::to_string(&portable).expect("presets serialise")
}

pub(super) fn outputs() -> Value {
    json!({
        "StatusOriginUrl": {
            "Description": "The status origin's Function URL: the Worker's ORIGIN_URL.",
            "Value": get_att("StatusOriginUrl", "FunctionUrl"),
        },
        "TableName": {
            "Description": "The state table (kiln list --table).",
            "Value": state_table_name(),
        },
        "Prefix": {
            "Description": "Name prefix (kiln --prefix).",
            "Value": reference("Prefix"),
        },
        "FailedBuildsTopicArn": {
            "Description": "SNS topic notified of failed or cancelled builds.",
            "Value": reference("FailedBuildsTopic"),
        },
        "EventsDeadLetterQueueUrl": {
            "Description": "Undeliverable events; should stay empty.",
            "Value": reference("EventsDeadLetterQueue"),
        },
    })
}

pub(super) fn description(presets: &[Preset]) -> String {
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    let description = format!(
        "kiln: image pipelines, state and status for presets {}",
        names.join(", ")
    );
    // CloudFormation refuses a description over 1024 bytes.
    if description.len() > 1024 {
        return format!(
            "kiln: image pipelines, state and status for {} presets",
            presets.len()
        );
    }
    description
}
