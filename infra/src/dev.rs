//! `kiln dev`: load the presets, start [`kiln_devstack::stack::DevStack`], report where
//! everything runs and follow the public status until Ctrl-C.

use std::time::Duration;

use chrono::Utc;
use kiln_devstack::DynamoBackend;
use kiln_devstack::process::Output;
use kiln_devstack::stack::{DevError, DevOptions, DevStack, default_lambda_dir};

/// `kiln dev`: start, report, follow the status until Ctrl-C (or readiness with
/// `--exit-when-ready`), stop everything. Returns the exit code.
pub async fn run(args: crate::cli::DevArgs) -> Result<u8, DevError> {
    let presets = match crate::presets::load(&args.presets) {
        Ok(p) => p,
        Err(crate::presets::LoadError::Invalid(errors)) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return Ok(1);
        }
        Err(e) => return Err(DevError::Presets(e.to_string())),
    };
    let mut options = DevOptions::new(
        presets,
        args.lambda_dir.clone().unwrap_or_else(default_lambda_dir),
    );
    options.build_time = Duration::from_secs(if args.fast {
        3
    } else {
        args.build_seconds.max(1)
    });
    options.fail = args.fail.clone();
    options.drop_events = args.drop_events;
    options.edge_port = Some(args.port);
    if args.moto_dynamodb {
        options.dynamodb = DynamoBackend::Moto;
    }
    if args.lambda_logs {
        options.lambda_output = Output::Inherit;
    }
    let stack = DevStack::start(options, |line| eprintln!("dev: {line}")).await?;
    println!();
    println!("  kiln is running locally");
    println!("  page      {}", stack.page_url());
    println!("  status    {}", stack.status_url());
    if let Some(origin) = stack.origin_url() {
        println!("  origin    {origin}/status (signed requests only)");
    }
    println!("  dynamodb  {}", stack.aws.dynamodb_endpoint());
    println!("  moto      {}", stack.aws.moto.endpoint());
    println!("  builder   {}", stack.imagebuilder.endpoint());
    for (name, path) in stack.log_paths() {
        println!("  log       {name}: {}", path.display());
    }
    let env = stack.cli_env();
    let env_text = kiln_devstack::cli_env::env_file_text(&env);
    let written = args
        .env_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&args.env_file, &env_text));
    println!("\n  To use kiln against this stack from another shell:");
    match written {
        Ok(()) => println!("    source {}", args.env_file.display()),
        Err(e) => eprintln!(
            "dev: could not write {}: {e}; set these instead:",
            args.env_file.display()
        ),
    }
    println!("  (it sets, among others:");
    for (k, v) in &env {
        println!("    {k}={v}");
    }
    println!("  DynamoDB Local keeps one database per access key: keep these keys.)");
    println!("\n  Ctrl-C stops everything.\n");

    let watch = watch_status(stack.status_url(), args.exit_when_ready);
    let code = if args.exit_when_ready {
        tokio::select! {
            code = watch => code,
            _ = tokio::time::sleep(args.ready_timeout) => {
                eprintln!("dev: not ready after {:?}", args.ready_timeout);
                2
            }
            _ = tokio::signal::ctrl_c() => 130,
        }
    } else {
        tokio::select! {
            code = watch => code,
            _ = tokio::signal::ctrl_c() => 0,
        }
    };
    eprintln!("dev: stopping");
    drop(stack);
    // The file would point at ports nobody serves any more.
    if std::fs::read_to_string(&args.env_file).is_ok_and(|t| t == env_text) {
        let _ = std::fs::remove_file(&args.env_file);
    }
    Ok(code)
}

/// Prints every change of the public status as it happens. With `until_settled`, returns
/// 0 once ready, 1 once degraded with nothing left building.
async fn watch_status(url: String, until_settled: bool) -> u8 {
    use kiln_shared::{OverallStatus, PresetStatus, StatusReport};
    use std::collections::BTreeMap;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client");
    let mut seen: BTreeMap<String, PresetStatus> = BTreeMap::new();
    let mut overall: Option<(OverallStatus, bool)> = None;
    loop {
        let report = match client.get(&url).send().await {
            Ok(r) => r.json::<StatusReport>().await.ok(),
            Err(_) => None,
        };
        if let Some(report) = report {
            let clock = Utc::now().format("%H:%M:%S");
            for p in &report.presets {
                if seen.get(&p.name) != Some(&p.status) {
                    let ami = p
                        .ami_id
                        .as_deref()
                        .map(|a| format!(" ({a})"))
                        .unwrap_or_default();
                    println!("  {clock}  {:<24} {}{ami}", p.name, p.status.as_str());
                    seen.insert(p.name.clone(), p.status);
                }
            }
            if overall != Some((report.status, report.stale)) {
                let stale = if report.stale { " [stale]" } else { "" };
                println!(
                    "  {clock}  overall: {}: {}{stale}",
                    report.status, report.message
                );
                overall = Some((report.status, report.stale));
            }
            if until_settled {
                let building = report
                    .presets
                    .iter()
                    .any(|p| p.status == PresetStatus::Building);
                match report.status {
                    OverallStatus::Ready => return 0,
                    OverallStatus::Degraded if !building => return 1,
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}
