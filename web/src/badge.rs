//! The status badge: an SVG in the familiar flat style and the shields.io endpoint JSON
//! (<https://shields.io/badges/endpoint-badge>), both from the overall status.

use kiln_shared::OverallStatus;
use leptos::prelude::*;

/// What a badge says, shared by the SVG and the shields.io JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: &'static str,
    pub message: String,
    /// Hex colour for our own SVG.
    pub color: &'static str,
    /// shields.io named colour, so their renderer picks its matching palette.
    pub shields_color: &'static str,
}

impl Badge {
    pub fn new(status: OverallStatus, stale: bool) -> Self {
        let (word, color, shields_color) = match status {
            OverallStatus::Ready => ("ready", "#1f883d", "brightgreen"),
            OverallStatus::Building => ("building", "#0969da", "blue"),
            OverallStatus::Degraded => ("degraded", "#cf222e", "red"),
            OverallStatus::NotConfigured => ("not configured", "#6e7781", "lightgrey"),
        };
        let message = if stale {
            format!("{word} (stale)")
        } else {
            word.to_owned()
        };
        Badge {
            label: "runner images",
            message,
            color,
            shields_color,
        }
    }
}

/// Approximate rendered width of `text` in 11px Verdana: good enough that the text
/// never overflows its box (wide glyphs are counted wide).
fn text_width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | '\'' | '|' | '!' => 4,
            'f' | 't' | 'r' | ' ' | '(' | ')' | '-' => 5,
            'm' | 'w' | 'M' | 'W' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum()
}

/// The badge as a standalone SVG document.
pub fn badge_svg(status: OverallStatus, stale: bool) -> String {
    render_badge_svg(&Badge::new(status, stale))
}

/// Any badge (status, uptime, age) as a standalone SVG document.
pub fn render_badge_svg(b: &Badge) -> String {
    let pad = 6;
    let lw = text_width(b.label) + 2 * pad;
    let mw = text_width(&b.message) + 2 * pad;
    let width = lw + mw;
    let aria = format!("{}: {}", b.label, b.message);
    let aria_title = aria.clone();
    let label = b.label;
    let message = b.message.clone();
    let message_shadow = b.message.clone();
    let color = b.color;
    let lx = lw / 2;
    let mx = lw + mw / 2;
    view! {
        <svg xmlns="http://www.w3.org/2000/svg" width=width height="20" role="img" aria-label=aria>
            <title>{aria_title}</title>
            <linearGradient id="s" x2="0" y2="100%">
                <stop offset="0" stop-color="#bbb" stop-opacity=".1"/>
                <stop offset="1" stop-opacity=".1"/>
            </linearGradient>
            <clipPath id="r"><rect width=width height="20" rx="3" fill="#fff"/></clipPath>
            <g clip-path="url(#r)">
                <rect width=lw height="20" fill="#555"/>
                <rect x=lw width=mw height="20" fill=color/>
                <rect width=width height="20" fill="url(#s)"/>
            </g>
            <g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">
                <text x=lx y="15" fill="#010101" fill-opacity=".3">{label}</text>
                <text x=lx y="14">{label}</text>
                <text x=mx y="15" fill="#010101" fill-opacity=".3">{message_shadow}</text>
                <text x=mx y="14">{message}</text>
            </g>
        </svg>
    }
    .to_html()
}

/// The shields.io endpoint document for the badge.
pub fn badge_json(status: OverallStatus, stale: bool) -> String {
    render_badge_json(&Badge::new(status, stale))
}

/// Any badge as a shields.io endpoint document; `isError` for a red badge.
pub fn render_badge_json(b: &Badge) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Endpoint<'a> {
        schema_version: u8,
        label: &'a str,
        message: &'a str,
        color: &'a str,
        is_error: bool,
    }
    serde_json::to_string(&Endpoint {
        schema_version: 1,
        label: b.label,
        message: &b.message,
        color: b.shields_color,
        is_error: b.shields_color == "red",
    })
    .expect("plain strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [OverallStatus; 4] = [
        OverallStatus::Ready,
        OverallStatus::Building,
        OverallStatus::Degraded,
        OverallStatus::NotConfigured,
    ];

    #[test]
    fn svg_names_the_status_in_text_and_for_screen_readers() {
        let svg = badge_svg(OverallStatus::Building, false);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains(r#"aria-label="runner images: building""#),
            "{svg}"
        );
        assert!(
            svg.contains("<title>runner images: building</title>"),
            "{svg}"
        );
        assert!(svg.contains(r##"fill="#0969da""##), "{svg}");
        assert!(svg.contains(">building</text>"), "{svg}");
    }

    #[test]
    fn every_status_has_its_own_colour_and_stale_is_said() {
        let colours: std::collections::BTreeSet<_> =
            ALL.iter().map(|s| Badge::new(*s, false).color).collect();
        assert_eq!(colours.len(), ALL.len());
        let svg = badge_svg(OverallStatus::Ready, true);
        assert!(svg.contains(">ready (stale)</text>"), "{svg}");
    }

    #[test]
    fn svg_width_grows_with_the_message() {
        let width = |svg: &str| -> u32 {
            let rest = &svg[svg.find("width=\"").unwrap() + 7..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        };
        let short = width(&badge_svg(OverallStatus::Ready, false));
        let long = width(&badge_svg(OverallStatus::NotConfigured, true));
        assert!(long > short + 50, "{short} vs {long}");
    }

    #[test]
    fn shields_endpoint_schema() {
        for s in ALL {
            let v: serde_json::Value = serde_json::from_str(&badge_json(s, false)).unwrap();
            assert_eq!(v["schemaVersion"], 1);
            assert_eq!(v["label"], "runner images");
            assert!(v["message"].as_str().unwrap().len() > 3);
            assert!(v["color"].is_string());
            assert_eq!(v["isError"], s == OverallStatus::Degraded);
        }
        let v: serde_json::Value =
            serde_json::from_str(&badge_json(OverallStatus::NotConfigured, true)).unwrap();
        assert_eq!(v["message"], "not configured (stale)");
        assert_eq!(v["color"], "lightgrey");
    }
}
