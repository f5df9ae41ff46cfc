use std::collections::BTreeMap;

use kiln_shared::status::summarise;
use kiln_shared::{Architecture, PresetReport, PresetStatus, StatusReport};

use super::*;

fn now() -> DateTime<Utc> {
    time::parse("2026-01-27T12:10:00Z").unwrap()
}

fn preset(name: &str, status: PresetStatus, ami: Option<&str>) -> PresetReport {
    let mut amis = BTreeMap::new();
    if let Some(a) = ami {
        amis.insert("us-east-1".to_owned(), a.to_owned());
        amis.insert("eu-west-1".to_owned(), format!("{a}-eu"));
    }
    PresetReport {
        name: name.to_owned(),
        status,
        ami_id: ami.map(str::to_owned),
        updated_at: Some("2026-01-27T12:00:00Z".to_owned()),
        architecture: Some(Architecture::X86_64),
        amis,
        built_at: None,
        pinned: false,
        warnings: Vec::new(),
        display_name: None,
    }
}

fn report(presets: Vec<PresetReport>, stale: bool) -> StatusReport {
    let (status, message) = summarise(&presets);
    StatusReport {
        status,
        message,
        presets,
        generated_at: "2026-01-27T12:05:00Z".to_owned(),
        stale,
    }
}

fn page(r: &StatusReport) -> String {
    render_page(r, now(), &PageOptions { refresh_secs: 15 })
}

#[test]
fn ready_page_has_banner_table_and_refresh() {
    let html = page(&report(
        vec![
            preset("linux-x64", PresetStatus::Ready, Some("ami-0123")),
            preset("linux-arm64", PresetStatus::Ready, Some("ami-0456")),
        ],
        false,
    ));
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{html}"
    );
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="15">"#),
        "{html}"
    );
    assert!(html.contains("prefers-color-scheme:dark"));
    assert!(
        html.contains(r#"data-status="ready" data-stale="false""#),
        "{html}"
    );
    assert!(html.contains(">Ready</h1>"));
    assert!(html.contains("All 2 presets ready"));
    assert!(html.contains(r#"<tr data-preset="linux-arm64" data-status="ready">"#));
    assert!(html.contains("<th scope=\"row\">linux-x64</th>"));
    assert!(html.contains("<code>ami-0123</code>"));
    assert!(html.contains("<code>ami-0123-eu</code>"));
    assert!(html.contains("<span class=\"region\">eu-west-1</span>"));
    // Updated: relative and absolute UTC; last updated from generatedAt.
    assert!(html.contains(">10 min ago</time>"), "{html}");
    assert!(html.contains("2026-01-27 12:00:00 UTC"));
    assert!(
        html.contains(r#"id="last-updated">2026-01-27 12:05:00 UTC</time>"#),
        "{html}"
    );
    assert!(html.contains("(5 min ago)"));
    assert!(!html.contains("Stale"));
    // No external assets or scripts.
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(!html.contains("src="));
}

#[test]
fn every_state_renders_its_banner() {
    let cases = [
        (
            vec![preset("a", PresetStatus::Building, None)],
            "building",
            "Building",
            "1 preset building",
        ),
        (
            vec![
                preset("a", PresetStatus::Ready, Some("ami-1")),
                preset("b", PresetStatus::Failed, None),
            ],
            "degraded",
            "Degraded",
            "1 of 2 presets ready; b failed",
        ),
        (
            vec![],
            "not_configured",
            "Not configured",
            "No presets configured",
        ),
    ];
    for (presets, status, title, message) in cases {
        let html = page(&report(presets, false));
        assert!(
            html.contains(&format!("banner tone-{status}\"")),
            "{status}: {html}"
        );
        assert!(html.contains(&format!(">{title}</h1>")), "{status}");
        assert!(html.contains(message), "{status}: {html}");
        assert!(
            html.contains(&format!("<title>{title} · kiln runner images</title>")),
            "{status}"
        );
    }
}

#[test]
fn empty_state_explains_what_to_do() {
    let html = page(&report(vec![], false));
    assert!(html.contains("No presets are configured yet"), "{html}");
    assert!(!html.contains("<table"));
}

#[test]
fn stale_is_visible_in_banner_title_and_data() {
    let html = page(&report(
        vec![preset("a", PresetStatus::Ready, Some("ami-1"))],
        true,
    ));
    assert!(html.contains("banner tone-ready stale"), "{html}");
    assert!(html.contains(r#"data-stale="true""#));
    assert!(html.contains("Stale: the status origin is not answering"));
    assert!(
        html.contains("snapshot from 2026-01-27 12:05:00 UTC"),
        "{html}"
    );
    assert!(html.contains("<title>Ready (stale) · kiln runner images</title>"));
}

#[test]
fn missing_amis_times_and_architectures_read_clearly() {
    let mut p = preset("fresh", PresetStatus::NotConfigured, None);
    p.updated_at = None;
    p.architecture = None;
    let mut odd = preset("odd", PresetStatus::Building, None);
    odd.updated_at = Some("yesterday-ish".to_owned());
    let html = page(&report(vec![p, odd], false));
    assert!(html.contains("no AMI yet"));
    assert!(html.contains(">never</span>"));
    assert!(html.contains("<td>—</td>"));
    assert!(
        html.contains("yesterday-ish"),
        "malformed time is shown verbatim"
    );
    assert_eq!(tile(&html, "building"), "1");
    assert_eq!(tile(&html, "not_configured"), "1");
    assert_eq!(tile(&html, "ready"), "0");
}

#[test]
fn home_region_ami_without_region_map_is_still_shown() {
    let mut p = preset("legacy", PresetStatus::Ready, Some("ami-9"));
    p.amis.clear();
    let html = page(&report(vec![p], false));
    assert!(html.contains("<code>ami-9</code>"), "{html}");
}

#[test]
fn text_is_escaped() {
    let mut p = preset("x", PresetStatus::Failed, None);
    p.name = "<script>alert(1)</script>".to_owned();
    let mut r = report(vec![p], false);
    r.message = "a & <b>".to_owned();
    let html = page(&r);
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("a &amp; &lt;b&gt;"));
}

#[test]
fn refresh_is_clamped_and_unavailable_page_renders() {
    let html = render_unavailable(&PageOptions { refresh_secs: 0 });
    assert!(html.contains(r#"content="5""#), "{html}");
    assert!(html.contains(">Status unavailable</h1>"));
    assert!(html.contains(r#"data-status="unavailable""#));
}

/// The number shown on a summary tile.
fn tile<'a>(html: &'a str, tone: &str) -> &'a str {
    let at = html.find(&format!("data-tile=\"{tone}\"")).expect("tile");
    let rest = &html[at..];
    let start = rest.find("class=\"n\">").expect("number") + 10;
    let rest = &rest[start..];
    &rest[..rest.find('<').unwrap()]
}

#[test]
fn each_warning_shows_beside_its_preset_escaped() {
    let mut warned = preset("linux-x64", PresetStatus::Ready, Some("ami-1"));
    warned.warnings = vec![
        kiln_shared::status::Warning {
            code: "ami_missing".into(),
            message: "AMI ami-1-eu in eu-west-1 is deregistered".into(),
            region: Some("eu-west-1".into()),
        },
        kiln_shared::status::Warning {
            code: "pipeline_disabled".into(),
            message: "The image pipeline is <disabled>".into(),
            region: None,
        },
    ];
    let fine = preset("linux-arm64", PresetStatus::Ready, Some("ami-2"));
    let html = page(&report(vec![warned, fine], false));
    let row = |name: &str| {
        let start = html.find(&format!("data-preset=\"{name}\"")).unwrap();
        let end = html[start..].find("</tr>").unwrap() + start;
        html[start..end].to_owned()
    };
    let x64 = row("linux-x64");
    assert!(
        x64.contains(
            "AMI ami-1-eu in eu-west-1 is deregistered; The image pipeline is &lt;disabled&gt;"
        ),
        "{x64}"
    );
    assert!(
        row("linux-arm64").contains("<p class=\"warn hide\">"),
        "no warning: hidden: {html}"
    );
}

#[test]
fn a_display_name_leads_the_row_and_is_escaped() {
    let mut shown = preset("r-research-x64", PresetStatus::Ready, Some("ami-0123"));
    shown.display_name = Some("R <Research> & Co".into());
    let html = page(&report(
        vec![shown, preset("tiny", PresetStatus::Ready, Some("ami-0456"))],
        false,
    ));
    assert!(
        html.contains("R &lt;Research&gt; &amp; Co (r-research-x64)"),
        "{html}"
    );
    assert!(html.contains(">tiny</th>"), "{html}");
}
