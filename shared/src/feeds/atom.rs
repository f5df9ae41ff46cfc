//! The Atom 1.0 feed (RFC 4287): one entry per finished build and per warning raised or
//! cleared, newest first, with ids that never change (`urn:kiln:<preset>:build:<version>`,
//! `urn:kiln:<preset>:warning:<key>:raised|cleared:<unix seconds>`).
//!
//! Links are relative to the feed's own URL (the Worker's `/feed.atom`), so the origin
//! renders it without knowing the public host.

use std::fmt::Write;

use crate::history::{BuildSummary, PresetHistory};
use crate::state::health::WarningTransition;

/// Entries in the feed (across presets).
pub const MAX_ENTRIES: usize = 50;

/// XML text/attribute escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A stable entry id.
pub fn entry_id(preset: &str, version: &str) -> String {
    format!("urn:kiln:{preset}:build:{version}")
}

fn summary_text(preset: &str, b: &BuildSummary) -> String {
    let mut s = format!("Build {} of {preset}: {}.", b.version, b.outcome.as_str());
    if let (Some(start), Some(end)) = (crate::time::parse(&b.started_at).ok(), b.finished()) {
        let mins = (end - start).num_minutes();
        let _ = write!(
            s,
            " Took {mins} minute{}.",
            if mins == 1 { "" } else { "s" }
        );
    }
    if !b.amis.is_empty() {
        let list: Vec<String> = b.amis.iter().map(|(r, a)| format!("{a} ({r})")).collect();
        let _ = write!(s, " AMIs: {}.", list.join(", "));
    }
    if let (Some(p), Some(f)) = (b.tests.passed, b.tests.failed) {
        let _ = write!(s, " Tests: {p} passed, {f} failed.");
    } else if b.outcome.is_failure() {
        s.push_str(" Validation tests failed.");
    }
    s
}

/// A stable id of a warning transition's entry.
pub fn warning_entry_id(preset: &str, t: &WarningTransition) -> String {
    format!(
        "urn:kiln:{preset}:warning:{}:{}:{}",
        t.key,
        if t.raised { "raised" } else { "cleared" },
        t.at.timestamp()
    )
}

struct Entry {
    at: String,
    id: String,
    title: String,
    category: &'static str,
    summary: String,
}

fn build_entry(preset: &str, b: &BuildSummary, at: &str) -> Entry {
    Entry {
        at: at.to_owned(),
        id: entry_id(preset, &b.version),
        title: format!("{preset}: build {} {}", b.version, b.outcome.as_str()),
        category: b.outcome.as_str(),
        summary: summary_text(preset, b),
    }
}

fn warning_entry(preset: &str, t: &WarningTransition) -> Entry {
    let what = if t.raised { "raised" } else { "cleared" };
    Entry {
        at: crate::time::format(t.at),
        id: warning_entry_id(preset, t),
        title: format!("{preset}: warning {} {what}", t.key),
        category: "warning",
        summary: format!("Warning {what} for {preset}: {}", t.message),
    }
}

/// The feed: finished builds and warning transitions (`(preset, transition)`), newest
/// first. `fallback_updated` dates a feed without entries (it must carry one).
pub fn render(
    histories: &[PresetHistory],
    transitions: &[(String, WarningTransition)],
    fallback_updated: &str,
) -> String {
    let mut entries: Vec<Entry> = histories
        .iter()
        .flat_map(|h| {
            h.builds.iter().filter_map(move |b| {
                b.finished_at
                    .as_deref()
                    .map(|at| build_entry(&h.name, b, at))
            })
        })
        .chain(transitions.iter().map(|(p, t)| warning_entry(p, t)))
        .collect();
    entries.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    entries.truncate(MAX_ENTRIES);
    let updated = entries.first().map_or(fallback_updated, |e| e.at.as_str());
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    x.push_str("<id>urn:kiln:builds</id>\n<title>kiln: runner image builds</title>\n");
    let _ = writeln!(x, "<updated>{}</updated>", escape(updated));
    x.push_str("<link rel=\"self\" type=\"application/atom+xml\" href=\"feed.atom\"/>\n");
    x.push_str("<link rel=\"alternate\" type=\"text/html\" href=\"./\"/>\n");
    x.push_str("<author><name>kiln</name></author>\n<generator>kiln</generator>\n");
    for e in entries {
        let _ = writeln!(
            x,
            "<entry>\n<id>{}</id>\n<title>{}</title>\n<updated>{at}</updated>\n<published>{at}</published>\n\
             <category term=\"{}\"/>\n<link rel=\"alternate\" type=\"text/html\" href=\"./\"/>\n\
             <summary type=\"text\">{}</summary>\n</entry>",
            escape(&e.id),
            escape(&e.title),
            e.category,
            escape(&e.summary),
            at = escape(&e.at),
        );
    }
    x.push_str("</feed>\n");
    x
}
