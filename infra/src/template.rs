//! `kiln synth`: the whole deployment as one CloudFormation template.
//!
//! The template is built as typed `serde_json` values and written with sorted keys, so
//! the same presets always give a byte-identical file (reviewable diffs, golden tests).
//! Names that depend on the stack (prefix, region, account) are `Fn::Sub` expressions,
//! never baked in, so one template deploys anywhere.

use std::collections::{BTreeMap, BTreeSet};

use kiln_shared::Preset;
use kiln_shared::preset::BaseImage;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub mod component;

/// Prefix of every name kiln creates, unless the `Prefix` parameter says otherwise.
pub const DEFAULT_PREFIX: &str = "spot-runner";
/// The GSI every reader of the table uses.
pub const RECORD_TYPE_INDEX: &str = "recordType-index";
/// Tags put on every AMI, read back by `kiln cleanup` and `kiln list`.
pub const TAG_PRESET: &str = "kiln:preset";
pub const TAG_PREFIX: &str = "kiln:prefix";
pub const TAG_ARCHITECTURE: &str = "kiln:architecture";
pub const TAG_TEMPLATE: &str = "kiln:template";
/// Every status the state machine acts on (DESIGN "AWS resources").
pub const IMAGE_STATES: [&str; 6] = [
    "BUILDING",
    "TESTING",
    "DISTRIBUTING",
    "AVAILABLE",
    "FAILED",
    "CANCELLED",
];
pub const IMAGE_STATE_DETAIL_TYPE: &str = "EC2 Image Builder Image State Change";
/// CloudFormation's hard limits we can hit with many presets.
pub const MAX_RESOURCES: usize = 500;
pub const MAX_TEMPLATE_BYTES: usize = 1_000_000;

/// The table's name for a prefix (the CLI's `--table` default follows it).
pub fn table_name(prefix: &str) -> String {
    format!("{prefix}-state")
}

/// Knobs of the rendered template that are not presets.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Default of the `Prefix` parameter.
    pub prefix: String,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            prefix: DEFAULT_PREFIX.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    #[error("prefix '{0}' is not valid: use 1 to 30 of a-z, 0-9 and '-', starting with a letter")]
    BadPrefix(String),
    #[error(
        "{file}: {preset}: the {component} component document is {len} characters; Image Builder accepts at most {max} inline (shorten setup_script, or have it download a larger script)"
    )]
    ComponentTooLarge {
        file: String,
        preset: String,
        component: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "the template would have {0} resources; CloudFormation allows at most {MAX_RESOURCES}: split the presets across stacks (different --prefix)"
    )]
    TooManyResources(usize),
    #[error(
        "the template is {0} bytes; CloudFormation accepts at most {MAX_TEMPLATE_BYTES}: split the presets across stacks"
    )]
    TooLarge(usize),
}

/// Output format of `kiln synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

fn sub(text: impl Into<String>) -> Value {
    json!({ "Fn::Sub": text.into() })
}

fn reference(id: &str) -> Value {
    json!({ "Ref": id })
}

fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// `linux-x64` → `LinuxX64`: CloudFormation logical ids are alphanumeric.
fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Logical id stem per preset. Names like `a-b` and `a--b` would collide after
/// dropping dashes; those get a short hash of the name so ids stay unique and stable.
fn logical_stems(presets: &[Preset]) -> BTreeMap<String, String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for p in presets {
        *count.entry(pascal(&p.name)).or_default() += 1;
    }
    presets
        .iter()
        .map(|p| {
            let stem = pascal(&p.name);
            let stem = if count[&stem] > 1 {
                let hash = hex::encode(Sha256::digest(p.name.as_bytes()));
                format!("{stem}{}", &hash[..8])
            } else {
                stem
            };
            (p.name.clone(), stem)
        })
        .collect()
}

fn valid_prefix(prefix: &str) -> bool {
    (1..=30).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One of the four Lambdas.
struct Function {
    /// Logical id stem (`AmiUpdate`).
    id: &'static str,
    /// Binary / function-name suffix (`ami-update`).
    name: &'static str,
    description: &'static str,
    timeout: u32,
    memory: u32,
}

const AMI_UPDATE: Function = Function {
    id: "AmiUpdate",
    name: "ami-update",
    description: "kiln: applies Image Builder state changes to DynamoDB and SSM",
    timeout: 60,
    memory: 256,
};
const RECONCILE: Function = Function {
    id: "Reconcile",
    name: "reconcile",
    description: "kiln: heals building records whose events were lost",
    timeout: 300,
    memory: 256,
};
const STATUS_ORIGIN: Function = Function {
    id: "StatusOrigin",
    name: "status-origin",
    description: "kiln: signed status origin for the edge Worker",
    timeout: 30,
    memory: 256,
};
const PRESET_INIT: Function = Function {
    id: "PresetInit",
    name: "preset-init",
    description: "kiln: deploy-time custom resource writing presets, records and runner configs",
    timeout: 300,
    memory: 256,
};
const FUNCTIONS: [&Function; 4] = [&AMI_UPDATE, &RECONCILE, &STATUS_ORIGIN, &PRESET_INIT];

impl Function {
    fn resource(&self) -> String {
        format!("{}Function", self.id)
    }
    fn role(&self) -> String {
        format!("{}Role", self.id)
    }
    fn log_group(&self) -> String {
        format!("{}LogGroup", self.id)
    }
    fn code_key_parameter(&self) -> String {
        format!("{}CodeKey", self.id)
    }
}

/// ARNs the IAM policies are scoped to.
struct Scope {
    table: Vec<Value>,
    parameters: Vec<Value>,
    pipelines: Vec<Value>,
    images: Vec<Value>,
}

fn scope(presets: &[Preset]) -> Scope {
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

/// Names and meanings as `kiln_lambdas::config::Config::from_env` reads them.
fn environment(f: &Function) -> Value {
    let mut vars = Map::new();
    vars.insert("KILN_TABLE".into(), reference("StateTable"));
    vars.insert("KILN_PREFIX".into(), reference("Prefix"));
    vars.insert("RUST_LOG".into(), json!("info"));
    // Empty means "no pushes": the Lambdas treat a blank variable as unset.
    vars.insert("KILN_EDGE_URL".into(), reference("EdgeUrl"));
    // Verifies the edge's requests (status-origin) and signs pushes to /ingest.
    vars.insert("KILN_ORIGIN_SECRET".into(), reference("EdgeSharedSecret"));
    if matches!(f.id, "Reconcile" | "StatusOrigin") {
        vars.insert(
            "KILN_STALE_AFTER_MINUTES".into(),
            reference("ReconcileThresholdMinutes"),
        );
    }
    json!({ "Variables": vars })
}

fn parameters(opts: &SynthOptions) -> Value {
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
        "ReconcileSchedule".into(),
        json!({
            "Type": "String",
            "Default": "rate(15 minutes)",
            "Description": "How often reconcile checks building records against Image Builder (EventBridge schedule expression).",
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
        "EdgeSharedSecret".into(),
        json!({
            "Type": "String",
            "NoEcho": true,
            "MinLength": 32,
            "Description": "HMAC secret shared with the Worker (the same value: `wrangler secret put ORIGIN_SECRET`). At least 32 characters.",
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

fn preset_resources(
    p: &Preset,
    stem: &str,
    resources: &mut Map<String, Value>,
) -> Result<(), SynthError> {
    let version = p.semantic_version();
    let tags = preset_tags(p);
    let mut component_refs = Vec::new();
    for doc in component::documents(p) {
        let data = doc.render();
        if data.len() > component::MAX_DATA_CHARS {
            return Err(SynthError::ComponentTooLarge {
                file: p.source_file.clone(),
                preset: p.name.clone(),
                component: doc.kind.as_str(),
                len: data.len(),
                max: component::MAX_DATA_CHARS,
            });
        }
        let id = format!("{stem}{}Component", doc.kind.logical_suffix());
        resources.insert(
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
        );
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
    resources.insert(
        format!("{stem}Recipe"),
        json!({ "Type": "AWS::ImageBuilder::ImageRecipe", "Properties": recipe }),
    );

    resources.insert(
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
    );

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
    resources.insert(
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
    );

    resources.insert(
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
    );
    Ok(())
}

fn shared_resources(presets: &[Preset], resources: &mut Map<String, Value>) {
    resources.insert(
        "StateTable".into(),
        json!({
            "Type": "AWS::DynamoDB::Table",
            // Build history and state outlive a stack replacement.
            "DeletionPolicy": "Retain",
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

    let scope = scope(presets);
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
        resources.insert(
            f.role(),
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
                        "PolicyDocument": { "Version": "2012-10-17", "Statement": statements(f, &scope) },
                    }],
                },
            }),
        );
        resources.insert(
            f.resource(),
            json!({
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
            }),
        );
    }

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
                            "aws:SourceArn": rules.iter().map(|r| get_att(r, "Arn")).collect::<Vec<_>>(),
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
    let image_pattern = |statuses: &[&str]| {
        json!({
            "source": ["aws.imagebuilder"],
            "detail-type": [IMAGE_STATE_DETAIL_TYPE],
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
                "EventPattern": image_pattern(&IMAGE_STATES),
                "Targets": [{
                    "Id": "ami-update",
                    "Arn": get_att(&AMI_UPDATE.resource(), "Arn"),
                    "DeadLetterConfig": dead_letter,
                    "RetryPolicy": retry,
                }],
            },
        }),
    );
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
                "EventPattern": image_pattern(&["FAILED", "CANCELLED"]),
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

/// Renders the template for validated presets.
pub fn synth(presets: &[Preset], opts: &SynthOptions) -> Result<Value, SynthError> {
    if !valid_prefix(&opts.prefix) {
        return Err(SynthError::BadPrefix(opts.prefix.clone()));
    }
    let stems = logical_stems(presets);
    let mut resources = Map::new();
    shared_resources(presets, &mut resources);
    for p in presets {
        preset_resources(p, &stems[&p.name], &mut resources)?;
    }

    let mut depends_on: Vec<String> = presets
        .iter()
        .map(|p| format!("{}Pipeline", stems[&p.name]))
        .collect();
    depends_on.push("StateTable".into());
    depends_on.sort();
    resources.insert(
        "PresetInit".into(),
        json!({
            "Type": "Custom::KilnPresets",
            // Pipelines must exist before preset-init starts their first builds.
            "DependsOn": depends_on,
            "Properties": {
                "ServiceToken": get_att(&PRESET_INIT.resource(), "Arn"),
                "Prefix": reference("Prefix"),
                "Presets": presets_property(presets),
            },
        }),
    );
    if resources.len() > MAX_RESOURCES {
        return Err(SynthError::TooManyResources(resources.len()));
    }

    let outputs = json!({
        "StatusOriginUrl": {
            "Description": "The status origin's Function URL: the Worker's ORIGIN_URL.",
            "Value": get_att("StatusOriginUrl", "FunctionUrl"),
        },
        "TableName": {
            "Description": "The state table (kiln list --table).",
            "Value": reference("StateTable"),
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
    });

    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    let mut description = format!(
        "kiln: image pipelines, state and status for presets {}",
        names.join(", ")
    );
    // CloudFormation refuses a description over 1024 bytes.
    if description.len() > 1024 {
        description = format!(
            "kiln: image pipelines, state and status for {} presets",
            presets.len()
        );
    }
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": parameters(opts),
        "Conditions": {
            "HasFailureNotificationEmail": { "Fn::Not": [{ "Fn::Equals": [reference("FailureNotificationEmail"), ""] }] },
        },
        "Resources": resources,
        "Outputs": outputs,
    });
    Ok(sorted(template))
}

/// Rebuilds every object with its keys inserted in order. A no-op with serde_json's
/// default map; a guarantee if another crate turns on `preserve_order`.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The template as text, ending in a newline; fails when CloudFormation would refuse it
/// for size.
pub fn render(template: &Value, format: Format) -> Result<String, SynthError> {
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(template).expect("template serialises"),
        Format::Yaml => serde_yaml::to_string(template).expect("template serialises"),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(SynthError::TooLarge(text.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
