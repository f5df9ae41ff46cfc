//! A failure-injecting wrapper around every AWS client trait, in the spirit of
//! mountpoint-s3's failure client: it counts calls per operation (how kiln reports the
//! AWS calls an event costs) and fails chosen calls with throttling, a 500 or a timeout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_shared::build::BuildRecord;
use kiln_shared::state::AmiRecord;

use crate::BoxFut;
use crate::ec2::{Ec2Image, Ec2Images};
use crate::edge::{EdgePusher, PushError};
use crate::error::{AwsError, AwsErrorKind};
use crate::images::PipelineSummary;
use crate::images::{ImageBuilderApi, ImageInfo, ImageSummary};
use crate::sdk::Clients;
use crate::secrets::{EdgeKeys, SecretVersions};
use crate::ssm::RunnerConfigs;
use crate::store::{Cas, Listing, PresetItem, StateStore, VersionedBuild};

/// How an injected failure looks to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    Server,
    /// Waits this long, then fails as a timeout.
    Timeout(Duration),
}

/// Fail calls of `operation` (`None`: any) after `after` matching calls succeeded,
/// `times` times (then the rule is spent).
#[derive(Debug, Clone)]
pub struct Rule {
    pub operation: Option<String>,
    pub after: u64,
    pub times: u64,
    pub fault: Fault,
    seen: u64,
    fired: u64,
}

impl Rule {
    pub fn new(operation: Option<&str>, fault: Fault) -> Self {
        Rule {
            operation: operation.map(str::to_owned),
            after: 0,
            times: 1,
            fault,
            seen: 0,
            fired: 0,
        }
    }

    pub fn after(mut self, n: u64) -> Self {
        self.after = n;
        self
    }

    pub fn times(mut self, n: u64) -> Self {
        self.times = n;
        self
    }

    pub fn forever(self) -> Self {
        self.times(u64::MAX)
    }
}

/// Shared plan and counters; clone the `Arc` into every wrapper.
#[derive(Debug, Default)]
pub struct FaultPlan {
    calls: Mutex<BTreeMap<String, u64>>,
    rules: Mutex<Vec<Rule>>,
}

impl FaultPlan {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&self, rule: Rule) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rule);
    }

    pub fn clear_rules(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Calls per operation since the last reset (failed ones included).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// AWS calls only (the edge push is not one).
    pub fn aws_calls(&self) -> u64 {
        self.calls()
            .iter()
            .filter(|(op, _)| !op.starts_with("edge:"))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset_counts(&self) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Counts the call, then fails it if a rule says so.
    pub async fn check(&self, operation: &'static str) -> Result<(), AwsError> {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(operation.to_owned())
            .or_default() += 1;
        let fault = {
            let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            let mut fault = None;
            for r in rules.iter_mut() {
                if r.operation.as_deref().is_some_and(|o| o != operation) {
                    continue;
                }
                r.seen += 1;
                if fault.is_none() && r.seen > r.after && r.fired < r.times {
                    r.fired += 1;
                    fault = Some(r.fault);
                }
            }
            fault
        };
        match fault {
            None => Ok(()),
            Some(Fault::Throttle) => Err(AwsError::new(
                operation,
                AwsErrorKind::Throttled,
                "ThrottlingException: Rate exceeded (injected)",
            )),
            Some(Fault::Server) => Err(AwsError::new(
                operation,
                AwsErrorKind::Server,
                "InternalServerError: 500 (injected)",
            )),
            Some(Fault::Timeout(d)) => {
                tokio::time::sleep(d).await;
                Err(AwsError::new(
                    operation,
                    AwsErrorKind::Timeout,
                    "request timed out (injected)",
                ))
            }
        }
    }
}

/// Wraps any client trait implementation (also `dyn` ones) with a [`FaultPlan`].
pub struct Faulty<T: ?Sized> {
    pub inner: Arc<T>,
    pub plan: Arc<FaultPlan>,
}

impl<T: ?Sized> Faulty<T> {
    pub fn new(inner: Arc<T>, plan: Arc<FaultPlan>) -> Self {
        Faulty { inner, plan }
    }
}

macro_rules! faulty {
    ($self:ident, $op:literal, $call:expr) => {
        Box::pin(async move {
            $self.plan.check($op).await?;
            $call.await
        })
    };
}

impl<T: StateStore + ?Sized> StateStore for Faulty<T> {
    fn get_ami<'a>(&'a self, preset: &'a str) -> BoxFut<'a, Result<Option<AmiRecord>, AwsError>> {
        faulty!(self, "dynamodb:GetItem", self.inner.get_ami(preset))
    }
    fn put_ami<'a>(
        &'a self,
        record: &'a AmiRecord,
        expected: Option<&'a AmiRecord>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        faulty!(
            self,
            "dynamodb:PutItem",
            self.inner.put_ami(record, expected)
        )
    }
    fn list_ami(&self) -> BoxFut<'_, Result<Listing<AmiRecord>, AwsError>> {
        faulty!(self, "dynamodb:Query", self.inner.list_ami())
    }
    fn get_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<PresetItem>, AwsError>> {
        faulty!(self, "dynamodb:GetItem", self.inner.get_preset(name))
    }
    fn put_preset<'a>(&'a self, item: &'a PresetItem) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(self, "dynamodb:PutItem", self.inner.put_preset(item))
    }
    fn delete_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(self, "dynamodb:DeleteItem", self.inner.delete_preset(name))
    }
    fn list_presets(&self) -> BoxFut<'_, Result<Listing<PresetItem>, AwsError>> {
        faulty!(self, "dynamodb:Query", self.inner.list_presets())
    }
    fn get_build<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFut<'a, Result<Option<VersionedBuild>, AwsError>> {
        faulty!(self, "dynamodb:GetItem", self.inner.get_build(job_id))
    }
    fn put_build<'a>(
        &'a self,
        record: &'a BuildRecord,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        faulty!(
            self,
            "dynamodb:PutItem",
            self.inner.put_build(record, expected_rev)
        )
    }
    fn list_builds(&self) -> BoxFut<'_, Result<Listing<BuildRecord>, AwsError>> {
        faulty!(self, "dynamodb:Query", self.inner.list_builds())
    }
    fn list_builds_of<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Listing<BuildRecord>, AwsError>> {
        faulty!(self, "dynamodb:Query", self.inner.list_builds_of(preset))
    }
    fn get_history<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Option<crate::store::VersionedRollup>, AwsError>> {
        faulty!(self, "dynamodb:GetItem", self.inner.get_history(preset))
    }
    fn put_history<'a>(
        &'a self,
        rollup: &'a kiln_shared::history::Rollup,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        faulty!(
            self,
            "dynamodb:PutItem",
            self.inner.put_history(rollup, expected_rev)
        )
    }
    fn list_history(&self) -> BoxFut<'_, Result<Listing<kiln_shared::history::Rollup>, AwsError>> {
        faulty!(self, "dynamodb:Query", self.inner.list_history())
    }
}

impl<T: RunnerConfigs + ?Sized> RunnerConfigs for Faulty<T> {
    fn get<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        faulty!(self, "ssm:GetParameter", self.inner.get(region, name))
    }
    fn put<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(
            self,
            "ssm:PutParameter",
            self.inner.put(region, name, value)
        )
    }
    fn put_image_id<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        ami: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(
            self,
            "ssm:PutParameter",
            self.inner.put_image_id(region, name, ami)
        )
    }
    fn list<'a>(
        &'a self,
        region: &'a str,
        path: &'a str,
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>> {
        faulty!(
            self,
            "ssm:GetParametersByPath",
            self.inner.list(region, path)
        )
    }
}

impl<T: Ec2Images + ?Sized> Ec2Images for Faulty<T> {
    fn list_images<'a>(
        &'a self,
        region: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<Vec<Ec2Image>, AwsError>> {
        faulty!(
            self,
            "ec2:DescribeImages",
            self.inner.list_images(region, key, value)
        )
    }
    fn deregister_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(
            self,
            "ec2:DeregisterImage",
            self.inner.deregister_image(region, image)
        )
    }
    fn delete_snapshot<'a>(
        &'a self,
        region: &'a str,
        snapshot: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(
            self,
            "ec2:DeleteSnapshot",
            self.inner.delete_snapshot(region, snapshot)
        )
    }
    fn image_states<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<BTreeMap<String, crate::ec2::ImageHealth>, AwsError>> {
        faulty!(
            self,
            "ec2:DescribeImages",
            self.inner.image_states(region, ids)
        )
    }
    fn disable_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(
            self,
            "ec2:DisableImage",
            self.inner.disable_image(region, image)
        )
    }
    fn image_references<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>> {
        faulty!(
            self,
            "ec2:DescribeImageReferences",
            self.inner.image_references(region, ids)
        )
    }
}

impl<T: ImageBuilderApi + ?Sized> ImageBuilderApi for Faulty<T> {
    fn list_pipelines(&self) -> BoxFut<'_, Result<Vec<PipelineSummary>, AwsError>> {
        faulty!(
            self,
            "imagebuilder:ListImagePipelines",
            self.inner.list_pipelines()
        )
    }
    fn find_pipeline<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        faulty!(
            self,
            "imagebuilder:ListImagePipelines",
            self.inner.find_pipeline(name)
        )
    }
    fn list_pipeline_images<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Vec<ImageSummary>, AwsError>> {
        faulty!(
            self,
            "imagebuilder:ListImagePipelineImages",
            self.inner.list_pipeline_images(pipeline_arn)
        )
    }
    fn get_image<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, AwsError>> {
        faulty!(self, "imagebuilder:GetImage", self.inner.get_image(arn))
    }
    fn start_pipeline<'a>(&'a self, pipeline_arn: &'a str) -> BoxFut<'a, Result<String, AwsError>> {
        faulty!(
            self,
            "imagebuilder:StartImagePipelineExecution",
            self.inner.start_pipeline(pipeline_arn)
        )
    }
    fn pipeline_enabled<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Option<bool>, AwsError>> {
        faulty!(
            self,
            "imagebuilder:GetImagePipeline",
            self.inner.pipeline_enabled(pipeline_arn)
        )
    }
    fn start_one_off<'a>(
        &'a self,
        pipeline_arn: &'a str,
        region: &'a str,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        faulty!(
            self,
            "imagebuilder:CreateImage",
            self.inner.start_one_off(pipeline_arn, region)
        )
    }
    fn infrastructure<'a>(
        &'a self,
        pipeline_arn: &'a str,
    ) -> BoxFut<'a, Result<Option<crate::images::BuildInfrastructure>, AwsError>> {
        Box::pin(async move {
            self.plan.check("imagebuilder:GetImagePipeline").await?;
            self.plan
                .check("imagebuilder:GetInfrastructureConfiguration")
                .await?;
            self.inner.infrastructure(pipeline_arn).await
        })
    }
}

impl<T: crate::testbed::TestInstances + ?Sized> crate::testbed::TestInstances for Faulty<T> {
    fn launch<'a>(
        &'a self,
        region: &'a str,
        spec: &'a crate::testbed::LaunchSpec,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        faulty!(self, "ec2:RunInstances", self.inner.launch(region, spec))
    }
    fn instance_state<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        faulty!(
            self,
            "ec2:DescribeInstances",
            self.inner.instance_state(region, instance)
        )
    }
    fn terminate<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(
            self,
            "ec2:TerminateInstances",
            self.inner.terminate(region, instance)
        )
    }
}

impl<T: crate::testbed::RunCommand + ?Sized> crate::testbed::RunCommand for Faulty<T> {
    fn agent_online<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        faulty!(
            self,
            "ssm:DescribeInstanceInformation",
            self.inner.agent_online(region, instance)
        )
    }
    fn send<'a>(
        &'a self,
        region: &'a str,
        instance: &'a str,
        line: &'a str,
        timeout: Duration,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        faulty!(
            self,
            "ssm:SendCommand",
            self.inner.send(region, instance, line, timeout)
        )
    }
    fn result<'a>(
        &'a self,
        region: &'a str,
        command_id: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<crate::testbed::CommandResult>, AwsError>> {
        faulty!(
            self,
            "ssm:GetCommandInvocation",
            self.inner.result(region, command_id, instance)
        )
    }
}

impl<T: crate::alerts::Alerts + ?Sized> crate::alerts::Alerts for Faulty<T> {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        faulty!(self, "sns:Publish", self.inner.publish(subject, message))
    }
}

impl<T: EdgePusher + ?Sized> EdgePusher for Faulty<T> {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn push<'a>(
        &'a self,
        report: &'a kiln_shared::feeds::Published,
        secret: &'a [u8],
    ) -> BoxFut<'a, Result<(), PushError>> {
        Box::pin(async move {
            self.plan
                .check("edge:Ingest")
                .await
                .map_err(|e| PushError::Http(e.to_string()))?;
            self.inner.push(report, secret).await
        })
    }
}

impl<T: SecretVersions + ?Sized> SecretVersions for Faulty<T> {
    fn read_versions<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<EdgeKeys, AwsError>> {
        // One GetSecretValue per version stage, as the SDK client makes them.
        Box::pin(async move {
            self.plan.check("secretsmanager:GetSecretValue").await?;
            self.plan.check("secretsmanager:GetSecretValue").await?;
            self.inner.read_versions(arn).await
        })
    }
}

impl Clients {
    /// Every client wrapped in the failure-injecting, call-counting wrapper.
    pub fn with_faults(self, plan: Arc<FaultPlan>) -> Self {
        Clients {
            store: Arc::new(Faulty::new(self.store, plan.clone())),
            configs: Arc::new(Faulty::new(self.configs, plan.clone())),
            images: Arc::new(Faulty::new(self.images, plan.clone())),
            ec2: Arc::new(Faulty::new(self.ec2, plan.clone())),
            edge: Arc::new(Faulty::new(self.edge, plan.clone())),
            secrets: Arc::new(Faulty::new(self.secrets, plan.clone())),
            alerts: Arc::new(Faulty::new(self.alerts, plan)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_fire_after_n_calls_then_stop() {
        let plan = FaultPlan::new();
        plan.add(
            Rule::new(Some("ssm:PutParameter"), Fault::Server)
                .after(1)
                .times(2),
        );
        assert!(plan.check("ssm:PutParameter").await.is_ok());
        assert!(
            plan.check("ssm:GetParameter").await.is_ok(),
            "other ops unaffected"
        );
        let e = plan.check("ssm:PutParameter").await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::Server);
        assert!(plan.check("ssm:PutParameter").await.is_err());
        assert!(
            plan.check("ssm:PutParameter").await.is_ok(),
            "spent after 2"
        );
        assert_eq!(plan.calls()["ssm:PutParameter"], 4);
        assert_eq!(plan.aws_calls(), 5);
    }

    #[tokio::test]
    async fn any_operation_throttle_and_timeout() {
        let plan = FaultPlan::new();
        plan.add(Rule::new(None, Fault::Timeout(Duration::from_millis(5))));
        plan.add(Rule::new(None, Fault::Throttle).after(1));
        let first = plan.check("dynamodb:GetItem").await.unwrap_err();
        assert_eq!(first.kind, AwsErrorKind::Timeout);
        // The second rule has now seen 2 calls: it fires once.
        let second = plan.check("dynamodb:Query").await.unwrap_err();
        assert_eq!(second.kind, AwsErrorKind::Throttled);
        assert!(plan.check("dynamodb:Query").await.is_ok());
        plan.check("edge:Ingest").await.unwrap();
        assert_eq!(plan.aws_calls(), 3);
    }
}
