//! Human times for the page: "3 min ago" next to "2026-01-27 12:00 UTC".

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Coarse relative time, rounded down. Times in the future (clock skew between the
/// origin and the edge) read "just now" rather than a confusing negative age.
pub fn relative(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    match secs {
        ..=9 => "just now".to_owned(),
        10..=59 => format!("{secs} s ago"),
        60..=3_599 => format!("{} min ago", secs / 60),
        3_600..=86_399 => format!("{} h ago", secs / 3_600),
        _ => {
            let days = secs / 86_400;
            if days == 1 {
                "1 day ago".to_owned()
            } else {
                format!("{days} days ago")
            }
        }
    }
}

/// `2026-01-27 12:00:05 UTC`: unambiguous on a wall screen in any time zone.
pub fn absolute_utc(at: DateTime<Utc>) -> String {
    // By hand rather than `format("%Y…")`: chrono's strftime machinery is a sizeable
    // share of the Worker's wasm.
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        kiln_shared::time::parse(s).unwrap()
    }

    #[test]
    fn relative_buckets() {
        let now = at("2026-01-27T12:00:00Z");
        let cases = [
            ("2026-01-27T12:00:05Z", "just now"),
            ("2026-01-27T11:59:51Z", "just now"),
            ("2026-01-27T11:59:50Z", "10 s ago"),
            ("2026-01-27T11:59:01Z", "59 s ago"),
            ("2026-01-27T11:59:00Z", "1 min ago"),
            ("2026-01-27T11:00:01Z", "59 min ago"),
            ("2026-01-27T11:00:00Z", "1 h ago"),
            ("2026-01-26T12:00:01Z", "23 h ago"),
            ("2026-01-26T12:00:00Z", "1 day ago"),
            ("2026-01-20T12:00:00Z", "7 days ago"),
        ];
        for (then, want) in cases {
            assert_eq!(relative(at(then), now), want, "{then}");
        }
    }

    #[test]
    fn absolute_is_utc_with_seconds() {
        assert_eq!(
            absolute_utc(at("2026-01-27T13:04:05+01:00")),
            "2026-01-27 12:04:05 UTC"
        );
    }
}
