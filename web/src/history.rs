//! The page's history section: per preset a 90-day bar (one element per day with
//! `data-day` and a readable title, coloured *and* labelled), uptime over the standard
//! windows, the current image's age and the last builds.
//!
//! Rendered where the history is (the origin, beside the feeds) and inserted into the
//! page by the Worker as it is: its CSS travels with it, so the Worker's wasm carries
//! neither this renderer nor its styles.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use kiln_shared::feeds::atom::escape;
use kiln_shared::feeds::{age_text, last_success, percent};
use kiln_shared::history::{BuildSummary, Day, PresetHistory};
use kiln_shared::time;
use leptos::prelude::*;

/// Builds listed per preset on the page (the JSON has up to 20).
pub const PAGE_BUILDS: usize = 5;

const CSS: &str = ".bar{display:flex;gap:1px;list-style:none;margin:8px 0;padding:0;height:28px}\
.bar li{flex:1;min-width:2px;border-radius:2px;background:var(--none-bg)}\
.bar li.d-full{background:var(--ready)}.bar li.d-part{background:var(--building)}\
.bar li.d-down{background:var(--failed)}.bar li.d-none{background:var(--line)}\
.hist{padding:12px 20px;border-top:1px solid var(--line)}.hist h3{margin:0;font-size:1.05rem}\
.hist p{margin:4px 0;color:var(--muted);font-variant-numeric:tabular-nums}\
.legend span{margin-right:1em}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em;border-radius:2px}\
.builds{width:100%;border-collapse:collapse;font-size:.9rem}.builds td,.builds th{padding:4px 8px;text-align:left}";

fn day_class(d: &Day) -> &'static str {
    match d.ready {
        None => "d-none",
        Some(r) if r >= 1.0 => "d-full",
        Some(r) if r <= 0.0 => "d-down",
        Some(_) => "d-part",
    }
}

/// The day elements as HTML text, written straight into one buffer. They are 90 per
/// preset, nearly all of the section, and per-day `String`s (label, percent, escaping)
/// made it miss its budget (bench `ssr/history`).
fn bar_html(days: &[Day]) -> String {
    let mut out = String::with_capacity(days.len() * 130);
    for d in days {
        // Dates are kiln's own `YYYY-MM-DD`; anything else is escaped.
        let date = if d.date.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            std::borrow::Cow::Borrowed(d.date.as_str())
        } else {
            std::borrow::Cow::Owned(escape(&d.date))
        };
        let label = |out: &mut String| {
            out.push_str(&date);
            match d.ready {
                None => out.push_str(": no data"),
                Some(r) => {
                    out.push_str(": ready ");
                    push_percent(out, r);
                }
            }
        };
        out.push_str(r#"<li data-day=""#);
        out.push_str(&date);
        out.push_str(r#"" title=""#);
        label(&mut out);
        out.push_str(r#"" class=""#);
        out.push_str(day_class(d));
        out.push_str(r#""><span class="sr-only">"#);
        label(&mut out);
        out.push_str("</span></li>");
    }
    out
}

/// [`percent`]'s text (`99.95 %`, `100 %`) without its intermediate strings.
fn push_percent(out: &mut String, r: f64) {
    let hundredths = (r * 10_000.0).round() as i64;
    let (whole, frac) = (hundredths / 100, (hundredths % 100).abs());
    let _ = match frac {
        0 => write!(out, "{whole} %"),
        f if f % 10 == 0 => write!(out, "{whole}.{} %", f / 10),
        f => write!(out, "{whole}.{f:02} %"),
    };
}

fn duration(b: &BuildSummary) -> String {
    match (time::parse(&b.started_at).ok(), b.finished()) {
        (Some(s), Some(e)) => {
            let m = (e - s).num_minutes();
            format!("{m} min")
        }
        _ => "running".to_owned(),
    }
}

#[component]
fn PresetHistoryView(h: PresetHistory, now: DateTime<Utc>) -> impl IntoView {
    let age = last_success(&h)
        .and_then(BuildSummary::finished)
        .map(|t| age_text((now - t).num_seconds()))
        .unwrap_or_else(|| "no image yet".to_owned());
    let down = h
        .days
        .iter()
        .filter(|d| d.ready.is_some_and(|r| r < 1.0))
        .count();
    let u = h.uptime;
    let uptime = format!(
        "Uptime: 24 h {} · 7 d {} · 30 d {} · 90 d {} · Image age: {age} · Days with downtime: {down}",
        percent(u.h24),
        percent(u.d7),
        percent(u.d30),
        percent(u.d90)
    );
    let days = bar_html(&h.days);
    let builds = h
        .builds
        .iter()
        .take(PAGE_BUILDS)
        .map(|b| {
            view! {
                <tr data-outcome=b.outcome.as_str()>
                    <td><code>{b.version.clone()}</code></td>
                    <td>
                        <span class=format!("pill tone-{}", match b.outcome.as_str() {
                            "available" => "ready",
                            "building" => "building",
                            _ => "failed",
                        })>{b.outcome.as_str()}</span>
                    </td>
                    <td>{b.started_at.clone()}</td>
                    <td>{duration(b)}</td>
                </tr>
            }
        })
        .collect_view();
    let name = h.name.clone();
    view! {
        <article class="hist" data-preset=h.name>
            <h3>{name}</h3>
            <p class="uptime">{uptime}</p>
            <ol class="bar" aria-label="Readiness per day, last 90 days, oldest first" inner_html=days></ol>
            <table class="builds">
                <caption class="sr-only">"Last builds"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Build"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col">"Started (UTC)"</th>
                        <th scope="col">"Duration"</th>
                    </tr>
                </thead>
                <tbody>{builds}</tbody>
            </table>
        </article>
    }
}

/// The history section for the presets' histories, as seen at `now`.
pub fn render_history(histories: &[PresetHistory], now: DateTime<Utc>) -> String {
    let items = histories
        .iter()
        .cloned()
        .map(|h| view! { <PresetHistoryView h=h now=now/> })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="history-h" id="history">
            <style inner_html=CSS></style>
            <h2 id="history-h">"History (90 days, UTC)"</h2>
            <p class="legend hist">
                <span><i class="d-full" style="background:var(--ready)"></i>"ready all day"</span>
                <span><i style="background:var(--building)"></i>"ready part of the day"</span>
                <span><i style="background:var(--failed)"></i>"not ready"</span>
                <span><i style="background:var(--line)"></i>"no data"</span>
            </p>
            {items}
        </section>
    }
    .to_html()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_shared::history::{Outcome, Tests, Uptime};

    #[test]
    fn every_day_has_a_date_a_class_and_a_readable_title() {
        let days: Vec<Day> = (0..90)
            .map(|i| Day {
                date: format!("2026-09-{:02}", i % 30 + 1),
                ready: match i {
                    0..=9 => None,
                    10 => Some(0.0),
                    11 => Some(0.5),
                    _ => Some(1.0),
                },
            })
            .collect();
        let h = PresetHistory {
            name: "linux-x64".into(),
            days,
            uptime: Uptime {
                h24: Some(1.0),
                d7: Some(0.99),
                d30: Some(0.9951),
                d90: None,
            },
            builds: vec![BuildSummary {
                version: "1.0.0/2".into(),
                outcome: Outcome::Failed,
                started_at: "2026-11-30T10:00:00Z".into(),
                finished_at: Some("2026-11-30T10:12:00Z".into()),
                amis: Default::default(),
                tests: Tests::default(),
            }],
        };
        let now = time::parse("2026-12-01T00:00:00Z").unwrap();
        let html = render_history(&[h], now);
        assert_eq!(html.matches("data-day=").count(), 90);
        assert!(html.contains(r#"title="2026-09-12: ready 50 %""#), "{html}");
        assert!(
            html.contains(r#"title="2026-09-11: ready 0 %" class="d-down""#),
            "{html}"
        );
        assert!(html.contains("2026-09-01: no data"));
        assert!(
            html.contains("30 d 99.51 %") && html.contains("90 d n/a"),
            "{html}"
        );
        assert!(html.contains("Image age: no image yet"));
        assert!(
            html.contains(">12 min<") && html.contains(">failed<"),
            "{html}"
        );
        assert!(html.contains("Days with downtime: 2"));
    }

    #[test]
    fn day_percentages_read_as_the_page_elsewhere_reads_them() {
        for i in 0..=10_000 {
            let r = f64::from(i) / 10_000.0;
            let mut fast = String::new();
            push_percent(&mut fast, r);
            assert_eq!(fast, percent(Some(r)), "{r}");
        }
        for r in [1.0 / 3.0, 2.0 / 3.0, 0.99951, 0.123_456] {
            let mut fast = String::new();
            push_percent(&mut fast, r);
            assert_eq!(fast, percent(Some(r)), "{r}");
        }
        let odd = Day {
            date: "<x>".into(),
            ready: Some(0.5),
        };
        let html = bar_html(&[odd]);
        assert!(
            html.starts_with(
                r#"<li data-day="&lt;x&gt;" title="&lt;x&gt;: ready 50 %" class="d-part">"#
            ),
            "{html}"
        );
    }
}
