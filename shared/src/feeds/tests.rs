use std::collections::BTreeMap;

use super::*;
use crate::history::{Day, Outcome, Tests, Uptime};
use crate::status::OverallStatus;

fn build(version: &str, outcome: Outcome, start: &str, end: Option<&str>) -> BuildSummary {
    BuildSummary {
        version: version.into(),
        outcome,
        started_at: start.into(),
        finished_at: end.map(Into::into),
        amis: if outcome == Outcome::Available {
            BTreeMap::from([("us-east-1".into(), "ami-0123".into())])
        } else {
            BTreeMap::new()
        },
        tests: Tests {
            passed: Some(1),
            failed: Some(0),
        },
    }
}

fn preset(name: &str, status: PresetStatus, ami: Option<&str>) -> PresetReport {
    PresetReport {
        name: name.into(),
        status,
        ami_id: ami.map(Into::into),
        updated_at: Some("2026-11-04T00:00:00Z".into()),
        architecture: None,
        amis: BTreeMap::new(),
        built_at: None,
        pinned: false,
        warnings: vec![],
        display_name: None,
    }
}

fn history(name: &str, builds: Vec<BuildSummary>, d30: Option<f64>) -> PresetHistory {
    PresetHistory {
        name: name.into(),
        days: vec![Day {
            date: "2026-11-04".into(),
            ready: d30,
        }],
        uptime: Uptime {
            h24: d30,
            d7: d30,
            d30,
            d90: d30,
        },
        builds,
    }
}

fn fixture() -> (StatusReport, Vec<PresetHistory>) {
    let report = StatusReport {
        status: OverallStatus::Degraded,
        message: "1 of 2 presets ready; b failed".into(),
        presets: vec![
            preset("a", PresetStatus::Ready, Some("ami-0123")),
            preset("b", PresetStatus::Failed, Some("ami-0456")),
        ],
        generated_at: "2026-11-04T06:00:00Z".into(),
        stale: false,
    };
    let histories = vec![
        history(
            "a",
            vec![build(
                "1/1",
                Outcome::Available,
                "2026-11-01T00:00:00Z",
                Some("2026-11-01T00:10:00Z"),
            )],
            Some(1.0),
        ),
        history(
            "b",
            vec![
                build(
                    "1/3",
                    Outcome::Cancelled,
                    "2026-11-03T00:00:00Z",
                    Some("2026-11-03T00:01:00Z"),
                ),
                build(
                    "1/2",
                    Outcome::Failed,
                    "2026-11-02T00:00:00Z",
                    Some("2026-11-02T00:20:00Z"),
                ),
                build(
                    "1/1",
                    Outcome::Available,
                    "2026-11-01T00:00:00Z",
                    Some("2026-11-01T00:30:00Z"),
                ),
                build(
                    "1/0",
                    Outcome::Failed,
                    "2026-10-01T00:00:00Z",
                    Some("2026-10-01T00:30:00Z"),
                ),
            ],
            Some(0.9),
        ),
    ];
    (report, histories)
}

#[test]
fn statuspage_components_and_incidents_until_the_next_success() {
    let (report, histories) = fixture();
    let (status, rest) = statuspage::build(&report, &histories);
    assert_eq!(status.indicator, "minor");
    assert_eq!(status.description, report.message);
    let states: Vec<&str> = rest.components.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(states, ["operational", "partial_outage"]);
    // 1/2 and 1/3 are open; 1/0 was followed by the success 1/1.
    let ids: Vec<&str> = rest.incidents.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["b-1-3", "b-1-2"]);
    assert!(
        rest.incidents
            .iter()
            .all(|i| i.resolved_at.is_none() && i.impact == "minor")
    );
    assert!(rest.scheduled_maintenances.is_empty());

    // A ready preset with a warning (here: too old) is degraded, not operational.
    let mut warned = report.clone();
    warned.presets[0].warnings.push(crate::status::Warning {
        code: "ami_too_old".into(),
        message: "a's AMI is 45 days old (max 30)".into(),
        region: None,
    });
    let (_, rest) = statuspage::build(&warned, &histories);
    assert_eq!(rest.components[0].status, "degraded_performance");

    let mut none = report.clone();
    none.presets[1] = preset("b", PresetStatus::NotConfigured, None);
    assert_eq!(statuspage::build(&none, &histories).0.indicator, "major");
    none.presets[0] = preset("a", PresetStatus::Building, None);
    assert_eq!(statuspage::build(&none, &histories).0.indicator, "critical");
}

#[test]
fn feeds_documents_are_consistent_and_tagged_by_content() {
    let (report, histories) = fixture();
    let now = crate::time::parse("2026-11-04T06:00:00Z").unwrap();
    let f = Feeds::build(&report, &histories, &[]);
    let back: Vec<PresetHistory> = serde_json::from_str(&f.history).unwrap();
    assert_eq!(back, histories);
    let summary = format!(
        r#"{{"page":{{"id":"kiln","name":"kiln","url":"https://x","time_zone":"Etc/UTC","updated_at":"t"}},"status":{},{}}}"#,
        f.status, f.summary
    );
    let parsed: statuspage::Summary = serde_json::from_str(&summary).unwrap();
    assert_eq!(parsed.components.len(), 2);
    assert_eq!(f.uptime30d, ["90 %".to_owned(), "bad".to_owned()]);
    // Oldest current image: b's, built 2026-11-01T00:30; the edge renders its age.
    assert_eq!(
        age_badge(&f.age, now.timestamp()),
        ["3 days".to_owned(), "good".to_owned()]
    );
    let month = now.timestamp() + 27 * 86_400;
    assert_eq!(
        age_badge(&f.age, month),
        ["30 days".to_owned(), "bad".to_owned()]
    );
    assert_eq!(age_badge(&Default::default(), 0)[0], "no image");
    assert!(f.atom.starts_with("<?xml"));
    assert_eq!(f.atom.matches("<entry>").count(), 5);
    let again = Feeds::build(&report, &histories, &[]);
    assert_eq!(again.tag, f.tag);
    let mut other = report.clone();
    other.message = "changed".into();
    assert_ne!(Feeds::build(&other, &histories, &[]).tag, f.tag);
}

#[test]
fn texts() {
    assert_eq!(percent(Some(1.0)), "100 %");
    assert_eq!(percent(Some(0.99951)), "99.95 %");
    assert_eq!(percent(Some(0.5)), "50 %");
    assert_eq!(percent(None), "n/a");
    assert_eq!(age_text(59), "0 minutes");
    assert_eq!(age_text(3600), "1 hour");
    assert_eq!(age_text(86_400 * 3 + 5), "3 days");
    assert_eq!(atom::escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;");
}

#[test]
fn warning_transitions_are_feed_entries_with_stable_ids() {
    use crate::state::health::WarningTransition;
    let (_, histories) = fixture();
    let at = |s: &str| crate::time::parse(s).unwrap();
    let raised = WarningTransition {
        at: at("2026-12-01T00:00:00Z"),
        key: "ami_missing:us-west-2".into(),
        raised: true,
        message: "AMI ami-1 deregistered in us-west-2".into(),
    };
    let cleared = WarningTransition {
        at: at("2026-12-02T00:00:00Z"),
        raised: false,
        ..raised.clone()
    };
    let transitions = vec![("a".to_owned(), raised.clone()), ("a".to_owned(), cleared)];
    let feed = atom::render(&histories, &transitions, "1970-01-01T00:00:00Z");
    let first = feed.find("<entry>").unwrap();
    assert!(
        feed[first..].starts_with(
            "<entry>\n<id>urn:kiln:a:warning:ami_missing:us-west-2:cleared:1796169600</id>"
        ),
        "the newest entry (the clearing) comes first: {feed}"
    );
    assert!(feed.contains("<updated>2026-12-02T00:00:00Z</updated>"));
    assert!(feed.contains("<title>a: warning ami_missing:us-west-2 raised</title>"));
    assert!(feed.contains("Warning cleared for a: AMI ami-1 deregistered in us-west-2"));
    assert_eq!(feed.matches("<category term=\"warning\"/>").count(), 2);
    // Build entries are still there, after the newer warnings.
    let builds = feed.matches("<entry>").count() - 2;
    assert_eq!(
        builds,
        atom::render(&histories, &[], "x")
            .matches("<entry>")
            .count()
    );
    assert_eq!(
        atom::warning_entry_id("a", &raised),
        "urn:kiln:a:warning:ami_missing:us-west-2:raised:1796083200"
    );
}
