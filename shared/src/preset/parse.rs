//! From YAML text to presets: every problem of every file, then names unique across
//! files.

use std::collections::BTreeMap;

use super::validate::validate;
use super::{
    Architecture, KNOWN_FIELDS, Preset, PresetError, PresetErrors, PresetFile, PresetSource,
};
use super::{guard, per_arch, template_format};

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
    // A byte-order mark is a valid start of a UTF-8 file, not a second document.
    let text = source.text.strip_prefix('\u{feff}').unwrap_or(&source.text);
    if let Some(reason) = guard::check_text(text) {
        return Err(vec![err("(file)", reason)]);
    }
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![err("(file)", format!("invalid YAML: {e}"))]),
    };
    let tagged = guard::tagged_fields(&value);
    if !tagged.is_empty() {
        return Err(tagged
            .iter()
            .map(|field| {
                err(
                    field,
                    "YAML tags (!name) are not supported: remove the tag".into(),
                )
            })
            .collect());
    }
    let serde_yaml::Value::Mapping(map) = &value else {
        return Err(vec![err(
            "(file)",
            "a preset file must be a YAML mapping of fields".into(),
        )]);
    };
    // The seed's template format (`base_ami`) becomes kiln's mapping; errors are then
    // spelled with the template's field names.
    let template = template_format::is_template(map);
    let spell = |field: &str| {
        if template {
            template_format::template_field(field)
        } else {
            field.to_owned()
        }
    };
    let converted;
    let map = if template {
        match template_format::to_kiln(file, map) {
            Ok(m) => {
                converted = m;
                &converted
            }
            Err(problems) => {
                let mut errors: Vec<PresetError> = problems
                    .into_iter()
                    .map(|(field, reason)| err(&field, reason))
                    .collect();
                errors.extend(
                    unknown_fields(map, template)
                        .iter()
                        .map(|f| err(f, "unknown field".into())),
                );
                return Err(errors);
            }
        }
    } else {
        map
    };
    // Report every unknown field, not only the first serde would stop at.
    let mut errors: Vec<PresetError> = unknown_fields(map, template)
        .iter()
        .map(|f| err(f, "unknown field".into()))
        .collect();
    for (field, reason) in per_arch::misplaced(map) {
        errors.push(err(&spell(&field), reason));
    }
    let mut known = serde_yaml::Mapping::new();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("");
        if KNOWN_FIELDS.contains(&key) && key != "$schema" {
            known.insert(k.clone(), v.clone());
        }
    }
    if !errors.is_empty() && errors.iter().any(|e| e.reason != "unknown field") {
        return Err(errors);
    }
    let mut presets = Vec::new();
    if !per_arch::any_per_arch(&known) {
        match one_architecture(file, known, None, &[]) {
            Ok(p) => presets = p,
            Err(more) => errors.extend(more.into_iter().map(|(f, r)| err(&spell(&f), r))),
        }
    } else {
        let architectures = declared_architectures(&known);
        if architectures.is_empty() {
            // Nothing to resolve for: let validation name the architecture problem.
            let first = per_arch::first_values(&known);
            if let Err(more) = one_architecture(file, first, None, &[]) {
                errors.extend(more.into_iter().map(|(f, r)| err(&spell(&f), r)));
            }
        }
        for arch in architectures {
            match per_arch::resolve(&known, arch) {
                Err(missing) => {
                    errors.extend(missing.into_iter().map(|(f, r)| err(&spell(&f), r)));
                }
                Ok((resolved_map, resolved)) => {
                    match one_architecture(file, resolved_map, Some(arch), &resolved) {
                        Ok(p) => presets.extend(p),
                        Err(more) => {
                            errors.extend(more.into_iter().map(|(f, r)| err(&spell(&f), r)))
                        }
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        presets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(presets)
    } else {
        // Shared fields fail once per architecture: report each problem once, in order.
        let mut seen = std::collections::BTreeSet::new();
        errors.retain(|e| seen.insert(e.clone()));
        Err(errors)
    }
}

/// Top-level keys that are not fields of the file's format, as error fields.
fn unknown_fields(map: &serde_yaml::Mapping, template: bool) -> Vec<String> {
    map.keys()
        .filter(|k| {
            let key = k.as_str().unwrap_or("");
            let known = KNOWN_FIELDS.contains(&key) || (template && matches!(key, "base_ami"));
            !known
        })
        .map(field_name)
        .collect()
}

/// Architectures a (kiln-format) mapping declares; unknown ones are left to validation.
fn declared_architectures(map: &serde_yaml::Mapping) -> Vec<Architecture> {
    let mut out = Vec::new();
    let mut add = |v: &serde_yaml::Value| {
        if let Some(a) = v.as_str().and_then(Architecture::parse)
            && !out.contains(&a)
        {
            out.push(a);
        }
    };
    if let Some(v) = map.get("architecture") {
        add(v);
    }
    if let Some(serde_yaml::Value::Sequence(list)) = map.get("architectures") {
        list.iter().for_each(add);
    }
    out
}

/// Deserialises and validates a mapping with no per-architecture values left, keeping
/// only the preset of `only` (all when `None`); errors as `(field, reason)` with the
/// architecture spelled into per-architecture fields.
fn one_architecture(
    file: &str,
    map: serde_yaml::Mapping,
    only: Option<Architecture>,
    resolved: &[String],
) -> Result<Vec<Preset>, Vec<(String, String)>> {
    let path_of = |field: &str| match only {
        Some(arch) => per_arch::field_path(field, resolved, arch),
        None => field.to_owned(),
    };
    let raw: PresetFile = match serde_path_to_error::deserialize(serde_yaml::Value::Mapping(map)) {
        Ok(raw) => raw,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "(file)".to_owned()
            } else {
                path_of(&path)
            };
            return Err(vec![(field, e.into_inner().to_string())]);
        }
    };
    validate(file, raw, only).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| (path_of(&e.field), e.reason))
            .collect()
    })
}

/// A mapping key as an error's field: quoted when it would otherwise print as nothing
/// (`"": x`), in YAML spelling when not a string (`1: x`).
pub(super) fn field_name(key: &serde_yaml::Value) -> String {
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
