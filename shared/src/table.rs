//! A deployment's names and the state table's key formats: the one home for the
//! CloudFormation template, the Lambdas, the CLI and the tests (see DESIGN.md, "AWS
//! resources").

/// The prefix of every name of a deployment when none is given: pipelines
/// `<prefix>-<preset>`, parameters `/<prefix>/…`, the table `<prefix>-state`.
pub const DEFAULT_PREFIX: &str = "spot-runner";

/// The table of a deployment: `<prefix>-state`.
pub fn table_name(prefix: &str) -> String {
    format!("{prefix}-state")
}

/// The GSI every listing goes through: partition `recordType`, sort `jobId`.
pub const RECORD_TYPE_INDEX: &str = "recordType-index";
/// Partition key of the table (and sort key of the GSI).
pub const KEY: &str = "jobId";
/// Partition key of the GSI.
pub const RECORD_TYPE: &str = "recordType";

pub const RECORD_TYPE_AMI: &str = "AMI";
pub const RECORD_TYPE_PRESET: &str = "PRESET";
pub const RECORD_TYPE_BUILD: &str = "BUILD";
/// `sk` of the AMI record (one per preset).
pub const SK_LATEST: &str = "LATEST";

/// Tags every AMI of kiln's pipelines carries (retention and `kiln list --images` read
/// them back).
pub const TAG_PRESET: &str = "kiln:preset";
pub const TAG_PREFIX: &str = "kiln:prefix";
pub const TAG_ARCHITECTURE: &str = "kiln:architecture";

/// `AMI#<preset>`: a preset's AMI state record.
pub fn ami_job_id(preset: &str) -> String {
    format!("AMI#{preset}")
}

/// `PRESET#<preset>`: a preset's configuration item.
pub fn preset_job_id(preset: &str) -> String {
    format!("PRESET#{preset}")
}

/// `BUILD#<preset>#<buildVersion>`: one build's history item.
pub fn build_job_id(preset: &str, build_version: &str) -> String {
    format!("BUILD#{preset}#{build_version}")
}

pub const RECORD_TYPE_HISTORY: &str = "HISTORY";

/// `HISTORY#<preset>`: a preset's history rollup (kept by the build write path).
pub fn history_job_id(preset: &str) -> String {
    format!("HISTORY#{preset}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_formats_are_the_documented_ones() {
        assert_eq!(table_name("ci"), "ci-state");
        assert_eq!(ami_job_id("linux-x64"), "AMI#linux-x64");
        assert_eq!(preset_job_id("linux-x64"), "PRESET#linux-x64");
        assert_eq!(
            build_job_id("linux-x64", "1.0.0/3"),
            "BUILD#linux-x64#1.0.0/3"
        );
    }
}
