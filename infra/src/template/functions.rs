//! The four Lambdas: name, size, environment, log group, and the status origin's
//! public Function URL.

use serde_json::{Map, Value, json};

use super::cfn::{get_att, reference, state_table_name, sub};
use super::iam::{self, Scope};

/// One of the four Lambdas.
pub(super) struct Function {
    /// Logical id stem (`AmiUpdate`).
    pub(super) id: &'static str,
    /// Binary / function-name suffix (`ami-update`).
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) timeout: u32,
    pub(super) memory: u32,
}

pub(super) const AMI_UPDATE: Function = Function {
    id: "AmiUpdate",
    name: "ami-update",
    description: "kiln: applies Image Builder state changes to DynamoDB and SSM",
    timeout: 60,
    memory: 256,
};
pub(super) const RECONCILE: Function = Function {
    id: "Reconcile",
    name: "reconcile",
    description: "kiln: heals building records whose events were lost",
    timeout: 300,
    memory: 256,
};
pub(super) const STATUS_ORIGIN: Function = Function {
    id: "StatusOrigin",
    name: "status-origin",
    description: "kiln: signed status origin for the edge Worker",
    timeout: 30,
    memory: 256,
};
pub(super) const PRESET_INIT: Function = Function {
    id: "PresetInit",
    name: "preset-init",
    description: "kiln: deploy-time custom resource writing presets, records and runner configs",
    timeout: 300,
    memory: 256,
};
pub(super) const FUNCTIONS: [&Function; 4] =
    [&AMI_UPDATE, &RECONCILE, &STATUS_ORIGIN, &PRESET_INIT];

impl Function {
    pub(super) fn resource(&self) -> String {
        format!("{}Function", self.id)
    }
    pub(super) fn role(&self) -> String {
        format!("{}Role", self.id)
    }
    pub(super) fn log_group(&self) -> String {
        format!("{}LogGroup", self.id)
    }
    pub(super) fn code_key_parameter(&self) -> String {
        format!("{}CodeKey", self.id)
    }
    /// Signs or verifies with the edge secret: status-origin (requests, responses),
    /// ami-update and reconcile (pushes). preset-init never talks to the edge.
    pub(super) fn signs(&self) -> bool {
        self.id != PRESET_INIT.id
    }
}

/// Names and meanings as `kiln_lambdas::config::Config::from_env` reads them.
fn environment(f: &Function) -> Value {
    let mut vars = Map::new();
    vars.insert("KILN_TABLE".into(), state_table_name());
    vars.insert("KILN_PREFIX".into(), reference("Prefix"));
    vars.insert("RUST_LOG".into(), json!("info"));
    // Empty means "no pushes": the Lambdas treat a blank variable as unset.
    vars.insert("KILN_EDGE_URL".into(), reference("EdgeUrl"));
    // The secret that verifies the edge's requests (status-origin) and signs responses
    // and pushes to /ingest: only its ARN, the value is read at init.
    if f.signs() {
        vars.insert("KILN_EDGE_SECRET_ARN".into(), reference("EdgeSecretArn"));
    }
    // Warning transitions (raised, cleared) go to the topic failed builds notify.
    if f.id == "Reconcile" {
        vars.insert(
            "KILN_ALERTS_TOPIC_ARN".into(),
            reference("FailedBuildsTopic"),
        );
    }
    if matches!(f.id, "Reconcile" | "StatusOrigin") {
        vars.insert(
            "KILN_STALE_AFTER_MINUTES".into(),
            reference("ReconcileThresholdMinutes"),
        );
    }
    json!({ "Variables": vars })
}

/// Log group, role and function of every Lambda.
pub(super) fn resources(scope: &Scope, resources: &mut Map<String, Value>) {
    for f in FUNCTIONS {
        resources.insert(
            f.log_group(),
            json!({
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Properties": {
                    "LogGroupName": sub(format!("/aws/lambda/${{Prefix}}-{}", f.name)),
                    "RetentionInDays": reference("LogRetentionDays"),
                },
            }),
        );
        resources.insert(f.role(), iam::lambda_role(f, scope));
        let mut function = json!({
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": sub(format!("${{Prefix}}-{}", f.name)),
                    "Description": f.description,
                    "Runtime": "provided.al2023",
                    "Architectures": ["arm64"],
                    "Handler": "bootstrap",
                    "MemorySize": f.memory,
                    "Timeout": f.timeout,
                    "Role": get_att(&f.role(), "Arn"),
                    "Code": {
                        "S3Bucket": reference("CodeBucket"),
                        "S3Key": reference(&f.code_key_parameter()),
                    },
                    "Environment": environment(f),
                    "LoggingConfig": { "LogGroup": reference(&f.log_group()), "LogFormat": "JSON" },
                },
        });
        if f.id == STATUS_ORIGIN.id {
            // Anyone on the internet can invoke it: its concurrency (and so its cost and
            // its share of DynamoDB) has a ceiling that leaves the account's other
            // functions alone.
            function["Properties"]["ReservedConcurrentExecutions"] = json!({
                "Fn::If": [
                    "HasStatusOriginReservedConcurrency",
                    reference("StatusOriginReservedConcurrency"),
                    reference("AWS::NoValue"),
                ],
            });
        }
        resources.insert(f.resource(), function);
    }
}

/// The status origin's public URL and the permissions that expose it.
pub(super) fn status_origin_url(resources: &mut Map<String, Value>) {
    // Public URL, no IAM auth: every request is HMAC-verified inside the function.
    resources.insert(
        "StatusOriginUrl".into(),
        json!({
            "Type": "AWS::Lambda::Url",
            "Properties": {
                "TargetFunctionArn": get_att(&STATUS_ORIGIN.resource(), "Arn"),
                "AuthType": "NONE",
            },
        }),
    );
    resources.insert(
        "StatusOriginUrlPermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunctionUrl",
                "FunctionName": get_att(&STATUS_ORIGIN.resource(), "Arn"),
                "Principal": "*",
                "FunctionUrlAuthType": "NONE",
            },
        }),
    );
    // Since October 2025 a new function URL also needs lambda:InvokeFunction; scoped to
    // invocations through the URL, so the public cannot call the Invoke API.
    resources.insert(
        "StatusOriginUrlInvokePermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": get_att(&STATUS_ORIGIN.resource(), "Arn"),
                "Principal": "*",
                "InvokedViaFunctionUrl": true,
            },
        }),
    );
}
