//! EventBridge / Image Builder cron expressions.

/// Default rebuild schedule: weekly, Sunday 04:00 UTC.
pub const DEFAULT_SCHEDULE: &str = "cron(0 4 ? * SUN *)";

/// Validates an EventBridge / Image Builder cron expression (six fields: minutes hours
/// day-of-month month day-of-week year) and returns it wrapped as `cron(…)`.
pub fn normalise_cron(expr: &str) -> Result<String, String> {
    let inner = expr
        .trim()
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(expr.trim());
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "malformed cron '{expr}': expected 6 fields (minutes hours day-of-month month day-of-week year), e.g. {DEFAULT_SCHEDULE}"
        ));
    }
    let specs: [(&str, u32, u32, &[&str]); 6] = [
        ("minutes", 0, 59, &[]),
        ("hours", 0, 23, &[]),
        ("day-of-month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
        ),
        (
            "day-of-week",
            1,
            7,
            &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        ),
        ("year", 1970, 2199, &[]),
    ];
    for (field, (name, lo, hi, names)) in fields.iter().zip(specs) {
        check_cron_field(field, name, lo, hi, names).map_err(|reason| {
            format!("malformed cron '{expr}': {name} field '{field}' {reason}")
        })?;
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(format!(
            "malformed cron '{expr}': exactly one of day-of-month and day-of-week must be '?'"
        ));
    }
    Ok(format!("cron({})", fields.join(" ")))
}

fn check_cron_field(
    field: &str,
    name: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
) -> Result<(), String> {
    let day_field = name == "day-of-month" || name == "day-of-week";
    if field == "?" {
        return if day_field {
            Ok(())
        } else {
            Err("'?' is only allowed in day fields".into())
        };
    }
    let value = |v: &str| -> Result<u32, String> {
        let v = if name == "day-of-month" {
            v.trim_end_matches('W')
        } else {
            v
        };
        let v = if day_field {
            v.trim_end_matches('L')
        } else {
            v
        };
        if day_field && (v.is_empty() || v == "L") {
            return Ok(lo);
        }
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(lo + i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!("has '{v}', outside {lo}-{hi}")),
        }
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step
            && !step.parse::<u32>().is_ok_and(|s| s > 0)
        {
            return Err(format!("has step '{step}', expected a positive number"));
        }
        if range == "*" {
            continue;
        }
        if name == "day-of-week"
            && let Some((d, n)) = range.split_once('#')
        {
            value(d)?;
            if !n.parse::<u32>().is_ok_and(|n| (1..=5).contains(&n)) {
                return Err(format!("has '#{n}', expected #1-#5"));
            }
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                value(a)?;
                value(b)?;
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}
