//! `kiln test`'s report: one line per step as it happens (with each test's output), or
//! the same steps as JSON lines, and a summary per preset.

use super::{Outcome, Step, Verdict};

/// Output lines shown under a test: a few for a pass, more for a failure.
const PASS_LINES: usize = 3;
const FAIL_LINES: usize = 20;

/// The text line(s) for one step.
pub fn render(step: &Step) -> String {
    match step {
        Step::Target {
            preset,
            region,
            ami,
            build,
        } => match build {
            Some(b) => format!("{preset}: testing {ami} (build {b}) in {region}"),
            None => format!("{preset}: testing {ami} in {region}"),
        },
        Step::Launched {
            instance,
            instance_type,
            expires,
        } => format!(
            "  launched {instance} ({instance_type}); it shuts itself down by {expires} at the latest"
        ),
        Step::Ready { instance, secs } => {
            format!("  {instance} running, SSM agent online after {secs:.1}s")
        }
        Step::Test {
            name,
            passed,
            output,
            secs,
        } => {
            let mark = if *passed { "✓ passed" } else { "✗ FAILED" };
            let mut s = format!("  {mark} {name} ({secs:.1}s)");
            let limit = if *passed { PASS_LINES } else { FAIL_LINES };
            let lines: Vec<&str> = output.lines().collect();
            for line in lines.iter().take(limit) {
                s.push_str(&format!("\n      {line}"));
            }
            if lines.len() > limit {
                s.push_str(&format!("\n      … {} more lines", lines.len() - limit));
            }
            if lines.is_empty() {
                s.push_str("\n      (no output)");
            }
            s
        }
        Step::Recorded { build } => format!("  recorded on build {build} (kiln list, registry)"),
        Step::NotRecorded { reason } => format!("  not recorded: {reason}"),
        Step::Terminated { instance } => format!("  terminated {instance}"),
        Step::TerminateFailed {
            instance,
            region,
            error,
            expires,
        } => format!(
            "  COULD NOT TERMINATE {instance}: {error}\n  \
             terminate it yourself: aws ec2 terminate-instances --region {region} --instance-ids {instance}\n  \
             (it shuts itself down by {expires} in any case)"
        ),
    }
}

/// The step as one JSON line.
pub fn json_line(step: &Step) -> String {
    serde_json::to_string(step).expect("a step serialises")
}

/// One line per preset.
pub fn summary(outcome: &Outcome) -> String {
    let passed = outcome.results.iter().filter(|r| r.passed).count();
    let total = outcome.results.len();
    let head = format!(
        "{} on {} in {}",
        outcome.preset, outcome.ami, outcome.region
    );
    match &outcome.verdict {
        Verdict::Passed => format!("{head}: all {total} tests passed"),
        Verdict::Failed => format!("{head}: {} of {total} tests FAILED", total - passed),
        Verdict::Aborted(why) => format!("{head}: not tested: {why}"),
    }
}

/// The summary as a JSON line.
pub fn summary_json(outcome: &Outcome) -> String {
    let (verdict, reason) = match &outcome.verdict {
        Verdict::Passed => ("passed", None),
        Verdict::Failed => ("failed", None),
        Verdict::Aborted(why) => ("aborted", Some(why.as_str())),
    };
    serde_json::json!({
        "step": "summary",
        "preset": outcome.preset,
        "region": outcome.region,
        "ami": outcome.ami,
        "verdict": verdict,
        "reason": reason,
        "tests": outcome.results,
    })
    .to_string()
}

/// 0 every test passed, 1 a test failed, 2 something could not be tested.
pub fn exit_code(outcomes: &[Outcome]) -> u8 {
    if outcomes
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Aborted(_)))
    {
        2
    } else if outcomes.iter().any(|o| o.verdict == Verdict::Failed) {
        1
    } else {
        0
    }
}
