//! Image Builder ARN shapes as the service model's patterns define them, checked by hand
//! (no regex engine in the crate). A value that does not match is the service's
//! `InvalidParameterValueException` ("The value supplied for parameter '…' is not
//! valid. '…' must match pattern …", as real Image Builder answers).

/// What an ARN parameter may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArnKind {
    /// `image/<name>/<x.y.z>/<build>`
    ImageBuildVersion,
    /// `image/<name>/<x.y.z>`
    ImageVersion,
    /// A build version, or a version with wildcards (`x.x.x`, `1.x.x`, `1.0.x`).
    ImageVersionOrBuildVersion,
    /// `image-recipe/<name>/<version, wildcards allowed>`
    ImageRecipe,
    ImagePipeline,
    InfrastructureConfiguration,
    DistributionConfiguration,
}

impl ArnKind {
    /// The model's pattern, quoted in error messages.
    pub fn pattern(self) -> &'static str {
        match self {
            ArnKind::ImageBuildVersion => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$"
            }
            ArnKind::ImageVersion => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+$"
            }
            ArnKind::ImageVersionOrBuildVersion => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/(?:(?:([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x))|(?:[0-9]+\.[0-9]+\.[0-9]+/[0-9]+))$"
            }
            ArnKind::ImageRecipe => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image-recipe/[a-z0-9-_]+/(?:[0-9]+|x)\.(?:[0-9]+|x)\.(?:[0-9]+|x)$"
            }
            ArnKind::ImagePipeline => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image-pipeline/[a-z0-9-_]+$"
            }
            ArnKind::InfrastructureConfiguration => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):infrastructure-configuration/[a-z0-9-_]+$"
            }
            ArnKind::DistributionConfiguration => {
                r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):distribution-configuration/[a-z0-9-_]+$"
            }
        }
    }

    /// Whether `arn` matches [`ArnKind::pattern`].
    pub fn matches(self, arn: &str) -> bool {
        let Some((account, resource)) = split(arn) else {
            return false;
        };
        let image_owner = account_ok(account, true);
        let other_owner = account_ok(account, false);
        let parts: Vec<&str> = resource.split('/').collect();
        match (self, parts.as_slice()) {
            (ArnKind::ImageBuildVersion, ["image", n, v, b]) => {
                image_owner && name_ok(n) && version_ok(v, false) && digits(b)
            }
            (ArnKind::ImageVersion, ["image", n, v]) => {
                image_owner && name_ok(n) && version_ok(v, false)
            }
            (ArnKind::ImageVersionOrBuildVersion, ["image", n, v]) => {
                image_owner && name_ok(n) && version_ok(v, true)
            }
            (ArnKind::ImageVersionOrBuildVersion, ["image", n, v, b]) => {
                image_owner && name_ok(n) && version_ok(v, false) && digits(b)
            }
            (ArnKind::ImageRecipe, ["image-recipe", n, v]) => {
                other_owner && name_ok(n) && version_ok(v, true)
            }
            (ArnKind::ImagePipeline, ["image-pipeline", n])
            | (ArnKind::InfrastructureConfiguration, ["infrastructure-configuration", n])
            | (ArnKind::DistributionConfiguration, ["distribution-configuration", n]) => {
                other_owner && name_ok(n)
            }
            _ => false,
        }
    }
}

/// `arn:aws…:imagebuilder:<region>:<account>:<resource>` → (account, resource).
fn split(arn: &str) -> Option<(&str, &str)> {
    let mut it = arn.splitn(6, ':');
    let (arn_, partition, service, region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    (arn_ == "arn" && partition.starts_with("aws") && service == "imagebuilder")
        .then_some(())
        .filter(|()| !region.is_empty())?;
    Some((account, resource))
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn account_ok(account: &str, image: bool) -> bool {
    (account.len() == 12 && digits(account))
        || account == "aws"
        || (image
            && account.strip_prefix("aws-").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            }))
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn version_ok(version: &str, wildcards: bool) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| digits(p) || (wildcards && *p == "x"))
}

#[cfg(test)]
mod tests {
    use super::ArnKind::*;

    const A: &str = "arn:aws:imagebuilder:us-east-1:123456789012";

    #[test]
    fn model_patterns() {
        assert!(ImageBuildVersion.matches(&format!("{A}:image/linux-x64/1.0.0/3")));
        assert!(!ImageBuildVersion.matches(&format!("{A}:image/linux-x64/1.0.0")));
        assert!(ImageVersion.matches(&format!("{A}:image/linux-x64/1.0.0")));
        assert!(!ImageVersion.matches(&format!("{A}:image/linux-x64/x.x.x")));
        for ok in ["x.x.x", "1.x.x", "1.0.x", "1.0.0", "1.0.0/2"] {
            assert!(
                ImageVersionOrBuildVersion.matches(&format!("{A}:image/n/{ok}")),
                "{ok}"
            );
        }
        for bad in ["x.x.x/1", "1.0", "1.0.0/x", "1.0.0/"] {
            assert!(
                !ImageVersionOrBuildVersion.matches(&format!("{A}:image/n/{bad}")),
                "{bad}"
            );
        }
        assert!(
            ImageVersionOrBuildVersion
                .matches("arn:aws:imagebuilder:us-east-1:aws:image/ubuntu-server-22-lts-x86/x.x.x")
        );
        assert!(ImageRecipe.matches(&format!("{A}:image-recipe/r/1.x.x")));
        assert!(ImagePipeline.matches(&format!("{A}:image-pipeline/spot-runner-linux-x64")));
        assert!(!ImagePipeline.matches(&format!("{A}:image-pipeline/Upper")));
        assert!(!ImagePipeline.matches("arn:aws:imagebuilder:us-east-1:12345:image-pipeline/p"));
        assert!(!ImagePipeline.matches("arn:aws:imagebuilder::123456789012:image-pipeline/p"));
        assert!(!ImagePipeline.matches("not-an-arn"));
        assert!(
            InfrastructureConfiguration.matches(&format!("{A}:infrastructure-configuration/i"))
        );
        assert!(DistributionConfiguration.matches(&format!("{A}:distribution-configuration/d")));
        assert!(!DistributionConfiguration.matches(&format!("{A}:image-pipeline/d")));
    }
}
