//! Logical ids of the per-preset resources.

use std::collections::{BTreeMap, BTreeSet};

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

/// Logical id stem per preset. Names like `a-b` and `a--b` collide after dropping
/// dashes; every preset whose stem is shared gets a short hash of its exact name. That
/// can create a new clash (`a-b` hashed is `ABd44362d6`, the plain stem of
/// `a-bd44362d6`), so this repeats until every stem is unique: a preset whose stem is
/// already hashed is never hashed again, so the loop ends. Unique stems keep their
/// plain form, so ids of ordinary presets are stable.
fn logical_stems(presets: &[Preset]) -> BTreeMap<String, String> {
    let mut stems: BTreeMap<String, String> = presets
        .iter()
        .map(|p| (p.name.clone(), pascal(&p.name)))
        .collect();
    let mut hashed: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for stem in stems.values() {
            *count.entry(stem.as_str()).or_default() += 1;
        }
        let clashing: Vec<String> = stems
            .iter()
            .filter(|(name, stem)| count[stem.as_str()] > 1 && !hashed.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        if clashing.is_empty() {
            return stems;
        }
        for name in clashing {
            let hash = hex::encode(Sha256::digest(name.as_bytes()));
            let stem = format!("{}{}", pascal(&name), &hash[..8]);
            stems.insert(name.clone(), stem);
            hashed.insert(name);
        }
    }
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
