//! Event wiring: the Image Builder state-change rule to ami-update, failed builds to
//! SNS, the reconcile schedule, and the dead-letter queue behind every rule target and
//! as the on-failure destination of both asynchronously invoked functions.

use kiln_shared::ImageState;
use kiln_shared::event::{DETAIL_TYPE, SOURCE, TRACKED_STATES};
use serde_json::{Map, Value, json};

use super::cfn::{get_att, reference, sub};
use super::functions::{AMI_UPDATE, RECONCILE};

/// Rules, topic, queue and invoke permissions.
pub(super) fn resources(resources: &mut Map<String, Value>) {
    // Events that could not be delivered land here instead of vanishing.
    resources.insert(
        "EventsDeadLetterQueue".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": sub("${Prefix}-events-dlq"),
                "MessageRetentionPeriod": 1_209_600,
                "SqsManagedSseEnabled": true,
            },
        }),
    );
    let rules = [
        "ImageStateChangeRule",
        "FailedBuildsRule",
        "ReconcileScheduleRule",
    ];
    resources.insert(
        "EventsDeadLetterQueuePolicy".into(),
        json!({
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [reference("EventsDeadLetterQueue")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "events.amazonaws.com" },
                        "Action": ["sqs:SendMessage"],
                        "Resource": [get_att("EventsDeadLetterQueue", "Arn")],
                        "Condition": { "ArnEquals": {
                            "aws:SourceArn": rules
                                .iter()
                                .map(|r| get_att(r, "Arn"))
                                .chain([json!({ "Fn::If": [
                                    "RetentionEnabled",
                                    get_att("RetentionScheduleRule", "Arn"),
                                    { "Ref": "AWS::NoValue" },
                                ] })])
                                .collect::<Vec<_>>(),
                        } },
                    }],
                },
            },
        }),
    );
    let dead_letter = json!({ "Arn": get_att("EventsDeadLetterQueue", "Arn") });
    let retry = json!({ "MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600 });
    // Image ARNs carry the recipe name (= pipeline name), so this pattern only matches
    // this stack's images.
    let image_pattern = |statuses: &[ImageState]| {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        json!({
            "source": [SOURCE],
            "detail-type": [DETAIL_TYPE],
            "resources": [{ "prefix": sub("arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:image/${Prefix}-") }],
            "detail": { "state": { "status": statuses } },
        })
    };
    resources.insert(
        "ImageStateChangeRule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "kiln: every Image Builder state change of this stack's images -> ami-update",
                "State": "ENABLED",
                "EventPattern": image_pattern(&TRACKED_STATES),
                "Targets": [{
                    "Id": "ami-update",
                    "Arn": get_att(&AMI_UPDATE.resource(), "Arn"),
                    "DeadLetterConfig": dead_letter,
                    "RetryPolicy": retry,
                }],
            },
        }),
    );
    // EventBridge hands the event over asynchronously: a handler that fails (after
    // Lambda's own retries) would otherwise be dropped; the target DLQ only catches
    // delivery failures. Both scheduled and event-driven functions get one.
    for f in [&AMI_UPDATE, &RECONCILE] {
        resources.insert(
            format!("{}EventInvokeConfig", f.id),
            json!({
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": reference(&f.resource()),
                    "Qualifier": "$LATEST",
                    "MaximumRetryAttempts": 2,
                    "MaximumEventAgeInSeconds": 21600,
                    "DestinationConfig": {
                        "OnFailure": { "Destination": get_att("EventsDeadLetterQueue", "Arn") },
                    },
                },
            }),
        );
    }
    resources.insert(
        "AmiUpdateInvokePermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": get_att(&AMI_UPDATE.resource(), "Arn"),
                "Principal": "events.amazonaws.com",
                "SourceArn": get_att("ImageStateChangeRule", "Arn"),
            },
        }),
    );

    resources.insert(
        "FailedBuildsTopic".into(),
        json!({
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": sub("${Prefix}-failed-builds"),
                "DisplayName": "kiln failed image builds",
            },
        }),
    );
    resources.insert(
        "FailedBuildsTopicPolicy".into(),
        json!({
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {
                "Topics": [reference("FailedBuildsTopic")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "events.amazonaws.com" },
                        "Action": ["sns:Publish"],
                        "Resource": [reference("FailedBuildsTopic")],
                        "Condition": { "ArnEquals": { "aws:SourceArn": [get_att("FailedBuildsRule", "Arn")] } },
                    }],
                },
            },
        }),
    );
    resources.insert(
        "FailedBuildsRule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "kiln: failed or cancelled image builds -> SNS",
                "State": "ENABLED",
                "EventPattern": image_pattern(&[ImageState::Failed, ImageState::Cancelled]),
                "Targets": [{
                    "Id": "failed-builds-topic",
                    "Arn": reference("FailedBuildsTopic"),
                    "DeadLetterConfig": dead_letter,
                    "RetryPolicy": retry,
                }],
            },
        }),
    );
    resources.insert(
        "FailureNotificationSubscription".into(),
        json!({
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasFailureNotificationEmail",
            "Properties": {
                "TopicArn": reference("FailedBuildsTopic"),
                "Protocol": "email",
                "Endpoint": reference("FailureNotificationEmail"),
            },
        }),
    );

    resources.insert(
        "ReconcileScheduleRule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "kiln: periodic reconciliation of building records",
                "State": "ENABLED",
                "ScheduleExpression": reference("ReconcileSchedule"),
                "Targets": [{
                    "Id": "reconcile",
                    "Arn": get_att(&RECONCILE.resource(), "Arn"),
                    "DeadLetterConfig": dead_letter,
                    "RetryPolicy": retry,
                }],
            },
        }),
    );
    // Opt-in retention: the same function, its own schedule and input.
    resources.insert(
        "RetentionScheduleRule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Condition": "RetentionEnabled",
            "Properties": {
                "Description": "kiln: scheduled retention of old AMIs (RetentionKeepLatest)",
                "State": "ENABLED",
                "ScheduleExpression": "rate(1 day)",
                "Targets": [{
                    "Id": "retention",
                    "Arn": get_att(&RECONCILE.resource(), "Arn"),
                    "Input": {
                        "Fn::Sub": r#"{"kiln":"retention","keepLatest":${RetentionKeepLatest},"graceDays":${RetentionGraceDays}}"#,
                    },
                    "DeadLetterConfig": dead_letter,
                    "RetryPolicy": retry,
                }],
            },
        }),
    );
    resources.insert(
        "RetentionInvokePermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Condition": "RetentionEnabled",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": get_att(&RECONCILE.resource(), "Arn"),
                "Principal": "events.amazonaws.com",
                "SourceArn": get_att("RetentionScheduleRule", "Arn"),
            },
        }),
    );
    resources.insert(
        "ReconcileInvokePermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": get_att(&RECONCILE.resource(), "Arn"),
                "Principal": "events.amazonaws.com",
                "SourceArn": get_att("ReconcileScheduleRule", "Arn"),
            },
        }),
    );
}
