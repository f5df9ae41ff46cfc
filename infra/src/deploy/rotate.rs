//! `kiln secret rotate`: a new edge secret on both sides, with no moment in which a
//! genuine pull, answer or push is refused (so `/status` never goes stale for it).
//!
//! 1. the Worker gets the new value as `ORIGIN_SECRET_SECONDARY` (accepted, never used
//!    to sign): it now accepts old and new;
//! 2. Secrets Manager gets the new value (PutSecretValue: AWSCURRENT = new, AWSPREVIOUS =
//!    old): each Lambda container, once its cached copy expires, signs with the new one
//!    and still accepts the old one the Worker signs its pulls with;
//! 3. wait until every container's cached copy has expired ([`DEFAULT_SETTLE`]);
//! 4. the Worker gets `ORIGIN_SECRET` = new and `ORIGIN_SECRET_SECONDARY` = old in one
//!    deployment (`wrangler secret bulk`, values on stdin): it signs with the new one and
//!    still accepts a straggler's old one.

use std::path::PathBuf;
use std::time::Duration;

use kiln_aws::secrets::{SecretValue, Secrets};

use super::worker::{self, SECONDARY_SECRET_NAME, SECRET_NAME, Wrangler};
use super::{DeployError, secret_name, worker_name};

/// The Lambdas' cache TTL (`KILN_EDGE_SECRET_TTL_SECS`, 300 s) plus their 30 s
/// refresh rate limit.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(330);

/// Where the Worker's secrets go: the deployed Worker through the pinned wrangler, or
/// (rehearsals, tests) somewhere else.
pub trait WorkerSecrets {
    /// Sets every pair in one deployment.
    fn put(&mut self, secrets: &[(&str, &SecretValue)]) -> Result<(), DeployError>;
}

/// `wrangler secret bulk --name <worker>` with the JSON on stdin.
pub struct WranglerSecrets {
    pub wrangler: Wrangler,
    /// Where wrangler runs (`edge/`).
    pub dir: PathBuf,
    pub worker: String,
}

impl WorkerSecrets for WranglerSecrets {
    fn put(&mut self, secrets: &[(&str, &SecretValue)]) -> Result<(), DeployError> {
        worker::put_secrets(&self.wrangler, &self.dir, &self.worker, secrets)
    }
}

#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub stack: String,
    /// How long step 3 waits.
    pub settle: Duration,
}

#[derive(Debug, Clone)]
pub struct RotateReport {
    /// The secret's ARN (unchanged: the Lambdas need no update).
    pub arn: String,
}

/// Rotates the edge secret of `opts.stack`: Secrets Manager through `secrets`, the
/// Worker through `worker`. Progress names steps and secret names, never a value.
pub async fn rotate(
    secrets: &dyn Secrets,
    worker: &mut dyn WorkerSecrets,
    opts: &RotateOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RotateReport, DeployError> {
    let name = secret_name(&opts.stack);
    let old = secrets
        .get(&name)
        .await?
        .ok_or_else(|| DeployError::NoSecret(name.clone()))?;
    let new = SecretValue::generate();
    let edge = worker_name(&opts.stack);

    progress(&format!(
        "1/4 worker {edge}: {SECONDARY_SECRET_NAME} = the new secret (accepted, not used to sign)"
    ));
    worker.put(&[(SECONDARY_SECRET_NAME, &new)])?;

    progress(&format!(
        "2/4 {name}: new version AWSCURRENT, the old one AWSPREVIOUS (the Lambdas sign with the new one, accept both)"
    ));
    secrets.put_value(&name, &new).await?;

    progress(&format!(
        "3/4 waiting {} s for every Lambda's cached copy to expire",
        opts.settle.as_secs_f32()
    ));
    tokio::time::sleep(opts.settle).await;

    progress(&format!(
        "4/4 worker {edge}: {SECRET_NAME} = the new secret, {SECONDARY_SECRET_NAME} = the old one, in one deployment"
    ));
    worker
        .put(&[(SECRET_NAME, &new), (SECONDARY_SECRET_NAME, &old.value)])
        .map_err(|e| DeployError::Tool {
            tool: "wrangler secret bulk".into(),
            detail: format!(
                "{e}\nThe Lambdas already sign with the new secret and the Worker accepts it, so nothing is refused meanwhile; finish with `kiln deploy` (it sets {SECRET_NAME} from Secrets Manager)."
            ),
        })?;
    progress(&format!("edge secret {name} rotated"));
    Ok(RotateReport { arn: old.arn })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_aws::mock::deploy::MemSecrets;
    use std::collections::BTreeMap;

    /// The Worker's secrets after each deployment, as plain strings.
    #[derive(Default)]
    struct Deployments(Vec<BTreeMap<String, String>>);

    impl WorkerSecrets for Deployments {
        fn put(&mut self, secrets: &[(&str, &SecretValue)]) -> Result<(), DeployError> {
            let mut now = self.0.last().cloned().unwrap_or_default();
            for (k, v) in secrets {
                now.insert((*k).to_owned(), v.expose().to_owned());
            }
            self.0.push(now);
            Ok(())
        }
    }

    #[tokio::test]
    async fn both_sides_move_in_an_order_that_never_refuses_a_genuine_signature() {
        let sm = MemSecrets::default();
        let first = sm
            .get_or_create("kiln/kiln/edge-secret", "d")
            .await
            .unwrap();
        let old = first.value.expose().to_owned();
        let mut worker = Deployments::default();
        worker
            .put(&[(SECRET_NAME, &first.value)])
            .expect("as deployed");
        let mut lines = Vec::new();
        let report = rotate(
            &sm,
            &mut worker,
            &RotateOptions {
                stack: "kiln".into(),
                settle: Duration::from_millis(1),
            },
            &mut |l| lines.push(l.to_owned()),
        )
        .await
        .unwrap();
        assert_eq!(report.arn, first.arn);
        let new = sm.secrets.lock().unwrap()["kiln/kiln/edge-secret"]
            .expose()
            .to_owned();
        assert_ne!(new, old);
        assert_eq!(
            sm.previous.lock().unwrap()["kiln/kiln/edge-secret"].expose(),
            old
        );
        let accepted =
            |d: &BTreeMap<String, String>| -> Vec<String> { d.values().cloned().collect() };
        // Step 1: the Worker accepts the new secret before any Lambda signs with it, and
        // still signs with the old one the Lambdas accept throughout.
        assert_eq!(worker.0[1][SECRET_NAME], old);
        assert!(accepted(&worker.0[1]).contains(&new));
        // Step 4: signs with the new one, still accepts the old one.
        assert_eq!(worker.0[2][SECRET_NAME], new);
        assert_eq!(worker.0[2][SECONDARY_SECRET_NAME], old);
        assert_eq!(worker.0.len(), 3, "two deployments");
        let text = lines.join("\n");
        assert!(!text.contains(&new) && !text.contains(&old), "{text}");
        assert!(text.contains("4/4"), "{text}");
    }

    #[tokio::test]
    async fn without_a_deployed_secret_nothing_changes() {
        let sm = MemSecrets::default();
        let mut worker = Deployments::default();
        let err = rotate(
            &sm,
            &mut worker,
            &RotateOptions {
                stack: "nope".into(),
                settle: Duration::ZERO,
            },
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("kiln deploy"), "{err}");
        assert!(worker.0.is_empty());
    }
}
