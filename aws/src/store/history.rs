//! History rollups (`HISTORY#<preset>`) and one preset's BUILD items: what the build
//! write path reads and writes to keep `/history.json` at one item per preset.

use aws_sdk_dynamodb::types::AttributeValue;
use kiln_shared::build::BuildRecord;
use kiln_shared::history::{RECORD_TYPE_HISTORY, Rollup};
use kiln_shared::table::{KEY, RECORD_TYPE, RECORD_TYPE_BUILD, RECORD_TYPE_INDEX, build_job_id};
use serde::Serialize;

use super::{Cas, DynamoStore, Item, Listing, REV, encode, parse_all, parse_one};
use crate::error::AwsError;

/// A rollup with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedRollup {
    pub rollup: Rollup,
    pub rev: u64,
}

pub(super) fn rev_of(item: &Item) -> u64 {
    item.get(REV)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl DynamoStore {
    pub(super) async fn builds_of_impl(
        &self,
        preset: &str,
    ) -> Result<Listing<BuildRecord>, AwsError> {
        // `BUILD#<preset>#`: the GSI's sort key narrows the query to this preset.
        let prefix = build_job_id(preset, "");
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(RECORD_TYPE_INDEX)
                .key_condition_expression(format!("{RECORD_TYPE} = :t AND begins_with({KEY}, :p)"))
                .expression_attribute_values(":t", AttributeValue::S(RECORD_TYPE_BUILD.to_owned()))
                .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("dynamodb:Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(parse_all(RECORD_TYPE_BUILD, items))
    }

    pub(super) async fn get_history_impl(
        &self,
        job_id: &str,
    ) -> Result<Option<VersionedRollup>, AwsError> {
        let Some(item) = self.get(job_id).await? else {
            return Ok(None);
        };
        Ok(Some(VersionedRollup {
            rev: rev_of(&item),
            rollup: parse_one("dynamodb:GetItem", &item)?,
        }))
    }

    /// PutItem of a revisioned item (BUILD records, rollups): created only if absent
    /// (`expected_rev` None) or replaced only at the revision read, bumping `rev`.
    pub(super) async fn put_rev_guarded<T: Serialize>(
        &self,
        value: &T,
        expected_rev: Option<u64>,
    ) -> Result<Cas, AwsError> {
        let mut item = encode("dynamodb:PutItem", value)?;
        let next = expected_rev.map_or(1, |r| r + 1);
        item.insert(REV.into(), AttributeValue::N(next.to_string()));
        let condition = match expected_rev {
            None => ("attribute_not_exists(jobId)", vec![]),
            Some(r) => (
                "#rev = :rev",
                vec![(":rev", AttributeValue::N(r.to_string()))],
            ),
        };
        // `rev` is not reserved, but names keep the expression safe if it ever is.
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition.0);
        if expected_rev.is_some() {
            req = req.expression_attribute_names("#rev", REV);
        }
        for (k, v) in condition.1 {
            req = req.expression_attribute_values(k, v);
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

    pub(super) async fn list_history_impl(&self) -> Result<Listing<Rollup>, AwsError> {
        Ok(parse_all(
            RECORD_TYPE_HISTORY,
            self.query_type(RECORD_TYPE_HISTORY).await?,
        ))
    }
}
