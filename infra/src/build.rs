//! `kiln build` / `kiln build-all`: start pipeline executions and, with `--wait`, follow
//! each image through its states until it is available or fails.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_aws::images::ImageBuilderApi;
use kiln_shared::ImageState;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no pipeline '{pipeline}' for preset '{preset}': is the stack deployed with prefix '{prefix}'?"
    )]
    NoPipeline {
        preset: String,
        prefix: String,
        pipeline: String,
    },
    #[error("no pipelines named '{prefix}-*': is the stack deployed with this prefix?")]
    NoPipelines { prefix: String },
    #[error("listing pipelines: {0}")]
    List(String),
    #[error("starting {pipeline}: {message}")]
    Start { pipeline: String, message: String },
    #[error(transparent)]
    Select(#[from] crate::select::SelectError),
    #[error("reading the deployed presets: {0}")]
    ReadPresets(#[source] kiln_aws::AwsError),
}

/// The pipelines `names` (presets or templates, see [`crate::select`]) stand for,
/// narrowed to `architecture`; the deployed presets come from the PRESET items.
pub async fn chosen_pipelines(
    store: &dyn kiln_aws::store::StateStore,
    images: &dyn ImageBuilderApi,
    prefix: &str,
    names: &[String],
    architecture: Option<kiln_shared::Architecture>,
) -> Result<Vec<Pipeline>, BuildError> {
    let deployed: Vec<kiln_shared::Preset> = match store.list_presets().await {
        Ok(items) => items.iter().filter_map(|i| i.preset().ok()).collect(),
        // Without the table (operator credentials for Image Builder only, a stack
        // being created) the names are taken at their word below.
        Err(e) if architecture.is_some() => return Err(BuildError::ReadPresets(e)),
        Err(e) => {
            tracing::warn!(error = %e, "deployed presets unreadable: names are pipeline names");
            Vec::new()
        }
    };
    let mut out = Vec::new();
    if deployed.is_empty() {
        for name in names {
            out.extend(by_pipeline_name(images, prefix, name).await?);
        }
        return Ok(out);
    }
    for preset in crate::select::select(&deployed, names, architecture)? {
        out.push(pipeline(images, prefix, &preset.name).await?);
    }
    Ok(out)
}

/// `name`'s own pipeline, else (a template's) `<name>-x64` and `<name>-arm64`.
async fn by_pipeline_name(
    images: &dyn ImageBuilderApi,
    prefix: &str,
    name: &str,
) -> Result<Vec<Pipeline>, BuildError> {
    match pipeline(images, prefix, name).await {
        Ok(p) => Ok(vec![p]),
        Err(e @ BuildError::NoPipeline { .. }) => {
            let mut found = Vec::new();
            for suffix in ["x64", "arm64"] {
                match pipeline(images, prefix, &format!("{name}-{suffix}")).await {
                    Ok(p) => found.push(p),
                    Err(BuildError::NoPipeline { .. }) => {}
                    Err(other) => return Err(other),
                }
            }
            if found.is_empty() { Err(e) } else { Ok(found) }
        }
        Err(other) => Err(other),
    }
}

/// A pipeline of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// Preset name (pipeline name without `<prefix>-`).
    pub preset: String,
    pub name: String,
    pub arn: String,
}

/// Every pipeline named `<prefix>-*`, sorted by name.
pub async fn pipelines(
    images: &dyn ImageBuilderApi,
    prefix: &str,
) -> Result<Vec<Pipeline>, BuildError> {
    let start = format!("{prefix}-");
    let listed = images
        .list_pipelines()
        .await
        .map_err(|e| BuildError::List(e.to_string()))?;
    Ok(listed
        .into_iter()
        .filter_map(|p| {
            let preset = p.name.strip_prefix(&start)?.to_owned();
            Some(Pipeline {
                preset,
                name: p.name,
                arn: p.arn,
            })
        })
        .collect())
}

/// The pipeline of one preset.
pub async fn pipeline(
    images: &dyn ImageBuilderApi,
    prefix: &str,
    preset: &str,
) -> Result<Pipeline, BuildError> {
    let name = format!("{prefix}-{preset}");
    let arn = images
        .find_pipeline(&name)
        .await
        .map_err(|e| BuildError::List(e.to_string()))?;
    arn.map(|arn| Pipeline {
        preset: preset.to_owned(),
        name: name.clone(),
        arn,
    })
    .ok_or(BuildError::NoPipeline {
        preset: preset.to_owned(),
        prefix: prefix.to_owned(),
        pipeline: name,
    })
}

/// Starts an execution, or with `only_region` a one-off build of the pipeline's
/// recipe distributed to that region alone; returns the image build version ARN.
pub async fn start(
    images: &dyn ImageBuilderApi,
    pipeline: &Pipeline,
    only_region: Option<&str>,
) -> Result<String, BuildError> {
    match only_region {
        Some(region) => images.start_one_off(&pipeline.arn, region).await,
        None => images.start_pipeline(&pipeline.arn).await,
    }
    .map_err(|e| BuildError::Start {
        pipeline: pipeline.name.clone(),
        message: e.to_string(),
    })
}

/// How a followed build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Available { amis: BTreeMap<String, String> },
    Failed { state: String, reason: String },
    TimedOut { last_state: String },
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Available { .. })
    }
}

/// One poll of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: String,
    pub reason: Option<String>,
    pub amis: BTreeMap<String, String>,
}

pub async fn poll(images: &dyn ImageBuilderApi, image_arn: &str) -> Result<Snapshot, String> {
    let image = images
        .get_image(image_arn)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("GetImage returned no image")?;
    Ok(Snapshot {
        state: image.state.map_or("PENDING", |s| s.as_str()).to_owned(),
        reason: image.reason,
        amis: image.amis,
    })
}

/// Progress steps shown for a build.
const STEPS: [&str; 5] = [
    "PENDING",
    "BUILDING",
    "TESTING",
    "DISTRIBUTING",
    "AVAILABLE",
];

fn step_of(state: &str) -> u64 {
    match ImageState::parse(state) {
        Some(ImageState::Pending | ImageState::Creating) => 0,
        Some(ImageState::Building) => 1,
        Some(ImageState::Testing) => 2,
        Some(ImageState::Distributing | ImageState::Integrating) => 3,
        Some(ImageState::Available) => 4,
        _ => 0,
    }
}

/// Follows one image until it ends or `timeout` passes. Transient poll errors are
/// retried until the deadline (a throttled GetImage must not fail a 40-minute wait).
pub async fn follow(
    images: &dyn ImageBuilderApi,
    image_arn: &str,
    timeout: Duration,
    interval: Duration,
    mut on_change: impl FnMut(&Snapshot),
) -> Outcome {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_state = "PENDING".to_owned();
    loop {
        let last_error = match poll(images, image_arn).await {
            Ok(snapshot) => {
                if snapshot.state != last_state {
                    on_change(&snapshot);
                    last_state = snapshot.state.clone();
                }
                match ImageState::parse(&snapshot.state) {
                    Some(ImageState::Available) => {
                        return Outcome::Available {
                            amis: snapshot.amis,
                        };
                    }
                    Some(s) if s.is_terminal() => {
                        return Outcome::Failed {
                            state: snapshot.state,
                            reason: snapshot
                                .reason
                                .unwrap_or_else(|| "Image Builder gave no reason".into()),
                        };
                    }
                    _ => {}
                }
                None
            }
            Err(e) => Some(e),
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Outcome::TimedOut {
                last_state: match last_error {
                    Some(e) => format!("{last_state}; last error: {e}"),
                    None => last_state,
                },
            };
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

/// A started build and how it ended.
#[derive(Debug, Clone)]
pub struct Followed {
    pub preset: String,
    pub image_arn: String,
    pub outcome: Outcome,
}

/// Follows several builds at once with one progress line each (plain lines when
/// stderr is not a terminal, so CI logs show every transition).
pub async fn follow_all(
    images: &dyn ImageBuilderApi,
    started: Vec<(String, String)>,
    timeout: Duration,
    interval: Duration,
) -> Vec<Followed> {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{spinner} {prefix:<28} [{bar:20}] {msg} ({elapsed})")
        .expect("template parses")
        .progress_chars("=> ");
    let width = started.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let tasks = started.into_iter().map(|(preset, image_arn)| {
        let bar = multi.add(ProgressBar::new((STEPS.len() - 1) as u64));
        bar.set_style(style.clone());
        bar.set_prefix(preset.clone());
        bar.set_message("PENDING");
        bar.enable_steady_tick(Duration::from_millis(200));
        async move {
            let outcome = follow(images, &image_arn, timeout, interval, |s| {
                bar.set_position(step_of(&s.state));
                bar.set_message(s.state.clone());
                if !tty {
                    eprintln!("{preset:<width$}  {}", s.state);
                }
            })
            .await;
            let message = match &outcome {
                Outcome::Available { .. } => "AVAILABLE".to_owned(),
                Outcome::Failed { state, reason } => format!("{state}: {reason}"),
                Outcome::TimedOut { last_state } => format!("timed out in {last_state}"),
            };
            bar.finish_with_message(message);
            Followed {
                preset,
                image_arn,
                outcome,
            }
        }
    });
    futures::future::join_all(tasks).await
}

/// 0 when every build succeeded, 1 when one failed, 2 when the only trouble is that the
/// wait timed out (same convention as `kiln wait`).
pub fn exit_code(followed: &[Followed]) -> u8 {
    if followed
        .iter()
        .any(|f| matches!(f.outcome, Outcome::Failed { .. }))
    {
        1
    } else if followed
        .iter()
        .any(|f| matches!(f.outcome, Outcome::TimedOut { .. }))
    {
        2
    } else {
        0
    }
}

/// The final report: one line per build, AMIs per region.
pub fn render_outcomes(followed: &[Followed]) -> String {
    let mut out = String::new();
    for f in followed {
        match &f.outcome {
            Outcome::Available { amis } => {
                let amis: Vec<String> = amis.iter().map(|(r, a)| format!("{r}={a}")).collect();
                out.push_str(&format!("{}: available: {}\n", f.preset, amis.join(" ")));
            }
            Outcome::Failed { state, reason } => out.push_str(&format!(
                "{}: {}: {reason} ({})\n",
                f.preset,
                state.to_ascii_lowercase(),
                f.image_arn
            )),
            Outcome::TimedOut { last_state } => out.push_str(&format!(
                "{}: still {last_state} when the wait timed out ({})\n",
                f.preset, f.image_arn
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_state_order() {
        let order: Vec<u64> = [
            "PENDING",
            "BUILDING",
            "TESTING",
            "DISTRIBUTING",
            "AVAILABLE",
        ]
        .iter()
        .map(|s| step_of(s))
        .collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_failure_outranks_a_timeout_in_the_exit_code() {
        let f = |outcome| Followed {
            preset: "p".into(),
            image_arn: "arn".into(),
            outcome,
        };
        let ok = || {
            f(Outcome::Available {
                amis: BTreeMap::new(),
            })
        };
        let failed = || {
            f(Outcome::Failed {
                state: "FAILED".into(),
                reason: "r".into(),
            })
        };
        let late = || {
            f(Outcome::TimedOut {
                last_state: "BUILDING".into(),
            })
        };
        assert_eq!(exit_code(&[ok(), ok()]), 0);
        assert_eq!(exit_code(&[ok(), late()]), 2);
        assert_eq!(exit_code(&[late(), failed()]), 1);
    }

    #[test]
    fn outcome_report_names_the_reason() {
        let text = render_outcomes(&[
            Followed {
                preset: "a".into(),
                image_arn: "arn:a".into(),
                outcome: Outcome::Failed {
                    state: "FAILED".into(),
                    reason: "test docker failed".into(),
                },
            },
            Followed {
                preset: "b".into(),
                image_arn: "arn:b".into(),
                outcome: Outcome::Available {
                    amis: BTreeMap::from([("us-east-1".into(), "ami-1".into())]),
                },
            },
        ]);
        assert!(
            text.contains("a: failed: test docker failed (arn:a)"),
            "{text}"
        );
        assert!(text.contains("b: available: us-east-1=ami-1"), "{text}");
    }
}
