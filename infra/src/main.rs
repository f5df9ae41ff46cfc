//! The `kiln` binary: parse, call the library, print, pick the exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use kiln_aws::images::ImageBuilderApi;
use kiln_aws::store::Unreadable;
use kiln_infra::cli::{AwsArgs, BuildWait, Cli, Command, RegistryCommand};
use kiln_infra::presets::LoadError;
use kiln_infra::status::WaitOutcome;
use kiln_infra::{aws, build, cleanup, history, presets, status, template};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // After `build` / `test`, `--region` is a target, not where the calls went.
    let target = region_target(&cli.aws);
    let stack_region = match target {
        Some(_) => std::env::var("KILN_STACK_REGION").ok(),
        None => cli.aws.region.clone(),
    };
    let context = kiln_infra::explain::Context {
        region: stack_region
            .filter(|r| !r.is_empty())
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty()),
        prefix: cli.aws.prefix.clone(),
        table: cli.aws.table_name(),
    };
    let verbose = cli.verbose;
    match run(cli, target).await {
        Ok(code) => code,
        Err(e) => {
            let err: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("{}", kiln_infra::explain::render(err, &context, verbose));
            ExitCode::FAILURE
        }
    }
}

/// `target`: `--region` when written after the subcommand (see [`region_target`]).
async fn run(cli: Cli, target: Option<String>) -> Result<ExitCode> {
    let aws = cli.aws;
    match cli.command {
        Command::Validate { dir } => {
            let Some(presets) = load_presets(&dir)? else {
                return Ok(ExitCode::FAILURE);
            };
            println!("{}", presets::summary(&presets));
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            print!("{}", kiln_shared::preset::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            files,
            out,
            dry_run,
        } => Ok(import_files(&files, out.as_deref(), dry_run)),
        Command::Synth {
            presets: dir,
            out,
            format,
        } => {
            let Some(presets) = load_presets(&dir)? else {
                return Ok(ExitCode::FAILURE);
            };
            let options = template::SynthOptions {
                prefix: aws.prefix.clone(),
            };
            let synthesized = template::synth(&presets, &options)?;
            let Some(dir) = out else {
                anyhow::bail!(
                    "kiln synth writes a core template and one nested template per group of presets: pass --out DIR"
                );
            };
            let written = template::write_dir(&synthesized, format, &dir)
                .with_context(|| format!("writing templates to {}", dir.display()))?;
            eprintln!(
                "wrote {} template(s) to {} ({} preset{}: core {} resources, {} nested stack(s))",
                written.len(),
                dir.display(),
                presets.len(),
                if presets.len() == 1 { "" } else { "s" },
                synthesized.core["Resources"]
                    .as_object()
                    .map_or(0, |r| r.len()),
                synthesized.groups.len(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Build {
            preset,
            architecture,
            dry_run,
            wait,
        } => {
            // `--region` after `build`: a one-off distribution target; the stack's
            // region comes from KILN_STACK_REGION or the AWS chain.
            let only = target;
            let (clients, _) = aws::clients_with_target(&aws, only.is_some()).await?;
            let images = clients.images.as_ref();
            let pipelines = build::chosen_pipelines(
                clients.store.as_ref(),
                images,
                &aws.prefix,
                &[preset],
                architecture,
            )
            .await?;
            start_builds(
                clients.store.as_ref(),
                images,
                &pipelines,
                only.as_deref(),
                dry_run,
                &wait,
            )
            .await
        }
        Command::BuildAll {
            presets,
            architecture,
            dry_run,
            wait,
        } => {
            let (clients, _) = aws::clients(&aws).await?;
            let images = clients.images.as_ref();
            let pipelines = if presets.is_empty() && architecture.is_none() {
                build::pipelines(images, &aws.prefix).await?
            } else if presets.is_empty() {
                let deployed = clients.store.list_presets().await?;
                let names: Vec<String> = deployed.iter().map(|p| p.name.clone()).collect();
                build::chosen_pipelines(
                    clients.store.as_ref(),
                    images,
                    &aws.prefix,
                    &names,
                    architecture,
                )
                .await?
            } else {
                build::chosen_pipelines(
                    clients.store.as_ref(),
                    images,
                    &aws.prefix,
                    &presets,
                    architecture,
                )
                .await?
            };
            if pipelines.is_empty() {
                return Err(build::BuildError::NoPipelines { prefix: aws.prefix }.into());
            }
            start_builds(
                clients.store.as_ref(),
                images,
                &pipelines,
                None,
                dry_run,
                &wait,
            )
            .await
        }
        Command::List {
            preset,
            json,
            images: true,
            regions,
        } => {
            let (clients, home) = aws::clients(&aws).await?;
            let regions = if regions.is_empty() {
                vec![home]
            } else {
                cleanup::unique_regions(&regions)
            };
            let mut images = Vec::new();
            for region in &regions {
                images
                    .extend(cleanup::list_images(clients.ec2.as_ref(), region, &aws.prefix).await?);
            }
            if let Some(p) = &preset {
                images.retain(|i| &i.preset == p);
            }
            cleanup::sort_newest_first(&mut images);
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else if images.is_empty() {
                println!(
                    "no AMIs tagged {}={} in {}",
                    template::TAG_PREFIX,
                    aws.prefix,
                    regions.join(", ")
                );
            } else {
                print!("{}", cleanup::render_images(&images));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { preset, json, .. } => {
            let (clients, _) = aws::clients(&aws).await?;
            let listing = match &preset {
                Some(p) => history::load_builds_of(clients.store.as_ref(), p).await?,
                None => history::load_builds(clients.store.as_ref()).await?,
            };
            warn_unreadable(&listing.unreadable);
            let builds = listing.items;
            if json {
                println!("{}", serde_json::to_string_pretty(&builds)?);
            } else if builds.is_empty() {
                println!("no builds recorded yet");
            } else {
                print!("{}", history::render_table(&builds));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { url, json } => {
            let url = status::status_url(&url)?;
            let report = status::fetch(&status::client(), &url).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status::render_human(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait {
            url,
            until,
            timeout,
            interval,
        } => {
            let url = status::status_url(&url)?;
            let mut last_line = String::new();
            let outcome = status::wait(&status::client(), &url, until, timeout, interval, |r| {
                let line = match r {
                    Ok(report) => format!("{}: {}", report.status, report.message),
                    Err(e) => format!("waiting: {e}"),
                };
                if line != last_line {
                    eprintln!("{line}");
                    last_line = line;
                }
            })
            .await;
            match &outcome {
                WaitOutcome::Ready(report) => print!("{}", status::render_human(report)),
                WaitOutcome::Degraded(report) => {
                    print!("{}", status::render_human(report));
                    eprintln!("error: degraded: {}", report.message);
                }
                WaitOutcome::TimedOut { last, last_error } => {
                    let state = match (last, last_error) {
                        (Some(r), _) => format!("last status {}: {}", r.status, r.message),
                        (None, Some(e)) => format!("never got a status: {e}"),
                        (None, None) => "never got a status".into(),
                    };
                    let goal = clap::ValueEnum::to_possible_value(&until)
                        .map(|v| v.get_name().to_owned())
                        .unwrap_or_default();
                    eprintln!(
                        "error: not {goal} after {}: {state}",
                        humanize(timeout.as_secs())
                    );
                }
            }
            Ok(ExitCode::from(outcome.exit_code()))
        }
        Command::Cleanup {
            keep_latest,
            dry_run,
            regions,
            grace,
        } => cleanup(&aws, keep_latest as usize, dry_run, regions, grace).await,
        Command::Pin { preset, build } => {
            let op = kiln_infra::release::Op::Pin {
                preset,
                version: build,
            };
            release(&aws, op).await
        }
        Command::Test {
            preset,
            architecture,
            ami,
            instance_type,
            ready_timeout,
            test_timeout,
            poll,
            json,
        } => {
            let (clients, testbed, stack_region) =
                aws::test_clients(&aws, target.is_some()).await?;
            let options = kiln_infra::testrun::TestOptions {
                prefix: aws.prefix.clone(),
                stack_region,
                region: target,
                ami,
                instance_type,
                ready_timeout,
                test_timeout,
                poll,
            };
            let test_clients = kiln_infra::testrun::TestClients {
                store: clients.store.as_ref(),
                images: clients.images.as_ref(),
                instances: &testbed.instances,
                commands: &testbed.commands,
            };
            let code = kiln_infra::testrun::test_presets(
                &test_clients,
                &options,
                &preset,
                architecture,
                json,
            )
            .await?;
            Ok(ExitCode::from(code))
        }
        Command::Releases { preset, json } => {
            let (clients, _) = aws::clients(&aws).await?;
            let r = kiln_infra::release::releases(&clients, &preset).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Unpin { preset } => release(&aws, kiln_infra::release::Op::Unpin { preset }).await,
        Command::Rollback { preset } => {
            release(&aws, kiln_infra::release::Op::Rollback { preset }).await
        }
        Command::Revoke {
            build,
            preset,
            disable_ami,
        } => {
            let op = kiln_infra::release::Op::Revoke {
                version: build,
                preset,
                disable_ami,
            };
            release(&aws, op).await
        }
        Command::Registry {
            command: RegistryCommand::Export { out },
        } => {
            let (clients, _) = aws::clients(&aws).await?;
            let builds = history::load_builds(clients.store.as_ref()).await?;
            warn_unreadable(&builds.unreadable);
            let preset_items = clients.store.list_presets().await?;
            warn_unreadable(&preset_items.unreadable);
            let presets = history::presets_of_items(&preset_items);
            // size_gb from the AMIs' snapshots; a region that cannot be listed only
            // leaves sizes out.
            let mut sizes = std::collections::BTreeMap::new();
            for region in history::ami_regions(&builds) {
                match cleanup::list_images(clients.ec2.as_ref(), &region, &aws.prefix).await {
                    Ok(images) => sizes.extend(
                        images
                            .into_iter()
                            .filter_map(|i| Some(((region.clone(), i.id), i.size_gb?))),
                    ),
                    Err(e) => eprintln!("warning: AMI sizes in {region} unknown: {e}"),
                }
            }
            let registry = history::registry_of(
                &builds,
                &presets,
                &sizes,
                chrono::DateTime::from(std::time::SystemTime::now()),
            );
            let text = serde_json::to_string_pretty(&registry)? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy(args) => deploy(&aws, args).await,
        Command::Destroy(args) => destroy(&aws, args).await,
        Command::Secret {
            command: kiln_infra::cli::SecretCommand::Rotate(args),
        } => rotate_secret(&aws, args).await,
        #[cfg(feature = "dev")]
        Command::Dev(args) => Ok(ExitCode::from(kiln_infra::dev::run(args).await?)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `kiln import`: every file is tried; exit 1 when any was not imported.
/// `--region` when written after the subcommand (a target for `build` and `test`).
fn region_target(aws: &AwsArgs) -> Option<String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    aws.region
        .clone()
        .filter(|_| kiln_infra::cli::region_after_subcommand(&args))
}

fn import_files(files: &[std::path::PathBuf], out: Option<&Path>, dry_run: bool) -> ExitCode {
    let mut failed = 0;
    for path in files {
        let done = kiln_infra::import::convert(path, out).and_then(|imported| {
            if dry_run {
                print!("--- {}\n{}", imported.to.display(), imported.text);
            } else {
                kiln_infra::import::write(&imported)?;
                eprintln!(
                    "imported {} -> {} ({})",
                    imported.from.display(),
                    imported.to.display(),
                    imported.presets.join(", ")
                );
            }
            Ok(())
        });
        if let Err(e) = done {
            eprintln!("{e}");
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} file(s) not imported", files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Validated presets, or `None` after printing every problem.
fn load_presets(dir: &Path) -> Result<Option<Vec<kiln_shared::Preset>>> {
    match presets::load(dir) {
        Ok(presets) => Ok(Some(presets)),
        Err(LoadError::Invalid(errors)) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            let n = errors.0.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn warn_unreadable(unreadable: &[Unreadable]) {
    for u in unreadable {
        eprintln!(
            "warning: skipped unreadable item {}: {}",
            u.job_id, u.reason
        );
    }
}

/// Starts each pipeline (or, with `dry_run`, says it would), then follows them with
/// `--wait`. A pipeline that fails to start is reported and the others still start.
async fn start_builds(
    store: &dyn kiln_aws::store::StateStore,
    images: &dyn ImageBuilderApi,
    pipelines: &[build::Pipeline],
    only_region: Option<&str>,
    dry_run: bool,
    wait: &BuildWait,
) -> Result<ExitCode> {
    if dry_run {
        for p in pipelines {
            match only_region {
                Some(r) => println!(
                    "would start a one-off build of {} (preset {}) distributed to {r} only; the pipeline stays as it is",
                    p.name, p.preset
                ),
                None => println!("would start {} (preset {})", p.name, p.preset),
            }
        }
        println!("dry run: nothing started");
        return Ok(ExitCode::SUCCESS);
    }
    let mut started = Vec::new();
    let mut failed_to_start = 0;
    for p in pipelines {
        match build::start(images, p, only_region).await {
            Ok(arn) => {
                // JSON lines on stdout stay parseable: the plain line goes to stderr.
                if wait.json {
                    eprintln!("started {}: {arn}", p.name);
                } else {
                    println!("started {}: {arn}", p.name);
                }
                started.push((p.preset.clone(), arn));
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed_to_start += 1;
            }
        }
    }
    let code = follow(store, images, started, wait).await?;
    Ok(if failed_to_start > 0 {
        ExitCode::FAILURE
    } else {
        code
    })
}

async fn follow(
    store: &dyn kiln_aws::store::StateStore,
    images: &dyn ImageBuilderApi,
    started: Vec<(String, String)>,
    wait: &BuildWait,
) -> Result<ExitCode> {
    if !wait.wait || started.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // Test names for the report; without them the report still has every other step.
    let tests: std::collections::BTreeMap<String, Vec<String>> = match store.list_presets().await {
        Ok(items) => items
            .iter()
            .filter_map(|i| i.preset().ok())
            .map(|p| {
                let names = p.validation_tests.iter().map(|t| t.name.clone()).collect();
                (p.name, names)
            })
            .collect(),
        Err(_) => Default::default(),
    };
    let width = started.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let json = wait.json;
    let emit = move |e: &kiln_infra::report::Event| {
        if json {
            println!("{}", serde_json::to_string(e).expect("event serialises"));
        } else {
            println!("{}", e.render(width));
        }
    };
    let followed = kiln_infra::report::follow_reported(
        images,
        started,
        &tests,
        wait.timeout,
        wait.interval,
        &emit,
    )
    .await;
    let failed = followed.iter().filter(|f| !f.outcome.is_success()).count();
    if failed == 0 {
        if !json {
            print!("{}", build::render_outcomes(&followed));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        eprint!("{}", build::render_outcomes(&followed));
    }
    eprintln!(
        "error: {failed} of {} build{} did not succeed",
        followed.len(),
        if followed.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::from(build::exit_code(&followed)))
}

async fn release(aws: &AwsArgs, op: kiln_infra::release::Op) -> Result<ExitCode> {
    let (clients, _) = aws::clients(aws).await?;
    let done = kiln_infra::release::run(&clients, &aws.prefix, &op, chrono::Utc::now()).await?;
    println!("{}", done.summary());
    Ok(ExitCode::SUCCESS)
}

async fn cleanup(
    aws: &AwsArgs,
    keep_latest: usize,
    dry_run: bool,
    regions: Vec<String>,
    grace: std::time::Duration,
) -> Result<ExitCode> {
    let (clients, home) = aws::clients(aws).await?;
    let regions = if regions.is_empty() {
        vec![home]
    } else {
        cleanup::unique_regions(&regions)
    };
    let policy = cleanup::Policy {
        keep_latest,
        grace,
        now: chrono::Utc::now(),
    };
    let plan = cleanup::plan_for(
        clients.store.as_ref(),
        clients.configs.as_ref(),
        clients.ec2.as_ref(),
        &aws.prefix,
        &regions,
        &policy,
    )
    .await?;
    print!("{}", plan.render(dry_run));
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let failures = cleanup::execute(clients.ec2.as_ref(), &plan, |line| println!("{line}")).await;
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in &failures {
        eprintln!("error: {} {}: {}", f.region, f.image, f.message);
    }
    bail!(
        "{} of {} deletions failed",
        failures.len(),
        plan.delete.len()
    )
}

async fn deploy(aws: &AwsArgs, args: kiln_infra::cli::DeployArgs) -> Result<ExitCode> {
    use kiln_infra::deploy::{self, CodeSource, DeployOptions};
    let (clients, region) = aws::deploy_clients(aws).await?;
    let root = deploy::find_root();
    let stack = args.stack.stack.clone();
    let bucket = deploy::resolve_bucket(&clients, &stack, &region, args.stack.bucket).await?;
    let opts = DeployOptions {
        presets: args.presets,
        bucket,
        prefix: aws.prefix.clone(),
        region,
        domain: args.domain.clone(),
        dry_run: args.dry_run,
        rehearsal: args.stack.rehearsal,
        code: match args.lambda_zips {
            Some(dir) => CodeSource::Prebuilt(dir),
            None => CodeSource::Build {
                workspace: root.clone(),
            },
        },
        out_dir: args
            .out_dir
            .unwrap_or_else(|| root.join("target/kiln-deploy").join(&stack)),
        root,
        build_edge: !args.no_edge_build,
        account_id: std::env::var("CLOUDFLARE_ACCOUNT_ID")
            .ok()
            .filter(|a| !a.is_empty()),
        poll: args.stack.poll,
        build_subnet: args.build_subnet,
        build_security_groups: args.build_security_groups,
        stack,
    };
    let progress = kiln_infra::progress::Progress::new();
    let result = deploy::deploy(&clients, &opts, &mut |line| progress.line(line)).await;
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(e @ deploy::DeployError::Presets(LoadError::Invalid(_))) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.dry_run {
        println!("dry run: nothing executed");
    }
    if !report.not_rehearsed.is_empty() {
        let n: usize = report.not_rehearsed.values().map(Vec::len).sum();
        println!(
            "{n} resource(s) of {} type(s) not rehearsed by the emulators",
            report.not_rehearsed.len()
        );
    }
    if !args.wait || args.dry_run || opts.rehearsal {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(base) = report.edge_url else {
        bail!("--wait: the Worker's URL is unknown (wrangler printed none); pass --domain");
    };
    let url = status::status_url(&base)?;
    println!(
        "waiting for {url} to be ready (every preset built once; Ctrl-C stops waiting, not the builds)"
    );
    let live = kiln_infra::progress::Progress::new();
    let outcome = status::wait(
        &status::client(),
        &url,
        kiln_infra::cli::Until::Ready,
        args.wait_timeout,
        std::time::Duration::from_secs(15),
        |r| match r {
            Ok(report) => live.live(&status::render_human(report)),
            Err(e) => live.live(&format!("waiting: {e}\n")),
        },
    )
    .await;
    live.finish();
    match &outcome {
        WaitOutcome::Ready(report) | WaitOutcome::Degraded(report) => {
            print!("{}", status::render_human(report))
        }
        WaitOutcome::TimedOut { .. } => eprintln!("error: not ready after {:?}", args.wait_timeout),
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

async fn destroy(aws: &AwsArgs, args: kiln_infra::cli::DestroyArgs) -> Result<ExitCode> {
    use kiln_infra::deploy::{self, destroy::DestroyOptions};
    let (clients, region) = aws::deploy_clients(aws).await?;
    let stack = args.stack.stack.clone();
    let bucket = deploy::resolve_bucket(&clients, &stack, &region, args.stack.bucket).await?;
    let data = if args.delete_data {
        Some(aws::clients(aws).await?.0)
    } else {
        None
    };
    let opts = DestroyOptions {
        bucket,
        prefix: aws.prefix.clone(),
        region,
        stack,
        delete_data: args.delete_data,
        rehearsal: args.stack.rehearsal,
        root: deploy::find_root(),
        poll: args.stack.poll,
    };
    deploy::destroy::destroy(&clients, data.as_ref(), &opts, &mut |line| {
        println!("{line}")
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn rotate_secret(aws: &AwsArgs, args: kiln_infra::cli::RotateArgs) -> Result<ExitCode> {
    use kiln_infra::deploy::rotate::{self, RotateOptions, WorkerSecrets, WranglerSecrets};
    use kiln_infra::deploy::{self, DeployError};

    /// `--rehearsal`: names what wrangler would set, runs nothing.
    struct NotRehearsed(String);
    impl WorkerSecrets for NotRehearsed {
        fn put(
            &mut self,
            secrets: &[(&str, &kiln_aws::secrets::SecretValue)],
        ) -> Result<(), DeployError> {
            let names: Vec<&str> = secrets.iter().map(|(n, _)| *n).collect();
            println!(
                "not rehearsed: wrangler secret bulk --name {} ({}; a Cloudflare account)",
                self.0,
                names.join(", ")
            );
            Ok(())
        }
    }

    let (clients, _) = aws::deploy_clients(aws).await?;
    let worker = deploy::worker_name(&args.stack);
    let mut sink: Box<dyn WorkerSecrets> = if args.rehearsal {
        Box::new(NotRehearsed(worker))
    } else {
        let root = deploy::find_root();
        Box::new(WranglerSecrets {
            wrangler: deploy::worker::find_wrangler(&root)?,
            dir: root.join("edge"),
            worker,
        })
    };
    let opts = RotateOptions {
        stack: args.stack,
        settle: args.settle,
    };
    rotate::rotate(
        clients.secrets.as_ref(),
        sink.as_mut(),
        &opts,
        &mut |line| println!("{line}"),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn humanize(secs: u64) -> String {
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}
