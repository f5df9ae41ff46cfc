//! `kiln synth`: the whole deployment as a core CloudFormation template (table, Lambdas,
//! rules, topic, queue, roles, Function URL) plus one nested-stack template per group
//! of presets (their image resources and their own preset-init custom resource; see
//! [`groups`] for why a preset's group never changes).
//!
//! The template is assembled as untyped `serde_json::Value` trees (`json!` literals; the
//! CloudFormation schema is not encoded in Rust types, cfn-lint and cfn-guard check it in
//! the tests) and written with sorted keys, so the same presets always give a
//! byte-identical file (reviewable diffs, golden tests).
//! Names that depend on the stack (prefix, region, account) are `Fn::Sub` expressions,
//! never baked in, so one template deploys anywhere.

use std::collections::BTreeMap;

use kiln_shared::Preset;
use serde_json::{Map, Value, json};

mod cfn;
pub mod component;
mod events;
mod functions;
pub mod groups;
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
pub use kiln_shared::table::{TAG_ARCHITECTURE, TAG_PREFIX, TAG_PRESET};
pub const TAG_TEMPLATE: &str = "kiln:template";
/// The core template's file name in `kiln synth --out DIR` (`.yaml` with `--format yaml`).
pub const CORE_FILE: &str = "core.template";
/// CloudFormation's hard limits (per template) we can hit with many presets.
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
        "template {template} would have {count} resources; CloudFormation allows at most {MAX_RESOURCES} per template (shorten the presets of that group, or split them across deployments with a different --prefix)"
    )]
    TooManyResources { template: String, count: usize },
    #[error(
        "template {template} is {bytes} bytes; CloudFormation accepts at most {MAX_TEMPLATE_BYTES} per template (shorten the presets of that group: setup scripts can download larger scripts)"
    )]
    TooLarge { template: String, bytes: usize },
}

/// Output format of `kiln synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

fn valid_prefix(prefix: &str) -> bool {
    (1..=30).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One group's nested stack.
#[derive(Debug, Clone)]
pub struct GroupTemplate {
    /// The core's logical id of the nested stack (`PresetGroup07`).
    pub id: String,
    /// File and object name (`presets-07.template.json`).
    pub file: String,
    /// Where the core expects it in the artifacts bucket (`kiln/<sha256>/<file>`).
    pub key: String,
    pub presets: Vec<String>,
    pub template: Value,
    /// The template as uploaded (JSON); `key` is its hash.
    pub text: String,
}

/// Everything `kiln synth` renders: the core and the groups (only non-empty ones, by
/// bucket).
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub core: Value,
    pub groups: Vec<GroupTemplate>,
}

/// Renders the templates for validated presets.
pub fn synth(presets: &[Preset], opts: &SynthOptions) -> Result<Synthesized, SynthError> {
    synth_with(presets, opts, &mut |_| ())
}

/// [`synth`], with `edit` applied to each group's template before it is hashed into the
/// core's TemplateURL (a rehearsal leaves the custom resources out).
pub fn synth_with(
    presets: &[Preset],
    opts: &SynthOptions,
    edit: &mut dyn FnMut(&mut Value),
) -> Result<Synthesized, SynthError> {
    if !valid_prefix(&opts.prefix) {
        return Err(SynthError::BadPrefix(opts.prefix.clone()));
    }
    let mut buckets: BTreeMap<u32, Vec<&Preset>> = BTreeMap::new();
    for p in presets {
        buckets.entry(groups::bucket(&p.name)).or_default().push(p);
    }
    let mut rendered = Vec::new();
    for (bucket, members) in buckets {
        let mut template = cfn::sorted(groups::template(bucket, &members)?);
        edit(&mut template);
        let file = groups::file_name(bucket);
        let text = render_named(&template, Format::Json, &file)?;
        rendered.push(GroupTemplate {
            id: groups::logical_id(bucket),
            key: groups::content_key(&text, &file),
            file,
            presets: members.iter().map(|p| p.name.clone()).collect(),
            template,
            text,
        });
    }

    let mut resources = Map::new();
    stack::state_table(&mut resources);
    iam::build_instance_resources(&mut resources);
    functions::resources(&iam::scope(presets), &mut resources);
    functions::status_origin_url(&mut resources);
    events::resources(&mut resources);
    for g in &rendered {
        resources.insert(g.id.clone(), groups::nested_stack(&g.key));
    }
    if resources.len() > MAX_RESOURCES {
        return Err(SynthError::TooManyResources {
            template: CORE_FILE.into(),
            count: resources.len(),
        });
    }
    let mut parameters = parameters::parameters(opts);
    groups::build_network_parameters(&mut parameters);

    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": stack::description(presets),
        "Parameters": parameters,
        "Rules": groups::rules(),
        "Conditions": {
            "CreateStateTable": { "Fn::Equals": [reference("ExistingStateTable"), ""] },
            "HasFailureNotificationEmail": { "Fn::Not": [{ "Fn::Equals": [reference("FailureNotificationEmail"), ""] }] },
            "HasStatusOriginReservedConcurrency": { "Fn::Not": [{ "Fn::Equals": [reference("StatusOriginReservedConcurrency"), "0"] }] },
            "RetentionEnabled": { "Fn::Not": [{ "Fn::Equals": [reference("RetentionKeepLatest"), "0"] }] },
        },
        "Resources": resources,
        "Outputs": stack::outputs(),
    });
    Ok(Synthesized {
        core: cfn::sorted(template),
        groups: rendered,
    })
}

/// The core template as text, ending in a newline; fails when CloudFormation would
/// refuse it for size.
pub fn render(template: &Value, format: Format) -> Result<String, SynthError> {
    render_named(template, format, CORE_FILE)
}

fn render_named(template: &Value, format: Format, name: &str) -> Result<String, SynthError> {
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(template).expect("template serialises"),
        Format::Yaml => serde_yaml::to_string(template).expect("template serialises"),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(SynthError::TooLarge {
            template: name.to_owned(),
            bytes: text.len(),
        });
    }
    Ok(text)
}

/// Writes the core (`core.template.<format>`) and every group's template (always JSON,
/// byte for byte what its key hashes) to `dir`, removing group files of groups that are
/// gone; returns the paths written.
pub fn write_dir(
    synthesized: &Synthesized,
    format: Format,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, WriteError> {
    let core = render(&synthesized.core, format)?;
    std::fs::create_dir_all(dir)?;
    let wanted: std::collections::BTreeSet<&str> =
        synthesized.groups.iter().map(|g| g.file.as_str()).collect();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let is_group = name.starts_with("presets-") && name.ends_with(".template.json");
        if is_group && !wanted.contains(name.as_str()) {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    let mut written = Vec::new();
    let core_path = dir.join(format!("{CORE_FILE}.{}", format.extension()));
    std::fs::write(&core_path, core)?;
    written.push(core_path);
    for g in &synthesized.groups {
        let path = dir.join(&g.file);
        std::fs::write(&path, &g.text)?;
        written.push(path);
    }
    Ok(written)
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Synth(#[from] SynthError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests;
