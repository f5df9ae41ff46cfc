//! Build history (`recordType = BUILD` items) for `kiln list` and `kiln registry export`.

use std::collections::BTreeMap;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kiln_aws::AwsError;
use kiln_aws::store::{Listing, PresetItem, StateStore};
use kiln_shared::build::BuildRecord;
use kiln_shared::registry::{self, Registry};
use kiln_shared::time;

/// All builds, newest first (by start, then version, so ties are stable), with the
/// items that could not be read.
pub async fn load_builds(store: &dyn StateStore) -> Result<Listing<BuildRecord>, AwsError> {
    let mut builds = store.list_builds().await?;
    sort_newest_first(&mut builds);
    Ok(builds)
}

/// One preset's builds (one query on its key prefix), newest first.
pub async fn load_builds_of(
    store: &dyn StateStore,
    preset: &str,
) -> Result<Listing<BuildRecord>, AwsError> {
    let mut builds = store.list_builds_of(preset).await?;
    sort_newest_first(&mut builds);
    Ok(builds)
}

pub fn sort_newest_first(builds: &mut [BuildRecord]) {
    builds.sort_by(|a, b| {
        (b.started_at, &b.preset, &b.build_version).cmp(&(
            a.started_at,
            &a.preset,
            &a.build_version,
        ))
    });
}

/// preset name → template name (the name written in the preset file), from the PRESET
/// items. An item whose preset no longer parses keeps its own name.
pub fn templates_from_preset_items(items: &[PresetItem]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|item| {
            let template = item
                .preset()
                .map_or_else(|_| item.name.clone(), |p| p.template);
            (item.name.clone(), template)
        })
        .collect()
}

/// The registry: builds, the deployed presets (from the PRESET items; a preset without
/// one is its own template), and AMI sizes from EC2 for builds that recorded none.
pub fn registry_of(
    builds: &[BuildRecord],
    presets: &[kiln_shared::Preset],
    sizes: &BTreeMap<(String, String), u32>,
    now: chrono::DateTime<chrono::Utc>,
) -> Registry {
    let size_of =
        |region: &str, ami: &str| sizes.get(&(region.to_owned(), ami.to_owned())).copied();
    registry::build_registry(builds, presets, &size_of, now)
}

/// The deployed presets of the PRESET items that still parse.
pub fn presets_of_items(items: &[PresetItem]) -> Vec<kiln_shared::Preset> {
    items.iter().filter_map(|item| item.preset().ok()).collect()
}

/// Regions the ready builds' AMIs live in (for the size lookup).
pub fn ami_regions(builds: &[BuildRecord]) -> Vec<String> {
    let mut regions: Vec<String> = builds
        .iter()
        .filter(|b| b.status == kiln_shared::BuildStatus::Ready)
        .flat_map(|b| b.amis.keys().cloned())
        .collect();
    regions.sort();
    regions.dedup();
    regions
}

/// `kiln list` as a table: one row per build and region.
pub fn render_table(builds: &[BuildRecord]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "preset", "arch", "version", "status", "tests", "started", "ended", "region", "AMI",
    ]);
    for b in builds {
        let regions: Vec<(String, String)> = if b.amis.is_empty() {
            vec![("-".into(), "-".into())]
        } else {
            b.amis.iter().map(|(r, a)| (r.clone(), a.clone())).collect()
        };
        let status = match &b.reason {
            Some(reason) if b.status != kiln_shared::BuildStatus::Ready => {
                format!("{} ({reason})", b.status.as_str())
            }
            _ => b.status.as_str().to_owned(),
        };
        for (region, ami) in regions {
            table.add_row([
                b.preset.clone(),
                b.architecture
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_else(|| "-".into()),
                b.build_version.clone(),
                status.clone(),
                tests_column(b),
                time::format(b.started_at),
                b.ended_at.map(time::format).unwrap_or_else(|| "-".into()),
                region,
                ami,
            ]);
        }
    }
    format!("{table}\n")
}

/// The validation tests' outcome: `kiln test`'s last run (passed of total, when), else
/// the pipeline's TEST phase, else unknown.
fn tests_column(b: &BuildRecord) -> String {
    match &b.tested {
        Some(run) => {
            let passed = b.tests.iter().filter(|t| t.passed).count();
            format!(
                "{} {passed}/{} (kiln test {})",
                if run.passed { "passed" } else { "FAILED" },
                b.tests.len(),
                time::format(run.at)
            )
        }
        None if b.validated => "passed (pipeline)".into(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_shared::build::apply_build;
    use kiln_shared::preset::{PresetSource, parse_one};
    use kiln_shared::{ImageState, Observation};

    fn build(preset: &str, version: &str, started: &str) -> BuildRecord {
        let obs = Observation {
            preset: preset.into(),
            architecture: None,
            state: ImageState::Building,
            at: time::parse(started).unwrap(),
            build_id: format!(
                "arn:aws:imagebuilder:us-east-1:123456789012:image/{preset}/{version}"
            ),
            amis: BTreeMap::new(),
            home_region: "us-east-1".into(),
            reason: None,
            started: None,
        };
        apply_build(None, &obs, version).unwrap()
    }

    #[test]
    fn builds_sort_newest_first_then_by_preset_and_version() {
        let mut builds = vec![
            build("p", "1.0.0/1", "2026-01-01T00:00:00Z"),
            build("q", "1.0.0/1", "2026-01-02T00:00:00Z"),
            build("p", "1.0.0/2", "2026-01-02T00:00:00Z"),
        ];
        sort_newest_first(&mut builds);
        let order: Vec<_> = builds
            .iter()
            .map(|b| format!("{}#{}", b.preset, b.build_version))
            .collect();
        assert_eq!(order, ["q#1.0.0/1", "p#1.0.0/2", "p#1.0.0/1"]);
    }

    #[test]
    fn the_table_shows_each_builds_test_outcome() {
        let untested = build("p", "1.0.0/1", "2026-01-01T00:00:00Z");
        let mut pipeline = build("p", "1.0.0/2", "2026-01-02T00:00:00Z");
        pipeline.validated = true;
        let mut tested = build("p", "1.0.0/3", "2026-01-03T00:00:00Z");
        let result = |name: &str, passed| kiln_shared::registry::TestResult {
            name: name.into(),
            passed,
            output: None,
        };
        tested.tests = vec![result("sshd", true), result("rstudio", false)];
        tested.tested = Some(kiln_shared::validation::TestRun::new(
            time::parse("2026-01-04T10:00:00Z").unwrap(),
            "us-east-1",
            "ami-1",
            &tested.tests,
        ));
        let table = render_table(&[untested, pipeline, tested]);
        let rows: Vec<&str> = table.lines().filter(|l| l.contains(" p ")).collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(rows[0].contains(" - "), "{table}");
        assert!(rows[1].contains("passed (pipeline)"), "{table}");
        assert!(
            rows[2].contains("FAILED 1/2 (kiln test 2026-01-04T10:00:00Z)"),
            "{table}"
        );
    }

    #[test]
    fn templates_come_from_the_preset_files_names() {
        let yaml = "name: r\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-22.04\nsetup_script: echo hi\n";
        let presets = parse_one(&PresetSource {
            file: "r.yaml".into(),
            text: yaml.into(),
        })
        .unwrap();
        let now = time::parse("2026-01-01T00:00:00Z").unwrap();
        let mut items: Vec<PresetItem> = presets
            .iter()
            .map(|p| PresetItem::new(p, "spot-runner", "us-east-1", now))
            .collect();
        let mut broken = items[0].clone();
        broken.name = "gone".into();
        broken.preset = "{".into();
        items.push(broken);
        let t = templates_from_preset_items(&items);
        assert_eq!(t["r-x64"], "r");
        assert_eq!(t["r-arm64"], "r");
        assert_eq!(t["gone"], "gone");
    }
}
