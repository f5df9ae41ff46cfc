//! `kiln test NAME`: the deployed presets a name stands for, each tested in turn with
//! its steps printed as they happen; Ctrl-C ends the run in progress (its instance is
//! terminated) and skips the rest.

use std::io::Write;

use kiln_shared::Architecture;

use super::{Outcome, TestClients, TestError, TestOptions, Verdict, report, run};

#[derive(Debug, thiserror::Error)]
pub enum TestCommandError {
    #[error("reading the deployed presets: {0}")]
    Presets(#[source] kiln_aws::AwsError),
    #[error(transparent)]
    Select(#[from] crate::select::SelectError),
    #[error("--ami names one image, but {name} stands for {count} presets: pass --architecture")]
    AmiNeedsOnePreset { name: String, count: usize },
    #[error(transparent)]
    Test(#[from] TestError),
}

/// Tests every preset `name` stands for; the exit code ([`report::exit_code`]).
pub async fn test_presets(
    clients: &TestClients<'_>,
    options: &TestOptions,
    name: &str,
    architecture: Option<Architecture>,
    json: bool,
) -> Result<u8, TestCommandError> {
    let deployed: Vec<kiln_shared::Preset> = clients
        .store
        .list_presets()
        .await
        .map_err(TestCommandError::Presets)?
        .iter()
        .filter_map(|p| p.preset().ok())
        .collect();
    let chosen = crate::select::select(&deployed, &[name.to_owned()], architecture)?;
    if options.ami.is_some() && chosen.len() > 1 {
        return Err(TestCommandError::AmiNeedsOnePreset {
            name: name.to_owned(),
            count: chosen.len(),
        });
    }
    let print = |line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for preset in &chosen {
        let cancel: super::Cancel<'_> = std::pin::pin!(async {
            // No handler (unsupported platform): never cancelled.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        let on_step = |step: &super::Step| {
            print(if json {
                report::json_line(step)
            } else {
                report::render(step)
            })
        };
        let outcome = run(clients, options, preset, cancel, &on_step).await?;
        print(if json {
            report::summary_json(&outcome)
        } else {
            report::summary(&outcome)
        });
        let interrupted = matches!(&outcome.verdict, Verdict::Aborted(w) if w.contains("Ctrl-C"));
        outcomes.push(outcome);
        if interrupted {
            break;
        }
    }
    Ok(report::exit_code(&outcomes))
}
