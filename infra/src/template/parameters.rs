//! The template's parameters: every value a deployment chooses.

use serde_json::{Map, Value, json};

use super::SynthOptions;
use super::functions::FUNCTIONS;

pub(super) fn parameters(opts: &SynthOptions) -> Value {
    let mut p = Map::new();
    p.insert(
        "Prefix".into(),
        json!({
            "Type": "String",
            "Default": opts.prefix,
            "AllowedPattern": "^[a-z][a-z0-9-]{0,29}$",
            "Description": "Prefix of every name: pipelines <prefix>-<preset>, runner configs /<prefix>/configs/<preset>, table <prefix>-state.",
        }),
    );
    p.insert(
        "ExistingStateTable".into(),
        json!({
            "Type": "String",
            "Default": "",
            "AllowedPattern": "^([a-zA-Z0-9_.-]{3,255})?$",
            "Description": "A state table kept by an earlier kiln stack (its build history), adopted instead of creating <prefix>-state; `kiln deploy` fills it in when that table exists and this stack does not own it. Empty: the stack creates the table.",
        }),
    );
    p.insert(
        "ReconcileSchedule".into(),
        json!({
            "Type": "String",
            "Default": "rate(15 minutes)",
            "Description": "How often reconcile checks building records against Image Builder (EventBridge schedule expression).",
        }),
    );
    p.insert(
        "RetentionKeepLatest".into(),
        json!({
            "Type": "Number",
            "Default": 0,
            "MinValue": 0,
            "MaxValue": 100,
            "Description": "Scheduled retention (opt-in): once a day, deregister kiln's AMIs beyond the newest N per preset and region, with their snapshots, as `kiln cleanup --keep-latest N` does: never one that is current, pinned, a rollback target, referenced (SSM, launch template, instance) or within the grace period. 0: off.",
        }),
    );
    p.insert(
        "RetentionGraceDays".into(),
        json!({
            "Type": "Number",
            "Default": 7,
            "MinValue": 0,
            "MaxValue": 365,
            "Description": "Scheduled retention keeps an AMI until its successor has been live this many days.",
        }),
    );
    p.insert(
        "ReconcileThresholdMinutes".into(),
        json!({
            "Type": "Number",
            "Default": 30,
            "MinValue": 5,
            "MaxValue": 1440,
            "Description": "A building record older than this is checked against Image Builder.",
        }),
    );
    p.insert(
        "CodeBucket".into(),
        json!({
            "Type": "String",
            "MinLength": 3,
            "Description": "S3 bucket (in the stack region) holding the Lambda zips built by `cargo lambda build --release --arm64 --output-format zip`.",
        }),
    );
    for f in FUNCTIONS {
        p.insert(
            f.code_key_parameter(),
            json!({
                "Type": "String",
                "Default": format!("kiln/{}.zip", f.name),
                "Description": format!("S3 key of the {} Lambda zip. Use a new key per release so CloudFormation updates the code.", f.name),
            }),
        );
    }
    p.insert(
        "EdgeUrl".into(),
        json!({
            "Type": "String",
            "Default": "",
            "AllowedPattern": "^(https?://.+)?$",
            "Description": "The Worker's base URL (https://status.example.com): the Lambdas push a signed snapshot to its /ingest after every state change. Empty: no pushes (the edge pulls from the origin).",
        }),
    );
    p.insert(
        "EdgeSecretArn".into(),
        json!({
            "Type": "String",
            "AllowedPattern": "^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$",
            "Description": "ARN of the Secrets Manager secret holding the HMAC secret shared with the Worker (`kiln deploy` creates it as kiln/<stack>/edge-secret and passes it). The Lambdas read it at init; only the ARN is in their environment.",
        }),
    );
    p.insert(
        "FailureNotificationEmail".into(),
        json!({
            "Type": "String",
            "Default": "",
            "Description": "Optional e-mail subscribed to the failed-builds topic.",
        }),
    );
    p.insert(
        "StatusOriginReservedConcurrency".into(),
        json!({
            "Type": "Number",
            "Default": 10,
            "MinValue": 0,
            "MaxValue": 1000,
            "Description": "Concurrent executions reserved for (and the ceiling of) the internet-facing status-origin; the edge pulls about once per cache TTL per colo. 0: no reservation, for accounts whose concurrency quota leaves too little unreserved.",
        }),
    );
    p.insert(
        "LogRetentionDays".into(),
        json!({
            "Type": "Number",
            "Default": 30,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 180, 365],
            "Description": "Retention of the Lambdas' log groups.",
        }),
    );
    Value::Object(p)
}
