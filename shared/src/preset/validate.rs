//! The rules a parsed preset file must meet, and its expansion per architecture.

use std::collections::BTreeSet;

use super::architecture::{expanded_suffix, unknown_arch};
use super::cron::{DEFAULT_SCHEDULE, normalise_cron};
use super::{Architecture, BaseImage, Preset, PresetError, PresetFile, instance_architecture};
use crate::region::valid_region;
use crate::runner_config::{self, ADVANCED_MAX_BYTES, OWNED_KEYS};

/// Validates a file (no per-architecture values left) and expands it; with `only`, the
/// architecture-specific checks and the result are for that architecture alone (the
/// file's per-architecture values were resolved for it).
pub(super) fn validate(
    file: &str,
    raw: PresetFile,
    only: Option<Architecture>,
) -> Result<Vec<Preset>, Vec<PresetError>> {
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
                    for a in architectures
                        .iter()
                        .filter(|a| only.is_none_or(|o| o == **a))
                    {
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
    if let Some(device) = &raw.root_device_name {
        if !valid_device_name(device) {
            err(
                "root_device_name".into(),
                format!("'{device}' is not a device name like /dev/xvda or /dev/sda1"),
            );
        } else if matches!(base_image, Some(BaseImage::Alias(_))) {
            err(
                "root_device_name".into(),
                "only for an explicit ami-… base_image: an alias's root device is known".into(),
            );
        }
    } else if raw.disk_size_gb.is_some() && matches!(base_image, Some(BaseImage::Ami(_))) {
        err(
            "root_device_name".into(),
            "required with disk_size_gb and an explicit AMI (else a second disk is added): \
             aws ec2 describe-images --image-ids <ami> --query 'Images[0].RootDeviceName'"
                .into(),
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
    if let Some(d) = raw.max_age_days
        && !(1..=3650).contains(&d)
    {
        err(
            "max_age_days".into(),
            format!("{d} must be between 1 and 3650 days"),
        );
    }
    for (i, l) in raw.labels.iter().enumerate() {
        if l.trim().is_empty() {
            err(format!("labels[{i}]"), "must not be empty".into());
        }
    }

    for key in raw.runner.keys() {
        if OWNED_KEYS.contains(&key.as_str()) {
            err(
                format!("runner.{key}"),
                format!("'{key}' is set by kiln in the runner config and may not be set here"),
            );
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

    if let Some(name) = &raw.display_name
        && (name.trim().is_empty() || name.len() > 120 || name.chars().any(char::is_control))
    {
        err(
            "display_name".into(),
            "must be 1 to 120 printable characters".into(),
        );
    }
    let Some(base_image) = base_image else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let presets: Vec<Preset> = expanded_names
        .into_iter()
        .filter(|(a, _)| only.is_none_or(|o| o == *a))
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
            root_device_name: raw.root_device_name.clone(),
            ports: ports.clone(),
            estimated_cost_per_hour: raw.estimated_cost_per_hour,
            runner: raw.runner.clone(),
            max_age_days: raw
                .max_age_days
                .unwrap_or(crate::preset::DEFAULT_MAX_AGE_DAYS),
            rebuild_on_dependency_updates: raw.rebuild_on_dependency_updates.unwrap_or(false),
            display_name: raw.display_name.clone(),
        })
        .collect();
    // SSM refuses a parameter over 8 KB; over 4 KB needs the Advanced tier, which the
    // writers pick with `runner_config::parameter_tier`.
    for p in &presets {
        let len = runner_config::largest(p).len();
        if len > ADVANCED_MAX_BYTES {
            errors.push(PresetError {
                file: file.to_owned(),
                field: "runner".into(),
                reason: format!(
                    "the runner config of '{}' would be {len} bytes; SSM parameters hold at most {ADVANCED_MAX_BYTES} (advanced tier): move large settings elsewhere",
                    p.name
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(presets)
    } else {
        Err(errors)
    }
}

fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `/dev/` and a short lowercase name: what EC2 block device mappings accept.
fn valid_device_name(device: &str) -> bool {
    device.strip_prefix("/dev/").is_some_and(|name| {
        (2..=16).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}
