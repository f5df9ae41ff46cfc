//! CPU architectures, and which one an EC2 instance type runs.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// Suffix for expanded names: the common spelling users search for.
pub(super) fn expanded_suffix(a: Architecture) -> &'static str {
    match a {
        Architecture::X86_64 => "x64",
        Architecture::Arm64 => "arm64",
    }
}

pub(super) fn unknown_arch(a: &str) -> String {
    format!("unknown architecture '{a}': expected x86_64 or arm64")
}
