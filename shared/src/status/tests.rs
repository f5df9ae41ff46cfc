use super::*;
use crate::state::AmiRecord;

fn t(s: &str) -> DateTime<Utc> {
    time::parse(s).unwrap()
}

fn rec(name: &str, status: BuildStatus, ami: Option<&str>) -> AmiRecord {
    let mut r = AmiRecord::initial(name, Some(Architecture::X86_64), t("2026-01-27T12:00:00Z"));
    r.status = status;
    r.ami_id = ami.map(str::to_owned);
    if let Some(a) = ami {
        r.amis.insert("us-east-1".into(), a.into());
    }
    r.build_id = Some("arn:aws:imagebuilder:us-east-1:123456789012:image/x/1.0.0/1".into());
    r.reason = Some("secret reason with arn:aws:iam::123456789012:role/x".into());
    r
}

fn report(records: &[AmiRecord]) -> StatusReport {
    StatusReport::build(&[], records, t("2026-01-27T12:00:05Z"))
}

#[test]
fn no_presets_is_not_configured() {
    let r = report(&[]);
    assert_eq!(r.status, OverallStatus::NotConfigured);
    assert_eq!(r.message, "No presets configured");
}

#[test]
fn precedence_failed_over_building_over_missing_ami() {
    let ready = rec("a", BuildStatus::Ready, Some("ami-1"));
    let building = rec("b", BuildStatus::Building, None);
    let failed = rec("c", BuildStatus::Failed, Some("ami-3"));
    let no_ami = rec("d", BuildStatus::Ready, None);
    assert_eq!(
        report(&[
            ready.clone(),
            building.clone(),
            failed.clone(),
            no_ami.clone()
        ])
        .status,
        OverallStatus::Degraded
    );
    assert_eq!(
        report(&[ready.clone(), building.clone(), no_ami.clone()]).status,
        OverallStatus::Building
    );
    assert_eq!(
        report(&[ready.clone(), no_ami]).status,
        OverallStatus::Degraded
    );
    assert_eq!(
        report(std::slice::from_ref(&ready)).status,
        OverallStatus::Ready
    );
    assert_eq!(report(&[building]).status, OverallStatus::Building);
    assert_eq!(report(&[failed]).status, OverallStatus::Degraded);
}

#[test]
fn messages_have_correct_plurals() {
    let r = |v: &[AmiRecord]| report(v).message;
    assert_eq!(
        r(&[rec("a", BuildStatus::Ready, Some("ami-1"))]),
        "1 preset ready"
    );
    assert_eq!(
        r(&[
            rec("a", BuildStatus::Ready, Some("ami-1")),
            rec("b", BuildStatus::Ready, Some("ami-2")),
            rec("c", BuildStatus::Ready, Some("ami-3"))
        ]),
        "All 3 presets ready"
    );
    assert_eq!(
        r(&[rec("a", BuildStatus::Building, None)]),
        "1 preset building"
    );
    assert_eq!(
        r(&[
            rec("a", BuildStatus::Building, None),
            rec("b", BuildStatus::Building, None)
        ]),
        "2 presets building"
    );
    assert_eq!(
        r(&[
            rec("a", BuildStatus::Building, None),
            rec("b", BuildStatus::Ready, Some("ami-2"))
        ]),
        "1 preset building; 1 of 2 ready"
    );
    assert_eq!(
        r(&[
            rec("linux-x64", BuildStatus::Ready, Some("ami-1")),
            rec("linux-arm64", BuildStatus::Failed, None),
            rec("r-research", BuildStatus::Ready, Some("ami-3"))
        ]),
        "2 of 3 presets ready; linux-arm64 failed"
    );
    assert_eq!(
        r(&[
            rec("a", BuildStatus::Failed, None),
            rec("b", BuildStatus::Failed, None),
            rec("c", BuildStatus::Building, None)
        ]),
        "0 of 3 presets ready; a and b failed; 1 building"
    );
    assert_eq!(
        r(&[
            rec("a", BuildStatus::Ready, None),
            rec("b", BuildStatus::Ready, Some("ami-1"))
        ]),
        "1 of 2 presets ready; a has no AMI"
    );
    let many: Vec<AmiRecord> = (0..5)
        .map(|i| rec(&format!("p{i}"), BuildStatus::Failed, None))
        .collect();
    assert_eq!(
        r(&many),
        "0 of 5 presets ready; p0, p1, p2 and 2 more failed"
    );
}

#[test]
fn configured_presets_without_records_are_not_configured_and_degrade() {
    let known = [
        KnownPreset {
            name: "a".into(),
            architecture: Some(Architecture::Arm64),
            display_name: None,
        },
        KnownPreset {
            name: "b".into(),
            architecture: Some(Architecture::X86_64),
            display_name: None,
        },
    ];
    let r = StatusReport::build(
        &known,
        &[rec("b", BuildStatus::Ready, Some("ami-1"))],
        t("2026-01-27T12:00:05Z"),
    );
    assert_eq!(r.presets[0].status, PresetStatus::NotConfigured);
    assert_eq!(r.presets[0].architecture, Some(Architecture::Arm64));
    assert_eq!(r.status, OverallStatus::Degraded);
    assert_eq!(r.message, "1 of 2 presets ready; a has no AMI");
}

#[test]
fn public_json_has_only_allow_listed_fields() {
    let r = report(&[rec("a", BuildStatus::Failed, Some("ami-1"))]);
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("arn:"), "{json}");
    assert!(!json.contains("123456789012"), "{json}");
    assert!(!json.contains("secret"), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        top,
        ["generatedAt", "message", "presets", "stale", "status"]
    );
    let p: Vec<&str> = v["presets"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        p,
        [
            "amiId",
            "amis",
            "architecture",
            "builtAt",
            "name",
            "pinned",
            "status",
            "updatedAt",
            "warnings"
        ]
    );
    assert_eq!(v["generatedAt"], "2026-01-27T12:00:05Z");
    assert_eq!(v["presets"][0]["updatedAt"], "2026-01-27T12:00:00Z");
}

#[test]
fn round_trips_and_rejects_extra_fields() {
    let r = report(&[rec("a", BuildStatus::Ready, Some("ami-1"))]);
    let back: StatusReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    let mut v = serde_json::to_value(&r).unwrap();
    v["accountId"] = "123456789012".into();
    assert!(serde_json::from_value::<StatusReport>(v).is_err());
}

#[test]
fn reports_stored_before_the_warning_fields_still_parse() {
    let old = r#"{"status":"ready","message":"1 preset ready","presets":[{"name":"a",
        "status":"ready","amiId":"ami-1","updatedAt":"2026-01-27T12:00:00Z",
        "architecture":"x86_64","amis":{"us-east-1":"ami-1"}}],
        "generatedAt":"2026-01-27T12:00:05Z","stale":false}"#;
    let r: StatusReport = serde_json::from_str(old).unwrap();
    assert!(!r.presets[0].pinned);
    assert!(r.presets[0].warnings.is_empty());
    assert_eq!(r.presets[0].built_at, None);
}

#[test]
fn a_display_name_is_carried_and_left_out_when_absent() {
    let known = [
        KnownPreset {
            name: "r-research-x64".into(),
            architecture: Some(Architecture::X86_64),
            display_name: Some("R Research Environment".into()),
        },
        KnownPreset {
            name: "tiny".into(),
            architecture: None,
            display_name: None,
        },
    ];
    // One with a record, one without: both keep what configuration says.
    let records = [rec("r-research-x64", BuildStatus::Ready, Some("ami-1"))];
    let r = StatusReport::build(&known, &records, t("2026-01-01T00:00:00Z"));
    assert_eq!(
        r.presets[0].display_name.as_deref(),
        Some("R Research Environment")
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["presets"][0]["displayName"], "R Research Environment");
    assert!(json["presets"][1].get("displayName").is_none(), "{json}");
    let back: StatusReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}
