//! CloudFormation for `kiln deploy` / `kiln destroy`: change sets, stack state and
//! outputs, events and resources. Waiting and deciding live in the CLI; this moves data.

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

/// Where the template of a change set comes from: inline up to CloudFormation's 51,200
/// bytes, else an S3 URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    Body(String),
    Url(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSetKind {
    Create,
    Update,
}

#[derive(Debug, Clone)]
pub struct ChangeSetRequest {
    pub stack: String,
    pub name: String,
    pub kind: ChangeSetKind,
    pub template: TemplateSource,
    pub parameters: Vec<(String, String)>,
}

/// One row of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False`, `Conditional`, or empty for additions.
    pub replacement: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetInfo {
    /// CREATE_PENDING, CREATE_IN_PROGRESS, CREATE_COMPLETE, FAILED, ...
    pub status: String,
    pub status_reason: String,
    pub execution_status: String,
    pub changes: Vec<ResourceChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackInfo {
    pub id: String,
    pub status: String,
    pub status_reason: String,
    pub outputs: Vec<(String, String)>,
}

impl StackInfo {
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub id: String,
    /// RFC 3339.
    pub timestamp: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub status_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
    pub status: String,
}

pub trait Stacks: Send + Sync {
    /// `None` when the stack does not exist.
    fn describe<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<Option<StackInfo>, AwsError>>;
    fn create_change_set<'a>(
        &'a self,
        request: &'a ChangeSetRequest,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    fn describe_change_set<'a>(
        &'a self,
        stack: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<ChangeSetInfo, AwsError>>;
    fn execute_change_set<'a>(
        &'a self,
        stack: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    fn delete_change_set<'a>(
        &'a self,
        stack: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    /// Every event of the stack (all pages), newest first, as CloudFormation lists them.
    fn events<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<Vec<StackEvent>, AwsError>>;
    fn resources<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<Vec<StackResource>, AwsError>>;
    fn delete_stack<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<(), AwsError>>;
}

pub struct SdkStacks(Client);

impl SdkStacks {
    pub fn new(client: Client) -> Self {
        SdkStacks(client)
    }
}

fn s(v: Option<&str>) -> String {
    v.unwrap_or_default().to_owned()
}

/// CloudFormation answers "does not exist" with a plain ValidationError.
fn is_missing(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.contains("does not exist"))
}

impl Stacks for SdkStacks {
    fn describe<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<Option<StackInfo>, AwsError>> {
        Box::pin(async move {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata;
            let out = match self.0.describe_stacks().stack_name(stack).send().await {
                Ok(out) => out,
                Err(e) if is_missing(e.message()) => return Ok(None),
                Err(e) => return Err(from_sdk("cloudformation:DescribeStacks", e)),
            };
            let Some(st) = out.stacks().first() else {
                return Ok(None);
            };
            Ok(Some(StackInfo {
                id: s(st.stack_id()),
                status: st
                    .stack_status()
                    .map(|x| x.as_str().to_owned())
                    .unwrap_or_default(),
                status_reason: s(st.stack_status_reason()),
                outputs: st
                    .outputs()
                    .iter()
                    .filter_map(|o| Some((o.output_key()?.to_owned(), s(o.output_value()))))
                    .collect(),
            }))
        })
    }

    fn create_change_set<'a>(
        &'a self,
        request: &'a ChangeSetRequest,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            let mut call = self
                .0
                .create_change_set()
                .stack_name(&request.stack)
                .change_set_name(&request.name)
                .change_set_type(match request.kind {
                    ChangeSetKind::Create => ChangeSetType::Create,
                    ChangeSetKind::Update => ChangeSetType::Update,
                })
                // The template names no IAM resources, but CAPABILITY_NAMED_IAM keeps a
                // future RoleName from failing deploys.
                .capabilities(Capability::CapabilityIam)
                .capabilities(Capability::CapabilityNamedIam);
            call = match &request.template {
                TemplateSource::Body(body) => call.template_body(body),
                TemplateSource::Url(url) => call.template_url(url),
            };
            for (k, v) in &request.parameters {
                call = call.parameters(
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build(),
                );
            }
            call.send()
                .await
                .map_err(|e| from_sdk("cloudformation:CreateChangeSet", e))?;
            Ok(())
        })
    }

    fn describe_change_set<'a>(
        &'a self,
        stack: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<ChangeSetInfo, AwsError>> {
        Box::pin(async move {
            let mut info = ChangeSetInfo {
                status: String::new(),
                status_reason: String::new(),
                execution_status: String::new(),
                changes: Vec::new(),
            };
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .0
                    .describe_change_set()
                    .stack_name(stack)
                    .change_set_name(name)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk("cloudformation:DescribeChangeSet", e))?;
                info.status = out
                    .status()
                    .map(|x| x.as_str().to_owned())
                    .unwrap_or_default();
                info.status_reason = s(out.status_reason());
                info.execution_status = out
                    .execution_status()
                    .map(|x| x.as_str().to_owned())
                    .unwrap_or_default();
                for c in out.changes() {
                    let Some(rc) = c.resource_change() else {
                        continue;
                    };
                    info.changes.push(ResourceChange {
                        action: rc
                            .action()
                            .map(|a| a.as_str().to_owned())
                            .unwrap_or_default(),
                        logical_id: s(rc.logical_resource_id()),
                        resource_type: s(rc.resource_type()),
                        replacement: rc
                            .replacement()
                            .map(|r| r.as_str().to_owned())
                            .unwrap_or_default(),
                    });
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => return Ok(info),
                }
            }
        })
    }

    fn execute_change_set<'a>(
        &'a self,
        stack: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .execute_change_set()
                .stack_name(stack)
                .change_set_name(name)
                .send()
                .await
                .map_err(|e| from_sdk("cloudformation:ExecuteChangeSet", e))?;
            Ok(())
        })
    }

    fn delete_change_set<'a>(
        &'a self,
        stack: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .delete_change_set()
                .stack_name(stack)
                .change_set_name(name)
                .send()
                .await
                .map_err(|e| from_sdk("cloudformation:DeleteChangeSet", e))?;
            Ok(())
        })
    }

    fn events<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<Vec<StackEvent>, AwsError>> {
        Box::pin(async move {
            let mut pages = self
                .0
                .describe_stack_events()
                .stack_name(stack)
                .into_paginator()
                .send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| from_sdk("cloudformation:DescribeStackEvents", e))?;
                for e in page.stack_events() {
                    out.push(StackEvent {
                        id: s(e.event_id()),
                        timestamp: e
                            .timestamp()
                            .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
                            .unwrap_or_default(),
                        logical_id: s(e.logical_resource_id()),
                        resource_type: s(e.resource_type()),
                        status: e
                            .resource_status()
                            .map(|x| x.as_str().to_owned())
                            .unwrap_or_default(),
                        status_reason: s(e.resource_status_reason()),
                    });
                }
            }
            Ok(out)
        })
    }

    fn resources<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<Vec<StackResource>, AwsError>> {
        Box::pin(async move {
            let out = self
                .0
                .describe_stack_resources()
                .stack_name(stack)
                .send()
                .await
                .map_err(|e| from_sdk("cloudformation:DescribeStackResources", e))?;
            Ok(out
                .stack_resources()
                .iter()
                .map(|r| StackResource {
                    logical_id: s(r.logical_resource_id()),
                    physical_id: s(r.physical_resource_id()),
                    resource_type: s(r.resource_type()),
                    status: r
                        .resource_status()
                        .map(|x| x.as_str().to_owned())
                        .unwrap_or_default(),
                })
                .collect())
        })
    }

    fn delete_stack<'a>(&'a self, stack: &'a str) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.0
                .delete_stack()
                .stack_name(stack)
                .send()
                .await
                .map_err(|e| from_sdk("cloudformation:DeleteStack", e))?;
            Ok(())
        })
    }
}
