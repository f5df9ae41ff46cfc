//! Setup shared by the Lambda integration tests (`tests/lambdas_*.rs`): the real
//! `aws-sdk-*` clients of kiln-lambdas against DynamoDB Local (or moto), moto's SSM and
//! the devstack's local Image Builder endpoint, wrapped in the call-counting fault
//! wrapper. Builds move only when stepped (manual timing), and their state-change events
//! arrive on a channel the test delivers to `ami_update::handle_event` itself.

use std::sync::Arc;
use std::time::Duration;

use kiln_aws::mock::faults::FaultPlan;
use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, PipelineSpec, Timing};
use kiln_devstack::{DynamoBackend, LocalAws, started_or_skip};
use kiln_lambdas::ami_update::{EventAck, handle_event};
use kiln_lambdas::observe::HandlerError;
use kiln_lambdas::preset_init::PipelineArns;
use kiln_lambdas::{Config, Deps, Endpoints};
use kiln_shared::preset::{PresetSource, parse_one};
use kiln_shared::{ImageState, Preset};
use serde_json::Value;
use tokio::sync::mpsc;

pub const REGION: &str = "us-east-1";
pub const WEST: &str = "eu-west-1";
pub const TABLE: &str = "kiln-state";
pub const X64: &str = "linux-x64";
pub const ARM64: &str = "linux-arm64";
pub const X64_PIPELINE: &str = "spot-runner-linux-x64";
pub const ARM64_PIPELINE: &str = "spot-runner-linux-arm64";
/// The edge secret's AWSCURRENT in moto's Secrets Manager (the Lambdas get its ARN).
pub const EDGE_SECRET: &str = "lambdas-kit-edge-secret-of-at-least-32-bytes";

const X64_YAML: &str = include_str!("../../lambdas/tests/fixtures/presets/linux-x64.yaml");
const ARM64_YAML: &str = include_str!("../../lambdas/tests/fixtures/presets/linux-arm64.yaml");

pub fn preset(yaml: &str) -> Preset {
    parse_one(&PresetSource {
        file: "fixture.yaml".into(),
        text: yaml.into(),
    })
    .expect("fixture preset is valid")
    .remove(0)
}

/// linux-x64 (us-east-1 + eu-west-1) and linux-arm64 (us-east-1).
pub fn presets() -> Vec<Preset> {
    vec![preset(X64_YAML), preset(ARM64_YAML)]
}

pub struct LambdaWorld {
    pub aws: LocalAws,
    pub ib: LocalImageBuilder,
    /// Preset name → pipeline ARN, as the template hands them to preset-init.
    pub pipelines: PipelineArns,
    pub deps: Deps,
    pub plan: Arc<FaultPlan>,
    events: mpsc::UnboundedReceiver<Value>,
}

/// The secret `name` in moto's Secrets Manager with `value` as AWSCURRENT, created as
/// `kiln deploy` creates it (its generated value then becomes AWSPREVIOUS).
pub async fn edge_secret(
    aws: &LocalAws,
    name: &str,
    value: &str,
) -> kiln_aws::secrets::StoredSecret {
    use kiln_aws::secrets::{SdkSecrets, SecretValue, Secrets};
    let sm = SdkSecrets::from_conf(&aws.moto_config(REGION));
    let mut stored = sm
        .get_or_create(name, "kiln tests: the edge secret")
        .await
        .expect("secret created in moto");
    let value = SecretValue::new(value);
    if stored.value != value {
        sm.put_value(name, &value).await.expect("secret value put");
        stored.value = value;
    }
    stored
}

impl LambdaWorld {
    /// `None` when an emulator is not installed and tools are not required (skip).
    pub async fn start(backend: DynamoBackend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        Self::start_with(backend, None, tweak).await
    }

    /// As [`LambdaWorld::start`], with the builds' AMIs registered in moto's EC2 (so
    /// DescribeImages, DisableImage and launch templates meet real images) and the
    /// x64 pipeline auto-disabled after `auto_disable` failed scheduled builds.
    pub async fn start_with_ec2(
        backend: DynamoBackend,
        auto_disable: u32,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        Self::start_with(backend, Some(auto_disable), tweak).await
    }

    async fn start_with(
        backend: DynamoBackend,
        ec2: Option<u32>,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let aws = started_or_skip("AWS emulators", LocalAws::start(backend, REGION).await)?;
        let ib = LocalImageBuilder::start(Options {
            timing: Timing::manual(),
            ec2_endpoint: ec2.map(|_| aws.moto.endpoint()),
            ..Options::default()
        })
        .await
        .expect("local Image Builder starts");
        let mut x64_spec = PipelineSpec::new(X64_PIPELINE, [REGION, WEST])
            .architecture(kiln_shared::Architecture::X86_64);
        if let Some(n) = ec2 {
            x64_spec = x64_spec
                .auto_disable_after(n)
                .ami_tag("kiln:prefix", "spot-runner")
                .ami_tag("kiln:preset", X64);
        }
        let x64 = ib.register_pipeline(x64_spec).unwrap();
        let arm64 = ib
            .register_pipeline(
                PipelineSpec::new(ARM64_PIPELINE, [REGION])
                    .architecture(kiln_shared::Architecture::Arm64),
            )
            .unwrap();
        let pipelines = PipelineArns::from([(X64.to_owned(), x64), (ARM64.to_owned(), arm64)]);
        let events = ib.subscribe();
        let ddb = aws_sdk_dynamodb::Client::new(&aws.dynamodb_config());
        kiln_aws::store::create_table(&ddb, TABLE)
            .await
            .expect("table created");
        let mut config = Config::new(TABLE, REGION);
        config.edge_secret_arn = Some(
            edge_secret(&aws, "kiln/lambdas-kit/edge-secret", EDGE_SECRET)
                .await
                .arn,
        );
        tweak(&mut config);
        let plan = Arc::new(FaultPlan::new());
        let deps = Deps::from_sdk(
            config,
            &aws.moto_config(REGION),
            &Endpoints {
                dynamodb: Some(aws.dynamodb_endpoint()),
                ssm: None,
                imagebuilder: Some(ib.endpoint()),
                ec2: None,
                secretsmanager: None,
            },
        )
        .with_faults(plan.clone());
        Some(LambdaWorld {
            aws,
            ib,
            pipelines,
            deps,
            plan,
            events,
        })
    }

    /// Applies the fixture presets (starts one build per preset); returns the image ARNs.
    pub async fn apply_presets(
        &self,
        presets: &[Preset],
    ) -> std::collections::BTreeMap<String, String> {
        kiln_lambdas::preset_init::apply_presets(
            &self.deps,
            presets,
            &self.pipelines,
            chrono::Utc::now(),
        )
        .await
        .expect("presets apply")
        .started
    }

    /// Steps a build until it is in `state` (or terminal), without delivering events.
    pub fn step_to(&self, arn: &str, state: ImageState) {
        for _ in 0..10 {
            let now = self.ib.image(arn).expect("image exists").state;
            if now == state || now.is_terminal() {
                return;
            }
            self.ib.step(arn).expect("step");
        }
        panic!("{arn} never reached {state}");
    }

    /// Receives exactly `n` emitted events.
    pub async fn recv(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        for _ in 0..n {
            let e = tokio::time::timeout(Duration::from_secs(10), self.events.recv())
                .await
                .expect("an event within 10 s")
                .expect("event channel open");
            out.push(e);
        }
        out
    }

    /// No further event is waiting (checked after a short grace period).
    pub async fn assert_no_events(&mut self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(e) = self.events.try_recv() {
            panic!("unexpected event: {e}");
        }
    }

    /// Delivers events to the handler, in order.
    pub async fn deliver(&self, events: &[Value]) -> Vec<Result<EventAck, HandlerError>> {
        let mut acks = Vec::new();
        for e in events {
            acks.push(handle_event(&self.deps, e.clone()).await);
        }
        acks
    }

    /// Steps one state and delivers the one event it emits.
    pub async fn step_and_deliver(&mut self, arn: &str) -> (Value, EventAck) {
        self.ib.step(arn).expect("step");
        let e = self.recv(1).await.remove(0);
        let ack = handle_event(&self.deps, e.clone()).await.expect("handled");
        (e, ack)
    }

    pub fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.aws.moto_config(region))
    }

    /// The runner config of `preset` in `region`, straight from the emulator.
    pub async fn config(&self, region: &str, preset: &str) -> Option<Value> {
        let name = self.deps.config.parameter_name(preset);
        match self.ssm(region).get_parameter().name(&name).send().await {
            Ok(out) => out
                .parameter
                .and_then(|p| p.value)
                .map(|v| serde_json::from_str(&v).expect("config is JSON")),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                None
            }
            Err(e) => panic!("GetParameter {name}: {e:?}"),
        }
    }

    pub async fn put_config(&self, region: &str, preset: &str, value: &Value) {
        self.ssm(region)
            .put_parameter()
            .name(self.deps.config.parameter_name(preset))
            .value(value.to_string())
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .expect("PutParameter");
    }

    pub async fn record(&self, preset: &str) -> kiln_shared::AmiRecord {
        self.deps
            .store
            .get_ami(preset)
            .await
            .expect("GetItem")
            .expect("record exists")
    }
}

/// EventBridge `time` has second precision: a new build in the same second as the last
/// one's final event would tie with it, which never happens with real builds.
pub async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}
