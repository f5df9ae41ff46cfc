//! Presets: one YAML file per machine image, validated, then expanded per architecture.
//!
//! Parsing is pure: callers hand in `(file name, contents)` pairs (the CLI reads the
//! directory). Every problem of every file is collected, so a user fixes a directory in
//! one pass; each names the file, the field and the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// CPU architecture of an image.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::X86_64, Architecture::Arm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Build instance used when a preset names none.
    pub fn default_build_instance_type(self) -> &'static str {
        match self {
            Architecture::X86_64 => "c6i.large",
            Architecture::Arm64 => "c7g.large",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Well-known base image aliases, resolved per architecture to AWS public SSM parameters.
pub const BASE_IMAGE_ALIASES: [&str; 3] = ["ubuntu-22.04", "ubuntu-24.04", "amazon-linux-2023"];

/// Where an image starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum BaseImage {
    /// One of [`BASE_IMAGE_ALIASES`].
    Alias(String),
    /// An explicit AMI id (must match the preset's architecture; AWS checks at build).
    Ami(String),
}

impl BaseImage {
    pub fn parse(text: &str) -> Result<Self, String> {
        if BASE_IMAGE_ALIASES.contains(&text) {
            Ok(BaseImage::Alias(text.to_owned()))
        } else if is_ami_id(text) {
            Ok(BaseImage::Ami(text.to_owned()))
        } else {
            Err(format!(
                "unknown base image '{text}': expected one of {} or an AMI id (ami-xxxxxxxx)",
                BASE_IMAGE_ALIASES.join(", ")
            ))
        }
    }

    /// The public SSM parameter that names the newest AMI of an alias.
    pub fn ssm_parameter(&self, arch: Architecture) -> Option<String> {
        let BaseImage::Alias(alias) = self else {
            return None;
        };
        let (ubuntu_arch, al_arch) = match arch {
            Architecture::X86_64 => ("amd64", "x86_64"),
            Architecture::Arm64 => ("arm64", "arm64"),
        };
        Some(match alias.as_str() {
            "ubuntu-22.04" => format!(
                "/aws/service/canonical/ubuntu/server/22.04/stable/current/{ubuntu_arch}/hvm/ebs-gp2/ami-id"
            ),
            "ubuntu-24.04" => format!(
                "/aws/service/canonical/ubuntu/server/24.04/stable/current/{ubuntu_arch}/hvm/ebs-gp3/ami-id"
            ),
            _ => {
                format!("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{al_arch}")
            }
        })
    }

    /// Image Builder's `parentImage`: `ssm:<parameter>` resolves at build time, so every
    /// scheduled rebuild starts from the newest base image.
    pub fn parent_image(&self, arch: Architecture) -> String {
        match self {
            BaseImage::Ami(ami) => ami.clone(),
            BaseImage::Alias(_) => format!("ssm:{}", self.ssm_parameter(arch).unwrap_or_default()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            BaseImage::Alias(s) | BaseImage::Ami(s) => s,
        }
    }
}

fn is_ami_id(text: &str) -> bool {
    text.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// A check run in Image Builder's TEST phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationTest {
    /// Short name, shown in build history.
    pub name: String,
    /// Shell command run on the built instance.
    pub command: String,
    /// The command's whole output (trimmed) must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The command's output must contain this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_contains: Option<String>,
}

/// Default rebuild schedule: weekly, Sunday 04:00 UTC.
pub const DEFAULT_SCHEDULE: &str = "cron(0 4 ? * SUN *)";

/// One preset file as written by a user. Field docs become the JSON Schema's
/// descriptions (editor completion).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "kiln preset",
    description = "One machine image built by EC2 Image Builder."
)]
pub struct PresetFile {
    /// Unique name, `[a-z0-9-]{1,40}`.
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,40}$"))]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Single architecture. Use either this or `architectures`.
    #[serde(default)]
    #[schemars(with = "Option<Architecture>")]
    pub architecture: Option<String>,
    /// Several architectures: one preset per entry, named `<name>-<arch>`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Architecture>>")]
    pub architectures: Option<Vec<String>>,
    /// `ubuntu-22.04`, `ubuntu-24.04`, `amazon-linux-2023`, or an explicit `ami-…`.
    pub base_image: String,
    /// Instance types or families the runners use (kept in the runner config).
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// Instance types for the Image Builder build; defaults per architecture.
    #[serde(default)]
    pub build_instance_types: Option<Vec<String>>,
    /// AMI distribution regions; the first is the home region. Default: the stack region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Docker images pre-pulled into the image.
    #[serde(default)]
    pub additional_docker_images: Vec<String>,
    /// Shell script run in the Image Builder BUILD phase.
    #[serde(default)]
    pub setup_script: Option<String>,
    /// Checks run in the TEST phase.
    #[serde(default)]
    pub validation_tests: Vec<ValidationTest>,
    /// Rebuild schedule, an EventBridge/Image Builder cron expression. Default weekly.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Runner job timeout in minutes.
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
    /// Runner labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Root volume size of the image, GiB.
    #[serde(default)]
    pub disk_size_gb: Option<u32>,
    /// Ports the runner exposes.
    #[serde(default)]
    pub ports: Vec<u32>,
    /// Informational cost estimate, USD per hour.
    #[serde(default)]
    pub estimated_cost_per_hour: Option<f64>,
    /// Any further runner settings, copied as-is into the SSM runner config.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub runner: BTreeMap<String, serde_json::Value>,
}

const KNOWN_FIELDS: [&str; 19] = [
    "name",
    "description",
    "architecture",
    "architectures",
    "base_image",
    "instance_types",
    "build_instance_types",
    "regions",
    "additional_docker_images",
    "setup_script",
    "validation_tests",
    "schedule",
    "timeout_minutes",
    "labels",
    "disk_size_gb",
    "ports",
    "estimated_cost_per_hour",
    "runner",
    "$schema",
];

/// A validated preset for one architecture: what the rest of kiln works with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    /// Unique name after architecture expansion (`r-research-arm64`).
    pub name: String,
    /// The name written in the file (the registry's "template").
    pub template: String,
    /// File it came from, for messages.
    pub source_file: String,
    #[serde(default)]
    pub description: Option<String>,
    pub architecture: Architecture,
    pub base_image: BaseImage,
    pub instance_types: Vec<String>,
    pub build_instance_types: Vec<String>,
    /// Empty means "the stack region".
    pub regions: Vec<String>,
    pub additional_docker_images: Vec<String>,
    pub setup_script: String,
    pub validation_tests: Vec<ValidationTest>,
    /// Normalised to `cron(…)`.
    pub schedule: String,
    pub timeout_minutes: Option<u32>,
    pub labels: Vec<String>,
    pub disk_size_gb: Option<u32>,
    pub ports: Vec<u16>,
    pub estimated_cost_per_hour: Option<f64>,
    pub runner: BTreeMap<String, serde_json::Value>,
}

impl Preset {
    /// The home region: first distribution region, else the stack's.
    pub fn home_region<'a>(&'a self, stack_region: &'a str) -> &'a str {
        self.regions
            .first()
            .map(String::as_str)
            .unwrap_or(stack_region)
    }

    /// Distribution regions with the default applied.
    pub fn regions_or<'a>(&'a self, stack_region: &'a str) -> Vec<&'a str> {
        if self.regions.is_empty() {
            vec![stack_region]
        } else {
            self.regions.iter().map(String::as_str).collect()
        }
    }

    /// SHA-256 of the preset's canonical JSON (source file excluded, so moving a file
    /// does not trigger a rebuild). Drives component/recipe versions and "changed?".
    pub fn content_hash(&self) -> String {
        let mut canonical = self.clone();
        canonical.source_file = String::new();
        let json = serde_json::to_vec(&canonical).expect("preset serialises");
        hex::encode(Sha256::digest(json))
    }

    /// Image Builder semantic version derived from the content hash: `1.0.<n>` with
    /// `n < 2^30` (Image Builder's per-field limit). A changed script → a new version.
    pub fn semantic_version(&self) -> String {
        let hash = self.content_hash();
        let n = u32::from_str_radix(&hash[..8], 16).unwrap_or(0) & ((1 << 30) - 1);
        format!("1.0.{n}")
    }

    /// Pipeline name in Image Builder.
    pub fn pipeline_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name)
    }

    /// SSM parameter holding the runner config.
    pub fn parameter_name(&self, prefix: &str) -> String {
        format!("/{prefix}/configs/{}", self.name)
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct PresetError {
    pub file: String,
    /// Path of the field (`validation_tests[1].command`), or `(file)` for the whole file.
    pub field: String,
    pub reason: String,
}

/// Every problem found in a set of preset files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PresetErrors(pub Vec<PresetError>);

impl fmt::Display for PresetErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A preset source: file name (as shown in messages) and its text.
#[derive(Debug, Clone)]
pub struct PresetSource {
    pub file: String,
    pub text: String,
}

/// Parses and validates a directory's worth of preset files. `location` names the
/// directory in the "no presets" error.
pub fn parse_all(location: &str, sources: &[PresetSource]) -> Result<Vec<Preset>, PresetErrors> {
    let mut errors = Vec::new();
    let mut presets: Vec<Preset> = Vec::new();
    if sources.is_empty() {
        errors.push(PresetError {
            file: location.to_owned(),
            field: "(directory)".into(),
            reason: "no presets: add at least one *.yaml or *.yml preset file".into(),
        });
    }
    for source in sources {
        match parse_one(source) {
            Ok(expanded) => presets.extend(expanded),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    // Duplicate names are only knowable across files, after expansion.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for p in &presets {
        if let Some(first) = seen.get(&p.name) {
            errors.push(PresetError {
                file: p.source_file.clone(),
                field: "name".into(),
                reason: format!(
                    "duplicate preset name '{}' (also defined in {first})",
                    p.name
                ),
            });
        } else {
            seen.insert(p.name.clone(), p.source_file.clone());
        }
    }
    if errors.is_empty() {
        presets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(presets)
    } else {
        errors.sort();
        errors.dedup();
        Err(PresetErrors(errors))
    }
}

/// Parses one file into its expanded presets, or every problem in it.
pub fn parse_one(source: &PresetSource) -> Result<Vec<Preset>, Vec<PresetError>> {
    let file = source.file.as_str();
    let err = |field: &str, reason: String| PresetError {
        file: file.to_owned(),
        field: field.to_owned(),
        reason,
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(&source.text) {
        Ok(v) => v,
        Err(e) => return Err(vec![err("(file)", format!("invalid YAML: {e}"))]),
    };
    let serde_yaml::Value::Mapping(map) = &value else {
        return Err(vec![err(
            "(file)",
            "a preset file must be a YAML mapping of fields".into(),
        )]);
    };
    // Report every unknown field, not only the first serde would stop at.
    let mut errors = Vec::new();
    let mut known = serde_yaml::Mapping::new();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("");
        if KNOWN_FIELDS.contains(&key) {
            if key != "$schema" {
                known.insert(k.clone(), v.clone());
            }
        } else {
            let shown = field_name(k);
            errors.push(err(&shown, "unknown field".into()));
        }
    }
    let raw: PresetFile = match serde_path_to_error::deserialize(serde_yaml::Value::Mapping(known))
    {
        Ok(raw) => raw,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "(file)".to_owned()
            } else {
                path
            };
            errors.push(err(&field, e.into_inner().to_string()));
            return Err(errors);
        }
    };
    match validate(file, raw) {
        Ok(presets) if errors.is_empty() => Ok(presets),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// A mapping key as an error's field: quoted when it would otherwise print as nothing
/// (`"": x`), in YAML spelling when not a string (`1: x`).
fn field_name(key: &serde_yaml::Value) -> String {
    match key.as_str() {
        Some(s) if s.trim().is_empty() => format!("{s:?}"),
        Some(s) => s.to_owned(),
        None => serde_yaml::to_string(key)
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{key:?}")),
    }
}

fn validate(file: &str, raw: PresetFile) -> Result<Vec<Preset>, Vec<PresetError>> {
    let mut errors = Vec::new();
    let mut err = |field: String, reason: String| {
        errors.push(PresetError {
            file: file.to_owned(),
            field,
            reason,
        })
    };

    if !valid_name(&raw.name) {
        err(
            "name".into(),
            format!(
                "'{}' is not a valid name: use 1 to 40 of a-z, 0-9 and '-'",
                raw.name
            ),
        );
    }

    let architectures: Vec<Architecture> = match (&raw.architecture, &raw.architectures) {
        (Some(_), Some(_)) => {
            err(
                "architectures".into(),
                "set either architecture or architectures, not both".into(),
            );
            vec![]
        }
        (None, None) => {
            err(
                "architecture".into(),
                "required: x86_64 or arm64 (or architectures: [...])".into(),
            );
            vec![]
        }
        (Some(one), None) => match Architecture::parse(one) {
            Some(a) => vec![a],
            None => {
                err("architecture".into(), unknown_arch(one));
                vec![]
            }
        },
        (None, Some(many)) => {
            if many.is_empty() {
                err(
                    "architectures".into(),
                    "must list at least one architecture".into(),
                );
            }
            let mut out = Vec::new();
            for (i, a) in many.iter().enumerate() {
                match Architecture::parse(a) {
                    Some(a) if out.contains(&a) => err(
                        format!("architectures[{i}]"),
                        format!("'{a}' is listed twice"),
                    ),
                    Some(a) => out.push(a),
                    None => err(format!("architectures[{i}]"), unknown_arch(a)),
                }
            }
            out
        }
    };

    let base_image = match BaseImage::parse(raw.base_image.trim()) {
        Ok(b) => Some(b),
        Err(reason) => {
            err("base_image".into(), reason);
            None
        }
    };

    for (field, list) in [
        ("instance_types", Some(&raw.instance_types)),
        ("build_instance_types", raw.build_instance_types.as_ref()),
    ] {
        for (i, t) in list.into_iter().flatten().enumerate() {
            match instance_architecture(t) {
                None => err(
                    format!("{field}[{i}]"),
                    format!("'{t}' is not an EC2 instance type or family (e.g. m7i, c7g.large)"),
                ),
                Some(fits) => {
                    for a in &architectures {
                        if *a != fits {
                            err(
                                format!("{field}[{i}]"),
                                format!(
                                    "'{t}' is an {fits} instance type and does not fit architecture {a}"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    if raw.build_instance_types.as_ref().is_some_and(Vec::is_empty) {
        err(
            "build_instance_types".into(),
            "must not be empty when set".into(),
        );
    }

    let mut seen_regions = BTreeSet::new();
    for (i, r) in raw.regions.iter().enumerate() {
        if !valid_region(r) {
            err(
                format!("regions[{i}]"),
                format!("'{r}' is not an AWS region name (e.g. us-east-1)"),
            );
        } else if !seen_regions.insert(r) {
            err(
                format!("regions[{i}]"),
                format!("region '{r}' is listed twice"),
            );
        }
    }

    for (i, image) in raw.additional_docker_images.iter().enumerate() {
        if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
            err(
                format!("additional_docker_images[{i}]"),
                format!("'{image}' is not a docker image reference"),
            );
        }
    }
    let setup_script = raw.setup_script.clone().unwrap_or_default();
    if setup_script.trim().is_empty() && raw.additional_docker_images.is_empty() {
        err(
            "setup_script".into(),
            "empty setup_script and no additional_docker_images: the image would be its base image unchanged".into(),
        );
    }

    let mut test_names = BTreeSet::new();
    for (i, t) in raw.validation_tests.iter().enumerate() {
        if !valid_name(&t.name.to_ascii_lowercase().replace(['_', ' '], "-")) {
            err(
                format!("validation_tests[{i}].name"),
                "must be 1 to 40 letters, digits, '-', '_' or spaces".into(),
            );
        } else if !test_names.insert(&t.name) {
            err(
                format!("validation_tests[{i}].name"),
                format!("test name '{}' is used twice", t.name),
            );
        }
        if t.command.trim().is_empty() {
            err(
                format!("validation_tests[{i}].command"),
                "must not be empty".into(),
            );
        }
        match (&t.expected, &t.expected_contains) {
            (Some(_), Some(_)) => err(
                format!("validation_tests[{i}]"),
                "set either expected or expected_contains, not both".into(),
            ),
            (None, None) => err(
                format!("validation_tests[{i}]"),
                "needs expected or expected_contains".into(),
            ),
            _ => {}
        }
    }

    let schedule = match raw.schedule.as_deref() {
        None => DEFAULT_SCHEDULE.to_owned(),
        Some(s) => match normalise_cron(s) {
            Ok(s) => s,
            Err(reason) => {
                err("schedule".into(), reason);
                String::new()
            }
        },
    };

    if let Some(t) = raw.timeout_minutes
        && !(1..=2880).contains(&t)
    {
        err(
            "timeout_minutes".into(),
            format!("{t} is out of range 1..=2880"),
        );
    }
    if let Some(d) = raw.disk_size_gb
        && !(8..=16384).contains(&d)
    {
        err(
            "disk_size_gb".into(),
            format!("{d} is out of range 8..=16384"),
        );
    }
    let mut ports = Vec::new();
    for (i, p) in raw.ports.iter().enumerate() {
        match u16::try_from(*p) {
            Ok(p) if p > 0 => ports.push(p),
            _ => err(
                format!("ports[{i}]"),
                format!("{p} is not a TCP port (1..=65535)"),
            ),
        }
    }
    if let Some(c) = raw.estimated_cost_per_hour
        && !(c.is_finite() && c >= 0.0)
    {
        err(
            "estimated_cost_per_hour".into(),
            format!("{c} must be a non-negative number"),
        );
    }
    for (i, l) in raw.labels.iter().enumerate() {
        if l.trim().is_empty() {
            err(format!("labels[{i}]"), "must not be empty".into());
        }
    }

    let expanded_names: Vec<(Architecture, String)> =
        if raw.architectures.as_ref().is_some_and(|a| a.len() > 1) {
            architectures
                .iter()
                .map(|a| (*a, format!("{}-{}", raw.name, expanded_suffix(*a))))
                .collect()
        } else {
            architectures
                .iter()
                .map(|a| (*a, raw.name.clone()))
                .collect()
        };
    for (_, name) in &expanded_names {
        if name.len() > 40 && valid_name(&raw.name) {
            err(
                "name".into(),
                format!("expanded name '{name}' is longer than 40 characters"),
            );
        }
    }

    let Some(base_image) = base_image else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(expanded_names
        .into_iter()
        .map(|(architecture, name)| Preset {
            name,
            template: raw.name.clone(),
            source_file: file.to_owned(),
            description: raw.description.clone(),
            architecture,
            base_image: base_image.clone(),
            instance_types: raw.instance_types.clone(),
            build_instance_types: raw
                .build_instance_types
                .clone()
                .unwrap_or_else(|| vec![architecture.default_build_instance_type().to_owned()]),
            regions: raw.regions.clone(),
            additional_docker_images: raw.additional_docker_images.clone(),
            setup_script: setup_script.clone(),
            validation_tests: raw.validation_tests.clone(),
            schedule: schedule.clone(),
            timeout_minutes: raw.timeout_minutes,
            labels: raw.labels.clone(),
            disk_size_gb: raw.disk_size_gb,
            ports: ports.clone(),
            estimated_cost_per_hour: raw.estimated_cost_per_hour,
            runner: raw.runner.clone(),
        })
        .collect())
}

/// Suffix for expanded names: the common spelling users search for.
fn expanded_suffix(a: Architecture) -> &'static str {
    match a {
        Architecture::X86_64 => "x64",
        Architecture::Arm64 => "arm64",
    }
}

fn unknown_arch(a: &str) -> String {
    format!("unknown architecture '{a}': expected x86_64 or arm64")
}

fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_region(r: &str) -> bool {
    // e.g. us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// The architecture an instance type or family runs, or `None` if it is not one.
///
/// Graviton families carry a `g` right after the generation digit (`m7g`, `c6gn`,
/// `x2gd`, `im4gn`); `a1` is the first-generation exception.
pub fn instance_architecture(instance: &str) -> Option<Architecture> {
    let (family, size) = match instance.split_once('.') {
        Some((f, s)) => (f, Some(s)),
        None => (instance, None),
    };
    if size
        .is_some_and(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return None;
    }
    let letters = family.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = family[letters..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let suffix = &family[letters + digits..];
    if letters == 0 || digits == 0 || !suffix.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return None;
    }
    if family == "a1" || suffix.starts_with('g') {
        Some(Architecture::Arm64)
    } else {
        Some(Architecture::X86_64)
    }
}

/// Validates an EventBridge / Image Builder cron expression (six fields: minutes hours
/// day-of-month month day-of-week year) and returns it wrapped as `cron(…)`.
pub fn normalise_cron(expr: &str) -> Result<String, String> {
    let inner = expr
        .trim()
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(expr.trim());
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "malformed cron '{expr}': expected 6 fields (minutes hours day-of-month month day-of-week year), e.g. {DEFAULT_SCHEDULE}"
        ));
    }
    let specs: [(&str, u32, u32, &[&str]); 6] = [
        ("minutes", 0, 59, &[]),
        ("hours", 0, 23, &[]),
        ("day-of-month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
        ),
        (
            "day-of-week",
            1,
            7,
            &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        ),
        ("year", 1970, 2199, &[]),
    ];
    for (field, (name, lo, hi, names)) in fields.iter().zip(specs) {
        check_cron_field(field, name, lo, hi, names).map_err(|reason| {
            format!("malformed cron '{expr}': {name} field '{field}' {reason}")
        })?;
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(format!(
            "malformed cron '{expr}': exactly one of day-of-month and day-of-week must be '?'"
        ));
    }
    Ok(format!("cron({})", fields.join(" ")))
}

fn check_cron_field(
    field: &str,
    name: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
) -> Result<(), String> {
    let day_field = name == "day-of-month" || name == "day-of-week";
    if field == "?" {
        return if day_field {
            Ok(())
        } else {
            Err("'?' is only allowed in day fields".into())
        };
    }
    let value = |v: &str| -> Result<u32, String> {
        let v = if name == "day-of-month" {
            v.trim_end_matches('W')
        } else {
            v
        };
        let v = if day_field {
            v.trim_end_matches('L')
        } else {
            v
        };
        if day_field && (v.is_empty() || v == "L") {
            return Ok(lo);
        }
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(lo + i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!("has '{v}', outside {lo}-{hi}")),
        }
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step
            && !step.parse::<u32>().is_ok_and(|s| s > 0)
        {
            return Err(format!("has step '{step}', expected a positive number"));
        }
        if range == "*" {
            continue;
        }
        if name == "day-of-week"
            && let Some((d, n)) = range.split_once('#')
        {
            value(d)?;
            if !n.parse::<u32>().is_ok_and(|n| (1..=5).contains(&n)) {
                return Err(format!("has '#{n}', expected #1-#5"));
            }
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                value(a)?;
                value(b)?;
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

/// The JSON Schema of a preset file, for editors (`# yaml-language-server: $schema=…`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PresetFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
