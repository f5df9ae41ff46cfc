//! What a deploy needs to know about the account before it touches it: the account id
//! (STS, so the artifacts bucket's name is unique to the account) and whether a state
//! table is already there (DynamoDB: a table kept by an earlier stack is adopted, never
//! recreated; `kiln destroy --delete-data` deletes it).

use crate::BoxFut;
use crate::error::{AwsError, from_sdk};

pub trait Account: Send + Sync {
    /// The caller's account id (`sts:GetCallerIdentity` needs no permission).
    fn account_id(&self) -> BoxFut<'_, Result<String, AwsError>>;
}

pub trait Tables: Send + Sync {
    /// Whether a table of that name exists (in any status).
    fn exists<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>>;
    /// Deletes the table; `false` when there was none.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>>;
}

pub struct SdkAccount(aws_sdk_sts::Client);

impl SdkAccount {
    pub fn new(client: aws_sdk_sts::Client) -> Self {
        SdkAccount(client)
    }
}

impl Account for SdkAccount {
    fn account_id(&self) -> BoxFut<'_, Result<String, AwsError>> {
        Box::pin(async move {
            let out = self
                .0
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| from_sdk("sts:GetCallerIdentity", e))?;
            out.account()
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| AwsError::invalid("sts:GetCallerIdentity", "no account id"))
        })
    }
}

pub struct SdkTables(aws_sdk_dynamodb::Client);

impl SdkTables {
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        SdkTables(client)
    }
}

impl Tables for SdkTables {
    fn exists<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            match self.0.describe_table().table_name(name).send().await {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(from_sdk("dynamodb:DescribeTable", e)),
            }
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            match self.0.delete_table().table_name(name).send().await {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(from_sdk("dynamodb:DeleteTable", e)),
            }
        })
    }
}
