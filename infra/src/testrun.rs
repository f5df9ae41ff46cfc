//! `kiln test`: a preset's validation tests against an existing AMI (what its runners
//! use by default), on a short-lived instance launched as the pipeline launches its build
//! instances, through SSM Run Command, by the TEST phase's own rule
//! ([`kiln_shared::validation`]). The outcome is recorded on the build that made the AMI
//! (`kiln list`, the registry). The instance is terminated on every path — tests passed
//! or failed, timeout, Ctrl-C, an AWS error — and, should that fail too, shuts itself
//! down (and so terminates) when its lifetime is up.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_aws::AwsError;
use kiln_aws::images::ImageBuilderApi;
use kiln_aws::store::StateStore;
use kiln_aws::testbed::{CommandStatus, LaunchSpec, RunCommand, TestInstances};
use kiln_shared::registry::TestResult;
use kiln_shared::validation::{self, TestRun};
use kiln_shared::{Architecture, Preset};
use serde::Serialize;

mod command;
mod record;
pub mod report;

pub use command::{TestCommandError, test_presets};

/// How a run goes.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub prefix: String,
    /// The stack's region (the pipeline's build network is only used there).
    pub stack_region: String,
    /// Where to test (default: the preset's home region).
    pub region: Option<String>,
    /// The AMI to test (default: what the preset's runners use in `region`).
    pub ami: Option<String>,
    /// Default: the pipeline's first build instance type.
    pub instance_type: Option<String>,
    /// How long the instance may take to run with its SSM agent online.
    pub ready_timeout: Duration,
    /// How long one test may run.
    pub test_timeout: Duration,
    /// Time between polls of EC2 and SSM.
    pub poll: Duration,
}

impl TestOptions {
    /// The instance shuts itself down after this, whatever happens to kiln.
    pub fn lifetime(&self, tests: usize) -> Duration {
        let work =
            self.ready_timeout + self.test_timeout * u32::try_from(tests).unwrap_or(u32::MAX);
        // Whole minutes (`shutdown -h +N`), with a margin for recording and terminating.
        Duration::from_secs((work.as_secs() / 60 + 10) * 60)
    }
}

/// The clients a run uses.
pub struct TestClients<'a> {
    pub store: &'a dyn StateStore,
    pub images: &'a dyn ImageBuilderApi,
    pub instances: &'a dyn TestInstances,
    pub commands: &'a dyn RunCommand,
}

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("preset {0} has no validation tests")]
    NoTests(String),
    #[error(
        "'{region}' is not one of {preset}'s regions ({regions}); pass --ami to test another AMI there"
    )]
    NotARegion {
        preset: String,
        region: String,
        regions: String,
    },
    #[error("{preset} has no AMI in {region} yet: build it first, or pass --ami")]
    NoAmi { preset: String, region: String },
    #[error("{step}: {source}")]
    Aws {
        step: &'static str,
        #[source]
        source: AwsError,
    },
}

fn aws(step: &'static str) -> impl FnOnce(AwsError) -> TestError {
    move |source| TestError::Aws { step, source }
}

/// One step of a run, as it happens (text or JSON lines, see [`report`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Target {
        preset: String,
        region: String,
        ami: String,
        /// The build that made the AMI, when kiln knows it.
        build: Option<String>,
    },
    Launched {
        instance: String,
        instance_type: String,
        /// When it shuts itself down at the latest.
        expires: String,
    },
    Ready {
        instance: String,
        secs: f64,
    },
    Test {
        name: String,
        passed: bool,
        output: String,
        secs: f64,
    },
    Recorded {
        build: String,
    },
    NotRecorded {
        reason: String,
    },
    Terminated {
        instance: String,
    },
    TerminateFailed {
        instance: String,
        region: String,
        error: String,
        expires: String,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    /// The tests could not all run (instance or agent not ready, AWS error, Ctrl-C):
    /// nothing is recorded.
    Aborted(String),
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub preset: String,
    pub region: String,
    pub ami: String,
    pub results: Vec<TestResult>,
    pub verdict: Verdict,
}

/// Something that resolves when the user wants out (Ctrl-C).
pub type Cancel<'c> = Pin<&'c mut dyn Future<Output = ()>>;

/// Runs `preset`'s tests; `on_step` sees each step as it happens.
pub async fn run(
    clients: &TestClients<'_>,
    options: &TestOptions,
    preset: &Preset,
    cancel: Cancel<'_>,
    on_step: &(dyn Fn(&Step) + Sync),
) -> Result<Outcome, TestError> {
    if preset.validation_tests.is_empty() {
        return Err(TestError::NoTests(preset.name.clone()));
    }
    let region = options
        .region
        .clone()
        .unwrap_or_else(|| preset.home_region(&options.stack_region).to_owned());
    let regions = preset.regions_or(&options.stack_region);
    if options.ami.is_none() && !regions.contains(&region.as_str()) {
        return Err(TestError::NotARegion {
            preset: preset.name.clone(),
            region,
            regions: regions.join(", "),
        });
    }
    let target = record::target(clients.store, preset, &region, options.ami.as_deref()).await?;
    on_step(&Step::Target {
        preset: preset.name.clone(),
        region: region.clone(),
        ami: target.ami.clone(),
        build: target.build.as_ref().map(|b| b.build_version.clone()),
    });
    let lifetime = options.lifetime(preset.validation_tests.len());
    let expires = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
    let spec = launch_spec(
        clients,
        options,
        preset,
        &region,
        &target.ami,
        lifetime,
        expires,
    )
    .await?;
    // Not raced with Ctrl-C: an interrupted RunInstances could leave an instance whose
    // id kiln never learns. Ctrl-C during the launch is honoured right after it.
    let instance = clients
        .instances
        .launch(&region, &spec)
        .await
        .map_err(aws("launching the test instance"))?;
    on_step(&Step::Launched {
        instance: instance.clone(),
        instance_type: spec.instance_type.clone(),
        expires: kiln_shared::time::format(expires),
    });
    let work = on_instance(clients, options, preset, &region, &instance, on_step);
    let verdict_results = tokio::select! {
        biased;
        () = cancel => Err("interrupted (Ctrl-C)".to_owned()),
        done = work => done,
    };
    let (verdict, results) = match verdict_results {
        Ok(results) if results.iter().all(|r| r.passed) => (Verdict::Passed, results),
        Ok(results) => (Verdict::Failed, results),
        Err(why) => (Verdict::Aborted(why), Vec::new()),
    };
    if !matches!(verdict, Verdict::Aborted(_)) {
        let run = TestRun::new(Utc::now(), &region, &target.ami, &results);
        on_step(&record::save(clients.store, target.build.as_ref(), run, &results).await);
    }
    terminate(
        clients.instances,
        &region,
        &instance,
        expires,
        options.poll.min(Duration::from_secs(1)),
        on_step,
    )
    .await;
    Ok(Outcome {
        preset: preset.name.clone(),
        region,
        ami: target.ami,
        results,
        verdict,
    })
}

/// Waits for the agent, then runs each test in turn. `Err` says why the tests could
/// not all run.
async fn on_instance(
    clients: &TestClients<'_>,
    options: &TestOptions,
    preset: &Preset,
    region: &str,
    instance: &str,
    on_step: &(dyn Fn(&Step) + Sync),
) -> Result<Vec<TestResult>, String> {
    let begun = tokio::time::Instant::now();
    let deadline = begun + options.ready_timeout;
    loop {
        let state = clients
            .instances
            .instance_state(region, instance)
            .await
            .map_err(|e| e.to_string())?;
        match state.as_deref() {
            Some("shutting-down" | "terminated" | "stopping" | "stopped") => {
                return Err(format!(
                    "instance {instance} is {} before its SSM agent came online",
                    state.unwrap_or_default()
                ));
            }
            Some("running")
                if clients
                    .commands
                    .agent_online(region, instance)
                    .await
                    .map_err(|e| e.to_string())? =>
            {
                break;
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the SSM agent of {instance} was not online within {}s: does the AMI run the SSM agent, and can the instance reach SSM (instance profile, subnet route or VPC endpoints)?",
                options.ready_timeout.as_secs()
            ));
        }
        tokio::time::sleep(options.poll).await;
    }
    on_step(&Step::Ready {
        instance: instance.to_owned(),
        secs: begun.elapsed().as_secs_f64(),
    });
    let mut results = Vec::new();
    for test in &preset.validation_tests {
        let begun = tokio::time::Instant::now();
        let (exit, output) = run_command(clients.commands, options, region, instance, test)
            .await
            .map_err(|e| format!("test '{}': {e}", test.name))?;
        let result = TestResult {
            name: test.name.clone(),
            passed: validation::passed(test, exit, &output),
            output: Some(validation::bounded_output(&output)),
        };
        on_step(&Step::Test {
            name: result.name.clone(),
            passed: result.passed,
            output: result.output.clone().unwrap_or_default(),
            secs: begun.elapsed().as_secs_f64(),
        });
        results.push(result);
    }
    Ok(results)
}

/// One test's exit code and output (stdout, then stderr); a command SSM timed out
/// or cancelled is a failed run with a note in the output.
async fn run_command(
    commands: &dyn RunCommand,
    options: &TestOptions,
    region: &str,
    instance: &str,
    test: &kiln_shared::preset::ValidationTest,
) -> Result<(i32, String), AwsError> {
    let line = validation::remote_command(test);
    let id = commands
        .send(region, instance, &line, options.test_timeout)
        .await?;
    // SSM kills the command at `executionTimeout`; the margin (as long again, at most a
    // minute) covers delivery and reporting.
    let margin = options.test_timeout.min(Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + options.test_timeout + margin;
    loop {
        tokio::time::sleep(options.poll).await;
        let result = commands.result(region, &id, instance).await?;
        let Some(r) = result.filter(|r| r.status != CommandStatus::Running) else {
            if tokio::time::Instant::now() >= deadline {
                return Ok((
                    -1,
                    format!("no result within {}s", options.test_timeout.as_secs()),
                ));
            }
            continue;
        };
        let mut output = r.stdout;
        if !r.stderr.trim().is_empty() {
            output.push_str(&r.stderr);
        }
        if let CommandStatus::TimedOut | CommandStatus::Cancelled = r.status {
            output.push_str(&format!("\n(SSM: command {:?})", r.status));
            return Ok((-1, output));
        }
        return Ok((r.exit_code, output));
    }
}

/// The instance as the pipeline launches its build instances (instance profile, and in
/// the stack's region its subnet and security groups), shutting itself down after
/// `lifetime` (at `expires`).
async fn launch_spec(
    clients: &TestClients<'_>,
    options: &TestOptions,
    preset: &Preset,
    region: &str,
    ami: &str,
    lifetime: Duration,
    expires: DateTime<Utc>,
) -> Result<LaunchSpec, TestError> {
    let pipeline = match clients
        .store
        .get_preset(&preset.name)
        .await
        .map_err(aws("reading the deployed preset"))?
        .and_then(|p| p.pipeline_arn)
    {
        Some(arn) => Some(arn),
        None => clients
            .images
            .find_pipeline(&preset.pipeline_name(&options.prefix))
            .await
            .map_err(aws("finding the preset's pipeline"))?,
    };
    let infra = match pipeline {
        Some(arn) => clients
            .images
            .infrastructure(&arn)
            .await
            .map_err(aws("reading the pipeline's infrastructure configuration"))?
            .unwrap_or_default(),
        None => Default::default(),
    };
    let home = region == options.stack_region;
    Ok(LaunchSpec {
        image_id: ami.to_owned(),
        instance_type: options
            .instance_type
            .clone()
            .or_else(|| infra.instance_types.first().cloned())
            .or_else(|| preset.build_instance_types.first().cloned())
            .unwrap_or_else(|| default_instance_type(preset.architecture).to_owned()),
        instance_profile: infra.instance_profile,
        subnet_id: infra.subnet_id.filter(|_| home),
        security_group_ids: if home {
            infra.security_group_ids
        } else {
            Vec::new()
        },
        user_data: user_data(lifetime),
        tags: tags(&options.prefix, preset, expires),
    })
}

fn default_instance_type(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Arm64 => "t4g.medium",
        Architecture::X86_64 => "t3.medium",
    }
}

/// Shuts the instance down (and so terminates it: the launch says so) after `lifetime`.
fn user_data(lifetime: Duration) -> String {
    format!(
        "#!/bin/bash\n# kiln test: bounded lifetime, whatever happens to the kiln that launched this\nshutdown -h +{}\n",
        lifetime.as_secs() / 60
    )
}

fn tags(
    prefix: &str,
    preset: &Preset,
    expires: DateTime<Utc>,
) -> std::collections::BTreeMap<String, String> {
    [
        ("Name", format!("{prefix}-test-{}", preset.name)),
        ("kiln:prefix", prefix.to_owned()),
        ("kiln:preset", preset.name.clone()),
        ("kiln:purpose", "test".to_owned()),
        ("kiln:expires", kiln_shared::time::format(expires)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// TerminateInstances, retried; a failure names the instance and how to end it.
async fn terminate(
    instances: &dyn TestInstances,
    region: &str,
    instance: &str,
    expires: DateTime<Utc>,
    backoff: Duration,
    on_step: &(dyn Fn(&Step) + Sync),
) {
    let mut last = None;
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(backoff * 2u32.pow(attempt)).await;
        }
        match instances.terminate(region, instance).await {
            Ok(()) => {
                on_step(&Step::Terminated {
                    instance: instance.to_owned(),
                });
                return;
            }
            Err(e) => last = Some(e),
        }
    }
    on_step(&Step::TerminateFailed {
        instance: instance.to_owned(),
        region: region.to_owned(),
        error: last.map(|e| e.to_string()).unwrap_or_default(),
        expires: kiln_shared::time::format(expires),
    });
}

#[cfg(test)]
mod tests;
