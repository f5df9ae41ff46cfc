//! The edge's shared HMAC secret in Secrets Manager: created once with a value from a
//! CSPRNG by `kiln deploy`, replaced only by `kiln secret rotate` ([`Secrets`]); the
//! Lambdas read its two live versions, AWSCURRENT and AWSPREVIOUS, by ARN
//! ([`SecretVersions`]). The value never reaches a log: [`SecretValue`] prints as `***`.

use std::fmt;

use aws_sdk_secretsmanager::Client;

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

/// Bytes of entropy of a generated secret (hex-encoded: 64 characters, above the
/// template's 32-character minimum).
pub const SECRET_BYTES: usize = 32;

/// A secret value: `Debug`/`Display` never show it; [`SecretValue::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// A fresh random value from the OS-seeded CSPRNG, hex-encoded.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        SecretValue(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub arn: String,
    pub value: SecretValue,
    /// Created by this call (first deploy), rather than read.
    pub created: bool,
}

/// The versions of the edge secret a Lambda signs and verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeKeys {
    /// AWSCURRENT: signs, and verifies.
    pub current: SecretValue,
    /// AWSPREVIOUS (absent before the first rotation): verifies only.
    pub previous: Option<SecretValue>,
}

impl EdgeKeys {
    /// The secrets a signature may verify against, the current one first.
    pub fn accepted(&self) -> Vec<&[u8]> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(|v| v.expose().as_bytes())
            .collect()
    }
}

/// What the Lambdas read: both live versions of one secret, by ARN.
pub trait SecretVersions: Send + Sync {
    fn read_versions<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<EdgeKeys, AwsError>>;
}

pub trait Secrets: Send + Sync {
    /// The secret called `name`, created with a generated value when absent.
    fn get_or_create<'a>(
        &'a self,
        name: &'a str,
        description: &'a str,
    ) -> BoxFut<'a, Result<StoredSecret, AwsError>>;
    /// The secret's AWSCURRENT, `None` when there is no such secret.
    fn get<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<StoredSecret>, AwsError>>;
    /// Stores `value` as the new AWSCURRENT; the former current becomes AWSPREVIOUS.
    fn put_value<'a>(
        &'a self,
        name: &'a str,
        value: &'a SecretValue,
    ) -> BoxFut<'a, Result<(), AwsError>>;
    /// Deletes the secret without a recovery window; `false` when there was none.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>>;
}

pub struct SdkSecrets(Client);

impl SdkSecrets {
    pub fn new(client: Client) -> Self {
        SdkSecrets(client)
    }

    /// A client from an SDK configuration (local emulators: its endpoint).
    pub fn from_conf(sdk: &aws_config::SdkConfig) -> Self {
        SdkSecrets(Client::new(sdk))
    }

    async fn read(&self, name: &str) -> Result<Option<StoredSecret>, AwsError> {
        self.read_stage(name, "AWSCURRENT").await
    }

    async fn read_stage(&self, name: &str, stage: &str) -> Result<Option<StoredSecret>, AwsError> {
        match self
            .0
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send()
            .await
        {
            Ok(out) => {
                let value = out.secret_string().ok_or_else(|| {
                    AwsError::invalid("secretsmanager:GetSecretValue", "no string value")
                })?;
                Ok(Some(StoredSecret {
                    arn: out.arn().unwrap_or_default().to_owned(),
                    value: SecretValue::new(value),
                    created: false,
                }))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(from_sdk("secretsmanager:GetSecretValue", e)),
        }
    }
}

impl SecretVersions for SdkSecrets {
    fn read_versions<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<EdgeKeys, AwsError>> {
        Box::pin(async move {
            let current = self.read_stage(arn, "AWSCURRENT").await?.ok_or_else(|| {
                AwsError::invalid("secretsmanager:GetSecretValue", "no such secret")
            })?;
            // Absent until the first rotation: a missing stage is not an error.
            let previous = self.read_stage(arn, "AWSPREVIOUS").await?;
            Ok(EdgeKeys {
                current: current.value,
                previous: previous.map(|p| p.value),
            })
        })
    }
}

impl Secrets for SdkSecrets {
    fn get_or_create<'a>(
        &'a self,
        name: &'a str,
        description: &'a str,
    ) -> BoxFut<'a, Result<StoredSecret, AwsError>> {
        Box::pin(async move {
            if let Some(found) = self.read(name).await? {
                return Ok(found);
            }
            let value = SecretValue::generate();
            match self
                .0
                .create_secret()
                .name(name)
                .description(description)
                .secret_string(value.expose())
                .send()
                .await
            {
                Ok(out) => Ok(StoredSecret {
                    arn: out.arn().unwrap_or_default().to_owned(),
                    value,
                    created: true,
                }),
                // A concurrent deploy created it first: use theirs, never a second value.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_exists_exception()) =>
                {
                    self.read(name).await?.ok_or_else(|| {
                        AwsError::invalid("secretsmanager:GetSecretValue", "created but not found")
                    })
                }
                Err(e) => Err(from_sdk("secretsmanager:CreateSecret", e)),
            }
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<StoredSecret>, AwsError>> {
        Box::pin(self.read(name))
    }

    fn put_value<'a>(
        &'a self,
        name: &'a str,
        value: &'a SecretValue,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            // Without explicit stages Secrets Manager moves AWSCURRENT to the new version
            // and AWSPREVIOUS to the one that was current.
            self.0
                .put_secret_value()
                .secret_id(name)
                .secret_string(value.expose())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| from_sdk("secretsmanager:PutSecretValue", e))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            match self
                .0
                .delete_secret()
                .secret_id(name)
                .force_delete_without_recovery(true)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(from_sdk("secretsmanager:DeleteSecret", e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_long_distinct_and_hidden() {
        let a = SecretValue::generate();
        let b = SecretValue::generate();
        assert_eq!(a.expose().len(), SECRET_BYTES * 2);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(!format!("{a:?} {a}").contains(a.expose()));
    }
}
