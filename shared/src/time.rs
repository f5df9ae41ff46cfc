//! Timestamps as DynamoDB and `/status` store them: ISO-8601 UTC, second precision.
//!
//! One fixed format means stored timestamps compare correctly as strings, which the
//! conditional writes in DynamoDB rely on.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

/// `2026-01-27T12:00:00Z`.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not an RFC 3339 timestamp: {0}")]
    Syntax(#[from] chrono::ParseError),
    /// `9999-12-31T23:59:59-01:00` is year 10000 in UTC, which [`format`] writes as
    /// `+10000-…`: neither fixed-width nor parseable, so a record holding it would sort
    /// wrongly and never load again.
    #[error("year {0} in UTC is outside 0000-9999")]
    OutOfRange(i32),
}

/// Parses any RFC 3339 timestamp (any offset, any fractional precision) and truncates it
/// to whole seconds in UTC. Refuses times whose UTC year has other than four digits.
pub fn parse(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let parsed = DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc);
    if !(0..=9999).contains(&parsed.year()) {
        return Err(TimeError::OutOfRange(parsed.year()));
    }
    Ok(truncate(parsed))
}

/// Drops sub-second precision, so that times from events (seconds) and from Image
/// Builder's `dateCreated` (milliseconds) order consistently.
pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// Serde adapter for `DateTime<Utc>` fields in the fixed format.
pub mod serde_secs {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for `Option<DateTime<Utc>>` fields in the fixed format.
pub mod serde_secs_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&super::format(*at)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::parse(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_second_precision_and_z() {
        let at = parse("2026-01-27T13:00:00.987+01:00").unwrap();
        assert_eq!(format(at), "2026-01-27T12:00:00Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse("27/01/2026").is_err());
        assert!(parse("2026-01-27 12:00").is_err());
    }

    #[test]
    fn offsets_cannot_leave_the_four_digit_years() {
        assert_eq!(
            parse("9999-12-31T23:59:59-01:00"),
            Err(TimeError::OutOfRange(10000))
        );
        let last = parse("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(parse(&format(last)), Ok(last));
        let first = parse("0000-01-01T00:30:00+00:30").unwrap();
        assert_eq!(format(first), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn fixed_format_sorts_like_time() {
        let a = format(parse("2026-01-27T09:59:59Z").unwrap());
        let b = format(parse("2026-01-27T10:00:00.5Z").unwrap());
        assert!(a < b);
    }
}
