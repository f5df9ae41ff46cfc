//! Everything a handler needs, built once per container: the configuration and the
//! AWS clients of [`kiln_aws`], as trait objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kiln_aws::ec2::Ec2Images;
use kiln_aws::edge::{EdgePusher, HttpEdge, NoEdge};
use kiln_aws::images::ImageBuilderApi;
use kiln_aws::sdk::{self, Clients, Endpoints};
use kiln_aws::secrets::SecretVersions;
use kiln_aws::ssm::RunnerConfigs;
use kiln_aws::store::StateStore;

use crate::config::Config;
use crate::replay::ReplayGuard;
use crate::secret::EdgeSecret;

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn StateStore>,
    pub configs: Arc<dyn RunnerConfigs>,
    pub images: Arc<dyn ImageBuilderApi>,
    pub ec2: Arc<dyn Ec2Images>,
    pub edge: Arc<dyn EdgePusher>,
    pub secrets: Arc<dyn SecretVersions>,
    /// The alerts topic (`KILN_ALERTS_TOPIC_ARN`; none: nothing is sent).
    pub alerts: Arc<dyn kiln_aws::alerts::Alerts>,
    /// The edge secret's versions, cached per container.
    pub edge_secret: Arc<EdgeSecret>,
    /// Presets status-origin reconciled inline, and when (memo per container).
    pub(crate) inline_reconciled: Mutex<HashMap<String, Instant>>,
    /// Signatures status-origin accepted (refuses replays; bounded).
    pub(crate) replay: Mutex<ReplayGuard>,
}

impl Deps {
    pub fn new(config: Config, clients: Clients) -> Self {
        let edge_secret = Arc::new(EdgeSecret::new(
            config.edge_secret_arn.clone(),
            clients.secrets.clone(),
            config.edge_secret_ttl,
        ));
        Deps {
            edge_secret,
            secrets: clients.secrets,
            config,
            store: clients.store,
            configs: clients.configs,
            images: clients.images,
            ec2: clients.ec2,
            edge: clients.edge,
            alerts: clients.alerts,
            inline_reconciled: Mutex::new(HashMap::new()),
            replay: Mutex::new(ReplayGuard::new(
                crate::replay::CAPACITY,
                kiln_shared::signing::DEFAULT_WINDOW_SECS,
            )),
        }
    }

    /// Real SDK clients from one shared SDK configuration; the edge from `config`.
    pub fn from_sdk(config: Config, sdk: &aws_config::SdkConfig, endpoints: &Endpoints) -> Self {
        let alerts = kiln_aws::alerts::SnsAlerts::from_sdk(sdk, config.alerts_topic_arn.as_deref());
        let clients = Clients::from_sdk(sdk, endpoints, &config.table)
            .with_edge(edge_of(&config))
            .with_alerts(alerts);
        Deps::new(config, clients)
    }

    /// What the binaries use: configuration from the environment, AWS from the
    /// default provider chain with bounded calls, the edge secret read once (a failed
    /// read is logged and tried again, rate-limited, when a request needs it).
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
        let sdk = sdk::load_bounded().await;
        let deps = Self::from_sdk(config, &sdk, &Endpoints::default());
        deps.init().await;
        Ok(deps)
    }

    /// Init work: reads the edge secret when one is configured.
    pub async fn init(&self) {
        if !self.edge_secret.configured() {
            return;
        }
        match self.edge_secret.keys().await {
            Ok(_) => tracing::info!("edge secret read"),
            Err(e) => tracing::error!(error = %e, "edge secret unavailable at init"),
        }
    }

    /// The clients, to wrap or hand on.
    pub fn clients(&self) -> Clients {
        Clients {
            store: self.store.clone(),
            configs: self.configs.clone(),
            images: self.images.clone(),
            ec2: self.ec2.clone(),
            edge: self.edge.clone(),
            secrets: self.secrets.clone(),
            alerts: self.alerts.clone(),
        }
    }

    /// The same configuration over other clients.
    pub fn with_clients(self, clients: Clients) -> Self {
        Deps::new(self.config, clients)
    }

    /// Every client wrapped in the failure-injecting, call-counting wrapper.
    #[cfg(feature = "mock")]
    pub fn with_faults(self, plan: Arc<kiln_aws::mock::faults::FaultPlan>) -> Self {
        let clients = self.clients().with_faults(plan);
        self.with_clients(clients)
    }

    pub fn with_edge(self, edge: Arc<dyn EdgePusher>) -> Self {
        let clients = self.clients().with_edge(edge);
        self.with_clients(clients)
    }
}

/// Handler dependencies over in-memory fakes, with the fakes to inspect.
#[cfg(feature = "mock")]
pub fn fake(config: Config) -> (Deps, kiln_aws::mock::fakes::Fakes) {
    let fakes = kiln_aws::mock::fakes::Fakes::new();
    // Alerts are recorded only when a topic is configured, as in a deployment.
    let mut clients = fakes.clients();
    if config.alerts_topic_arn.is_none() {
        clients = clients.with_alerts(Arc::new(kiln_aws::alerts::NoAlerts));
    }
    (Deps::new(config, clients), fakes)
}

fn edge_of(config: &Config) -> Arc<dyn EdgePusher> {
    match (&config.edge_url, &config.edge_secret_arn) {
        (Some(url), Some(_)) => Arc::new(HttpEdge::new(url, config.edge_timeout)),
        (Some(_), None) => {
            tracing::warn!("KILN_EDGE_URL is set but not KILN_EDGE_SECRET_ARN: pushes disabled");
            Arc::new(NoEdge)
        }
        _ => Arc::new(NoEdge),
    }
}
