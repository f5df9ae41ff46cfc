//! The state store: AMI records, PRESET items and BUILD history in one DynamoDB table.
//!
//! Writes of AMI records and BUILD items are compare-and-swap: a writer states what it
//! read and the write only lands if that is still what is stored. A lost race comes
//! back as [`Cas::Conflict`] (an answer, not an error), the caller re-reads and
//! re-applies the pure state machine.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use chrono::{DateTime, Utc};
use kiln_shared::build::BuildRecord;
use kiln_shared::state::AmiRecord;
use kiln_shared::table::{
    KEY, RECORD_TYPE, RECORD_TYPE_AMI, RECORD_TYPE_BUILD, RECORD_TYPE_INDEX, RECORD_TYPE_PRESET,
    ami_job_id, preset_job_id,
};
use kiln_shared::{Architecture, Preset, time};
use serde::{Deserialize, Serialize};

use crate::BoxFut;
use crate::attr::{self, Item};
use crate::error::{AwsError, from_sdk};

mod history;
pub use history::VersionedRollup;

/// Attribute holding the BUILD item's revision (optimistic concurrency).
const REV: &str = "rev";

/// An item kiln could not read: reported by listings, never silently dropped, and
/// never allowed to hide the readable ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub job_id: String,
    pub reason: String,
}

/// Every readable item of one kind, and the ones that were not.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<Unreadable>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Listing {
            items: Vec::new(),
            unreadable: Vec::new(),
        }
    }
}

impl<T> Listing<T> {
    pub fn of(items: Vec<T>) -> Self {
        Listing {
            items,
            unreadable: Vec::new(),
        }
    }
}

impl<T> std::ops::Deref for Listing<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> std::ops::DerefMut for Listing<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}

impl<T> FromIterator<T> for Listing<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Listing::of(iter.into_iter().collect())
    }
}

impl<'a, T> IntoIterator for &'a Listing<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<T> IntoIterator for Listing<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Outcome of a compare-and-swap write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    Written,
    /// What is stored is no longer what the writer read.
    Conflict,
}

/// A preset's configuration item (`jobId = PRESET#<name>`), written by `preset-init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresetItem {
    pub job_id: String,
    pub record_type: String,
    pub name: String,
    pub architecture: Architecture,
    /// Distribution regions with the stack default applied; the first is home.
    pub regions: Vec<String>,
    pub home_region: String,
    pub pipeline_name: String,
    /// The pipeline's ARN as the template resolved it (`Fn::GetAtt …Pipeline.Arn`):
    /// reconcile reads its images without listing pipelines. Absent in items written
    /// before kiln stored it; the next deploy fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_arn: Option<String>,
    pub parameter_name: String,
    pub content_hash: String,
    /// The preset as JSON text (kept as text so it round-trips byte for byte).
    pub preset: String,
    #[serde(with = "time::serde_secs")]
    pub updated_at: DateTime<Utc>,
}

impl PresetItem {
    pub fn new(p: &Preset, prefix: &str, stack_region: &str, now: DateTime<Utc>) -> Self {
        PresetItem {
            job_id: preset_job_id(&p.name),
            record_type: RECORD_TYPE_PRESET.into(),
            name: p.name.clone(),
            architecture: p.architecture,
            regions: p
                .regions_or(stack_region)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            home_region: p.home_region(stack_region).to_owned(),
            pipeline_name: p.pipeline_name(prefix),
            pipeline_arn: None,
            parameter_name: p.parameter_name(prefix),
            content_hash: p.content_hash(),
            preset: serde_json::to_string(p).expect("preset serialises"),
            updated_at: time::truncate(now),
        }
    }

    /// The same item, pointing at the pipeline with this ARN.
    pub fn with_pipeline_arn(mut self, arn: impl Into<String>) -> Self {
        self.pipeline_arn = Some(arn.into());
        self
    }

    pub fn preset(&self) -> Result<Preset, serde_json::Error> {
        serde_json::from_str(&self.preset)
    }
}

/// A BUILD item with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedBuild {
    pub record: BuildRecord,
    pub rev: u64,
}

/// The table, as kiln uses it.
pub trait StateStore: Send + Sync {
    fn get_ami<'a>(&'a self, preset: &'a str) -> BoxFut<'a, Result<Option<AmiRecord>, AwsError>>;
    /// Writes `record` if the stored record is still `expected` (`None`: none stored).
    fn put_ami<'a>(
        &'a self,
        record: &'a AmiRecord,
        expected: Option<&'a AmiRecord>,
    ) -> BoxFut<'a, Result<Cas, AwsError>>;
    fn list_ami(&self) -> BoxFut<'_, Result<Listing<AmiRecord>, AwsError>>;

    fn get_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<PresetItem>, AwsError>>;
    fn put_preset<'a>(&'a self, item: &'a PresetItem) -> BoxFut<'a, Result<(), AwsError>>;
    fn delete_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), AwsError>>;
    fn list_presets(&self) -> BoxFut<'_, Result<Listing<PresetItem>, AwsError>>;

    fn get_build<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFut<'a, Result<Option<VersionedBuild>, AwsError>>;
    /// Writes `record` as revision `expected_rev + 1` if `expected_rev` is still stored.
    fn put_build<'a>(
        &'a self,
        record: &'a BuildRecord,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>>;
    fn list_builds(&self) -> BoxFut<'_, Result<Listing<BuildRecord>, AwsError>>;

    /// Every BUILD item of one preset (one GSI query on the `jobId` prefix).
    fn list_builds_of<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Listing<BuildRecord>, AwsError>>;
    /// A preset's history rollup (`HISTORY#<preset>`) and its revision.
    fn get_history<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Option<VersionedRollup>, AwsError>>;
    /// Writes `rollup` as revision `expected_rev + 1` if `expected_rev` is still stored.
    fn put_history<'a>(
        &'a self,
        rollup: &'a kiln_shared::history::Rollup,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>>;
    /// Every preset's rollup (one paginated GSI query).
    fn list_history(&self) -> BoxFut<'_, Result<Listing<kiln_shared::history::Rollup>, AwsError>>;
}

/// The real store: DynamoDB through the official SDK.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// SDK errors name the table: "ResourceNotFound" alone does not say which table is missing.
    fn sdk_err<E>(&self, operation: &'static str, err: crate::error::SdkError<E>) -> AwsError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let mut e = from_sdk(operation, err);
        e.message = format!("table {}: {}", self.table, e.message);
        e
    }

    async fn get(&self, job_id: &str) -> Result<Option<Item>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(job_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_err("dynamodb:GetItem", e))?;
        Ok(out.item)
    }

    /// `Ok(Conflict)` when the condition failed.
    async fn put(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<Cas, AwsError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if let Some((expr, values)) = condition {
            req = req.condition_expression(expr);
            for (k, v) in values {
                req = req.expression_attribute_values(k, v);
            }
        }
        match req.send().await {
            Ok(_) => Ok(Cas::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Cas::Conflict)
            }
            Err(e) => Err(self.sdk_err("dynamodb:PutItem", e)),
        }
    }

    /// Every item of one record type: the GSI, all pages.
    async fn query_type(&self, record_type: &str) -> Result<Vec<Item>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(RECORD_TYPE_INDEX)
                .key_condition_expression(format!("{RECORD_TYPE} = :t"))
                .expression_attribute_values(":t", AttributeValue::S(record_type.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("dynamodb:Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// Parses listed items; one unreadable item is logged and skipped so it cannot hide
/// every other preset from `/status`.
fn parse_all<T: serde::de::DeserializeOwned>(kind: &str, items: Vec<Item>) -> Listing<T> {
    let mut listing = Listing::default();
    for item in &items {
        match attr::from_item(item) {
            Ok(v) => listing.items.push(v),
            Err(e) => {
                let job_id = item
                    .get(KEY)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_else(|| "(no jobId)".into());
                tracing::error!(kind, job_id, error = %e, "skipping unreadable item");
                listing.unreadable.push(Unreadable {
                    job_id,
                    reason: e.to_string(),
                });
            }
        }
    }
    listing
}

fn parse_one<T: serde::de::DeserializeOwned>(op: &'static str, item: &Item) -> Result<T, AwsError> {
    attr::from_item(item).map_err(|e| AwsError::invalid(op, format!("stored item: {e}")))
}

fn encode<T: Serialize>(op: &'static str, v: &T) -> Result<Item, AwsError> {
    attr::to_item(v).map_err(|e| AwsError::invalid(op, e.to_string()))
}

fn null_type() -> AttributeValue {
    AttributeValue::S("NULL".into())
}

impl StateStore for DynamoStore {
    fn get_ami<'a>(&'a self, preset: &'a str) -> BoxFut<'a, Result<Option<AmiRecord>, AwsError>> {
        Box::pin(async move {
            self.get(&ami_job_id(preset))
                .await?
                .map(|i| parse_one("dynamodb:GetItem", &i))
                .transpose()
        })
    }

    fn put_ami<'a>(
        &'a self,
        record: &'a AmiRecord,
        expected: Option<&'a AmiRecord>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        Box::pin(async move {
            let item = encode("dynamodb:PutItem", record)?;
            let condition = match expected {
                None => ("attribute_not_exists(jobId)".to_owned(), vec![]),
                Some(e) => {
                    let mut values = vec![(":ok", AttributeValue::S(e.order_key.clone()))];
                    // The AMI guard is null until the first AVAILABLE: "still null" is
                    // absent or of type NULL.
                    let ami = match &e.ami_order_key {
                        Some(k) => {
                            values.push((":aok", AttributeValue::S(k.clone())));
                            "amiOrderKey = :aok"
                        }
                        None => {
                            values.push((":null", null_type()));
                            "(attribute_not_exists(amiOrderKey) OR attribute_type(amiOrderKey, :null))"
                        }
                    };
                    // Release control and health bump `rev` (absent in records written
                    // before it existed: revision 0).
                    values.push((":rev", AttributeValue::N(e.rev.to_string())));
                    let rev = if e.rev == 0 {
                        "(attribute_not_exists(rev) OR rev = :rev)"
                    } else {
                        "rev = :rev"
                    };
                    (format!("orderKey = :ok AND {ami} AND {rev}"), values)
                }
            };
            let (expr, values) = condition;
            self.put(item, Some((&expr, values))).await
        })
    }

    fn list_ami(&self) -> BoxFut<'_, Result<Listing<AmiRecord>, AwsError>> {
        Box::pin(async move {
            Ok(parse_all(
                RECORD_TYPE_AMI,
                self.query_type(RECORD_TYPE_AMI).await?,
            ))
        })
    }

    fn get_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<PresetItem>, AwsError>> {
        Box::pin(async move {
            self.get(&preset_job_id(name))
                .await?
                .map(|i| parse_one("dynamodb:GetItem", &i))
                .transpose()
        })
    }

    fn put_preset<'a>(&'a self, item: &'a PresetItem) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.put(encode("dynamodb:PutItem", item)?, None).await?;
            Ok(())
        })
    }

    fn delete_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(KEY, AttributeValue::S(preset_job_id(name)))
                .send()
                .await
                .map_err(|e| self.sdk_err("dynamodb:DeleteItem", e))?;
            Ok(())
        })
    }

    fn list_presets(&self) -> BoxFut<'_, Result<Listing<PresetItem>, AwsError>> {
        Box::pin(async move {
            Ok(parse_all(
                RECORD_TYPE_PRESET,
                self.query_type(RECORD_TYPE_PRESET).await?,
            ))
        })
    }

    fn get_build<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFut<'a, Result<Option<VersionedBuild>, AwsError>> {
        Box::pin(async move {
            let Some(item) = self.get(job_id).await? else {
                return Ok(None);
            };
            let rev = item
                .get(REV)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Ok(Some(VersionedBuild {
                record: parse_one("dynamodb:GetItem", &item)?,
                rev,
            }))
        })
    }

    fn put_build<'a>(
        &'a self,
        record: &'a BuildRecord,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        Box::pin(self.put_rev_guarded(record, expected_rev))
    }

    fn list_builds(&self) -> BoxFut<'_, Result<Listing<BuildRecord>, AwsError>> {
        Box::pin(async move {
            Ok(parse_all(
                RECORD_TYPE_BUILD,
                self.query_type(RECORD_TYPE_BUILD).await?,
            ))
        })
    }
    fn list_builds_of<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Listing<BuildRecord>, AwsError>> {
        Box::pin(self.builds_of_impl(preset))
    }

    fn get_history<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Option<VersionedRollup>, AwsError>> {
        Box::pin(async move {
            self.get_history_impl(&kiln_shared::history::history_job_id(preset))
                .await
        })
    }

    fn put_history<'a>(
        &'a self,
        rollup: &'a kiln_shared::history::Rollup,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        Box::pin(self.put_rev_guarded(rollup, expected_rev))
    }

    fn list_history(&self) -> BoxFut<'_, Result<Listing<kiln_shared::history::Rollup>, AwsError>> {
        Box::pin(self.list_history_impl())
    }
}

/// Creates kiln's table (key `jobId`, GSI `recordType-index`) as the CloudFormation
/// template does; for local stacks and tests. An existing table is left alone.
pub async fn create_table(client: &Client, table: &str) -> Result<(), AwsError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type set")
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .expect("name and type set")
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(RECORD_TYPE_INDEX)
        .key_schema(key(RECORD_TYPE, KeyType::Hash))
        .key_schema(key(KEY, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("index fields set");
    let res = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr(KEY))
        .attribute_definitions(attr(RECORD_TYPE))
        .key_schema(key(KEY, KeyType::Hash))
        .global_secondary_indexes(gsi)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(from_sdk("dynamodb:CreateTable", e)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn build_item(preset: &str, version: &str, started: &str) -> Item {
        HashMap::from([
            (
                KEY.into(),
                s(&kiln_shared::table::build_job_id(preset, version)),
            ),
            (RECORD_TYPE.into(), s(RECORD_TYPE_BUILD)),
            ("preset".into(), s(preset)),
            ("architecture".into(), s("x86_64")),
            ("buildVersion".into(), s(version)),
            (
                "buildId".into(),
                s("arn:aws:imagebuilder:us-east-1:123456789012:image/p/1.0.0/1"),
            ),
            ("status".into(), s("ready")),
            ("lastState".into(), s("AVAILABLE")),
            ("startedAt".into(), s(started)),
            ("endedAt".into(), s(started)),
            ("outcome".into(), s("AVAILABLE")),
            (
                "amis".into(),
                AttributeValue::M(HashMap::from([("us-east-1".into(), s("ami-1"))])),
            ),
            ("reason".into(), AttributeValue::Null(true)),
            ("validated".into(), AttributeValue::Bool(true)),
            ("sizeGb".into(), AttributeValue::N("30".into())),
        ])
    }

    #[test]
    fn preset_items_round_trip_and_old_items_without_a_pipeline_arn_still_decode() {
        let p = kiln_shared::preset::parse_one(&kiln_shared::preset::PresetSource {
            file: "linux-x64.yaml".into(),
            text: include_str!("../../presets/linux-x64.yaml").into(),
        })
        .unwrap()
        .remove(0);
        let now = time::parse("2026-01-27T10:00:00Z").unwrap();
        let arn =
            "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/spot-runner-linux-x64";
        let item = PresetItem::new(&p, "spot-runner", "us-east-1", now).with_pipeline_arn(arn);
        let mut stored = attr::to_item(&item).unwrap();
        assert_eq!(stored["pipelineArn"], s(arn));
        assert_eq!(attr::from_item::<PresetItem>(&stored).unwrap(), item);
        // Written before the ARN was stored: decodes, with no ARN.
        stored.remove("pipelineArn");
        let old: PresetItem = attr::from_item(&stored).unwrap();
        assert_eq!(old.pipeline_arn, None);
        assert_eq!(old.name, "linux-x64");
        // And an item without an ARN is written without the attribute.
        let bare = attr::to_item(&PresetItem::new(&p, "spot-runner", "us-east-1", now)).unwrap();
        assert!(!bare.contains_key("pipelineArn"));
    }

    #[test]
    fn listings_parse_build_items_and_report_unreadable_ones() {
        let mut broken = build_item("q", "1.0.0/1", "2026-01-01T00:00:00Z");
        broken.remove("status");
        let items = vec![
            build_item("p", "1.0.0/1", "2026-01-01T00:00:00Z"),
            build_item("p", "1.0.0/2", "2026-01-02T00:00:00Z"),
            broken,
        ];
        let listing: Listing<BuildRecord> = parse_all(RECORD_TYPE_BUILD, items);
        assert_eq!(listing.len(), 2);
        let b2 = listing
            .iter()
            .find(|b| b.build_version == "1.0.0/2")
            .unwrap();
        assert_eq!(b2.size_gb, Some(30));
        assert_eq!(b2.amis["us-east-1"], "ami-1");
        assert_eq!(listing.unreadable.len(), 1);
        assert_eq!(listing.unreadable[0].job_id, "BUILD#q#1.0.0/1");
        assert!(
            listing.unreadable[0].reason.contains("status"),
            "{}",
            listing.unreadable[0].reason
        );
    }
}
