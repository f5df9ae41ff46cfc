//! The order of `kiln deploy`: presets, code, bucket, secret, change set, Worker.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use kiln_aws::cfn::{ChangeSetKind, ChangeSetRequest, TemplateSource};
use kiln_aws::sdk::DeployClients;

use super::{
    DeployError, DeployOptions, DeployReport, MAX_INLINE_TEMPLATE, ORIGIN_OUTPUT, StackOutcome,
    UNREHEARSED_ORIGIN, code, stack, worker,
};
use crate::template::{self, Format, SynthOptions};

/// Validates, uploads, creates or updates the stack, then deploys the Worker. Every line
/// of progress goes through `progress`; nothing secret ever does.
pub async fn deploy(
    clients: &DeployClients,
    opts: &DeployOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<DeployReport, DeployError> {
    let presets = crate::presets::load(&opts.presets)?;
    progress(&format!(
        "{} valid preset(s) in {}",
        presets.len(),
        opts.presets.display()
    ));
    // A rehearsal leaves each group's custom resource out (before the group is hashed
    // into the core's TemplateURL) and keeps the original to report it not rehearsed.
    let mut originals: Vec<serde_json::Value> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    let synthesized = template::synth_with(
        &presets,
        &SynthOptions {
            prefix: opts.prefix.clone(),
        },
        &mut |t| {
            if opts.rehearsal {
                originals.push(t.clone());
                left_out.extend(stack::without_custom_resources(t));
            }
        },
    )?;
    if !left_out.is_empty() {
        progress(&format!(
            "rehearsal: {} custom resource(s) ({}) left out of the nested templates: an emulator without Docker never runs their function",
            left_out.len(),
            left_out.first().map(String::as_str).unwrap_or_default()
        ));
    }
    let body = template::render(&synthesized.core, Format::Json)?;

    let artifacts = code::collect(&opts.code, progress)?;
    if clients
        .artifacts
        .ensure_bucket(&opts.bucket, &opts.region)
        .await?
    {
        progress(&format!(
            "created artifacts bucket {} (versioned, encrypted, private)",
            opts.bucket
        ));
    }
    let mut uploaded = 0;
    for a in &artifacts {
        if clients
            .artifacts
            .put_if_absent(&opts.bucket, &a.key, a.body.clone())
            .await?
        {
            uploaded += 1;
            progress(&format!("uploaded s3://{}/{}", opts.bucket, a.key));
        }
    }
    let mut nested_uploaded = 0;
    for g in &synthesized.groups {
        if clients
            .artifacts
            .put_if_absent(&opts.bucket, &g.key, g.text.clone().into_bytes())
            .await?
        {
            nested_uploaded += 1;
            progress(&format!(
                "uploaded s3://{}/{} ({}: {} preset(s))",
                opts.bucket,
                g.key,
                g.id,
                g.presets.len()
            ));
        }
    }
    progress(&format!(
        "nested templates: {} group(s), {} new, {} unchanged",
        synthesized.groups.len(),
        nested_uploaded,
        synthesized.groups.len() - nested_uploaded
    ));
    uploaded += nested_uploaded;

    let source = if body.len() > MAX_INLINE_TEMPLATE {
        let key = code::content_key(body.as_bytes(), "template.json");
        if clients
            .artifacts
            .put_if_absent(&opts.bucket, &key, body.clone().into_bytes())
            .await?
        {
            progress(&format!(
                "uploaded s3://{}/{key} ({} bytes)",
                opts.bucket,
                body.len()
            ));
        }
        TemplateSource::Url(format!(
            "https://{}.s3.{}.amazonaws.com/{key}",
            opts.bucket, opts.region
        ))
    } else {
        progress(&format!("template: {} bytes, inline", body.len()));
        TemplateSource::Body(body)
    };

    let secret = clients
        .secrets
        .get_or_create(
            &opts.secret_name(),
            "kiln: HMAC secret shared by the status origin and the edge Worker",
        )
        .await?;
    if secret.created {
        progress(&format!(
            "created the edge secret {} in Secrets Manager",
            opts.secret_name()
        ));
    }

    let mut parameters = vec![
        ("Prefix".to_owned(), opts.prefix.clone()),
        ("CodeBucket".to_owned(), opts.bucket.clone()),
        (
            "EdgeUrl".to_owned(),
            opts.domain
                .as_ref()
                .map(|d| format!("https://{d}"))
                .unwrap_or_default(),
        ),
        // Only the ARN: the Lambdas read the value at init.
        ("EdgeSecretArn".to_owned(), secret.arn.clone()),
    ];
    parameters.extend(
        artifacts
            .iter()
            .map(|a| (a.parameter.to_owned(), a.key.clone())),
    );

    let existing = clients.stacks.describe(&opts.stack).await?;
    let existing = match existing {
        Some(s) if stack::needs_recreate(&s.status) && !opts.dry_run => {
            progress(&format!(
                "stack {} is {}: deleting it before creating it again",
                opts.stack, s.status
            ));
            clients.stacks.delete_stack(&opts.stack).await?;
            stack::wait_deleted(clients.stacks.as_ref(), &opts.stack, opts.poll).await?;
            None
        }
        other => other,
    };
    let adopted =
        stack::adopt_table(clients, &opts.stack, &opts.prefix, existing.is_some()).await?;
    if let Some(table) = &adopted {
        progress(&format!(
            "state table {table} kept by an earlier stack: adopted with its build history"
        ));
    }
    parameters.push(("ExistingStateTable".to_owned(), adopted.unwrap_or_default()));
    parameters.push((
        "BuildSubnetId".to_owned(),
        opts.build_subnet.clone().unwrap_or_default(),
    ));
    parameters.push((
        "BuildSecurityGroupIds".to_owned(),
        opts.build_security_groups.join(","),
    ));
    let kind = if existing.is_some() {
        ChangeSetKind::Update
    } else {
        ChangeSetKind::Create
    };
    let request = ChangeSetRequest {
        stack: opts.stack.clone(),
        name: format!("kiln-{}", chrono::Utc::now().format("%Y%m%d%H%M%S")),
        kind,
        template: source,
        parameters,
    };
    let seen = match kind {
        ChangeSetKind::Update => stack::seen_events(clients.stacks.as_ref(), &opts.stack).await?,
        ChangeSetKind::Create => HashSet::new(),
    };
    let outcome = match stack::compute(clients.stacks.as_ref(), &request, opts.poll).await? {
        stack::Computed::NoChanges => {
            progress(&format!("stack {}: nothing to change", opts.stack));
            StackOutcome::Unchanged
        }
        stack::Computed::Changes(changes) => {
            progress(&format!(
                "change set {} ({} change(s)):",
                request.name,
                changes.len()
            ));
            for line in stack::render_changes(&changes) {
                progress(&line);
            }
            if opts.dry_run {
                clients
                    .stacks
                    .delete_change_set(&opts.stack, &request.name)
                    .await?;
                if kind == ChangeSetKind::Create {
                    // The CREATE change set left an empty stack (REVIEW_IN_PROGRESS).
                    clients.stacks.delete_stack(&opts.stack).await?;
                }
                StackOutcome::Planned
            } else {
                clients
                    .stacks
                    .execute_change_set(&opts.stack, &request.name)
                    .await?;
                let prior: HashSet<String> = seen;
                stack::follow(
                    clients.stacks.as_ref(),
                    &opts.stack,
                    prior,
                    opts.poll,
                    progress,
                )
                .await?;
                progress(&format!(
                    "stack {}: {}",
                    opts.stack,
                    if kind == ChangeSetKind::Create {
                        "created"
                    } else {
                        "updated"
                    }
                ));
                if kind == ChangeSetKind::Create {
                    StackOutcome::Created
                } else {
                    StackOutcome::Updated
                }
            }
        }
    };

    let mut not_rehearsed = BTreeMap::new();
    if opts.rehearsal && outcome != StackOutcome::Planned {
        not_rehearsed = stack::not_rehearsed_all(
            clients.stacks.as_ref(),
            &opts.stack,
            &synthesized,
            &originals,
        )
        .await?;
        for (ty, ids) in &not_rehearsed {
            progress(&format!(
                "not rehearsed: {ty} ({}): {}",
                ids.len(),
                stack::abbreviate(ids, 6)
            ));
        }
    }

    let (worker_config, edge_url) =
        deploy_worker(opts, clients, outcome.clone(), &secret.value, progress).await?;
    Ok(DeployReport {
        stack: outcome,
        uploaded,
        secret_created: secret.created,
        not_rehearsed,
        worker_config: Some(worker_config),
        edge_url,
    })
}

async fn deploy_worker(
    opts: &DeployOptions,
    clients: &DeployClients,
    outcome: StackOutcome,
    secret: &kiln_aws::secrets::SecretValue,
    progress: &mut dyn FnMut(&str),
) -> Result<(PathBuf, Option<String>), DeployError> {
    let origin = match clients.stacks.describe(&opts.stack).await? {
        Some(s) => s.output(ORIGIN_OUTPUT).map(str::to_owned),
        None => None,
    };
    let origin = match (origin, opts.rehearsal || outcome == StackOutcome::Planned) {
        (Some(url), _) => url,
        (None, true) => {
            progress(&format!(
                "not rehearsed: output {ORIGIN_OUTPUT} (its AWS::Lambda::Url was not created); the Worker gets {UNREHEARSED_ORIGIN}"
            ));
            UNREHEARSED_ORIGIN.to_owned()
        }
        (None, false) => {
            return Err(DeployError::NoOrigin {
                stack: opts.stack.clone(),
            });
        }
    };
    let edge = opts.root.join("edge");
    if opts.build_edge {
        progress("building the Worker (scripts/build-edge.sh)");
        let script = opts.root.join("scripts/build-edge.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|source| DeployError::Spawn {
                program: script.display().to_string(),
                source,
            })?;
        if !status.success() {
            return Err(DeployError::Tool {
                tool: "scripts/build-edge.sh".into(),
                detail: status.to_string(),
            });
        }
    }
    let wrangler = worker::find_wrangler(&opts.root)?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| DeployError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let config_path = opts.out_dir.join("wrangler.toml");
    let base_path = edge.join("wrangler.toml");
    let base = std::fs::read_to_string(&base_path).map_err(|source| DeployError::Io {
        path: base_path,
        source,
    })?;
    let offline = opts.rehearsal || opts.dry_run;
    let mut config = worker::WorkerConfig {
        name: opts.worker_name(),
        origin_url: origin,
        kv_id: "0".repeat(32),
        account_id: opts.account_id.clone(),
        domain: opts.domain.clone(),
        main: edge.join("build/index.js"),
    };
    let write = |c: &worker::WorkerConfig| -> Result<(), DeployError> {
        let text = worker::render_config(&base, c)?;
        std::fs::write(&config_path, text).map_err(|source| DeployError::Io {
            path: config_path.clone(),
            source,
        })
    };
    write(&config)?;
    if offline {
        progress(&format!(
            "not rehearsed: KV namespace {} and secret {} (a Cloudflare account)",
            opts.kv_title(),
            worker::SECRET_NAME
        ));
        let bundle = opts.out_dir.join("bundle");
        let cfg = config_path.to_string_lossy();
        let out = worker::run(
            &wrangler,
            &edge,
            &[
                "deploy",
                "--dry-run",
                "--outdir",
                &bundle.to_string_lossy(),
                "--config",
                &cfg,
            ],
            None,
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(size) = text.lines().find(|l| l.contains("Total Upload")) {
            progress(&format!("worker (dry run): {}", size.trim()));
        }
        progress(&format!(
            "worker {}: wrangler deploy --dry-run passed ({})",
            config.name,
            config_path.display()
        ));
        return Ok((config_path, None));
    }
    let (kv, created) = worker::ensure_kv(&wrangler, &edge, &config_path, &opts.kv_title())?;
    if created {
        progress(&format!("created KV namespace {}", opts.kv_title()));
    }
    config.kv_id = kv;
    write(&config)?;
    let cfg = config_path.to_string_lossy();
    worker::run(
        &wrangler,
        &edge,
        &["secret", "put", worker::SECRET_NAME, "--config", &cfg],
        Some(secret),
    )?;
    progress(&format!(
        "worker secret {} set from Secrets Manager",
        worker::SECRET_NAME
    ));
    let out = worker::run(&wrangler, &edge, &["deploy", "--config", &cfg], None)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.contains("https://")) {
        progress(&format!("worker: {}", line.trim()));
    }
    progress(&format!("worker {} deployed", config.name));
    let url = match &opts.domain {
        Some(domain) => Some(format!("https://{domain}")),
        None => worker::workers_dev_url(&stdout),
    };
    Ok((config_path, url))
}
