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
mod arn;
pub(crate) mod ec2;
mod engine;
pub mod events;
pub mod model;
mod options;
mod resources;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use kiln_shared::ImageState;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use events::{EmittedEvent, EventFaults, Fate, RULE_STATES, SinkTarget};
pub use model::{Ami, BuildPlan, ImageView};
pub use options::{ListOrder, Options, PipelineSpec, Timing};

use engine::{Shared, register_blocking};

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
        let shared = Arc::new(Shared::new(options));
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

    /// Starts a build as the pipeline's schedule would (it counts towards the
    /// pipeline's AutoDisablePolicy); returns the image build version ARN.
    pub fn run_schedule(&self, pipeline_name: &str) -> Result<String, ImageBuilderError> {
        let arn = self.shared.pipeline_arn_by_name(pipeline_name)?;
        self.shared.start_build(&arn, false)
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
