//! Logical ids of the per-preset resources.

use std::collections::BTreeMap;

use kiln_shared::Preset;
use sha2::{Digest, Sha256};

/// `linux-x64` → `LinuxX64`: CloudFormation logical ids are alphanumeric.
fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Logical id stem per preset. Names like `a-b` and `a--b` would collide after
/// dropping dashes; those get a short hash of the name so ids stay unique and stable.
fn logical_stems(presets: &[Preset]) -> BTreeMap<String, String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for p in presets {
        *count.entry(pascal(&p.name)).or_default() += 1;
    }
    presets
        .iter()
        .map(|p| {
            let stem = pascal(&p.name);
            let stem = if count[&stem] > 1 {
                let hash = hex::encode(Sha256::digest(p.name.as_bytes()));
                format!("{stem}{}", &hash[..8])
            } else {
                stem
            };
            (p.name.clone(), stem)
        })
        .collect()
}

/// The logical id stem of every preset, looked up by preset.
pub(super) struct LogicalIds(BTreeMap<String, String>);

impl LogicalIds {
    pub(super) fn new(presets: &[Preset]) -> Self {
        LogicalIds(logical_stems(presets))
    }

    /// Stem of the preset's resources (`LinuxX64` → `LinuxX64Pipeline`, …).
    pub(super) fn stem(&self, p: &Preset) -> &str {
        &self.0[&p.name]
    }

    pub(super) fn pipeline(&self, p: &Preset) -> String {
        format!("{}Pipeline", self.stem(p))
    }
}
