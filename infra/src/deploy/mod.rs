//! `kiln deploy` and `kiln destroy`: presets to a running stack and Worker, idempotently.
//!
//! - [`code`]: the Lambda zips (built or prebuilt), content-addressed;
//! - [`stack`]: the change set, its execution and the stack's events;
//! - [`worker`]: the generated wrangler configuration, KV namespace, secret and deploy;
//! - [`rotate`]: `kiln secret rotate`, both sides of the edge secret without a stale window.
//!
//! Under `rehearsal` (AWS endpoints are local emulators) everything runs for real against
//! them, the Worker only as `wrangler deploy --dry-run` (no Cloudflare account is
//! reachable), and whatever the emulators did not do is reported as not rehearsed.

pub mod code;
pub mod destroy;
mod flow;
pub mod rotate;
pub mod stack;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kiln_aws::AwsError;
use kiln_aws::cfn::StackEvent;

use crate::presets::LoadError;
use crate::template::SynthError;

pub use code::CodeSource;
pub use flow::deploy;

/// CloudFormation's limit for an inline template body; larger ones go through S3.
pub const MAX_INLINE_TEMPLATE: usize = 51_200;
/// The stack output the Worker's ORIGIN_URL comes from.
pub const ORIGIN_OUTPUT: &str = "StatusOriginUrl";
/// Stands in for the origin URL when an emulator did not create the Function URL.
pub const UNREHEARSED_ORIGIN: &str = "https://origin.not-rehearsed.invalid";

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Presets(#[from] LoadError),
    #[error(transparent)]
    Synth(#[from] SynthError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {function} zip in {dir} (expected {function}.zip or {function}/bootstrap.zip)")]
    MissingZip { function: String, dir: PathBuf },
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed: {detail}")]
    Tool { tool: String, detail: String },
    #[error("wrangler configuration: {0}")]
    WranglerConfig(String),
    #[error("change set for {stack} failed: {reason}")]
    ChangeSet { stack: String, reason: String },
    #[error("stack {stack} ended {status}{}", failure_hint(.first))]
    StackFailed {
        stack: String,
        status: String,
        // Boxed: keeps every Result<_, DeployError> small.
        first: Option<Box<StackEvent>>,
    },
    #[error("stack {0} disappeared while deploying")]
    StackGone(String),
    #[error("stack {stack} has no output StatusOriginUrl: the Worker has no origin")]
    NoOrigin { stack: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("no edge secret {0} in Secrets Manager: run `kiln deploy` first")]
    NoSecret(String),
}

fn failure_hint(first: &Option<Box<StackEvent>>) -> String {
    match first {
        Some(e) => format!(
            "; first failure: {} ({}) {}: {} — fix that and run `kiln deploy` again (a failed first create is deleted and retried)",
            e.logical_id, e.resource_type, e.status, e.status_reason
        ),
        None => String::new(),
    }
}

/// Everything `kiln deploy` was asked.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub presets: PathBuf,
    pub stack: String,
    pub prefix: String,
    pub region: String,
    pub bucket: String,
    pub domain: Option<String>,
    pub dry_run: bool,
    pub rehearsal: bool,
    pub code: CodeSource,
    /// The kiln checkout: `edge/`, `scripts/build-edge.sh`, `tools/node`.
    pub root: PathBuf,
    /// Where the generated wrangler configuration and the dry-run bundle go.
    pub out_dir: PathBuf,
    pub build_edge: bool,
    pub account_id: Option<String>,
    pub poll: Duration,
    /// The build instances' subnet and security groups (`BuildSubnetId`,
    /// `BuildSecurityGroupIds`); none: the default VPC.
    pub build_subnet: Option<String>,
    pub build_security_groups: Vec<String>,
}

/// The edge secret's name in Secrets Manager.
pub fn secret_name(stack: &str) -> String {
    format!("kiln/{stack}/edge-secret")
}

/// The artifacts bucket's default name, `<stack>-artifacts-<account>-<region>`: bucket
/// names are global, so without the account id the first deployer anywhere with the
/// same stack name would own it. Lower-cased, and a long stack name is shortened (with a
/// hash of it, so two long names stay apart) to fit S3's 63 characters.
pub fn default_bucket(stack: &str, account: &str, region: &str) -> String {
    let stack = stack.to_ascii_lowercase().replace('_', "-");
    let tail = format!("-artifacts-{account}-{region}");
    if stack.len() + tail.len() <= 63 {
        return format!("{stack}{tail}");
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(stack.as_bytes()));
    let keep = 63usize.saturating_sub(tail.len() + 9);
    let head = stack[..keep.min(stack.len())].trim_end_matches('-');
    format!("{head}-{}{tail}", &hash[..8])
}

/// The bucket `kiln deploy` / `kiln destroy` use: the one asked for, else
/// [`default_bucket`] for the caller's account.
pub async fn resolve_bucket(
    clients: &kiln_aws::sdk::DeployClients,
    stack: &str,
    region: &str,
    asked: Option<String>,
) -> Result<String, DeployError> {
    match asked {
        Some(bucket) => Ok(bucket),
        None => Ok(default_bucket(
            stack,
            &clients.account.account_id().await?,
            region,
        )),
    }
}

/// The Worker's name.
pub fn worker_name(stack: &str) -> String {
    format!("{stack}-edge")
}

impl DeployOptions {
    pub fn secret_name(&self) -> String {
        secret_name(&self.stack)
    }
    pub fn worker_name(&self) -> String {
        worker_name(&self.stack)
    }
    pub fn kv_title(&self) -> String {
        format!("{}-status", self.stack)
    }
}

/// The kiln checkout (edge/, scripts/, tools/node): `$KILN_ROOT`, else the current
/// directory or the nearest parent holding `edge/wrangler.toml`, else where this binary
/// was built.
pub fn find_root() -> PathBuf {
    if let Some(root) = std::env::var_os("KILN_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(found) = cwd
            .ancestors()
            .find(|d| d.join("edge/wrangler.toml").is_file())
    {
        return found.to_path_buf();
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackOutcome {
    Created,
    Updated,
    Unchanged,
    /// `--dry-run`: the change set was shown (and deleted), nothing executed.
    Planned,
}

#[derive(Debug, Clone)]
pub struct DeployReport {
    pub stack: StackOutcome,
    pub uploaded: usize,
    pub secret_created: bool,
    /// Resource type → logical ids the emulators did not create or run (rehearsal only).
    pub not_rehearsed: BTreeMap<String, Vec<String>>,
    pub worker_config: Option<PathBuf>,
    /// Where the Worker answers: `https://<domain>`, else its workers.dev URL as
    /// wrangler printed it (`None` for a dry run or rehearsal).
    pub edge_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{self, SynthOptions};

    #[test]
    fn every_parameter_deploy_sets_is_in_the_template() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../presets"));
        let presets = crate::presets::load(dir).unwrap();
        let t = template::synth(&presets, &SynthOptions::default())
            .unwrap()
            .core;
        for p in [
            "Prefix",
            "CodeBucket",
            "EdgeUrl",
            "EdgeSecretArn",
            "ExistingStateTable",
            "BuildSubnetId",
            "BuildSecurityGroupIds",
        ]
        .into_iter()
        .chain(code::FUNCTIONS.iter().map(|(p, _)| *p))
        {
            assert!(
                t["Parameters"][p].is_object(),
                "template has no parameter {p}"
            );
        }
        assert!(t["Outputs"][ORIGIN_OUTPUT].is_object());
    }

    #[test]
    fn default_buckets_are_per_account_and_fit_s3() {
        let a = default_bucket("kiln", "111122223333", "eu-west-1");
        assert_eq!(a, "kiln-artifacts-111122223333-eu-west-1");
        assert_ne!(a, default_bucket("kiln", "444455556666", "eu-west-1"));
        let long = "Very_Long-stack-name-".repeat(6);
        let b = default_bucket(&long, "111122223333", "ap-southeast-2");
        let c = default_bucket(&format!("{long}x"), "111122223333", "ap-southeast-2");
        for name in [&b, &c] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'-'),
                "{name}"
            );
            assert!(name.ends_with("-artifacts-111122223333-ap-southeast-2"));
        }
        assert_ne!(b, c);
    }

    #[test]
    fn a_failure_names_the_resource_and_what_to_do() {
        let err = DeployError::StackFailed {
            stack: "kiln".into(),
            status: "ROLLBACK_COMPLETE".into(),
            first: Some(Box::new(StackEvent {
                id: "1".into(),
                timestamp: String::new(),
                logical_id: "StateTable".into(),
                resource_type: "AWS::DynamoDB::Table".into(),
                status: "CREATE_FAILED".into(),
                status_reason: "kiln-state already exists".into(),
            })),
        };
        let text = err.to_string();
        assert!(
            text.contains("StateTable")
                && text.contains("already exists")
                && text.contains("run `kiln deploy` again"),
            "{text}"
        );
    }
}
