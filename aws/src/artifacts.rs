//! The deploy's artifacts bucket in S3: Lambda zips and large templates, content-addressed
//! (`kiln/<sha256>/<file>`), so an upload is needed only when the content is new.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

pub trait Artifacts: Send + Sync {
    /// Creates the bucket when absent and (re)applies its settings: versioned, SSE-S3
    /// encrypted, all public access blocked. `true` when it was created.
    fn ensure_bucket<'a>(
        &'a self,
        bucket: &'a str,
        region: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>>;
    /// Uploads unless the key exists; `true` when uploaded.
    fn put_if_absent<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFut<'a, Result<bool, AwsError>>;
    /// Deletes every object version and the bucket itself (`kiln destroy --delete-data`).
    /// `false` when there was no bucket.
    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFut<'a, Result<bool, AwsError>>;
}

pub struct S3Artifacts(Client);

impl S3Artifacts {
    pub fn new(client: Client) -> Self {
        S3Artifacts(client)
    }

    async fn exists(&self, bucket: &str) -> Result<bool, AwsError> {
        match self.0.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(from_sdk("s3:HeadBucket", e)),
        }
    }
}

impl Artifacts for S3Artifacts {
    fn ensure_bucket<'a>(
        &'a self,
        bucket: &'a str,
        region: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            let created = !self.exists(bucket).await?;
            if created {
                let mut call = self.0.create_bucket().bucket(bucket);
                // us-east-1 is the one region that refuses an explicit location.
                if region != "us-east-1" {
                    call = call.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(region))
                            .build(),
                    );
                }
                call.send()
                    .await
                    .map_err(|e| from_sdk("s3:CreateBucket", e))?;
            }
            let block = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            self.0
                .put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(block)
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutPublicAccessBlock", e))?;
            self.0
                .put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutBucketVersioning", e))?;
            let sse = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| AwsError::invalid("s3:PutBucketEncryption", e.to_string()))?;
            let encryption = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(sse)
                        .build(),
                )
                .build()
                .map_err(|e| AwsError::invalid("s3:PutBucketEncryption", e.to_string()))?;
            self.0
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(encryption)
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutBucketEncryption", e))?;
            Ok(created)
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            match self.0.head_object().bucket(bucket).key(key).send().await {
                Ok(_) => return Ok(false),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
                Err(e) => return Err(from_sdk("s3:HeadObject", e)),
            }
            self.0
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutObject", e))?;
            Ok(true)
        })
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            if !self.exists(bucket).await? {
                return Ok(false);
            }
            // ListObjectVersions has no paginator in the SDK: follow the markers.
            let mut doomed: Vec<(String, Option<String>)> = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .0
                    .list_object_versions()
                    .bucket(bucket)
                    .set_key_marker(key_marker.take())
                    .set_version_id_marker(version_marker.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk("s3:ListObjectVersions", e))?;
                for v in page.versions() {
                    if let Some(k) = v.key() {
                        doomed.push((k.to_owned(), v.version_id().map(str::to_owned)));
                    }
                }
                for m in page.delete_markers() {
                    if let Some(k) = m.key() {
                        doomed.push((k.to_owned(), m.version_id().map(str::to_owned)));
                    }
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
            }
            for (key, version) in doomed {
                self.0
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version)
                    .send()
                    .await
                    .map_err(|e| from_sdk("s3:DeleteObject", e))?;
            }
            self.0
                .delete_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| from_sdk("s3:DeleteBucket", e))?;
            Ok(true)
        })
    }
}
