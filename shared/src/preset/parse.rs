//! From YAML text to presets: every problem of every file, then names unique across
//! files.

use std::collections::BTreeMap;

use super::guard;
use super::validate::validate;
use super::{KNOWN_FIELDS, Preset, PresetError, PresetErrors, PresetFile, PresetSource};

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
