//! Which AMI a run tests, which build made it, and the run written onto that build.

use kiln_aws::release::{BuildWrite, update_build};
use kiln_aws::store::StateStore;
use kiln_shared::Preset;
use kiln_shared::build::BuildRecord;
use kiln_shared::registry::TestResult;
use kiln_shared::validation::TestRun;

use super::{Step, TestError, aws};

pub(super) struct Target {
    pub ami: String,
    pub build: Option<BuildRecord>,
}

/// `ami`, else what the preset's runners use in `region`; and the build that made it.
pub(super) async fn target(
    store: &dyn StateStore,
    preset: &Preset,
    region: &str,
    ami: Option<&str>,
) -> Result<Target, TestError> {
    let record = store
        .get_ami(&preset.name)
        .await
        .map_err(aws("reading the preset's AMI record"))?;
    let ami = match ami {
        Some(ami) => ami.to_owned(),
        None => record
            .as_ref()
            .and_then(|r| r.current().amis.get(region).cloned())
            .ok_or_else(|| TestError::NoAmi {
                preset: preset.name.clone(),
                region: region.to_owned(),
            })?,
    };
    let builds = store
        .list_builds_of(&preset.name)
        .await
        .map_err(aws("reading the build history"))?;
    let build = builds
        .iter()
        .find(|b| b.amis.values().any(|a| *a == ami))
        .cloned();
    Ok(Target { ami, build })
}

/// Writes `run` onto `build` (compare-and-swap on its revision, re-read on conflict).
pub(super) async fn save(
    store: &dyn StateStore,
    build: Option<&BuildRecord>,
    run: TestRun,
    results: &[TestResult],
) -> Step {
    let Some(build) = build else {
        return Step::NotRecorded {
            reason: format!(
                "{} is not an AMI of this preset's builds: the outcome is reported, not recorded",
                run.ami_id
            ),
        };
    };
    let written = update_build(store, &build.job_id, 5, |stored| {
        let mut record = stored?.clone();
        record.record_test_run(run.clone(), results.to_vec());
        Some(record)
    })
    .await;
    let version = &build.build_version;
    match written {
        Ok(BuildWrite::Written) => Step::Recorded {
            build: version.clone(),
        },
        Ok(BuildWrite::Unchanged) => Step::NotRecorded {
            reason: format!("build {version} is no longer in the history"),
        },
        Ok(BuildWrite::Contention) => Step::NotRecorded {
            reason: format!("build {version} kept changing while recording"),
        },
        Err(e) => Step::NotRecorded {
            reason: format!("recording on build {version}: {e}"),
        },
    }
}
