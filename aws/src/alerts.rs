//! The alerts topic (SNS): one message per transition (a build failed, a warning
//! raised or cleared), never one per run. Who decides when to send is the caller's;
//! this only publishes.

use std::sync::Arc;

use aws_sdk_sns::Client;

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

pub trait Alerts: Send + Sync {
    /// A topic is configured.
    fn enabled(&self) -> bool;
    /// Publishes one message (`subject` at most 100 characters, as SNS allows).
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>>;
}

/// No topic configured: nothing is sent.
pub struct NoAlerts;

impl Alerts for NoAlerts {
    fn enabled(&self) -> bool {
        false
    }
    fn publish<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The real topic, by ARN.
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsAlerts {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// From an SDK configuration, or [`NoAlerts`] without a topic.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, topic_arn: Option<&str>) -> Arc<dyn Alerts> {
        match topic_arn.filter(|t| !t.trim().is_empty()) {
            Some(t) => Arc::new(SnsAlerts::new(Client::new(sdk), t)),
            None => Arc::new(NoAlerts),
        }
    }
}

impl Alerts for SnsAlerts {
    fn enabled(&self) -> bool {
        true
    }
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            let subject: String = subject.chars().take(100).collect();
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(subject)
                .message(message)
                .send()
                .await
                .map_err(|e| from_sdk("sns:Publish", e))?;
            Ok(())
        })
    }
}
