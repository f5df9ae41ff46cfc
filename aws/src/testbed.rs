//! What `kiln test` needs from AWS: a short-lived EC2 instance ([`TestInstances`]) and
//! SSM Run Command on it ([`RunCommand`]), one client per region. The order of the calls
//! (launch, wait for the agent, one command per test, terminate whatever happens) is the
//! caller's.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{
    HttpTokensState, IamInstanceProfileSpecification, InstanceMetadataOptionsRequest, ResourceType,
    ShutdownBehavior, Tag, TagSpecification,
};
use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter, PingStatus};

use crate::BoxFut;
use crate::error::{AwsError, absent_on, from_sdk};
use crate::regional::PerRegion;

/// EC2's answer for an instance it does not know.
const NOT_FOUND: &str = "InvalidInstanceID.NotFound";

/// One instance to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub image_id: String,
    pub instance_type: String,
    /// The instance profile (the SSM agent needs one to register).
    pub instance_profile: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Plain text; the client encodes it.
    pub user_data: String,
    pub tags: BTreeMap<String, String>,
}

/// EC2 instances of `kiln test`.
pub trait TestInstances: Send + Sync {
    /// RunInstances (one instance, shutdown terminates it, IMDSv2 only); its id.
    fn launch<'a>(
        &'a self,
        region: &'a str,
        spec: &'a LaunchSpec,
    ) -> BoxFut<'a, Result<String, AwsError>>;
    /// DescribeInstances: the state name (`pending`, `running`, `terminated`, …); `None`
    /// when EC2 does not know the instance.
    fn instance_state<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>>;
    fn terminate<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
}

/// Where a command invocation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Pending, InProgress, Delayed, Cancelling: ask again.
    Running,
    Success,
    Failed,
    TimedOut,
    Cancelled,
}

/// GetCommandInvocation's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub status: CommandStatus,
    /// `-1` while running or when the command never ran.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// SSM Run Command on managed instances.
pub trait RunCommand: Send + Sync {
    /// DescribeInstanceInformation: the instance's SSM agent is registered and online.
    fn agent_online<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>>;
    /// SendCommand `AWS-RunShellScript` with one shell line, killed after `timeout`;
    /// the command id.
    fn send<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
        line: &'a str,
        timeout: Duration,
    ) -> BoxFut<'a, Result<String, AwsError>>;
    /// GetCommandInvocation; `None` while SSM has not registered the invocation yet
    /// (`InvocationDoesNotExist` right after SendCommand).
    fn result<'a>(
        &'a self,
        region: &'a str,
        command_id: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<CommandResult>, AwsError>>;
}

/// The real clients of `kiln test`.
pub struct Testbed {
    pub instances: SdkTestInstances,
    pub commands: SdkRunCommand,
}

impl Testbed {
    /// Any region is asked of them; `AWS_ENDPOINT_URL_EC2` / `_SSM` apply as usual.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Testbed {
            instances: SdkTestInstances::new(config.clone()),
            commands: SdkRunCommand::new(config.clone()),
        }
    }
}

/// The real EC2 client.
pub struct SdkTestInstances(PerRegion<aws_sdk_ec2::Client>);

impl SdkTestInstances {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        SdkTestInstances(PerRegion::new(base, aws_sdk_ec2::Client::new))
    }
}

impl TestInstances for SdkTestInstances {
    fn launch<'a>(
        &'a self,
        region: &'a str,
        spec: &'a LaunchSpec,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let op = "ec2:RunInstances";
            let tags = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(
                    spec.tags
                        .iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .build();
            let out = self
                .0
                .get(region)
                .run_instances()
                .image_id(&spec.image_id)
                .instance_type(spec.instance_type.as_str().into())
                .min_count(1)
                .max_count(1)
                .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
                .user_data(aws_smithy_types::base64::encode(&spec.user_data))
                .set_iam_instance_profile(spec.instance_profile.as_ref().map(|name| {
                    IamInstanceProfileSpecification::builder()
                        .name(name)
                        .build()
                }))
                .set_subnet_id(spec.subnet_id.clone())
                .set_security_group_ids(
                    (!spec.security_group_ids.is_empty()).then(|| spec.security_group_ids.clone()),
                )
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_tokens(HttpTokensState::Required)
                        .build(),
                )
                .tag_specifications(tags)
                .send()
                .await
                .map_err(|e| from_sdk(op, e))?;
            out.instances()
                .first()
                .and_then(|i| i.instance_id())
                .map(str::to_owned)
                .ok_or_else(|| AwsError::invalid(op, "the answer names no instance"))
        })
    }

    fn instance_state<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        Box::pin(async move {
            let sent = self
                .0
                .get(region)
                .describe_instances()
                .instance_ids(instance)
                .send()
                .await;
            let Some(out) = absent_on("ec2:DescribeInstances", NOT_FOUND, sent)? else {
                return Ok(None);
            };
            Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(instance))
                .and_then(|i| i.state())
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned()))
        })
    }

    fn terminate<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            let sent = self
                .0
                .get(region)
                .terminate_instances()
                .instance_ids(instance)
                .send()
                .await;
            // Already gone is what terminating wanted.
            absent_on("ec2:TerminateInstances", NOT_FOUND, sent).map(|_| ())
        })
    }
}

/// The real SSM client.
pub struct SdkRunCommand(PerRegion<aws_sdk_ssm::Client>);

impl SdkRunCommand {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        SdkRunCommand(PerRegion::new(base, aws_sdk_ssm::Client::new))
    }
}

impl RunCommand for SdkRunCommand {
    fn agent_online<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            let op = "ssm:DescribeInstanceInformation";
            let filter = InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .values(instance)
                .build()
                .map_err(|e| AwsError::invalid(op, e.to_string()))?;
            let out = self
                .0
                .get(region)
                .describe_instance_information()
                .filters(filter)
                .send()
                .await
                .map_err(|e| from_sdk(op, e))?;
            Ok(out.instance_information_list().iter().any(|i| {
                i.instance_id() == Some(instance) && i.ping_status() == Some(&PingStatus::Online)
            }))
        })
    }

    fn send<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
        line: &'a str,
        timeout: Duration,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let op = "ssm:SendCommand";
            let out = self
                .0
                .get(region)
                .send_command()
                .document_name("AWS-RunShellScript")
                .instance_ids(instance)
                .comment("kiln test")
                .parameters("commands", vec![line.to_owned()])
                .parameters(
                    "executionTimeout",
                    vec![timeout.as_secs().max(1).to_string()],
                )
                // Delivery: the agent is online already; a minute is plenty.
                .timeout_seconds(60)
                .send()
                .await
                .map_err(|e| from_sdk(op, e))?;
            out.command()
                .and_then(|c| c.command_id())
                .map(str::to_owned)
                .ok_or_else(|| AwsError::invalid(op, "the answer names no command"))
        })
    }

    fn result<'a>(
        &'a self,
        region: &'a str,
        command_id: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<CommandResult>, AwsError>> {
        Box::pin(async move {
            let sent = self
                .0
                .get(region)
                .get_command_invocation()
                .command_id(command_id)
                .instance_id(instance)
                .send()
                .await;
            let op = "ssm:GetCommandInvocation";
            let Some(out) = absent_on(op, "InvocationDoesNotExist", sent)? else {
                return Ok(None);
            };
            let status = match out.status() {
                Some(CommandInvocationStatus::Success) => CommandStatus::Success,
                Some(CommandInvocationStatus::Failed) => CommandStatus::Failed,
                Some(CommandInvocationStatus::TimedOut) => CommandStatus::TimedOut,
                Some(CommandInvocationStatus::Cancelled) => CommandStatus::Cancelled,
                _ => CommandStatus::Running,
            };
            Ok(Some(CommandResult {
                status,
                exit_code: out.response_code(),
                stdout: out.standard_output_content().unwrap_or_default().to_owned(),
                stderr: out.standard_error_content().unwrap_or_default().to_owned(),
            }))
        })
    }
}
