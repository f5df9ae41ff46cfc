//! Base images: well-known aliases resolved per architecture, or an explicit AMI.

use serde::{Deserialize, Serialize};

use super::Architecture;

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
