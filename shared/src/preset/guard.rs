//! Limits checked before and right after the YAML parser runs, so a hostile file fails
//! fast and as a problem of that file.

use serde_yaml::Value;

/// Largest preset file read. A real preset is far smaller: Image Builder takes at most
/// 16,000 characters per component and SSM 8 KB per runner config.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Most `[` / `{` characters a file may hold. The YAML scanner's cost grows with the
/// square of flow nesting (200 KB of `[` took 65 s); this bounds the nesting whatever
/// quotes surround the brackets, and leaves room for scripts full of `${VAR}` and
/// `[ -f x ]`.
pub const MAX_FLOW_OPENERS: usize = 2048;

/// Why a file's text is refused before parsing, if it is.
pub(super) fn check_text(text: &str) -> Option<String> {
    if text.len() > MAX_FILE_BYTES {
        return Some(format!(
            "file is {} bytes; preset files are at most {MAX_FILE_BYTES} bytes",
            text.len()
        ));
    }
    let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if openers > MAX_FLOW_OPENERS {
        return Some(format!(
            "{openers} '[' or '{{' characters; at most {MAX_FLOW_OPENERS} are accepted (deeply nested flow collections are refused)"
        ));
    }
    None
}

/// Fields (`runner.x`, `validation_tests[0].name`) that carry a YAML tag (`!foo`):
/// kiln gives tags no meaning, and dropping them silently would change what the user
/// wrote.
pub(super) fn tagged_fields(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, "", &mut found);
    found
}

fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Tagged(_) => found.push(if path.is_empty() {
            "(file)".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = super::parse::field_name(k);
                if matches!(k, Value::Tagged(_)) {
                    found.push(join(path, &key));
                }
                walk(v, &join(path, &key), found);
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
