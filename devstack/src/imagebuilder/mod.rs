//! A local EC2 Image Builder endpoint.
//!
//! No emulator implements Image Builder, so this is kiln's own: an axum server speaking
//! the REST-JSON operations kiln calls, for the real `aws-sdk-imagebuilder` client via
//! endpoint override ([`LocalImageBuilder::sdk_config`]). Builds progress PENDING →
//! BUILDING → TESTING → DISTRIBUTING → AVAILABLE (or FAILED / CANCELLED) on a
//! configurable clock, emit EventBridge-shaped state-change events to sinks, and can be
//! disturbed by fault knobs (Rust methods, or the control API under `/_kiln/`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, PipelineSpec};
//! let ib = LocalImageBuilder::start(Options::default()).await?;
//! ib.register_pipeline(PipelineSpec::new("spot-runner-linux-x64", ["us-east-1", "eu-west-1"]))?;
//! let mut events = ib.subscribe();
//! let client = aws_sdk_imagebuilder::Client::new(&ib.sdk_config());
//! # let _ = (&mut events, client);
//! # Ok(()) }
//! ```

mod api;
mod ec2;
pub mod events;
pub mod model;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;
use kiln_shared::{Architecture, ImageState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use events::{EmittedEvent, EventFaults, Fate, RULE_STATES, SinkTarget};
pub use model::{Ami, BuildPlan, ImageView};

use events::Sink;
use model::{Distribution, Image, Infrastructure, Pipeline, Recipe};

/// Errors of the local Image Builder (the API maps them to AWS error types).
#[derive(Debug, thiserror::Error)]
pub enum ImageBuilderError {
    #[error("cannot bind the local Image Builder to 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("port {0} on 127.0.0.1 is already in use")]
    PortInUse(u16),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    InUse(String),
    #[error("timed out after {timeout:?} waiting for {arn} (last state {state})")]
    Timeout {
        arn: String,
        state: ImageState,
        timeout: Duration,
    },
}

/// How long a simulated build spends in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub pending_ms: u64,
    pub building_ms: u64,
    pub testing_ms: u64,
    pub distributing_ms: u64,
    /// Builds only move when [`LocalImageBuilder::step`] is called (deterministic tests).
    #[serde(default)]
    pub manual: bool,
}

impl Default for Timing {
    /// 12 s per build: `kiln dev` shows every preset building, then ready, well within a
    /// minute, with each state visible for a few seconds.
    fn default() -> Self {
        Timing::total(Duration::from_secs(12))
    }
}

impl Timing {
    /// A build of `total` duration, split 10 / 45 / 25 / 20 % over the four states.
    pub fn total(total: Duration) -> Self {
        let ms = total.as_millis() as u64;
        Timing {
            pending_ms: ms / 10,
            building_ms: ms * 45 / 100,
            testing_ms: ms / 4,
            distributing_ms: ms - ms / 10 - ms * 45 / 100 - ms / 4,
            manual: false,
        }
    }

    /// Builds wait in each state until stepped.
    pub fn manual() -> Self {
        Timing {
            pending_ms: 0,
            building_ms: 0,
            testing_ms: 0,
            distributing_ms: 0,
            manual: true,
        }
    }

    fn in_state(&self, state: ImageState) -> Duration {
        Duration::from_millis(match state {
            ImageState::Pending => self.pending_ms,
            ImageState::Building => self.building_ms,
            ImageState::Testing => self.testing_ms,
            ImageState::Distributing => self.distributing_ms,
            _ => 0,
        })
    }
}

/// Order of ListImagePipelineImages. AWS does not document one and has returned an older
/// build first, so clients must sort by `dateCreated` themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    #[default]
    NewestFirst,
    /// The misleading order: oldest build first.
    OldestFirst,
}

/// Start options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The endpoint's region (pipelines, image ARNs, the event envelope).
    pub region: String,
    /// 12-digit account id in ARNs and AMIs.
    pub account_id: String,
    pub timing: Timing,
    /// Fixed port; `None` picks a free one.
    pub port: Option<u16>,
    /// States delivered to sinks (the EventBridge rule's pattern).
    pub rule_states: Vec<ImageState>,
    /// An EC2 emulator (moto) in which finished builds register their AMIs, tagged
    /// with the distribution's `amiTags`; `None`: AMI ids are only made up.
    pub ec2_endpoint: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            region: crate::emulators::DEFAULT_REGION.to_owned(),
            account_id: "123456789012".to_owned(),
            timing: Timing::default(),
            port: None,
            rule_states: RULE_STATES.to_vec(),
            ec2_endpoint: None,
        }
    }
}

/// A pipeline registered through the Rust convenience: recipe, infrastructure and
/// distribution configuration are created alongside.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// Pipeline name (kiln: `<prefix>-<preset>`).
    pub name: String,
    /// Distribution regions; the first is the home region. Empty: the endpoint's region.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub architecture: Option<Architecture>,
    /// Recipe name (the ARN's `image/<recipe>/…` segment); defaults to the pipeline name.
    #[serde(default)]
    pub recipe_name: Option<String>,
    /// Recipe semantic version; defaults to `1.0.0`.
    #[serde(default)]
    pub recipe_version: Option<String>,
    /// Tags the distribution puts on the AMIs (`amiDistributionConfiguration.amiTags`).
    #[serde(default)]
    pub ami_tags: BTreeMap<String, String>,
}

impl PipelineSpec {
    pub fn new<I, S>(name: &str, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PipelineSpec {
            name: name.to_owned(),
            regions: regions.into_iter().map(Into::into).collect(),
            architecture: None,
            recipe_name: None,
            recipe_version: None,
            ami_tags: BTreeMap::new(),
        }
    }

    pub fn ami_tag(mut self, key: &str, value: &str) -> Self {
        self.ami_tags.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn architecture(mut self, arch: Architecture) -> Self {
        self.architecture = Some(arch);
        self
    }
}

#[derive(Debug, Default)]
struct PipelineKnobs {
    events: Option<EventFaults>,
    list_order: Option<ListOrder>,
    next_builds: VecDeque<BuildPlan>,
}

#[derive(Debug)]
struct State {
    recipes: BTreeMap<String, Recipe>,
    infrastructures: BTreeMap<String, Infrastructure>,
    distributions: BTreeMap<String, Distribution>,
    pipelines: BTreeMap<String, Pipeline>,
    /// In creation order.
    images: Vec<Image>,
    build_numbers: HashMap<String, u32>,
    client_tokens: HashMap<String, String>,
    timing: Timing,
    rule_states: Vec<ImageState>,
    global_events: EventFaults,
    global_list_order: ListOrder,
    /// Keyed by pipeline name.
    knobs: HashMap<String, PipelineKnobs>,
    /// Per image ARN, events held for reordering.
    held: HashMap<String, Vec<Value>>,
    log: Vec<EmittedEvent>,
    sinks: Vec<Sink>,
    /// The next N API calls fail with ServiceUnavailableException.
    unavailable_calls: u32,
}

#[derive(Debug)]
pub(crate) struct Shared {
    region: String,
    account: String,
    ec2_endpoint: Option<String>,
    state: Mutex<State>,
    http: reqwest::Client,
    /// Bumped on every image state change; waiters watch it.
    changes: watch::Sender<u64>,
}

/// A running local Image Builder endpoint. Dropping it stops the server and all builds.
#[derive(Debug)]
pub struct LocalImageBuilder {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: crate::serve::Server,
}

impl Drop for LocalImageBuilder {
    fn drop(&mut self) {
        // Stop sink workers and build clocks: they hold only weak interest in state.
        self.shared.lock().sinks.clear();
    }
}

impl LocalImageBuilder {
    pub async fn start(options: Options) -> Result<Self, ImageBuilderError> {
        let port = options.port.unwrap_or(0);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AddrInUse {
                    ImageBuilderError::PortInUse(port)
                } else {
                    ImageBuilderError::Bind { port, source }
                }
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ImageBuilderError::Bind { port, source })?;
        let shared = Arc::new(Shared {
            region: options.region,
            account: options.account_id,
            ec2_endpoint: options.ec2_endpoint,
            state: Mutex::new(State {
                recipes: BTreeMap::new(),
                infrastructures: BTreeMap::new(),
                distributions: BTreeMap::new(),
                pipelines: BTreeMap::new(),
                images: Vec::new(),
                build_numbers: HashMap::new(),
                client_tokens: HashMap::new(),
                timing: options.timing,
                rule_states: options.rule_states,
                global_events: EventFaults::default(),
                global_list_order: ListOrder::default(),
                knobs: HashMap::new(),
                held: HashMap::new(),
                log: Vec::new(),
                sinks: Vec::new(),
                unavailable_calls: 0,
            }),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .expect("static reqwest configuration"),
            changes: watch::channel(0).0,
        });
        let router = api::router(shared.clone());
        let server = crate::serve::Server::spawn(listener, router, "local Image Builder");
        tracing::info!(%addr, "local Image Builder ready");
        Ok(LocalImageBuilder {
            shared,
            addr,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn region(&self) -> &str {
        &self.shared.region
    }

    pub fn account_id(&self) -> &str {
        &self.shared.account
    }

    /// Config for `aws_sdk_imagebuilder::Client::new`.
    pub fn sdk_config(&self) -> SdkConfig {
        crate::emulators::sdk_config(&self.endpoint(), &self.shared.region)
    }

    /// Environment for a child process (a Lambda binary) whose default SDK config should
    /// reach this endpoint for Image Builder calls.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("AWS_ENDPOINT_URL_IMAGEBUILDER".to_owned(), self.endpoint())]
    }

    /// Creates recipe, infrastructure and distribution configuration and the pipeline;
    /// returns the pipeline ARN.
    pub fn register_pipeline(&self, spec: PipelineSpec) -> Result<String, ImageBuilderError> {
        self.shared.register_pipeline(spec)
    }

    /// Starts a build of the named pipeline (as StartImagePipelineExecution); returns the
    /// image build version ARN.
    pub fn start_build(&self, pipeline_name: &str) -> Result<String, ImageBuilderError> {
        let arn = self.shared.pipeline_arn_by_name(pipeline_name)?;
        self.shared.start_build(&arn, true)
    }

    /// Cancels a running build (as CancelImageCreation).
    pub fn cancel(&self, image_arn: &str) -> Result<(), ImageBuilderError> {
        self.shared.cancel(image_arn)
    }

    /// Moves a build one state on (the only way builds move under [`Timing::manual`]).
    /// Returns the new state.
    ///
    /// With [`Options::ec2_endpoint`], the step to AVAILABLE registers the AMIs first and
    /// blocks the calling thread for those few HTTP calls.
    pub fn step(&self, image_arn: &str) -> Result<ImageState, ImageBuilderError> {
        let registered = self
            .shared
            .registration_for(image_arn)
            .map(|r| register_blocking(&r));
        self.shared.advance_with(image_arn, registered)
    }

    pub fn set_timing(&self, timing: Timing) {
        self.shared.lock().timing = timing;
    }

    /// Delivers events to an HTTP endpoint (POST, JSON body).
    pub fn add_http_sink(&self, url: &str) {
        self.shared.add_sink(SinkTarget::Http(url.to_owned()));
    }

    /// Delivers events into a new in-process channel.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.add_sink(SinkTarget::Channel(tx));
        rx
    }

    /// Event faults for every pipeline without its own setting.
    pub fn set_event_faults(&self, faults: EventFaults) {
        self.shared.lock().global_events = faults;
    }

    /// Event faults for one pipeline (`None` falls back to the global setting).
    pub fn set_pipeline_event_faults(&self, pipeline_name: &str, faults: Option<EventFaults>) {
        self.shared.knobs(pipeline_name, |k| k.events = faults);
    }

    /// The next build of the pipeline fails once it has reached `at`.
    pub fn fail_next_build(&self, pipeline_name: &str, at: ImageState, reason: &str) {
        self.plan_next_build(
            pipeline_name,
            BuildPlan::Fail {
                at,
                reason: reason.to_owned(),
            },
        );
    }

    /// The next build of the pipeline is cancelled once it has reached `at`.
    pub fn cancel_next_build(&self, pipeline_name: &str, at: ImageState) {
        self.plan_next_build(pipeline_name, BuildPlan::Cancel { at });
    }

    /// Queues how the pipeline's next build ends (plans are used in order).
    pub fn plan_next_build(&self, pipeline_name: &str, plan: BuildPlan) {
        self.shared
            .knobs(pipeline_name, |k| k.next_builds.push_back(plan));
    }

    pub fn set_list_order(&self, order: ListOrder) {
        self.shared.lock().global_list_order = order;
    }

    pub fn set_pipeline_list_order(&self, pipeline_name: &str, order: Option<ListOrder>) {
        self.shared.knobs(pipeline_name, |k| k.list_order = order);
    }

    /// The next `n` API calls answer 503 ServiceUnavailableException.
    pub fn fail_next_api_calls(&self, n: u32) {
        self.shared.lock().unavailable_calls = n;
    }

    pub fn image(&self, arn: &str) -> Option<ImageView> {
        self.shared
            .lock()
            .images
            .iter()
            .find(|i| i.arn == arn)
            .map(ImageView::from)
    }

    /// All images, oldest first.
    pub fn images(&self) -> Vec<ImageView> {
        self.shared
            .lock()
            .images
            .iter()
            .map(ImageView::from)
            .collect()
    }

    /// Every event emitted so far with what happened to it.
    pub fn emitted_events(&self) -> Vec<EmittedEvent> {
        self.shared.lock().log.clone()
    }

    /// Waits until the image reaches a terminal state (AVAILABLE, FAILED, CANCELLED).
    pub async fn wait_terminal(
        &self,
        arn: &str,
        timeout: Duration,
    ) -> Result<ImageView, ImageBuilderError> {
        self.wait_for(arn, timeout, |s| s.is_terminal()).await
    }

    /// Waits until the image's state satisfies `done`.
    pub async fn wait_for(
        &self,
        arn: &str,
        timeout: Duration,
        done: impl Fn(ImageState) -> bool,
    ) -> Result<ImageView, ImageBuilderError> {
        let mut changes = self.shared.changes.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            let view = self
                .image(arn)
                .ok_or_else(|| ImageBuilderError::NotFound(format!("no image {arn}")))?;
            if done(view.state) {
                return Ok(view);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(ImageBuilderError::Timeout {
                    arn: arn.to_owned(),
                    state: view.state,
                    timeout,
                });
            }
        }
    }

    /// Forgets all resources, images, knobs and logged events (sinks stay).
    pub fn reset(&self) {
        self.shared.reset();
    }
}

fn valid_name(name: &str) -> bool {
    // Image Builder's resource name pattern: letters, digits, '-', '_' (and inner spaces).
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b' ')
        && !name.starts_with(' ')
        && !name.ends_with(' ')
}

fn valid_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u32>().is_ok())
}

/// ARN resource names are lower case, spaces as dashes (as Image Builder does).
fn arn_name(name: &str) -> String {
    name.to_ascii_lowercase().replace(' ', "-")
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (no multi-step
        // invariants span an unwind), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arn(&self, kind: &str, rest: &str) -> String {
        format!(
            "arn:aws:imagebuilder:{}:{}:{kind}/{rest}",
            self.region, self.account
        )
    }

    fn knobs(&self, pipeline: &str, f: impl FnOnce(&mut PipelineKnobs)) {
        f(self.lock().knobs.entry(pipeline.to_owned()).or_default());
    }

    fn take_unavailable(&self) -> bool {
        let mut st = self.lock();
        if st.unavailable_calls > 0 {
            st.unavailable_calls -= 1;
            true
        } else {
            false
        }
    }

    fn reset(&self) {
        let mut st = self.lock();
        st.recipes.clear();
        st.infrastructures.clear();
        st.distributions.clear();
        st.pipelines.clear();
        st.images.clear();
        st.build_numbers.clear();
        st.client_tokens.clear();
        st.global_events = EventFaults::default();
        st.global_list_order = ListOrder::default();
        st.knobs.clear();
        st.held.clear();
        st.log.clear();
        st.unavailable_calls = 0;
        drop(st);
        self.changes.send_modify(|n| *n += 1);
    }

    fn add_sink(&self, target: SinkTarget) {
        let sink = Sink::spawn(target, self.http.clone());
        self.lock().sinks.push(sink);
    }

    fn pipeline_arn_by_name(&self, name: &str) -> Result<String, ImageBuilderError> {
        self.lock()
            .pipelines
            .values()
            .find(|p| p.name == name)
            .map(|p| p.arn.clone())
            .ok_or_else(|| ImageBuilderError::NotFound(format!("no image pipeline named '{name}'")))
    }

    fn create_recipe(
        &self,
        name: &str,
        version: &str,
        parent_image: &str,
        components: Vec<String>,
        description: Option<String>,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid recipe name '{name}': 1-128 letters, digits, '-', '_'"
            )));
        }
        if !valid_semver(version) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid semanticVersion '{version}': expected <major>.<minor>.<patch>"
            )));
        }
        if parent_image.is_empty() {
            return Err(ImageBuilderError::Invalid("parentImage is required".into()));
        }
        let arn = self.arn("image-recipe", &format!("{}/{version}", arn_name(name)));
        let mut st = self.lock();
        if st.recipes.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "image recipe {arn} already exists"
            )));
        }
        st.recipes.insert(
            arn.clone(),
            Recipe {
                arn: arn.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                parent_image: parent_image.to_owned(),
                components,
                description,
                created: Utc::now(),
            },
        );
        Ok(arn)
    }

    fn create_infrastructure(
        &self,
        name: &str,
        instance_types: Vec<String>,
        instance_profile_name: &str,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid infrastructure configuration name '{name}'"
            )));
        }
        if instance_profile_name.is_empty() {
            return Err(ImageBuilderError::Invalid(
                "instanceProfileName is required".into(),
            ));
        }
        let arn = self.arn("infrastructure-configuration", &arn_name(name));
        let mut st = self.lock();
        if st.infrastructures.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "infrastructure configuration {arn} already exists"
            )));
        }
        st.infrastructures.insert(
            arn.clone(),
            Infrastructure {
                arn: arn.clone(),
                name: name.to_owned(),
                instance_types,
                instance_profile_name: instance_profile_name.to_owned(),
                created: Utc::now(),
            },
        );
        Ok(arn)
    }

    fn create_distribution(
        &self,
        name: &str,
        regions: Vec<String>,
        ami_tags: BTreeMap<String, String>,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid distribution configuration name '{name}'"
            )));
        }
        if regions.is_empty() {
            return Err(ImageBuilderError::Invalid(
                "distributions must name at least one region".into(),
            ));
        }
        if let Some(bad) = regions.iter().find(|r| !valid_region(r)) {
            return Err(ImageBuilderError::Invalid(format!(
                "'{bad}' is not a region name"
            )));
        }
        let arn = self.arn("distribution-configuration", &arn_name(name));
        let mut st = self.lock();
        if st.distributions.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "distribution configuration {arn} already exists"
            )));
        }
        st.distributions.insert(
            arn.clone(),
            Distribution {
                arn: arn.clone(),
                name: name.to_owned(),
                regions,
                ami_tags,
                created: Utc::now(),
            },
        );
        Ok(arn)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_pipeline(
        &self,
        name: &str,
        description: Option<String>,
        recipe_arn: &str,
        infrastructure_arn: &str,
        distribution_arn: Option<&str>,
        schedule: Option<Value>,
        enabled: bool,
    ) -> Result<String, ImageBuilderError> {
        if !valid_name(name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid pipeline name '{name}': 1-128 letters, digits, '-', '_'"
            )));
        }
        let arn = self.arn("image-pipeline", &arn_name(name));
        let mut st = self.lock();
        if !st.recipes.contains_key(recipe_arn) {
            return Err(ImageBuilderError::Invalid(format!(
                "imageRecipeArn {recipe_arn} does not exist"
            )));
        }
        if !st.infrastructures.contains_key(infrastructure_arn) {
            return Err(ImageBuilderError::Invalid(format!(
                "infrastructureConfigurationArn {infrastructure_arn} does not exist"
            )));
        }
        if let Some(d) = distribution_arn
            && !st.distributions.contains_key(d)
        {
            return Err(ImageBuilderError::Invalid(format!(
                "distributionConfigurationArn {d} does not exist"
            )));
        }
        if st.pipelines.contains_key(&arn) {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "image pipeline {arn} already exists"
            )));
        }
        st.pipelines.insert(
            arn.clone(),
            Pipeline {
                arn: arn.clone(),
                name: name.to_owned(),
                description,
                recipe_arn: recipe_arn.to_owned(),
                infrastructure_arn: infrastructure_arn.to_owned(),
                distribution_arn: distribution_arn.map(str::to_owned),
                schedule,
                enabled,
                created: Utc::now(),
                last_run: None,
            },
        );
        Ok(arn)
    }

    fn register_pipeline(&self, spec: PipelineSpec) -> Result<String, ImageBuilderError> {
        let regions = if spec.regions.is_empty() {
            vec![self.region.clone()]
        } else {
            spec.regions.clone()
        };
        let recipe_name = spec
            .recipe_name
            .clone()
            .unwrap_or_else(|| spec.name.clone());
        let version = spec
            .recipe_version
            .clone()
            .unwrap_or_else(|| "1.0.0".to_owned());
        if !valid_name(&spec.name) {
            return Err(ImageBuilderError::Invalid(format!(
                "invalid pipeline name '{}'",
                spec.name
            )));
        }
        if self.pipeline_arn_by_name(&spec.name).is_ok() {
            return Err(ImageBuilderError::AlreadyExists(format!(
                "image pipeline '{}' already exists",
                spec.name
            )));
        }
        let arch = spec.architecture.unwrap_or(Architecture::X86_64);
        let parent = format!(
            "arn:aws:imagebuilder:{}:aws:image/ubuntu-server-22-lts-{}/x.x.x",
            self.region,
            if arch == Architecture::Arm64 {
                "arm64"
            } else {
                "x86"
            }
        );
        let instance = if arch == Architecture::Arm64 {
            "m7g.large"
        } else {
            "m7i.large"
        };
        let recipe = self.create_recipe(&recipe_name, &version, &parent, vec![], None)?;
        let infra = self.create_infrastructure(
            &format!("{}-infra", spec.name),
            vec![instance.to_owned()],
            "kiln-image-builder",
        )?;
        let dist = self.create_distribution(
            &format!("{}-dist", spec.name),
            regions,
            spec.ami_tags.clone(),
        )?;
        self.create_pipeline(
            &spec.name,
            Some(format!("kiln local pipeline {}", spec.name)),
            &recipe,
            &infra,
            Some(&dist),
            None,
            true,
        )
    }

    /// Starts a build; the image appears in PENDING and its clock starts.
    fn start_build(
        self: &Arc<Self>,
        pipeline_arn: &str,
        user: bool,
    ) -> Result<String, ImageBuilderError> {
        let (arn, timing) = {
            let mut st = self.lock();
            let pipeline = st.pipelines.get(pipeline_arn).cloned().ok_or_else(|| {
                ImageBuilderError::NotFound(format!("image pipeline {pipeline_arn} does not exist"))
            })?;
            if !pipeline.enabled {
                return Err(ImageBuilderError::InUse(format!(
                    "image pipeline {} is disabled",
                    pipeline.name
                )));
            }
            let recipe = st.recipes[&pipeline.recipe_arn].clone();
            let infrastructure = st.infrastructures[&pipeline.infrastructure_arn].clone();
            let distribution = pipeline
                .distribution_arn
                .as_ref()
                .and_then(|d| st.distributions.get(d))
                .cloned();
            let regions = distribution
                .as_ref()
                .map_or_else(|| vec![self.region.clone()], |d| d.regions.clone());
            let build = {
                let n = st.build_numbers.entry(recipe.arn.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let arn = self.arn(
                "image",
                &format!("{}/{}/{build}", arn_name(&recipe.name), recipe.version),
            );
            let plan = st
                .knobs
                .get_mut(&pipeline.name)
                .and_then(|k| k.next_builds.pop_front())
                .unwrap_or_default();
            let now = Utc::now();
            if let Some(p) = st.pipelines.get_mut(pipeline_arn) {
                p.last_run = Some(now);
            }
            st.images.push(Image {
                arn: arn.clone(),
                recipe,
                build,
                pipeline_arn: pipeline.arn.clone(),
                pipeline_name: pipeline.name.clone(),
                infrastructure,
                distribution,
                regions,
                state: ImageState::Pending,
                reason: None,
                created: now,
                plan,
                amis: Vec::new(),
                account: self.account.clone(),
                user_initiated: user,
                history: vec![(ImageState::Pending, now)],
            });
            self.emit(&mut st, &arn, ImageState::Pending, None, None);
            (arn, st.timing)
        };
        self.changes.send_modify(|n| *n += 1);
        tracing::info!(image = %arn, "build started");
        if !timing.manual {
            let shared = Arc::downgrade(self);
            let image = arn.clone();
            tokio::spawn(async move {
                loop {
                    let Some(s) = shared.upgrade() else { return };
                    let (state, timing) = {
                        let st = s.lock();
                        let Some(img) = st.images.iter().find(|i| i.arn == image) else {
                            return;
                        };
                        (img.state, st.timing)
                    };
                    if state.is_terminal() {
                        return;
                    }
                    drop(s);
                    tokio::time::sleep(timing.in_state(state)).await;
                    let Some(s) = shared.upgrade() else { return };
                    let registered = match s.registration_for(&image) {
                        Some(r) => Some(ec2::register(&s.http, &r).await.map(|ids| (r, ids))),
                        None => None,
                    };
                    if s.advance_with(&image, registered).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(arn)
    }

    /// What to register in EC2 when the image's next step is AVAILABLE.
    fn registration_for(&self, arn: &str) -> Option<ec2::Registration> {
        let endpoint = self.ec2_endpoint.clone()?;
        let st = self.lock();
        let image = st.images.iter().find(|i| i.arn == arn)?;
        let stops_here = match &image.plan {
            BuildPlan::Succeed => false,
            BuildPlan::Fail { at, .. } | BuildPlan::Cancel { at } => *at == image.state,
        };
        if image.state != ImageState::Distributing || stops_here {
            return None;
        }
        let mut tags = image
            .distribution
            .as_ref()
            .map(|d| d.ami_tags.clone())
            .unwrap_or_default();
        // Image Builder's own tags on every AMI it distributes.
        tags.insert("CreatedBy".into(), "EC2 Image Builder".into());
        tags.insert("Ec2ImageBuilderArn".into(), image.arn.clone());
        Some(ec2::Registration {
            endpoint,
            regions: image.regions.clone(),
            name: ami_name(&image.recipe.name, Utc::now()),
            description: format!(
                "Built by kiln's local Image Builder from {}",
                image.pipeline_name
            ),
            tags,
        })
    }

    /// One transition of the image's life, following its plan.
    fn advance(&self, arn: &str) -> Result<ImageState, ImageBuilderError> {
        self.advance_with(arn, None)
    }

    /// As [`Shared::advance`]; `registered` carries the AMIs registered in EC2 for the step
    /// to AVAILABLE (an error fails the build as a distribution failure).
    fn advance_with(
        &self,
        arn: &str,
        registered: Option<Registered>,
    ) -> Result<ImageState, ImageBuilderError> {
        let new_state = {
            let mut st = self.lock();
            let image = st
                .images
                .iter_mut()
                .find(|i| i.arn == arn)
                .ok_or_else(|| ImageBuilderError::NotFound(format!("no image {arn}")))?;
            let current = image.state;
            if current.is_terminal() {
                return Err(ImageBuilderError::InUse(format!(
                    "image {arn} is already {current}"
                )));
            }
            let (next, reason) = match (&image.plan, &registered) {
                (_, Some(Err(e))) => (
                    ImageState::Failed,
                    Some(format!("Distribution failed: {e}")),
                ),
                (BuildPlan::Fail { at, reason }, _) if *at == current => {
                    (ImageState::Failed, Some(reason.clone()))
                }
                (BuildPlan::Cancel { at }, _) if *at == current => (
                    ImageState::Cancelled,
                    Some("Image creation cancelled by user".to_owned()),
                ),
                _ => (
                    model::successor(current).unwrap_or(ImageState::Available),
                    None,
                ),
            };
            let now = Utc::now();
            image.state = next;
            image.reason = reason.clone();
            image.history.push((next, now));
            if next == ImageState::Available {
                image.amis = match registered {
                    Some(Ok((registration, ids))) => ids
                        .into_iter()
                        .map(|(region, id)| Ami {
                            region,
                            image: id,
                            name: registration.name.clone(),
                            account_id: image.account.clone(),
                        })
                        .collect(),
                    _ => image
                        .regions
                        .iter()
                        .map(|region| Ami {
                            region: region.clone(),
                            image: model::ami_id(),
                            name: ami_name(&image.recipe.name, now),
                            account_id: image.account.clone(),
                        })
                        .collect(),
                };
            }
            self.emit(&mut st, arn, next, Some(current), reason.as_deref());
            next
        };
        self.changes.send_modify(|n| *n += 1);
        tracing::info!(image = %arn, state = %new_state, "image state changed");
        Ok(new_state)
    }

    fn cancel(&self, arn: &str) -> Result<(), ImageBuilderError> {
        {
            let mut st = self.lock();
            let image = st
                .images
                .iter_mut()
                .find(|i| i.arn == arn)
                .ok_or_else(|| ImageBuilderError::NotFound(format!("no image {arn}")))?;
            let current = image.state;
            if current.is_terminal() {
                return Err(ImageBuilderError::InUse(format!(
                    "the image {arn} cannot be cancelled in state {current}"
                )));
            }
            image.state = ImageState::Cancelled;
            image.reason = Some("Image creation cancelled by user".to_owned());
            image.history.push((ImageState::Cancelled, Utc::now()));
            let reason = image.reason.clone();
            self.emit(
                &mut st,
                arn,
                ImageState::Cancelled,
                Some(current),
                reason.as_deref(),
            );
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Builds the event, applies the rule and the faults, hands it to the sinks.
    fn emit(
        &self,
        st: &mut State,
        arn: &str,
        state: ImageState,
        previous: Option<ImageState>,
        reason: Option<&str>,
    ) {
        let Some(image) = st.images.iter().find(|i| i.arn == arn) else {
            return;
        };
        let pipeline = image.pipeline_name.clone();
        let at = image.history.last().map_or_else(Utc::now, |(_, t)| *t);
        let event = events::envelope(
            &self.account,
            &self.region,
            arn,
            state,
            previous,
            reason,
            at,
        );
        let faults = st
            .knobs
            .get(&pipeline)
            .and_then(|k| k.events.clone())
            .unwrap_or_else(|| st.global_events.clone());
        let due = Instant::now() + Duration::from_millis(faults.delay_ms);
        let fate = if !st.rule_states.contains(&state) {
            Fate::NotMatched
        } else if faults.drop.contains(&state) {
            Fate::Dropped
        } else if faults.reorder {
            st.held
                .entry(arn.to_owned())
                .or_default()
                .push(event.clone());
            Fate::Held
        } else {
            let copies = if faults.duplicate.contains(&state) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                for sink in &st.sinks {
                    sink.send(due, event.clone());
                }
            }
            Fate::Sent { copies }
        };
        if fate != Fate::NotMatched {
            tracing::debug!(image = arn, %state, ?fate, "event");
        }
        st.log.push(EmittedEvent {
            pipeline_name: pipeline,
            image_arn: arn.to_owned(),
            state,
            fate,
            event,
        });
        // A finished build releases its held events, newest first.
        if state.is_terminal()
            && let Some(held) = st.held.remove(arn)
        {
            for event in held.into_iter().rev() {
                for sink in &st.sinks {
                    sink.send(due, event.clone());
                }
                let id = event["id"].clone();
                if let Some(entry) = st.log.iter_mut().find(|e| e.event["id"] == id) {
                    entry.fate = Fate::Sent { copies: 1 };
                }
            }
        }
    }

    fn list_order(&self, st: &State, pipeline_name: &str) -> ListOrder {
        st.knobs
            .get(pipeline_name)
            .and_then(|k| k.list_order)
            .unwrap_or(st.global_list_order)
    }
}

fn valid_region(region: &str) -> bool {
    // e.g. us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts.last().is_some_and(|p| p.parse::<u8>().is_ok())
}

/// An EC2 registration's outcome: what was registered and region → AMI id, or why not.
type Registered = Result<(ec2::Registration, Vec<(String, String)>), String>;

/// Image Builder's default AMI name: recipe name and build time.
fn ami_name(recipe: &str, at: chrono::DateTime<Utc>) -> String {
    format!("{recipe} {}", at.format("%Y-%m-%dT%H-%M-%SZ"))
}

/// Runs the EC2 registration from synchronous code (a thread with its own runtime, so it
/// works whatever runtime, if any, the caller is on).
fn register_blocking(r: &ec2::Registration) -> Registered {
    let r = r.clone();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .no_proxy()
                        .build()
                        .map_err(|e| e.to_string())?;
                    ec2::register(&http, &r).await.map(|ids| (r.clone(), ids))
                })
            })
            .join()
            .unwrap_or_else(|_| Err("EC2 registration thread panicked".into()))
    })
}
