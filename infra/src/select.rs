//! Which presets a `kiln build` / `kiln build-all` means: preset names or template names
//! (the unexpanded name of a multi-architecture preset, or a template file's id),
//! narrowed to one architecture.

use kiln_shared::{Architecture, Preset};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no preset or template '{name}' is deployed (deployed: {known})")]
    Unknown { name: String, known: String },
    #[error("'{name}' has no {architecture} build (its architectures: {has})")]
    NoArchitecture {
        name: String,
        architecture: Architecture,
        has: String,
    },
}

/// The deployed presets `names` mean, in name order without repeats: a name is a
/// preset's own name or its template's (which stands for all its architectures).
/// `architecture` keeps only that architecture's presets.
pub fn select(
    deployed: &[Preset],
    names: &[String],
    architecture: Option<Architecture>,
) -> Result<Vec<Preset>, SelectError> {
    let mut out: Vec<Preset> = Vec::new();
    for name in names {
        let matching: Vec<&Preset> = deployed
            .iter()
            .filter(|p| &p.name == name || &p.template == name)
            .collect();
        if matching.is_empty() {
            let mut known: Vec<&str> = deployed.iter().map(|p| p.name.as_str()).collect();
            known.sort_unstable();
            return Err(SelectError::Unknown {
                name: name.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let chosen: Vec<&Preset> = matching
            .iter()
            .copied()
            .filter(|p| architecture.is_none_or(|a| p.architecture == a))
            .collect();
        if let (Some(a), true) = (architecture, chosen.is_empty()) {
            let mut has: Vec<&str> = matching.iter().map(|p| p.architecture.as_str()).collect();
            has.dedup();
            return Err(SelectError::NoArchitecture {
                name: name.clone(),
                architecture: a,
                has: has.join(", "),
            });
        }
        for p in chosen {
            if !out.iter().any(|o| o.name == p.name) {
                out.push(p.clone());
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_shared::preset::{PresetSource, parse_all};

    fn deployed() -> Vec<Preset> {
        parse_all(
            "presets",
            &[
                PresetSource {
                    file: "r-research.yml".into(),
                    text: "name: R\nbase_ami: {source: ubuntu-22.04-lts, architecture: [x86_64, arm64]}\nsetup_script: echo\n".into(),
                },
                PresetSource {
                    file: "linux.yaml".into(),
                    text: "name: linux\narchitecture: arm64\nbase_image: ubuntu-24.04\nsetup_script: echo\n".into(),
                },
            ],
        )
        .unwrap()
    }

    fn names(p: &[Preset]) -> Vec<&str> {
        p.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn template_names_stand_for_every_architecture() {
        let d = deployed();
        let all = select(&d, &["r-research".into()], None).unwrap();
        assert_eq!(names(&all), ["r-research-arm64", "r-research-x64"]);
        let x = select(&d, &["r-research".into()], Some(Architecture::X86_64)).unwrap();
        assert_eq!(names(&x), ["r-research-x64"]);
        let one = select(&d, &["r-research-arm64".into(), "linux".into()], None).unwrap();
        assert_eq!(names(&one), ["linux", "r-research-arm64"]);
        let twice = select(&d, &["r-research".into(), "r-research-x64".into()], None).unwrap();
        assert_eq!(names(&twice), ["r-research-arm64", "r-research-x64"]);
    }

    #[test]
    fn unknown_names_and_missing_architectures_are_refused() {
        let d = deployed();
        let e = select(&d, &["nope".into()], None).unwrap_err();
        assert!(
            e.to_string()
                .contains("linux, r-research-arm64, r-research-x64"),
            "{e}"
        );
        let e = select(&d, &["linux".into()], Some(Architecture::X86_64)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'linux' has no x86_64 build (its architectures: arm64)"
        );
    }
}
