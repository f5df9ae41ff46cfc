//! In-memory fakes of the deploy's S3, Secrets Manager, STS and DynamoDB-table clients: a
//! secret is created once and read ever after; an object key is written once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::BoxFut;
use crate::account::{Account, Tables};
use crate::artifacts::Artifacts;
use crate::error::AwsError;
use crate::secrets::{SecretValue, Secrets, StoredSecret};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct MemSecrets {
    /// Name → AWSCURRENT.
    pub secrets: Mutex<BTreeMap<String, SecretValue>>,
    /// Name → AWSPREVIOUS (after a PutSecretValue).
    pub previous: Mutex<BTreeMap<String, SecretValue>>,
    /// CreateSecret calls made.
    pub creates: Mutex<usize>,
}

impl Secrets for MemSecrets {
    fn get_or_create<'a>(
        &'a self,
        name: &'a str,
        _description: &'a str,
    ) -> BoxFut<'a, Result<StoredSecret, AwsError>> {
        Box::pin(async move {
            let mut map = lock(&self.secrets);
            let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}");
            if let Some(value) = map.get(name) {
                return Ok(StoredSecret {
                    arn,
                    value: value.clone(),
                    created: false,
                });
            }
            let value = SecretValue::generate();
            map.insert(name.to_owned(), value.clone());
            *lock(&self.creates) += 1;
            Ok(StoredSecret {
                arn,
                value,
                created: true,
            })
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<StoredSecret>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.secrets).get(name).map(|value| StoredSecret {
                arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}"),
                value: value.clone(),
                created: false,
            }))
        })
    }

    fn put_value<'a>(
        &'a self,
        name: &'a str,
        value: &'a SecretValue,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            let mut map = lock(&self.secrets);
            let Some(old) = map.get(name).cloned() else {
                return Err(AwsError::new(
                    "secretsmanager:PutSecretValue",
                    crate::AwsErrorKind::Client,
                    format!("ResourceNotFoundException: {name}"),
                ));
            };
            map.insert(name.to_owned(), value.clone());
            lock(&self.previous).insert(name.to_owned(), old);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            lock(&self.previous).remove(name);
            Ok(lock(&self.secrets).remove(name).is_some())
        })
    }
}

#[derive(Default)]
pub struct MemArtifacts {
    pub buckets: Mutex<BTreeSet<String>>,
    /// (bucket, key) → body.
    pub objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl Artifacts for MemArtifacts {
    fn ensure_bucket<'a>(
        &'a self,
        bucket: &'a str,
        _region: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move { Ok(lock(&self.buckets).insert(bucket.to_owned())) })
    }

    fn put_if_absent<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            if !lock(&self.buckets).contains(bucket) {
                return Err(AwsError::new(
                    "s3:PutObject",
                    crate::AwsErrorKind::Client,
                    format!("NoSuchBucket: {bucket}"),
                ));
            }
            let mut objects = lock(&self.objects);
            let slot = (bucket.to_owned(), key.to_owned());
            if objects.contains_key(&slot) {
                return Ok(false);
            }
            objects.insert(slot, body);
            Ok(true)
        })
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            lock(&self.objects).retain(|(b, _), _| b != bucket);
            Ok(lock(&self.buckets).remove(bucket))
        })
    }
}

/// An account with a fixed id.
pub struct FixedAccount(pub String);

impl Account for FixedAccount {
    fn account_id(&self) -> BoxFut<'_, Result<String, AwsError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

#[derive(Default)]
pub struct MemTables {
    pub tables: Mutex<BTreeSet<String>>,
}

impl Tables for MemTables {
    fn exists<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move { Ok(lock(&self.tables).contains(name)) })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move { Ok(lock(&self.tables).remove(name)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_secret_is_created_once() {
        let s = MemSecrets::default();
        let a = s.get_or_create("kiln/edge", "d").await.unwrap();
        let b = s.get_or_create("kiln/edge", "d").await.unwrap();
        assert!(a.created && !b.created);
        assert_eq!(a.value, b.value);
        assert_eq!(*lock(&s.creates), 1);
    }

    #[tokio::test]
    async fn objects_are_written_once_into_existing_buckets() {
        let a = MemArtifacts::default();
        assert!(a.put_if_absent("b", "k", vec![1]).await.is_err());
        assert!(a.ensure_bucket("b", "us-east-1").await.unwrap());
        assert!(!a.ensure_bucket("b", "us-east-1").await.unwrap());
        assert!(a.put_if_absent("b", "k", vec![1]).await.unwrap());
        assert!(!a.put_if_absent("b", "k", vec![2]).await.unwrap());
        assert_eq!(lock(&a.objects)[&("b".into(), "k".into())], vec![1]);
    }
}
