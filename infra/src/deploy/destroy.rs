//! `kiln destroy`: the stack and the Worker. The data — the state table (retained by the
//! template), the AMIs with their snapshots, the artifacts bucket and the edge secret —
//! only with `--delete-data`; otherwise what is kept is named, and the next `kiln deploy`
//! adopts the table with its history.

use std::path::PathBuf;
use std::time::Duration;

use kiln_aws::sdk::{Clients, DeployClients};

use super::{DeployError, stack, worker};
use crate::cleanup;

#[derive(Debug, Clone)]
pub struct DestroyOptions {
    pub stack: String,
    /// Names the table and tags the AMIs (`kiln:prefix`).
    pub prefix: String,
    /// The stack's region: the AMIs' home, beside the presets' distribution regions.
    pub region: String,
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
    pub table_deleted: bool,
    pub images_deleted: usize,
}

/// Removes the stack and the Worker; with `delete_data`, `data` (the operating clients:
/// table, EC2) must be given and the data goes too.
pub async fn destroy(
    clients: &DeployClients,
    data: Option<&Clients>,
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
        let data = data.ok_or_else(|| DeployError::Tool {
            tool: "kiln destroy".into(),
            detail: "--delete-data needs the table and EC2 clients".into(),
        })?;
        // AMIs first: their regions are read from the PRESET items in the table.
        report.images_deleted = delete_images(data, opts, progress).await?;
        let table = kiln_shared::table::table_name(&opts.prefix);
        report.table_deleted = clients.tables.delete(&table).await?;
        if report.table_deleted {
            progress(&format!("table {table} deleted (state and build history)"));
        }
        report.bucket_deleted = clients.artifacts.delete_bucket(&opts.bucket).await?;
        if report.bucket_deleted {
            progress(&format!("bucket {} deleted", opts.bucket));
        }
        let secret = super::secret_name(&opts.stack);
        report.secret_deleted = clients.secrets.delete(&secret).await?;
        if report.secret_deleted {
            progress(&format!("secret {secret} deleted"));
        }
    } else {
        progress(&format!(
            "kept: the state table {} (the next deploy adopts it), the AMIs, bucket {} and the edge secret (--delete-data removes them)",
            kiln_shared::table::table_name(&opts.prefix),
            opts.bucket
        ));
    }
    Ok(report)
}

/// Deregisters every AMI tagged with the prefix, with its snapshots, in the stack region
/// and every region a preset distributed to. Any failure stops the destroy before the
/// table (which names those regions) is deleted, so a rerun finishes the job.
async fn delete_images(
    data: &Clients,
    opts: &DestroyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<usize, DeployError> {
    let presets = match data.store.list_presets().await {
        Ok(listing) => listing.items,
        // No table (never deployed, or already deleted): the stack region alone.
        Err(e) if e.message.contains("ResourceNotFound") => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut regions = vec![opts.region.clone()];
    regions.extend(presets.into_iter().flat_map(|p| p.regions));
    let mut images = Vec::new();
    for region in cleanup::unique_regions(&regions) {
        images.extend(
            cleanup::list_images(data.ec2.as_ref(), &region, &opts.prefix)
                .await
                .map_err(|e| DeployError::Tool {
                    tool: "kiln destroy".into(),
                    detail: e.to_string(),
                })?,
        );
    }
    let plan = cleanup::plan(images, 0, &Default::default());
    let failures = cleanup::execute(data.ec2.as_ref(), &plan, |line| progress(line)).await;
    if let Some(first) = failures.first() {
        return Err(DeployError::Tool {
            tool: "kiln destroy".into(),
            detail: format!(
                "{} of {} AMIs not deleted (first: {} in {}: {}); the table is kept, run it again",
                failures.len(),
                plan.delete.len(),
                first.image,
                first.region,
                first.message
            ),
        });
    }
    Ok(plan.delete.len())
}
