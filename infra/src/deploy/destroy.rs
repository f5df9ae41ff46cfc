//! `kiln destroy`: the stack and the Worker; the artifacts bucket and the edge secret only
//! with `--delete-data`. The state table is retained by the template and AMIs outlive
//! the stack: both are named in the report, never deleted silently.

use std::path::PathBuf;
use std::time::Duration;

use kiln_aws::sdk::DeployClients;

use super::{DeployError, stack, worker};

#[derive(Debug, Clone)]
pub struct DestroyOptions {
    pub stack: String,
    pub bucket: String,
    pub delete_data: bool,
    pub rehearsal: bool,
    pub root: PathBuf,
    pub poll: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestroyReport {
    pub stack_deleted: bool,
    pub worker_deleted: bool,
    pub bucket_deleted: bool,
    pub secret_deleted: bool,
}

pub async fn destroy(
    clients: &DeployClients,
    opts: &DestroyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<DestroyReport, DeployError> {
    let mut report = DestroyReport::default();
    if clients.stacks.describe(&opts.stack).await?.is_some() {
        clients.stacks.delete_stack(&opts.stack).await?;
        progress(&format!("deleting stack {}", opts.stack));
        stack::wait_deleted(clients.stacks.as_ref(), &opts.stack, opts.poll).await?;
        progress(&format!("stack {} deleted", opts.stack));
        report.stack_deleted = true;
    } else {
        progress(&format!("stack {}: not there", opts.stack));
    }

    let name = super::worker_name(&opts.stack);
    if opts.rehearsal {
        progress(&format!(
            "not rehearsed: wrangler delete {name} (a Cloudflare account)"
        ));
    } else {
        let w = worker::find_wrangler(&opts.root)?;
        worker::run(
            &w,
            &opts.root.join("edge"),
            &["delete", &name, "--force"],
            None,
        )?;
        progress(&format!("worker {name} deleted"));
        report.worker_deleted = true;
    }

    if opts.delete_data {
        report.bucket_deleted = clients.artifacts.delete_bucket(&opts.bucket).await?;
        if report.bucket_deleted {
            progress(&format!("bucket {} deleted", opts.bucket));
        }
        let secret = super::secret_name(&opts.stack);
        report.secret_deleted = clients.secrets.delete(&secret).await?;
        if report.secret_deleted {
            progress(&format!("secret {secret} deleted"));
        }
        progress(
            "kept: the state table (DeletionPolicy Retain) and the AMIs: `kiln cleanup` deregisters AMIs",
        );
    } else {
        progress(&format!(
            "kept: bucket {}, the edge secret, the state table and the AMIs (--delete-data removes bucket and secret)",
            opts.bucket
        ));
    }
    Ok(report)
}
