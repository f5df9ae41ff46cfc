//! The whole system on one machine, with no cloud account: what `kiln dev` runs and the
//! end-to-end tests drive.
//!
//! Every part a deployment has, running for real: DynamoDB Local and moto for the AWS
//! APIs, the local Image Builder endpoint (the one AWS service with no emulator), the
//! unmodified Lambda binaries under a local Lambda Runtime API, and the Worker under
//! `wrangler dev` pulling from the status-origin's Function URL. Presets are applied
//! through the same code as the `preset-init` custom resource, which starts the first
//! builds. The end-to-end tests drive exactly this assembly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kiln_aws::sdk::Endpoints;
use kiln_lambdas::config::Config;
use kiln_lambdas::deps::Deps;
use kiln_shared::{ImageState, Preset};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::imagebuilder::{self, EventFaults, LocalImageBuilder, PipelineSpec, Timing};
use crate::lambda::{FunctionSpec, FunctionUrl, LambdaError, LocalLambda};
use crate::process::{Output, ProcessError};
use crate::wrangler::{EdgeVars, WranglerDev};
use crate::{DynamoBackend, LocalAws};

/// What to run and how.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub presets: Vec<Preset>,
    pub prefix: String,
    pub region: String,
    /// Simulated duration of one image build.
    pub build_time: Duration,
    /// Presets whose first build fails (in TESTING, like a failed validation test).
    pub fail: Vec<String>,
    /// Lose every state-change event: only reconciliation can heal the state.
    pub drop_events: bool,
    /// Port of the Worker (`None`: a free one).
    pub edge_port: Option<u16>,
    /// HMAC secret shared by the Worker and the Lambdas (a fresh one per run by default):
    /// put into moto's Secrets Manager as `kiln/<prefix>/edge-secret`, whose ARN is all
    /// the Lambdas get (as deployed), and into the Worker's `.dev.vars`.
    pub secret: String,
    /// How long a Lambda container keeps the secret before reading it again.
    pub edge_secret_ttl: Duration,
    /// Directory holding the Lambda binaries (`ami-update`, …).
    pub lambda_dir: PathBuf,
    pub dynamodb: DynamoBackend,
    /// How often the `reconcile` Lambda runs (its EventBridge schedule in AWS).
    pub reconcile_every: Duration,
    /// A `building` record older than this is checked against Image Builder.
    pub stale_after: Duration,
    /// Worker cache TTL.
    pub edge_cache_ttl_secs: u32,
    /// Lambda output: a log file each (default) or this terminal.
    pub lambda_output: Output,
}

impl DevOptions {
    pub fn new(presets: Vec<Preset>, lambda_dir: PathBuf) -> Self {
        DevOptions {
            presets,
            prefix: kiln_shared::table::DEFAULT_PREFIX.to_owned(),
            region: crate::emulators::DEFAULT_REGION.to_owned(),
            build_time: Duration::from_secs(12),
            fail: Vec::new(),
            drop_events: false,
            edge_port: None,
            secret: format!("kiln-dev-{}", uuid_like()),
            edge_secret_ttl: Duration::from_secs(300),
            lambda_dir,
            dynamodb: DynamoBackend::DynamoDbLocal,
            reconcile_every: Duration::from_secs(20),
            stale_after: Duration::from_secs(20),
            edge_cache_ttl_secs: 2,
            lambda_output: Output::LogFile,
        }
    }
}

/// The secret `name` in moto with `options.secret` as its AWSCURRENT; its ARN.
async fn put_edge_secret(
    aws: &LocalAws,
    options: &DevOptions,
    name: &str,
) -> Result<String, kiln_aws::AwsError> {
    use kiln_aws::secrets::{SdkSecrets, SecretValue, Secrets};
    let sm = SdkSecrets::from_conf(&aws.moto_config(&options.region));
    let stored = sm
        .get_or_create(
            name,
            "kiln dev: HMAC secret shared by the Lambdas and the Worker",
        )
        .await?;
    let value = SecretValue::new(options.secret.clone());
    if stored.value != value {
        sm.put_value(name, &value).await?;
    }
    Ok(stored.arn)
}

/// A fresh random secret per run (122 random bits from the OS RNG).
fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Lambda(#[from] LambdaError),
    #[error(transparent)]
    ImageBuilder(#[from] imagebuilder::ImageBuilderError),
    #[error("Lambda binary {0} not found: build it with `cargo build -p kiln-lambdas --bins`")]
    MissingBinary(PathBuf),
    #[error("--fail names {0}, which is not a preset (known: {1})")]
    UnknownPreset(String, String),
    #[error("creating the state table: {0}")]
    Table(String),
    #[error("creating the edge secret in moto's Secrets Manager: {0}")]
    Secret(String),
    #[error("applying presets (preset-init): {0}")]
    Apply(String),
    #[error("{0}")]
    Presets(String),
}

/// The running local system. Dropping it stops every process it started.
pub struct DevStack {
    pub options: DevOptions,
    // Field order is drop order: the Worker and the Lambdas go before the emulators.
    reconcile_task: JoinHandle<()>,
    pub edge: WranglerDev,
    /// What the Worker was started with (restart it with other secrets to rehearse a
    /// rotation's Cloudflare steps).
    pub edge_vars: EdgeVars,
    /// The edge secret in moto's Secrets Manager (`kiln/<prefix>/edge-secret`).
    pub edge_secret_name: String,
    pub edge_secret_arn: String,
    origin_url: Option<FunctionUrl>,
    origin_port: u16,
    pub ami_update: Arc<LocalLambda>,
    pub reconcile: Arc<LocalLambda>,
    pub status_origin: LocalLambda,
    pub imagebuilder: LocalImageBuilder,
    /// SSM for `kiln` commands: Run Command on moto's instances, the rest forwarded.
    pub runcommand: crate::runcommand::LocalRunCommand,
    pub aws: LocalAws,
    /// Library access to the same state (what the tests inspect).
    pub deps: Deps,
}

impl Drop for DevStack {
    fn drop(&mut self) {
        self.reconcile_task.abort();
    }
}

/// The Lambda binaries `kiln dev` runs.
pub const FUNCTIONS: [&str; 3] = ["status-origin", "ami-update", "reconcile"];

impl DevStack {
    /// Starts everything, applies the presets (which starts the first builds) and returns
    /// once the Worker answers. `progress` receives one line per step.
    pub async fn start(options: DevOptions, progress: impl Fn(&str)) -> Result<DevStack, DevError> {
        for f in FUNCTIONS {
            let path = options.lambda_dir.join(f);
            if !path.is_file() {
                return Err(DevError::MissingBinary(path));
            }
        }
        for name in &options.fail {
            if !options.presets.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = options.presets.iter().map(|p| p.name.as_str()).collect();
                return Err(DevError::UnknownPreset(name.clone(), known.join(", ")));
            }
        }
        let table = kiln_shared::table::table_name(&options.prefix);

        progress("starting DynamoDB Local and moto");
        let aws = LocalAws::start(options.dynamodb, &options.region).await?;
        let ddb = aws_sdk_dynamodb::Client::new(&aws.dynamodb_config());
        kiln_aws::store::create_table(&ddb, &table)
            .await
            .map_err(|e| DevError::Table(e.to_string()))?;

        progress("starting the local SSM Run Command endpoint (kiln test)");
        let runcommand = crate::runcommand::LocalRunCommand::start(&aws.moto.endpoint())
            .await
            .map_err(|e| DevError::Apply(format!("local SSM Run Command endpoint: {e}")))?;
        runcommand.register_presets(&options.presets);
        // The instance profile the local pipelines name: moto's RunInstances checks it.
        create_instance_profile(
            &aws.moto.endpoint(),
            &options.region,
            BUILD_INSTANCE_PROFILE,
        )
        .await
        .map_err(DevError::Apply)?;

        progress("starting the local EC2 Image Builder endpoint");
        let imagebuilder = LocalImageBuilder::start(imagebuilder::Options {
            region: options.region.clone(),
            timing: Timing::total(options.build_time),
            // Finished builds register their AMIs (and snapshots) in moto's EC2, tagged
            // as the template's distribution tags them: `list --images`, cleanup and
            // the registry's size_gb work locally.
            ec2_endpoint: Some(aws.moto.endpoint()),
            ..Default::default()
        })
        .await?;
        // Preset → pipeline ARN: what the template's `Fn::GetAtt` hands preset-init.
        let mut pipeline_arns = kiln_lambdas::preset_init::PipelineArns::new();
        for preset in &options.presets {
            let pipeline = preset.pipeline_name(&options.prefix);
            let mut spec = PipelineSpec::new(&pipeline, preset.regions_or(&options.region))
                .architecture(preset.architecture)
                .ami_tag("kiln:preset", &preset.name)
                .ami_tag("kiln:prefix", &options.prefix)
                .ami_tag("kiln:architecture", preset.architecture.as_str())
                .ami_tag("kiln:template", &preset.template);
            // Named as the template names it (`${Prefix}-<preset>`): ami-update decides
            // "is this ours" from the recipe segment of the image ARN.
            spec.recipe_name = Some(pipeline.clone());
            spec.recipe_version = Some(preset.semantic_version());
            pipeline_arns.insert(preset.name.clone(), imagebuilder.register_pipeline(spec)?);
            if options.fail.contains(&preset.name) {
                imagebuilder.fail_next_build(
                    &pipeline,
                    ImageState::Testing,
                    "validation test 'docker' failed: exit status 1",
                );
            }
        }
        if options.drop_events {
            imagebuilder.set_event_faults(EventFaults::drop_all());
        }

        progress("creating the edge secret in moto's Secrets Manager");
        let edge_secret_name = format!("kiln/{}/edge-secret", options.prefix);
        let edge_secret_arn = put_edge_secret(&aws, &options, &edge_secret_name)
            .await
            .map_err(|e| DevError::Secret(e.to_string()))?;

        let mut env = aws.env();
        env.push((
            "AWS_ENDPOINT_URL_IMAGEBUILDER".into(),
            imagebuilder.endpoint(),
        ));
        env.extend(
            [
                ("KILN_TABLE", table.clone()),
                ("KILN_PREFIX", options.prefix.clone()),
                // Only the ARN, as deployed: the Lambdas read the value from moto.
                ("KILN_EDGE_SECRET_ARN", edge_secret_arn.clone()),
                (
                    "KILN_EDGE_SECRET_TTL_SECS",
                    options.edge_secret_ttl.as_secs().to_string(),
                ),
                (
                    "KILN_STALE_AFTER_SECS",
                    options.stale_after.as_secs().to_string(),
                ),
                ("KILN_STATUS_RECONCILE_MEMO_SECS", "2".to_owned()),
                ("RUST_LOG", "info".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let function = |name: &str, extra: &[(String, String)]| {
            FunctionSpec::new(name, options.lambda_dir.join(name))
                .envs(env.iter().cloned())
                .envs(extra.iter().cloned())
                .output(options.lambda_output)
        };

        progress("starting status-origin behind a local Function URL");
        let status_origin = LocalLambda::start(function("status-origin", &[])).await?;
        let origin_url = status_origin.serve_function_url(None).await?;
        let origin_port = origin_url.port();

        progress("starting the Worker under wrangler dev");
        let mut vars = EdgeVars::new(&origin_url.url(), &options.secret);
        vars.cache_ttl_secs = options.edge_cache_ttl_secs;
        vars.page_refresh_secs = 5;
        let edge = WranglerDev::start_edge(&vars, options.edge_port).await?;

        progress("starting ami-update and reconcile");
        let push = [("KILN_EDGE_URL".to_owned(), edge.url().to_owned())];
        let (ami_update, reconcile) = tokio::join!(
            LocalLambda::start(function("ami-update", &push)),
            LocalLambda::start(function("reconcile", &push)),
        );
        let ami_update = Arc::new(ami_update?);
        let reconcile = Arc::new(reconcile?);
        // The EventBridge rule: state changes go to ami-update's Invoke API.
        imagebuilder.add_http_sink(&ami_update.invoke_url());
        let reconcile_task = tokio::spawn(run_schedule(reconcile.clone(), options.reconcile_every));

        let mut config = Config::new(table, options.region.clone());
        config.prefix = options.prefix.clone();
        config.edge_secret_arn = Some(edge_secret_arn.clone());
        let deps = Deps::from_sdk(
            config,
            &aws.moto_config(&options.region),
            &Endpoints {
                dynamodb: Some(aws.dynamodb_endpoint()),
                ssm: Some(aws.moto.endpoint()),
                imagebuilder: Some(imagebuilder.endpoint()),
                ec2: Some(aws.moto.endpoint()),
                secretsmanager: Some(aws.moto.endpoint()),
            },
        );

        progress("applying presets (preset-init) and starting the first builds");
        kiln_lambdas::preset_init::apply_presets(
            &deps,
            &options.presets,
            &pipeline_arns,
            Utc::now(),
        )
        .await
        .map_err(|e| DevError::Apply(e.to_string()))?;

        Ok(DevStack {
            options,
            reconcile_task,
            edge,
            edge_vars: vars,
            edge_secret_name,
            edge_secret_arn,
            origin_url: Some(origin_url),
            origin_port,
            ami_update,
            reconcile,
            status_origin,
            imagebuilder,
            runcommand,
            aws,
            deps,
        })
    }

    /// Stops the Worker and starts it again on the same port with `vars`, keeping its
    /// local KV (a new Cloudflare deployment, e.g. of rotated secrets).
    pub async fn restart_edge(&mut self, vars: EdgeVars) -> Result<(), DevError> {
        self.edge.restart_edge(&vars).await?;
        self.edge_vars = vars;
        Ok(())
    }

    /// The readiness page.
    pub fn page_url(&self) -> String {
        format!("{}/", self.edge.url())
    }

    /// The public JSON status.
    pub fn status_url(&self) -> String {
        format!("{}/status", self.edge.url())
    }

    /// The origin's Function URL, while it runs.
    pub fn origin_url(&self) -> Option<String> {
        self.origin_url.as_ref().map(FunctionUrl::url)
    }

    /// Takes the origin off the network (the Worker must then serve stale snapshots).
    pub fn stop_origin(&mut self) {
        self.origin_url = None;
    }

    /// Brings the origin back on the same port.
    pub async fn start_origin(&mut self) -> Result<(), DevError> {
        if self.origin_url.is_none() {
            self.origin_url = Some(
                self.status_origin
                    .serve_function_url(Some(self.origin_port))
                    .await?,
            );
        }
        Ok(())
    }

    /// Where the Lambda logs go.
    pub fn log_paths(&self) -> Vec<(String, PathBuf)> {
        [
            ("status-origin", self.status_origin.log_path()),
            ("ami-update", self.ami_update.log_path()),
            ("reconcile", self.reconcile.log_path()),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n.to_owned(), p)))
        .collect()
    }
}

/// What the local Image Builder's infrastructure configurations name.
pub const BUILD_INSTANCE_PROFILE: &str = "kiln-image-builder";

/// An IAM instance profile in moto (kept if it exists).
async fn create_instance_profile(moto: &str, region: &str, name: &str) -> Result<(), String> {
    let params = [
        ("Action", "CreateInstanceProfile"),
        ("Version", "2010-05-08"),
        ("InstanceProfileName", name),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let http = reqwest::Client::new();
    match crate::imagebuilder::ec2::call_service(&http, moto, region, "iam", &params).await {
        Ok(_) => Ok(()),
        Err(e) if e.contains("EntityAlreadyExists") => Ok(()),
        Err(e) => Err(format!("creating instance profile {name} in moto: {e}")),
    }
}

/// The reconcile schedule: invoke the real `reconcile` binary with a Scheduled Event.
async fn run_schedule(reconcile: Arc<LocalLambda>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first tick is immediate; the first builds need no healing yet
    loop {
        tick.tick().await;
        let event = json!({
            "version": "0",
            "id": format!("kiln-dev-{}", Utc::now().timestamp_millis()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": kiln_shared::time::format(Utc::now()),
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/kiln-dev-reconcile"],
            "detail": {}
        });
        if let Err(e) = reconcile.invoke(&event).await {
            tracing::warn!(error = %e, "scheduled reconcile failed");
        }
    }
}

/// Where `kiln dev` finds the Lambda binaries by default: beside its own executable
/// (`target/debug/kiln` → `target/debug/ami-update`).
pub fn default_lambda_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}
