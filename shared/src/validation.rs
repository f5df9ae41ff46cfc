//! Validation tests run on a launched instance (`kiln test`), by the same rule as the
//! Image Builder TEST phase (the component rendered by `kiln synth`): the command's
//! stderr folded into its stdout, exit status 0, then the whole trimmed output equal to
//! `expected` or containing `expected_contains`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::preset::ValidationTest;
use crate::registry::TestResult;
use crate::time;

/// Output kept per test in the history and the registry (the tail, where errors are).
pub const MAX_OUTPUT_CHARS: usize = 2_000;

/// `'…'` for bash, safe for any text.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shell line `kiln test` sends through SSM Run Command for one test.
pub fn remote_command(test: &ValidationTest) -> String {
    format!("bash -c {} 2>&1", shell_quote(&test.command))
}

/// Whether one run of `test` passed.
pub fn passed(test: &ValidationTest, exit_code: i32, output: &str) -> bool {
    if exit_code != 0 {
        return false;
    }
    match (&test.expected, &test.expected_contains) {
        (Some(expected), _) => output.trim() == expected.trim(),
        (None, Some(needle)) => output.contains(needle.as_str()),
        (None, None) => true,
    }
}

/// The last [`MAX_OUTPUT_CHARS`] characters of `output`, trimmed.
pub fn bounded_output(output: &str) -> String {
    let trimmed = output.trim();
    let count = trimmed.chars().count();
    if count <= MAX_OUTPUT_CHARS {
        return trimmed.to_owned();
    }
    let tail: String = trimmed.chars().skip(count - MAX_OUTPUT_CHARS).collect();
    format!("…{tail}")
}

/// One `kiln test` run against one of a build's AMIs, kept on its BUILD item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    #[serde(with = "time::serde_secs")]
    pub at: DateTime<Utc>,
    pub region: String,
    pub ami_id: String,
    pub passed: bool,
}

impl TestRun {
    pub fn new(at: DateTime<Utc>, region: &str, ami_id: &str, results: &[TestResult]) -> Self {
        TestRun {
            at: time::truncate(at),
            region: region.to_owned(),
            ami_id: ami_id.to_owned(),
            passed: results.iter().all(|r| r.passed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(expected: Option<&str>, contains: Option<&str>) -> ValidationTest {
        ValidationTest {
            name: "t".into(),
            command: "echo it's".into(),
            expected: expected.map(Into::into),
            expected_contains: contains.map(Into::into),
        }
    }

    #[test]
    fn the_pass_rule_is_the_test_phase_rule() {
        let exact = test(Some("active"), None);
        assert!(passed(&exact, 0, "active\n"));
        assert!(!passed(&exact, 0, "inactive"));
        assert!(!passed(&exact, 3, "active"), "a failing exit status fails");
        let contains = test(None, Some("R version 4"));
        assert!(passed(&contains, 0, "R version 4.3.1 (2023-06-16)"));
        assert!(!passed(&contains, 0, "R version 3.6"));
        assert!(passed(&test(None, None), 0, ""));
        assert!(!passed(&test(None, None), 1, ""));
    }

    #[test]
    fn the_remote_command_quotes_the_test() {
        assert_eq!(
            remote_command(&test(None, None)),
            r"bash -c 'echo it'\''s' 2>&1"
        );
    }

    #[test]
    fn output_keeps_the_tail() {
        let long = format!("{}END", "x".repeat(5_000));
        let kept = bounded_output(&long);
        assert!(kept.ends_with("END"));
        assert_eq!(kept.chars().count(), MAX_OUTPUT_CHARS + 1);
        assert_eq!(bounded_output("  ok \n"), "ok");
    }

    #[test]
    fn a_run_passes_only_when_every_test_did() {
        let r = |passed| TestResult {
            name: "t".into(),
            passed,
            output: None,
        };
        let at = time::parse("2026-12-06T10:00:00Z").unwrap();
        assert!(TestRun::new(at, "us-east-1", "ami-1", &[r(true), r(true)]).passed);
        assert!(!TestRun::new(at, "us-east-1", "ami-1", &[r(true), r(false)]).passed);
    }
}
