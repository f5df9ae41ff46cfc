//! The `kiln` command line: clap definitions only. `main.rs` dispatches each command to
//! the library function that does the work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::template::{DEFAULT_PREFIX, Format};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Presets in, EC2 Image Builder pipelines and ready AMIs out.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// On failure, print the whole error chain and the AWS SDK's details.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the AWS commands go. Credentials come from the usual AWS chain.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region (default: the AWS chain, e.g. AWS_REGION).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send every AWS call here (local emulators). AWS_ENDPOINT_URL and the
    /// per-service AWS_ENDPOINT_URL_<SERVICE> variables work without this flag.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Name prefix of the deployment (the stack's Prefix parameter).
    #[arg(long, global = true, env = "KILN_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// State table (default: <prefix>-state).
    #[arg(long, global = true, env = "KILN_TABLE")]
    pub table: Option<String>,
}

impl AwsArgs {
    pub fn table_name(&self) -> String {
        self.table
            .clone()
            .unwrap_or_else(|| kiln_shared::table::table_name(&self.prefix))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every preset file; print each problem as `file: field: reason`.
    Validate {
        /// Directory of *.yaml / *.yml presets.
        #[arg(default_value = "presets")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of a preset file (for editors).
    Schema,
    /// Rewrite template-format files (`name` = display name, `base_ami`) as kiln presets:
    /// in place, or into --out DIR. Each result must validate to the same presets.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write `<stem>.yaml` here instead of replacing each file.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the converted presets, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Render the CloudFormation templates for a presets directory: core.template.json
    /// (or .yaml) and one presets-NN.template.json per nested stack of presets.
    Synth {
        #[arg(long, default_value = "presets")]
        presets: PathBuf,
        /// The directory to write the templates to (created when absent; stale
        /// presets-NN.template.json files in it are removed).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Start a build of one preset's pipeline; a template name (the unexpanded name of a
    /// multi-architecture preset) builds each of its architectures. With `--region R`
    /// after `build`: a one-off build of the pipeline's recipe distributed to R only
    /// (CreateImage; the pipeline, its schedule and distribution stay as they are;
    /// runners in R move to it, the other regions keep theirs); the stack's region then
    /// comes from KILN_STACK_REGION or the AWS chain (`kiln --region R build …` still
    /// names the stack's region).
    Build {
        preset: String,
        /// Only this architecture of a multi-architecture preset.
        #[arg(long, value_parser = parse_architecture)]
        architecture: Option<kiln_shared::Architecture>,
        /// Print what would be started; start nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        wait: BuildWait,
    },
    /// Start a build of every pipeline of the deployment, or of the named ones.
    BuildAll {
        /// Only these presets or templates (comma-separated).
        #[arg(
            long,
            alias = "templates",
            value_delimiter = ',',
            value_name = "NAME,..."
        )]
        presets: Vec<String>,
        /// Only this architecture.
        #[arg(long, value_parser = parse_architecture)]
        architecture: Option<kiln_shared::Architecture>,
        /// Print what would be started; start nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        wait: BuildWait,
    },
    /// Run a preset's validation tests against an existing AMI (default: what its
    /// runners use) on a short-lived instance, through SSM Run Command; the outcome is
    /// recorded on the build (`kiln list`, the registry). The instance is terminated
    /// whatever happens, and shuts itself down if kiln cannot. `--region` after `test`
    /// is where to test (default: the preset's home region); the stack's region then
    /// comes from KILN_STACK_REGION or the AWS chain. Exit 0 passed, 1 a test failed, 2
    /// not tested.
    Test {
        /// Preset or template name (a template tests each architecture).
        preset: String,
        #[arg(long, value_parser = parse_architecture)]
        architecture: Option<kiln_shared::Architecture>,
        /// The AMI to test instead of the current one.
        #[arg(long, value_name = "AMI_ID")]
        ami: Option<String>,
        /// Default: the pipeline's build instance type.
        #[arg(long)]
        instance_type: Option<String>,
        /// How long the instance may take to run with its SSM agent online.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        ready_timeout: Duration,
        /// How long one test may run.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        test_timeout: Duration,
        /// Time between polls of EC2 and SSM.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        poll: Duration,
        /// Each step and the summary as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Build history: builds and their AMIs, newest first.
    List {
        /// Only this preset.
        #[arg(long)]
        preset: Option<String>,
        #[arg(long)]
        json: bool,
        /// List the AMIs in EC2 (by kiln's tags) instead of the build history.
        #[arg(long)]
        images: bool,
        /// With --images: regions to list (comma-separated; default: the configured region).
        #[arg(long, value_delimiter = ',', requires = "images")]
        regions: Vec<String>,
    },
    /// Read the public status.
    Status {
        /// The Worker's base URL or its /status URL.
        #[arg(long, env = "KILN_STATUS_URL")]
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// Wait for the public status: exit 0 on the condition, 1 degraded, 2 timeout.
    Wait {
        #[arg(long, env = "KILN_STATUS_URL")]
        url: String,
        #[arg(long, value_enum, default_value_t = Until::Ready)]
        until: Until,
        /// e.g. 45m, 90s, 1h30m.
        #[arg(long, default_value = "45m", value_parser = parse_duration)]
        timeout: Duration,
        /// Time between polls.
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Deregister old AMIs (and their snapshots) per preset and region.
    Cleanup {
        /// AMIs to keep per preset and region, newest first.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        keep_latest: u32,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Regions to clean (comma-separated; default: the configured region).
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
        /// Keep an AMI until its successor has been live this long (e.g. 7d, 36h, 0).
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Hold a preset's runners on one build (every region's runner config and
    /// /<prefix>/ami/<preset>); newer builds are recorded but not used until unpin.
    Pin {
        preset: String,
        /// Build version, as `kiln list` shows it (e.g. 1.0.42/3).
        #[arg(long, value_name = "VERSION")]
        build: String,
    },
    /// Let a pinned preset's runners follow its newest good build again.
    Unpin { preset: String },
    /// Pin a preset to the good build before the one its runners use.
    Rollback { preset: String },
    /// Never point runners at a build again; if they use it, they roll back to the
    /// previous good build until a newer one is ready.
    Revoke {
        /// Build version, as `kiln list` shows it.
        #[arg(value_name = "VERSION")]
        build: String,
        /// The preset, when more than one has a build of this version.
        #[arg(long)]
        preset: Option<String>,
        /// Also disable the build's AMIs in EC2 (no new instances can launch from them).
        #[arg(long)]
        disable_ami: bool,
    },
    /// Release-control history of a preset: each pin, unpin, rollback and revoke, newest
    /// first, and what its runners use now.
    Releases {
        preset: String,
        #[arg(long)]
        json: bool,
    },
    /// The AMI registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Deploy (or update) everything: Lambdas, stack, edge secret and Worker. Idempotent.
    Deploy(DeployArgs),
    /// Delete the stack and the Worker (with --delete-data also the state table, the AMIs
    /// and their snapshots, the artifacts bucket and the edge secret).
    Destroy(DestroyArgs),
    /// The edge secret shared by the Worker and the Lambdas.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Run the whole system locally: emulators, the local Image Builder, the Lambdas and
    /// the Worker under `wrangler dev`; apply the presets and start the first builds.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
}

/// What `kiln wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Until {
    /// Every preset ready (exit 0); the first failed build ends the wait (exit 1).
    Ready,
    /// No build in flight: every preset ready (exit 0) or some failed (exit 1). Waits out
    /// the other presets' builds after a failure, for a full report.
    Settled,
    /// The edge answers with a status document, whatever it says (exit 0): DNS, routes
    /// and secrets are in place right after a deploy.
    Reachable,
}

#[derive(Debug, Clone, Args)]
pub struct BuildWait {
    /// Follow the build(s) to the end; exit non-zero if one fails.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time between polls of Image Builder.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub interval: Duration,
    /// With --wait: the build report as JSON lines (one object per step and a summary
    /// per build) instead of text.
    #[arg(long, requires = "wait")]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Newest validated AMI per template, region and architecture, as JSON.
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Where a deploy goes, shared by `kiln deploy` and `kiln destroy`.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// CloudFormation stack name (also names the Worker `<stack>-edge`, the KV namespace
    /// `<stack>-status` and the secret `kiln/<stack>/edge-secret`).
    #[arg(long, env = "KILN_STACK", default_value = "kiln")]
    pub stack: String,
    /// Artifacts bucket (default: `<stack>-artifacts-<account>-<region>`, created if
    /// absent: versioned, encrypted, public access blocked).
    #[arg(long, env = "KILN_ARTIFACTS_BUCKET")]
    pub bucket: Option<String>,
    /// The AWS endpoints are local emulators: run everything against them, the Worker as
    /// `wrangler deploy --dry-run`, and report what they did not rehearse.
    #[arg(long)]
    pub rehearsal: bool,
    /// Seconds between polls of CloudFormation.
    #[arg(long, default_value = "5s", value_parser = parse_duration, hide = true)]
    pub poll: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[arg(long, default_value = "presets")]
    pub presets: PathBuf,
    #[command(flatten)]
    pub stack: StackArgs,
    /// Custom domain of the Worker (a route; the Lambdas push to https://HOST/ingest).
    #[arg(long, value_name = "HOST")]
    pub domain: Option<String>,
    /// After deploying, follow /status to ready, with the preset table live on the
    /// terminal (the custom domain, else the workers.dev URL wrangler printed).
    #[arg(long)]
    pub wait: bool,
    /// Give up `--wait` after this long (first builds take 20-60 minutes).
    #[arg(long, default_value = "90m", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// Print the plan and the change set; execute nothing (the Worker: wrangler --dry-run).
    #[arg(long)]
    pub dry_run: bool,
    /// Take the Lambda zips from DIR (`<fn>.zip` or `<fn>/bootstrap.zip`) instead of
    /// building them with cargo-lambda.
    #[arg(long, env = "KILN_LAMBDA_ZIPS", value_name = "DIR")]
    pub lambda_zips: Option<PathBuf>,
    /// Subnet of the build and test instances (default: the default VPC); it needs a
    /// route to the internet or VPC endpoints for SSM, S3 and Image Builder.
    #[arg(long, value_name = "SUBNET_ID", requires = "build_security_groups")]
    pub build_subnet: Option<String>,
    /// Security groups of the build instances, comma-separated (outbound HTTPS at least).
    #[arg(
        long,
        value_name = "SG_ID,...",
        value_delimiter = ',',
        requires = "build_subnet"
    )]
    pub build_security_groups: Vec<String>,
    /// Use edge/build as it is instead of running scripts/build-edge.sh first.
    #[arg(long)]
    pub no_edge_build: bool,
    /// Where the generated wrangler.toml goes (default: target/kiln-deploy/<stack>).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Replace the edge secret on both sides (Secrets Manager and the Worker) in an
    /// order that refuses no genuine request: /status never goes stale for it.
    Rotate(RotateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// CloudFormation stack name (the secret is `kiln/<stack>/edge-secret`, the Worker
    /// `<stack>-edge`).
    #[arg(long, env = "KILN_STACK", default_value = "kiln")]
    pub stack: String,
    /// How long to wait between the Secrets Manager step and switching the Worker's
    /// signing secret: the Lambdas' cache TTL (300 s) plus their refresh interval.
    #[arg(long, default_value = "330s", value_parser = parse_duration)]
    pub settle: Duration,
    /// The AWS endpoints are local emulators and no Cloudflare account is reachable:
    /// rotate in Secrets Manager, report the Worker's steps instead of running them.
    #[arg(long)]
    pub rehearsal: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Also delete the data: the state table (build history), every AMI of the prefix with
    /// its snapshots in the presets' regions, the artifacts bucket (every version) and the
    /// edge secret.
    #[arg(long)]
    pub delete_data: bool,
}

/// Whether `--region` was written after the subcommand (`kiln build r --region R`):
/// for `kiln build` and `kiln test` it then names a target (a one-off distribution,
/// where to test), while before it (`kiln --region R build r`) it is, as everywhere,
/// where kiln's own AWS calls go. `args` without the program name.
pub fn region_after_subcommand<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    // Options before the subcommand that take a value as the next word.
    const WITH_VALUE: [&str; 4] = ["--region", "--endpoint-url", "--prefix", "--table"];
    let words: Vec<&str> = args
        .iter()
        .map(|a| a.as_ref().to_str().unwrap_or(""))
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if WITH_VALUE.contains(&w) {
            i += 2;
        } else if w.starts_with('-') {
            i += 1;
        } else {
            return words[i + 1..]
                .iter()
                .take_while(|w| **w != "--")
                .any(|w| *w == "--region" || w.starts_with("--region="));
        }
    }
    false
}

/// `x86_64` or `arm64` (also `amd64`, `x64`, `aarch64`).
pub fn parse_architecture(text: &str) -> Result<kiln_shared::Architecture, String> {
    let canonical = match text {
        "amd64" | "x64" => "x86_64",
        "aarch64" => "arm64",
        other => other,
    };
    kiln_shared::Architecture::parse(canonical)
        .ok_or_else(|| format!("unknown architecture '{text}': expected x86_64 or arm64"))
}

/// `45m`, `90s`, `1h30m`, `250ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("'{text}' is not a duration (e.g. 45m, 90s, 1h30m, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            _ => return Err(bad()),
        };
        total += part;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45m"), Ok(Duration::from_secs(2700)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m5").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn keep_latest_zero_is_refused() {
        let err = Cli::try_parse_from(["kiln", "cleanup", "--keep-latest", "0"]).unwrap_err();
        assert!(err.to_string().contains("keep-latest"), "{err}");
    }

    #[test]
    fn build_flags_parse() {
        let cli = Cli::try_parse_from([
            "kiln",
            "build",
            "r",
            "--architecture",
            "aarch64",
            "--dry-run",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Build {
                architecture: Some(kiln_shared::Architecture::Arm64),
                dry_run: true,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["kiln", "build-all", "--templates", "a,b"]).unwrap();
        let Command::BuildAll { presets, .. } = cli.command else {
            panic!("build-all")
        };
        assert_eq!(presets, ["a", "b"]);
        assert!(Cli::try_parse_from(["kiln", "build", "r", "--architecture", "sparc"]).is_err());
    }

    #[test]
    fn region_after_the_subcommand_is_a_target() {
        let after = |line: &str| {
            let words: Vec<&str> = line.split_whitespace().collect();
            region_after_subcommand(&words)
        };
        assert!(after(
            "build r-research --architecture x86_64 --region us-east-1"
        ));
        assert!(after("build --region=us-east-2 r"));
        assert!(after("-v test r --region us-east-2"));
        assert!(!after("--region us-east-1 --prefix ci build alpha --wait"));
        assert!(
            !after("--region build build alpha"),
            "a value is not the subcommand"
        );
        assert!(!after("--endpoint-url http://x --region eu-west-1 test r"));
        assert!(!after("build r"));
        assert!(!after(""));
    }

    #[test]
    fn test_flags_parse() {
        let cli = Cli::try_parse_from([
            "kiln",
            "test",
            "r-research",
            "--region",
            "us-east-2",
            "--architecture",
            "x64",
            "--ami",
            "ami-1",
            "--ready-timeout",
            "90s",
        ])
        .unwrap();
        assert_eq!(cli.aws.region.as_deref(), Some("us-east-2"));
        let Command::Test {
            architecture,
            ami,
            ready_timeout,
            ..
        } = cli.command
        else {
            panic!("test")
        };
        assert_eq!(architecture, Some(kiln_shared::Architecture::X86_64));
        assert_eq!(ami.as_deref(), Some("ami-1"));
        assert_eq!(ready_timeout, Duration::from_secs(90));
    }

    #[test]
    fn table_defaults_from_prefix() {
        let cli = Cli::try_parse_from(["kiln", "--prefix", "ci", "list"]).unwrap();
        assert_eq!(cli.aws.table_name(), "ci-state");
        let cli = Cli::try_parse_from(["kiln", "list", "--table", "t"]).unwrap();
        assert_eq!(cli.aws.table_name(), "t");
    }
}

#[cfg(feature = "dev")]
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    #[arg(long, default_value = "presets")]
    pub presets: PathBuf,
    /// Seconds one simulated image build takes.
    #[arg(long, default_value_t = 12)]
    pub build_seconds: u64,
    /// Short builds (3 s): the quickest way to a ready page.
    #[arg(long, conflicts_with = "build_seconds")]
    pub fast: bool,
    /// Make this preset's first build fail (repeatable): the status turns degraded.
    #[arg(long = "fail", value_name = "PRESET")]
    pub fail: Vec<String>,
    /// Lose every Image Builder event: reconciliation (the next /status) heals the state.
    #[arg(long)]
    pub drop_events: bool,
    /// Port of the Worker (the page URL).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Use moto for DynamoDB instead of DynamoDB Local (no Java needed).
    #[arg(long)]
    pub moto_dynamodb: bool,
    /// Directory of the Lambda binaries (default: next to this executable).
    #[arg(long)]
    pub lambda_dir: Option<PathBuf>,
    /// Show the Lambdas' JSON logs here instead of log files.
    #[arg(long)]
    pub lambda_logs: bool,
    /// Exit 0 once every preset is ready (1 if the status turns degraded): a smoke test.
    #[arg(long)]
    pub exit_when_ready: bool,
    /// With --exit-when-ready: give up after this long (exit 2).
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Where to write the environment that points `kiln` at this stack (`source` it in
    /// another shell).
    #[arg(long, default_value = ".kiln/dev.env", value_name = "FILE")]
    pub env_file: PathBuf,
}
