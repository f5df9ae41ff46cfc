//! The readiness page: one self-contained HTML document per request.
//!
//! Works without JavaScript (a meta refresh reloads it), carries its CSS inline, and uses
//! semantic markup (a live status region, a real table with header cells) so that screen
//! readers and wall screens read the same facts.

use chrono::{DateTime, Utc};
use kiln_shared::{OverallStatus, PresetReport, PresetStatus, StatusReport, time};
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;

use crate::style::CSS;
use crate::when::{absolute_utc, relative};

/// How the page is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageOptions {
    /// Seconds between automatic reloads (meta refresh). Never below 5.
    pub refresh_secs: u32,
}

impl Default for PageOptions {
    fn default() -> Self {
        PageOptions { refresh_secs: 30 }
    }
}

impl PageOptions {
    fn refresh(&self) -> u32 {
        self.refresh_secs.max(5)
    }
}

fn overall_title(s: OverallStatus) -> &'static str {
    match s {
        OverallStatus::Ready => "Ready",
        OverallStatus::Building => "Building",
        OverallStatus::Degraded => "Degraded",
        OverallStatus::NotConfigured => "Not configured",
    }
}

fn preset_title(s: PresetStatus) -> &'static str {
    match s {
        PresetStatus::Ready => "Ready",
        PresetStatus::Building => "Building",
        PresetStatus::Failed => "Failed",
        PresetStatus::NotConfigured => "Not configured",
    }
}

/// A timestamp from the report: relative and absolute when it parses, verbatim when not
/// (a malformed time is shown, not hidden).
#[component]
fn When(at: Option<String>, now: DateTime<Utc>) -> impl IntoView {
    match at {
        None => EitherOf3::A(view! { <span class="none">"never"</span> }),
        Some(raw) => match time::parse(&raw) {
            Ok(t) => EitherOf3::B(view! {
                <time datetime=raw title=absolute_utc(t)>{relative(t, now)}</time>
                <span class="abs">{absolute_utc(t)}</span>
            }),
            Err(_) => EitherOf3::C(view! { <span>{raw}</span> }),
        },
    }
}

#[component]
fn Banner(
    status: OverallStatus,
    stale: bool,
    message: String,
    generated_at: String,
) -> impl IntoView {
    let class = format!(
        "banner tone-{}{}",
        status.as_str(),
        if stale { " stale" } else { "" }
    );
    let stale_note = stale.then(|| {
        let when = time::parse(&generated_at)
            .map(absolute_utc)
            .unwrap_or(generated_at);
        view! {
            <p class="stale-note">
                {format!(
                    "Stale: the status origin is not answering; showing the last known good snapshot from {when}."
                )}
            </p>
        }
    });
    view! {
        <section class=class role="status" aria-live="polite" aria-labelledby="overall" data-status=status.as_str() data-stale=stale.to_string()>
            <span class="dot" aria-hidden="true"></span>
            <div>
                <h1 id="overall">{overall_title(status)}</h1>
                <p class="message">{message}</p>
                {stale_note}
            </div>
        </section>
    }
}

#[component]
fn Tiles(presets: Vec<PresetReport>) -> impl IntoView {
    let count = |s: PresetStatus| presets.iter().filter(|p| p.status == s).count();
    let tiles = [
        ("ready", "Ready", count(PresetStatus::Ready)),
        ("building", "Building", count(PresetStatus::Building)),
        ("failed", "Failed", count(PresetStatus::Failed)),
        (
            "not_configured",
            "Not configured",
            count(PresetStatus::NotConfigured),
        ),
    ];
    view! {
        <ul class="tiles" aria-label="Presets by status">
            {tiles
                .into_iter()
                .map(|(tone, label, n)| {
                    view! {
                        <li class=format!("tone-{tone}{}", if n == 0 { " zero" } else { "" }) data-tile=tone>
                            <span class="n">{n}</span>
                            <span class="k">{label}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

#[component]
fn PresetRow(preset: PresetReport, now: DateTime<Utc>) -> impl IntoView {
    let status = preset.status;
    let arch = preset
        .architecture
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| "—".to_owned());
    // `amis` is per region; older records may carry only the home-region `amiId`.
    let amis: Vec<(String, String)> = if preset.amis.is_empty() {
        preset
            .ami_id
            .iter()
            .map(|a| (String::new(), a.clone()))
            .collect()
    } else {
        preset.amis.into_iter().collect()
    };
    let amis_view = if amis.is_empty() {
        Either::Left(view! { <span class="none">"no AMI yet"</span> })
    } else {
        Either::Right(view! {
            <ul class="amis">
                {amis
                    .into_iter()
                    .map(|(region, ami)| {
                        view! {
                            <li>
                                <span class="region">{region}</span>
                                <code>{ami}</code>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        })
    };
    let name = match &preset.display_name {
        Some(shown) => format!("{shown} ({})", preset.name),
        None => preset.name.clone(),
    };
    // Warnings (old AMI, disabled pipeline, missing AMI, revoked build) as one line.
    let mut warn = String::new();
    for w in &preset.warnings {
        if !warn.is_empty() {
            warn.push_str("; ");
        }
        warn.push_str(&w.message);
    }
    let warn_class = if warn.is_empty() { "warn hide" } else { "warn" };
    view! {
        <tr data-preset=preset.name data-status=status.as_str()>
            <th scope="row">{name}</th>
            <td>{arch}</td>
            <td><span class=format!("pill tone-{}", status.as_str())>{preset_title(status)}</span><p class=warn_class>{warn}</p></td>
            <td>{amis_view}</td>
            <td><When at=preset.updated_at now=now/></td>
        </tr>
    }
}

#[component]
fn Presets(presets: Vec<PresetReport>, now: DateTime<Utc>) -> impl IntoView {
    let n = presets.len();
    let body = if presets.is_empty() {
        Either::Left(view! {
            <p class="empty">
                "No presets are configured yet. Add a preset YAML file under "
                <code>"presets/"</code> " and deploy."
            </p>
        })
    } else {
        Either::Right(view! {
            <div class="scroll">
                <table>
                    <caption class="sr-only">"Runner image presets and their AMIs"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Preset"</th>
                            <th scope="col">"Arch"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"AMI per region"</th>
                            <th scope="col">"Updated"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {presets
                            .into_iter()
                            .map(|p| view! { <PresetRow preset=p now=now/> })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        })
    };
    view! {
        <section class="card" aria-labelledby="presets-h">
            <h2 id="presets-h">{format!("Presets ({n})")}</h2>
            {body}
        </section>
    }
}

fn document(title: String, refresh: u32, body: impl IntoView + 'static) -> String {
    let html = view! {
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <meta http-equiv="refresh" content=refresh.to_string()/>
                <title>{title}</title>
                <style inner_html=CSS></style>
            </head>
            <body>
                <main class="wrap">{body}</main>
            </body>
        </html>
    }
    .to_html();
    format!("<!DOCTYPE html>{html}")
}

fn footer(refresh: u32) -> impl IntoView {
    view! {
        <footer>
            {format!("This page refreshes every {refresh} s. ")}
            "Machine-readable: " <a href="/status">"/status"</a> " · "
            <a href="/badge.svg">"badge"</a> " · " <a href="/badge.json">"shields.io endpoint"</a>
        </footer>
    }
}

/// The readiness page for a report, as seen at `now`.
pub fn render_page(report: &StatusReport, now: DateTime<Utc>, opts: &PageOptions) -> String {
    render_page_with(report, now, opts, "")
}

/// [`render_page`] with the history section ([`crate::render_history`]'s HTML, as the
/// origin rendered it) after the presets table; empty for none.
pub fn render_page_with(
    report: &StatusReport,
    now: DateTime<Utc>,
    opts: &PageOptions,
    history_html: &str,
) -> String {
    let history = (!history_html.is_empty())
        .then(|| view! { <div inner_html=history_html.to_owned()></div> });
    let refresh = opts.refresh();
    let title = format!(
        "{}{} · kiln runner images",
        overall_title(report.status),
        if report.stale { " (stale)" } else { "" }
    );
    let updated = match time::parse(&report.generated_at) {
        Ok(t) => Either::Left(view! {
            "Last updated "
            <time datetime=report.generated_at.clone() id="last-updated">{absolute_utc(t)}</time>
            {format!(" ({})", relative(t, now))}
        }),
        Err(_) => Either::Right(view! {
            "Last updated " <span id="last-updated">{report.generated_at.clone()}</span>
        }),
    };
    let body = view! {
        <header class="top">
            <p class="brand">"kiln " <span>"runner image readiness"</span></p>
            <p class="updated">{updated}</p>
        </header>
        <Banner
            status=report.status
            stale=report.stale
            message=report.message.clone()
            generated_at=report.generated_at.clone()
        />
        <Tiles presets=report.presets.clone()/>
        <Presets presets=report.presets.clone() now=now/>
        {history}
        {footer(refresh)}
    };
    document(title, refresh, body)
}

/// The page when the edge has no snapshot at all (origin unreachable since first start).
pub fn render_unavailable(opts: &PageOptions) -> String {
    let refresh = opts.refresh();
    let body = view! {
        <header class="top">
            <p class="brand">"kiln " <span>"runner image readiness"</span></p>
        </header>
        <section class="banner tone-not_configured" role="status" aria-live="polite" aria-labelledby="overall" data-status="unavailable">
            <span class="dot" aria-hidden="true"></span>
            <div>
                <h1 id="overall">"Status unavailable"</h1>
                <p class="message">
                    "No status snapshot is available yet and the status origin is not answering."
                </p>
            </div>
        </section>
        {footer(refresh)}
    };
    document(
        "Status unavailable · kiln runner images".to_owned(),
        refresh,
        body,
    )
}

#[cfg(test)]
mod tests;
