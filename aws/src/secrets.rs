//! The edge's shared HMAC secret in Secrets Manager: created once with a value from a
//! CSPRNG, then only ever read. The value never reaches a log: [`SecretValue`] prints
//! as `***`.

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

pub trait Secrets: Send + Sync {
    /// The secret called `name`, created with a generated value when absent.
    fn get_or_create<'a>(
        &'a self,
        name: &'a str,
        description: &'a str,
    ) -> BoxFut<'a, Result<StoredSecret, AwsError>>;
    /// Deletes the secret without a recovery window; `false` when there was none.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>>;
}

pub struct SdkSecrets(Client);

impl SdkSecrets {
    pub fn new(client: Client) -> Self {
        SdkSecrets(client)
    }

    async fn read(&self, name: &str) -> Result<Option<StoredSecret>, AwsError> {
        match self.0.get_secret_value().secret_id(name).send().await {
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
