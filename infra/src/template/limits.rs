//! Everything `synth` or AWS would refuse, as problems of the preset files: `kiln
//! validate` runs this (through `presets::load`), so a directory that validates always
//! synthesises, and every template (core and each nested one) fits CloudFormation's
//! and Image Builder's limits. The SSM parameter size is checked in
//! `kiln_shared::preset` (it needs no template).

use kiln_shared::Preset;
use kiln_shared::preset::{PresetError, PresetErrors};

use super::component::{self, Kind};
use super::{Format, SynthError, SynthOptions, render, synth};

/// The preset field a component document is made from.
fn field(kind: Kind) -> &'static str {
    match kind {
        Kind::Setup => "setup_script",
        Kind::Docker => "additional_docker_images",
        Kind::Tests => "validation_tests",
    }
}

/// Every limit problem; `location` (the directory) names stack-wide ones.
pub fn check(presets: &[Preset], location: &str) -> Result<(), PresetErrors> {
    let mut problems = Vec::new();
    for p in presets {
        for doc in component::documents(p) {
            let len = component::data_len(&doc.render());
            if len > component::MAX_DATA_CHARS {
                problems.push(PresetError {
                    file: p.source_file.clone(),
                    field: field(doc.kind).into(),
                    reason: format!(
                        "the {} component document of '{}' is {len} characters; Image Builder accepts at most {} inline (shorten it, or have it download a larger script)",
                        doc.kind.as_str(),
                        p.name,
                        component::MAX_DATA_CHARS
                    ),
                });
            }
        }
    }
    if problems.is_empty() {
        // The prefix is the only text that varies between deployments (the `Prefix`
        // parameter's default): size the template with the longest one allowed.
        let longest = SynthOptions {
            prefix: format!("p{}", "-".repeat(29)),
        };
        // Every template: each group is checked as synth renders it; the core in both
        // formats.
        let rendered = synth(presets, &longest).and_then(|t| {
            render(&t.core, Format::Json)?;
            render(&t.core, Format::Yaml)
        });
        if let Err(e) = rendered {
            problems.push(PresetError {
                file: location.to_owned(),
                field: "(directory)".into(),
                reason: match e {
                    SynthError::ComponentTooLarge { .. } | SynthError::BadPrefix(_) => {
                        format!("synth refuses these presets: {e}")
                    }
                    other => other.to_string(),
                },
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.sort();
        Err(PresetErrors(problems))
    }
}
