//! IAM: the ARNs each policy is scoped to, the least-privilege statements of every
//! Lambda's role, and the build instances' role.

use std::collections::BTreeSet;

use kiln_shared::Preset;
use serde_json::{Map, Value, json};

use super::RECORD_TYPE_INDEX;
use super::cfn::{get_att, reference, sub};
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
    let mut parameters = vec![sub(
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${Prefix}/configs/*",
    )];
    parameters.extend(regions.iter().map(|r| {
        sub(format!(
            "arn:${{AWS::Partition}}:ssm:{r}:${{AWS::AccountId}}:parameter/${{Prefix}}/configs/*"
        ))
    }));
    Scope {
        table: vec![
            get_att("StateTable", "Arn"),
            sub(format!("${{StateTable.Arn}}/index/{RECORD_TYPE_INDEX}")),
        ],
        parameters,
        pipelines: presets
            .iter()
            .map(|p| {
                sub(format!(
                    "arn:${{AWS::Partition}}:imagebuilder:${{AWS::Region}}:${{AWS::AccountId}}:image-pipeline/${{Prefix}}-{}",
                    p.name
                ))
            })
            .collect(),
        // Image ARNs carry the recipe name, which is the pipeline name.
        images: presets
            .iter()
            .map(|p| {
                sub(format!(
                    "arn:${{AWS::Partition}}:imagebuilder:${{AWS::Region}}:${{AWS::AccountId}}:image/${{Prefix}}-{}/*",
                    p.name
                ))
            })
            .collect(),
    }
}

fn statement(actions: &[&str], resources: Vec<Value>) -> Value {
    json!({
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    })
}

/// The least-privilege statements of one function.
fn statements(f: &Function, scope: &Scope) -> Vec<Value> {
    let logs = statement(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![get_att(&f.log_group(), "Arn")],
    );
    let table_rw = statement(
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
        ],
        scope.table.clone(),
    );
    let ssm_rw = statement(
        &["ssm:GetParameter", "ssm:PutParameter"],
        scope.parameters.clone(),
    );
    let get_image = statement(&["imagebuilder:GetImage"], scope.images.clone());
    let read_pipelines = statement(
        &[
            "imagebuilder:GetImagePipeline",
            "imagebuilder:ListImagePipelineImages",
        ],
        scope.pipelines.clone(),
    );
    // ListImagePipelines supports no resource-level permissions; it is read-only.
    let list_pipelines = statement(&["imagebuilder:ListImagePipelines"], vec![json!("*")]);
    match f.id {
        "AmiUpdate" => vec![logs, table_rw, ssm_rw, get_image, read_pipelines],
        "Reconcile" | "StatusOrigin" => vec![
            logs,
            table_rw,
            ssm_rw,
            get_image,
            read_pipelines,
            list_pipelines,
        ],
        _ => vec![
            logs,
            statement(
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                ],
                scope.table.clone(),
            ),
            ssm_rw,
            get_image,
            read_pipelines,
            statement(
                &["imagebuilder:StartImagePipelineExecution"],
                scope.pipelines.clone(),
            ),
            list_pipelines,
        ],
    }
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
                "ManagedPolicyArns": [
                    sub("arn:${AWS::Partition}:iam::aws:policy/EC2InstanceProfileForImageBuilder"),
                    sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"),
                ],
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
