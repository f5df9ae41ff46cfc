//! AWSTOE component documents: the setup script and docker pre-pulls run in the BUILD
//! phase, the validation tests in the TEST phase.

use kiln_shared::Preset;
use kiln_shared::preset::ValidationTest;
use serde_json::{Value, json};

/// Image Builder's limit for an inline component document (`Data`): the API model's
/// `InlineComponentData` has `maxLength: 16000` (characters).
pub const MAX_DATA_CHARS: usize = 16_000;

/// A document's length as Image Builder counts it (characters, not bytes).
pub fn data_len(data: &str) -> usize {
    data.chars().count()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Setup,
    Docker,
    Tests,
}

impl Kind {
    /// Name suffix (`<prefix>-<preset>-setup`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Setup => "setup",
            Kind::Docker => "docker",
            Kind::Tests => "tests",
        }
    }
    pub fn logical_suffix(self) -> &'static str {
        match self {
            Kind::Setup => "Setup",
            Kind::Docker => "Docker",
            Kind::Tests => "Tests",
        }
    }
    pub fn description(self) -> &'static str {
        match self {
            Kind::Setup => "setup script",
            Kind::Docker => "docker image pre-pulls",
            Kind::Tests => "validation tests",
        }
    }
}

/// One component document.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: Kind,
    pub body: Value,
}

impl Document {
    /// The YAML text Image Builder stores.
    pub fn render(&self) -> String {
        serde_yaml::to_string(&self.body).expect("document serialises")
    }
}

pub use kiln_shared::validation::shell_quote;

fn document(p: &Preset, kind: Kind, phase: &str, steps: Vec<Value>) -> Document {
    Document {
        kind,
        body: json!({
            "name": format!("{}-{}", p.name, kind.as_str()),
            "description": format!("kiln {} for preset {}", kind.description(), p.name),
            "schemaVersion": 1.0,
            "phases": [{ "name": phase, "steps": steps }],
        }),
    }
}

fn bash_step(name: &str, commands: Vec<String>) -> Value {
    json!({
        "name": name,
        "action": "ExecuteBash",
        "inputs": { "commands": commands },
    })
}

/// Step names allow letters, digits, `-` and `_`.
fn step_name(index: usize, test: &ValidationTest) -> String {
    let cleaned: String = test
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("Test{}_{cleaned}", index + 1)
}

/// The shell that runs one validation test and fails the TEST phase with a message
/// naming the test, what was expected and what came out.
pub fn test_script(test: &ValidationTest) -> String {
    let name = shell_quote(&test.name);
    let mut s = format!(
        "out=\"$(bash -c {cmd} 2>&1)\"; rc=$?\n\
         if [ \"$rc\" -ne 0 ]; then printf 'kiln test %s: command exited %s\\n%s\\n' {name} \"$rc\" \"$out\" >&2; exit 1; fi\n",
        cmd = shell_quote(&test.command),
    );
    match (&test.expected, &test.expected_contains) {
        (Some(expected), _) => s.push_str(&format!(
            "expected={exp}\n\
             trimmed=\"${{out#\"${{out%%[![:space:]]*}}\"}}\"; trimmed=\"${{trimmed%\"${{trimmed##*[![:space:]]}}\"}}\"\n\
             if [ \"$trimmed\" != \"$expected\" ]; then printf 'kiln test %s: expected %s, got %s\\n' {name} \"$expected\" \"$trimmed\" >&2; exit 1; fi\n",
            exp = shell_quote(expected.trim()),
        )),
        (None, Some(needle)) => s.push_str(&format!(
            "expected={exp}\n\
             case \"$out\" in *\"$expected\"*) ;; *) printf 'kiln test %s: expected output containing %s, got %s\\n' {name} \"$expected\" \"$out\" >&2; exit 1;; esac\n",
            exp = shell_quote(needle),
        )),
        // Validation guarantees one of the two; a test without either only checks the
        // exit status.
        (None, None) => {}
    }
    s.push_str(&format!("echo \"kiln test \"{name}\": ok\"\n"));
    s
}

/// The preset's components, in build order. Empty parts get no component.
pub fn documents(p: &Preset) -> Vec<Document> {
    let mut docs = Vec::new();
    if !p.setup_script.trim().is_empty() {
        docs.push(document(
            p,
            Kind::Setup,
            "build",
            vec![bash_step("SetupScript", vec![p.setup_script.clone()])],
        ));
    }
    if !p.additional_docker_images.is_empty() {
        let mut commands = vec![
            "set -euo pipefail".to_owned(),
            "command -v docker >/dev/null || { echo 'kiln: docker is not installed; install it in setup_script to pre-pull images' >&2; exit 1; }".to_owned(),
            "systemctl start docker 2>/dev/null || service docker start 2>/dev/null || true".to_owned(),
        ];
        commands.extend(
            p.additional_docker_images
                .iter()
                .map(|image| format!("docker pull {}", shell_quote(image))),
        );
        docs.push(document(
            p,
            Kind::Docker,
            "build",
            vec![bash_step("PullDockerImages", commands)],
        ));
    }
    if !p.validation_tests.is_empty() {
        let steps = p
            .validation_tests
            .iter()
            .enumerate()
            .map(|(i, t)| bash_step(&step_name(i, t), vec![test_script(t)]))
            .collect();
        docs.push(document(p, Kind::Tests, "test", steps));
    }
    docs
}
