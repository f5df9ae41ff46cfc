//! The Atom 1.0 feed (RFC 4287): one entry per finished build, newest first, with ids
//! that never change (`urn:kiln:<preset>:build:<version>`).
//!
//! Links are relative to the feed's own URL (the Worker's `/feed.atom`), so the origin
//! renders it without knowing the public host.

use std::fmt::Write;

use crate::history::{BuildSummary, PresetHistory};

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

/// The feed. `fallback_updated` dates a feed without entries (it must carry one).
pub fn render(histories: &[PresetHistory], fallback_updated: &str) -> String {
    let mut entries: Vec<(&str, &BuildSummary, &str)> = histories
        .iter()
        .flat_map(|h| {
            h.builds
                .iter()
                .filter_map(move |b| b.finished_at.as_deref().map(|at| (at, b, h.name.as_str())))
        })
        .collect();
    entries.sort_by(|a, b| (b.0, b.2, &b.1.version).cmp(&(a.0, a.2, &a.1.version)));
    entries.truncate(MAX_ENTRIES);
    let updated = entries.first().map_or(fallback_updated, |e| e.0);
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    x.push_str("<id>urn:kiln:builds</id>\n<title>kiln: runner image builds</title>\n");
    let _ = writeln!(x, "<updated>{}</updated>", escape(updated));
    x.push_str("<link rel=\"self\" type=\"application/atom+xml\" href=\"feed.atom\"/>\n");
    x.push_str("<link rel=\"alternate\" type=\"text/html\" href=\"./\"/>\n");
    x.push_str("<author><name>kiln</name></author>\n<generator>kiln</generator>\n");
    for (at, b, preset) in entries {
        let title = format!("{preset}: build {} {}", b.version, b.outcome.as_str());
        let _ = writeln!(
            x,
            "<entry>\n<id>{}</id>\n<title>{}</title>\n<updated>{at}</updated>\n<published>{at}</published>\n\
             <category term=\"{}\"/>\n<link rel=\"alternate\" type=\"text/html\" href=\"./\"/>\n\
             <summary type=\"text\">{}</summary>\n</entry>",
            escape(&entry_id(preset, &b.version)),
            escape(&title),
            b.outcome.as_str(),
            escape(&summary_text(preset, b)),
            at = escape(at),
        );
    }
    x.push_str("</feed>\n");
    x
}
