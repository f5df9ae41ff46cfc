//! Preset parsing: arbitrary YAML text, one or several files.

use serde_json::Value;

use crate::preset::{
    self, BaseImage, Preset, PresetError, PresetSource, instance_architecture, normalise_cron,
};
use crate::runner_config;

/// Separates files within one fuzz input, so duplicates across files are reachable.
pub const FILE_SEPARATOR: char = '\0';
const MAX_FILES: usize = 6;

/// Target `preset_parse`. Never panics; every error names a file, a field and a reason;
/// every accepted preset obeys the documented rules; `parse_all` agrees with `parse_one`.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let sources: Vec<PresetSource> = text
        .split(FILE_SEPARATOR)
        .take(MAX_FILES)
        .enumerate()
        .map(|(i, t)| PresetSource {
            file: format!("presets/p{i}.yaml"),
            text: t.to_owned(),
        })
        .collect();

    let mut accepted = Vec::new();
    let mut file_errors = Vec::new();
    for source in &sources {
        match preset::parse_one(source) {
            Ok(presets) => {
                check_file(source, &presets);
                accepted.extend(presets);
            }
            Err(errors) => {
                assert!(!errors.is_empty(), "Err without errors for {source:?}");
                for e in &errors {
                    check_error(e, &source.file);
                }
                file_errors.extend(errors);
            }
        }
    }

    match preset::parse_all("presets", &sources) {
        Ok(all) => {
            assert!(file_errors.is_empty(), "parse_all accepted a rejected file");
            let mut expected = accepted;
            expected.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(all, expected, "parse_all differs from its files' parse_one");
            assert!(
                all.windows(2).all(|w| w[0].name < w[1].name),
                "names are not unique and sorted"
            );
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                check_error(e, &e.file);
                assert!(sources.iter().any(|s| s.file == e.file));
            }
            for e in &file_errors {
                assert!(errors.0.contains(e), "parse_all lost {e}");
            }
            if file_errors.is_empty() {
                // Only a name clash across files can reject files that pass alone.
                assert!(errors.0.iter().all(|e| e.field == "name"
                    && e.reason.starts_with("duplicate preset name")));
                let mut names: Vec<&str> = accepted.iter().map(|p| p.name.as_str()).collect();
                names.sort_unstable();
                assert!(names.windows(2).any(|w| w[0] == w[1]));
            }
        }
    }
}

fn check_error(e: &PresetError, file: &str) {
    assert_eq!(e.file, file);
    assert!(!e.field.trim().is_empty(), "error without a field: {e:?}");
    assert!(!e.reason.trim().is_empty(), "error without a reason: {e:?}");
}

fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_file(source: &PresetSource, presets: &[Preset]) {
    assert!(
        (1..=2).contains(&presets.len()),
        "{} presets from one file",
        presets.len()
    );
    for (i, p) in presets.iter().enumerate() {
        assert!(valid_name(&p.name), "bad name {:?}", p.name);
        assert!(valid_name(&p.template), "bad template {:?}", p.template);
        assert_eq!(p.source_file, source.file);
        assert!(
            presets[..i]
                .iter()
                .all(|q| q.architecture != p.architecture)
        );
        if presets.len() > 1 {
            assert!(p.name.starts_with(&format!("{}-", p.template)));
        } else {
            assert_eq!(p.name, p.template);
        }

        assert!(p.schedule.starts_with("cron(") && p.schedule.ends_with(')'));
        assert_eq!(
            normalise_cron(&p.schedule).as_ref(),
            Ok(&p.schedule),
            "normalised cron is not a fixed point"
        );
        assert_eq!(
            BaseImage::parse(p.base_image.as_str()).as_ref(),
            Ok(&p.base_image)
        );
        assert!(!p.base_image.parent_image(p.architecture).is_empty());
        assert!(!p.build_instance_types.is_empty());
        for t in p.instance_types.iter().chain(&p.build_instance_types) {
            assert_eq!(instance_architecture(t), Some(p.architecture), "{t}");
        }
        let mut regions = p.regions.clone();
        regions.sort();
        regions.dedup();
        assert_eq!(regions.len(), p.regions.len(), "duplicate region");
        assert!(p.ports.iter().all(|&port| port > 0));
        assert!(
            p.estimated_cost_per_hour
                .is_none_or(|c| c.is_finite() && c >= 0.0)
        );
        assert!(p.setup_script.trim().len() + p.additional_docker_images.len() > 0);

        let hash = p.content_hash();
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(p.semantic_version().starts_with("1.0."));
        // PRESET items store the preset as JSON: it must load back unchanged.
        let json = serde_json::to_string(p).expect("preset serialises");
        let back: Preset = serde_json::from_str(&json).expect("stored preset loads");
        assert_eq!(&back, p);

        // The runner config a deploy writes names the preset and has no AMI yet; pointing
        // it at an AMI keeps every other key.
        let initial = runner_config::initial(p, "us-east-1");
        assert_eq!(initial.get("preset"), Some(&Value::from(p.name.clone())));
        let placeholder = runner_config::merge_settings(None, &initial).expect("new config");
        assert_eq!(runner_config::ami_of(&placeholder.json), None);
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid time");
        let pointed =
            runner_config::merge_ami(Some(&placeholder.json), "ami-0123456789abcdef0", at)
                .expect("kiln's own config is an object");
        let after: serde_json::Map<String, Value> =
            serde_json::from_str(&pointed.json).expect("merged config is JSON");
        for (k, v) in &initial {
            if k != runner_config::AMI_ID && k != runner_config::AMI_UPDATED_AT {
                assert_eq!(after.get(k), Some(v), "merge dropped {k}");
            }
        }
    }
}
