//! `kiln synth`: the whole deployment as one CloudFormation template.
//!
//! The template is assembled as untyped `serde_json::Value` trees (`json!` literals; the
//! CloudFormation schema is not encoded in Rust types, cfn-lint and cfn-guard check it in
//! the tests) and written with sorted keys, so the same presets always give a
//! byte-identical file (reviewable diffs, golden tests).
//! Names that depend on the stack (prefix, region, account) are `Fn::Sub` expressions,
//! never baked in, so one template deploys anywhere.

use kiln_shared::Preset;
use serde_json::{Map, Value, json};

mod cfn;
pub mod component;
mod events;
mod functions;
mod iam;
mod ids;
pub mod limits;
mod parameters;
mod pipelines;
mod stack;

pub use stack::presets_property;

use cfn::reference;

/// The table's names have one home, shared with the Lambdas and the CLI.
pub use kiln_shared::table::{DEFAULT_PREFIX, RECORD_TYPE_INDEX, table_name};
/// Tags put on every AMI, read back by `kiln cleanup` and `kiln list`.
pub const TAG_PRESET: &str = "kiln:preset";
pub const TAG_PREFIX: &str = "kiln:prefix";
pub const TAG_ARCHITECTURE: &str = "kiln:architecture";
pub const TAG_TEMPLATE: &str = "kiln:template";
/// CloudFormation's hard limits we can hit with many presets.
pub const MAX_RESOURCES: usize = 500;
pub const MAX_TEMPLATE_BYTES: usize = 1_000_000;

/// Knobs of the rendered template that are not presets.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Default of the `Prefix` parameter.
    pub prefix: String,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            prefix: DEFAULT_PREFIX.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    #[error("prefix '{0}' is not valid: use 1 to 30 of a-z, 0-9 and '-', starting with a letter")]
    BadPrefix(String),
    #[error(
        "{file}: {preset}: the {component} component document is {len} characters; Image Builder accepts at most {max} inline (shorten setup_script, or have it download a larger script)"
    )]
    ComponentTooLarge {
        file: String,
        preset: String,
        component: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "two presets map to the logical id '{0}'; rename one of them (names that differ only in dashes clash)"
    )]
    DuplicateLogicalId(String),
    #[error(
        "the template would have {0} resources; CloudFormation allows at most {MAX_RESOURCES}: split the presets across stacks (different --prefix)"
    )]
    TooManyResources(usize),
    #[error(
        "the template is {0} bytes; CloudFormation accepts at most {MAX_TEMPLATE_BYTES}: split the presets across stacks"
    )]
    TooLarge(usize),
}

/// Output format of `kiln synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

fn valid_prefix(prefix: &str) -> bool {
    (1..=30).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Renders the template for validated presets.
pub fn synth(presets: &[Preset], opts: &SynthOptions) -> Result<Value, SynthError> {
    if !valid_prefix(&opts.prefix) {
        return Err(SynthError::BadPrefix(opts.prefix.clone()));
    }
    let ids = ids::LogicalIds::new(presets);
    let mut resources = Map::new();
    stack::state_table(&mut resources);
    iam::build_instance_resources(&mut resources);
    functions::resources(&iam::scope(presets), &mut resources);
    functions::status_origin_url(&mut resources);
    events::resources(&mut resources);
    for p in presets {
        pipelines::resources(p, ids.stem(p), &mut resources)?;
    }
    resources.insert("PresetInit".into(), stack::preset_init(presets, &ids));
    if resources.len() > MAX_RESOURCES {
        return Err(SynthError::TooManyResources(resources.len()));
    }

    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": stack::description(presets),
        "Parameters": parameters::parameters(opts),
        "Conditions": {
            "CreateStateTable": { "Fn::Equals": [reference("ExistingStateTable"), ""] },
            "HasFailureNotificationEmail": { "Fn::Not": [{ "Fn::Equals": [reference("FailureNotificationEmail"), ""] }] },
            "HasStatusOriginReservedConcurrency": { "Fn::Not": [{ "Fn::Equals": [reference("StatusOriginReservedConcurrency"), "0"] }] },
        },
        "Resources": resources,
        "Outputs": stack::outputs(),
    });
    Ok(cfn::sorted(template))
}

/// The template as text, ending in a newline; fails when CloudFormation would refuse it
/// for size.
pub fn render(template: &Value, format: Format) -> Result<String, SynthError> {
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(template).expect("template serialises"),
        Format::Yaml => serde_yaml::to_string(template).expect("template serialises"),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(SynthError::TooLarge(text.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
