//! Everything a handler needs, built once per container.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::edge::{EdgePusher, HttpEdge, NoEdge};
use crate::faults::{FaultPlan, Faulty};
use crate::images::{ImageBuilderApi, SdkImageBuilder};
use crate::runner_configs::{RunnerConfigs, SsmConfigs};
use crate::store::{DynamoStore, StateStore};

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn StateStore>,
    pub configs: Arc<dyn RunnerConfigs>,
    pub images: Arc<dyn ImageBuilderApi>,
    pub edge: Arc<dyn EdgePusher>,
    /// Presets status-origin reconciled inline, and when (memo per container).
    pub(crate) inline_reconciled: Mutex<HashMap<String, Instant>>,
}

/// Per-service endpoint overrides (local emulators); `None` uses the SDK's resolution,
/// which already honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub ssm: Option<String>,
    pub imagebuilder: Option<String>,
}

impl Deps {
    pub fn new(
        config: Config,
        store: Arc<dyn StateStore>,
        configs: Arc<dyn RunnerConfigs>,
        images: Arc<dyn ImageBuilderApi>,
        edge: Arc<dyn EdgePusher>,
    ) -> Self {
        Deps {
            config,
            store,
            configs,
            images,
            edge,
            inline_reconciled: Mutex::new(HashMap::new()),
        }
    }

    /// Real SDK clients from one shared SDK configuration.
    pub fn from_sdk(config: Config, sdk: &aws_config::SdkConfig, endpoints: &Endpoints) -> Self {
        let mut ddb = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(url) = &endpoints.dynamodb {
            ddb = ddb.endpoint_url(url);
        }
        let mut ib = aws_sdk_imagebuilder::config::Builder::from(sdk);
        if let Some(url) = &endpoints.imagebuilder {
            ib = ib.endpoint_url(url);
        }
        let ssm_base = match &endpoints.ssm {
            Some(url) => sdk.to_builder().endpoint_url(url).build(),
            None => sdk.clone(),
        };
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(ddb.build()),
            config.table.clone(),
        );
        let images = SdkImageBuilder::new(aws_sdk_imagebuilder::Client::from_conf(ib.build()));
        let edge = edge_from_config(&config);
        Deps::new(
            config,
            Arc::new(store),
            Arc::new(SsmConfigs::new(ssm_base)),
            Arc::new(images),
            edge,
        )
    }

    /// What the binaries use: configuration from the environment, AWS from the
    /// default provider chain.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
        // Bounded calls: a hung request must fail (and be retried by Lambda) well
        // before the function's own timeout.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(15))
            .build();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await;
        Ok(Self::from_sdk(config, &sdk, &Endpoints::default()))
    }

    /// Wraps every client in the failure-injecting, call-counting wrapper.
    pub fn with_faults(self, plan: Arc<FaultPlan>) -> Self {
        Deps {
            store: Arc::new(Faulty::new(self.store, plan.clone())),
            configs: Arc::new(Faulty::new(self.configs, plan.clone())),
            images: Arc::new(Faulty::new(self.images, plan.clone())),
            edge: Arc::new(Faulty::new(self.edge, plan)),
            ..self
        }
    }

    pub fn with_edge(self, edge: Arc<dyn EdgePusher>) -> Self {
        Deps { edge, ..self }
    }
}

fn edge_from_config(config: &Config) -> Arc<dyn EdgePusher> {
    match (&config.edge_url, &config.ingest_secret) {
        (Some(url), Some(secret)) => {
            Arc::new(HttpEdge::new(url, secret.as_bytes(), config.edge_timeout))
        }
        (Some(_), None) => {
            tracing::warn!("KILN_EDGE_URL is set but no ingest secret: pushes disabled");
            Arc::new(NoEdge)
        }
        _ => Arc::new(NoEdge),
    }
}
