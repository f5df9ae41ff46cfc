//! Runs kiln's local EC2 Image Builder endpoint on its own, for poking at it by hand
//! (`aws imagebuilder --endpoint-url`, curl on `/_kiln/…`).
//!
//! ```text
//! kiln-local-imagebuilder [--port N] [--region R] [--build-seconds S] [--sink URL]... [--ec2 URL]
//! ```

use std::time::Duration;

use anyhow::{Context, bail};
use kiln_devstack::imagebuilder::{LocalImageBuilder, Options, Timing};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut options = Options::default();
    let mut sinks = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => options.port = Some(value()?.parse().context("--port")?),
            "--region" => options.region = value()?,
            "--build-seconds" => {
                let secs: f64 = value()?.parse().context("--build-seconds")?;
                if !(secs > 0.0 && secs < 86_400.0) {
                    bail!("--build-seconds must be between 0 and 86400");
                }
                options.timing = Timing::total(Duration::from_secs_f64(secs));
            }
            "--sink" => sinks.push(value()?),
            "--ec2" => options.ec2_endpoint = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "kiln-local-imagebuilder [--port N] [--region R] [--build-seconds S] [--sink URL]... [--ec2 URL]"
                );
                return Ok(());
            }
            other => bail!("unknown argument '{other}' (try --help)"),
        }
    }
    let ib = LocalImageBuilder::start(options).await?;
    for sink in &sinks {
        ib.add_http_sink(sink);
    }
    println!("local Image Builder: {}", ib.endpoint());
    kiln_devstack::process::shutdown_signal().await;
    Ok(())
}
