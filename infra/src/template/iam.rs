//! IAM: the ARNs each policy is scoped to, the least-privilege statements of every
//! Lambda's role, and the build instances' role.

use std::collections::BTreeSet;

use kiln_shared::Preset;
use serde_json::{Map, Value, json};

use super::RECORD_TYPE_INDEX;
use super::cfn::{get_att, reference, state_table_arn, sub};
use super::functions::Function;

/// ARNs the IAM policies are scoped to.
pub(super) struct Scope {
    table: Vec<Value>,
    parameters: Vec<Value>,
    pipelines: Vec<Value>,
    images: Vec<Value>,
}

pub(super) fn scope(presets: &[Preset]) -> Scope {
    // Runner configs live in every distribution region (preset-init and ami-update
    // write them there), plus the stack region for presets that name none.
    let mut regions: BTreeSet<String> = BTreeSet::new();
    for p in presets {
        regions.extend(p.regions.iter().cloned());
    }
    // Runner configs and the AMI parameters (`aws:ec2:image`) beside them.
    let mut parameters = Vec::new();
    for path in ["configs", "ami"] {
        parameters.push(sub(format!(
            "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/${{Prefix}}/{path}/*"
        )));
        parameters.extend(regions.iter().map(|r| {
            sub(format!(
                "arn:${{AWS::Partition}}:ssm:{r}:${{AWS::AccountId}}:parameter/${{Prefix}}/{path}/*"
            ))
        }));
    }
    Scope {
        table: vec![
            state_table_arn(""),
            state_table_arn(&format!("/index/{RECORD_TYPE_INDEX}")),
        ],
        parameters,
        // `<prefix>-*`, not one ARN per preset: a role's inline policies may hold
        // 10,240 characters, which 1,000 presets' ARNs would overflow, and a core role
        // listing presets would change with every preset added. Names under the prefix
        // are this deployment's (a prefix that extends ours is another's: see
        // ARCHITECTURE.md).
        pipelines: vec![sub(
            "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:image-pipeline/${Prefix}-*",
        )],
        // Image ARNs carry the recipe name, which is the pipeline name.
        images: vec![sub(
            "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:image/${Prefix}-*",
        )],
    }
}

fn statement(actions: &[&str], resources: Vec<Value>) -> Value {
    json!({
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    })
}

/// The least-privilege statements of one function: exactly the actions its code paths
/// call (checked by `tests/tests/iam_contract.rs`) plus the ones AWS requires beside
/// them. Pipelines are never listed: their ARNs come from the template.
fn statements(f: &Function, scope: &Scope) -> Vec<Value> {
    // Lambda's runtime writes the function's logs; the group is the template's own.
    let logs = statement(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![get_att(&f.log_group(), "Arn")],
    );
    let ssm_rw = statement(
        &["ssm:GetParameter", "ssm:PutParameter"],
        scope.parameters.clone(),
    );
    let get_image = statement(&["imagebuilder:GetImage"], scope.images.clone());
    // Observations read and compare-and-swap whole items; listings query the GSI.
    let observe_table = statement(
        &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        scope.table.clone(),
    );
    // Lambda's on-failure destination sends an asynchronous invocation that failed every
    // attempt to the DLQ as the function's role (EventBridge invokes these two async).
    let on_failure = || {
        statement(
            &["sqs:SendMessage"],
            vec![get_att("EventsDeadLetterQueue", "Arn")],
        )
    };
    // Exactly the one secret, never `secret:*`.
    let edge_secret = statement(
        &["secretsmanager:GetSecretValue"],
        vec![reference("EdgeSecretArn")],
    );
    let list_images = || {
        statement(
            &["imagebuilder:ListImagePipelineImages"],
            scope.pipelines.clone(),
        )
    };
    // DescribeImages has no resource-level permissions. SSM checks an `aws:ec2:image`
    // parameter's AMI as the caller of PutParameter; reconcile also checks the AMIs.
    let describe_images = || statement(&["ec2:DescribeImages"], vec![json!("*")]);
    // Opt-in scheduled retention (parameter RetentionKeepLatest): read what protects an
    // AMI, deregister kiln's own AMIs (by the prefix tag) and delete their snapshots.
    // Snapshots carry no kiln tag: retention deletes only those of AMIs it deregistered.
    // DescribeImageReferences reads instances and launch templates as the caller.
    let when_retention = |statement: Value| json!({ "Fn::If": ["RetentionEnabled", statement, { "Ref": "AWS::NoValue" }] });
    let retention = || {
        [
            when_retention(statement(
                &[
                    "ec2:DescribeImageReferences",
                    "ec2:DescribeInstances",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribeLaunchTemplateVersions",
                ],
                vec![json!("*")],
            )),
            // Every region's runner configs and AMI parameters (`/<prefix>/…`).
            when_retention(statement(
                &["ssm:GetParametersByPath"],
                vec![sub(
                    "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:parameter/${Prefix}/*",
                )],
            )),
            when_retention(statement(
                &["ec2:DeleteSnapshot"],
                vec![sub("arn:${AWS::Partition}:ec2:*::snapshot/*")],
            )),
            when_retention(json!({
                "Effect": "Allow",
                "Action": ["ec2:DeregisterImage"],
                "Resource": [sub("arn:${AWS::Partition}:ec2:*::image/*")],
                "Condition": { "StringEquals": { "ec2:ResourceTag/kiln:prefix": reference("Prefix") } },
            })),
        ]
    };
    let mut statements = match f.id {
        "AmiUpdate" => vec![
            logs,
            observe_table,
            ssm_rw,
            get_image,
            describe_images(),
            on_failure(),
        ],
        "Reconcile" => vec![
            logs,
            observe_table,
            ssm_rw,
            get_image,
            list_images(),
            describe_images(),
            // Health: is the pipeline enabled (or auto-disabled after failures)?
            statement(&["imagebuilder:GetImagePipeline"], scope.pipelines.clone()),
            // Alerts: warning raised or cleared.
            statement(&["sns:Publish"], vec![reference("FailedBuildsTopic")]),
            on_failure(),
        ]
        .into_iter()
        .chain(retention())
        .collect(),
        "StatusOrigin" => vec![
            logs,
            observe_table,
            ssm_rw,
            get_image,
            list_images(),
            describe_images(),
        ],
        _ => vec![
            logs,
            // Initial records are conditional puts: no read needed.
            statement(
                &["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"],
                scope.table.clone(),
            ),
            ssm_rw,
            // GetImagePipeline is a dependent action of StartImagePipelineExecution.
            statement(
                &[
                    "imagebuilder:StartImagePipelineExecution",
                    "imagebuilder:GetImagePipeline",
                ],
                scope.pipelines.clone(),
            ),
        ],
    };
    if f.signs() {
        statements.push(edge_secret);
    }
    statements
}

/// The execution role of one function, with its statements inline.
pub(super) fn lambda_role(f: &Function, scope: &Scope) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": format!("kiln: the {} Lambda", f.name),
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "lambda.amazonaws.com" },
                    "Action": ["sts:AssumeRole"],
                }],
            },
            "Policies": [{
                "PolicyName": f.name,
                "PolicyDocument": { "Version": "2012-10-17", "Statement": statements(f, scope) },
            }],
        },
    })
}

/// The SSM agent's permissions on a build instance, AmazonSSMManagedInstanceCore
/// without parameter reads, patching and distributor: registering the instance, the
/// inventory association of enhanced image metadata, and the message channels.
fn build_instance_statements() -> Value {
    json!([
        statement(
            &[
                "ssm:UpdateInstanceInformation",
                "ssm:ListInstanceAssociations",
                "ssm:DescribeAssociation",
                "ssm:UpdateInstanceAssociationStatus",
                "ssm:UpdateAssociationStatus",
                "ssm:GetDocument",
                "ssm:DescribeDocument",
                "ssm:PutInventory",
                "ssm:PutComplianceItems",
            ],
            // Build instances run in the stack region; documents are AWS-owned (no
            // account) or the account's own. No `parameter/*`.
            vec![
                sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"),
                sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:association/*"),
                sub("arn:${AWS::Partition}:ssm:${AWS::Region}::document/*"),
                sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/*"),
            ],
        ),
        // These define no resource types: `*` is the only resource IAM accepts. They
        // only move the agent's own command messages (see infra/guard/kiln.guard).
        statement(
            &[
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
            ],
            vec![json!("*")],
        ),
    ])
}

/// The role and instance profile of Image Builder's build and test instances.
pub(super) fn build_instance_resources(resources: &mut Map<String, Value>) {
    resources.insert(
        "ImageBuilderInstanceRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "kiln: Image Builder build and test instances",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "ec2.amazonaws.com" },
                        "Action": ["sts:AssumeRole"],
                    }],
                },
                // Image Builder requires this one: AWSTOE fetches itself and the
                // components from Image Builder's buckets, decrypts them and logs to
                // /aws/imagebuilder/*, whatever the service version needs.
                "ManagedPolicyArns": [
                    sub("arn:${AWS::Partition}:iam::aws:policy/EC2InstanceProfileForImageBuilder"),
                ],
                // Instead of AmazonSSMManagedInstanceCore, which also reads every SSM
                // parameter in the account (runner configs included): only what the
                // SSM agent needs for Image Builder's Run Command and inventory.
                "Policies": [{
                    "PolicyName": "kiln-build-instance-ssm-agent",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": build_instance_statements(),
                    },
                }],
            },
        }),
    );
    resources.insert(
        "ImageBuilderInstanceProfile".into(),
        json!({
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": { "Roles": [reference("ImageBuilderInstanceRole")] },
        }),
    );
}
