//! XEP-0082 date and time profiles: the `DateTime` form in UTC
//! (`1969-07-21T02:56:15Z`), written and read without a calendar crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Format a time as `YYYY-MM-DDThh:mm:ss.sssZ` (milliseconds kept, so
/// that stamps of messages in the same second still order).
pub fn to_xep82(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Parse an XEP-0082 `DateTime` (with `Z` or a `±hh:mm` offset and optional
/// fractional seconds).
pub fn parse_xep82(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let rest = rest.strip_prefix('T')?;
    let (hms, mut tail) = rest.split_at(8);
    let mut tp = hms.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let se: i64 = tp.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut millis = 0u64;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        let ms: String = digits.chars().chain("000".chars()).take(3).collect();
        millis = ms.parse().ok()?;
        tail = &frac[digits.len()..];
    }
    let offset: i64 = match tail {
        "Z" => 0,
        t if t.len() == 6 && (t.starts_with('+') || t.starts_with('-')) => {
            let oh: i64 = t[1..3].parse().ok()?;
            let om: i64 = t[4..6].parse().ok()?;
            let o = oh * 3600 + om * 60;
            if t.starts_with('+') {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    if secs < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_xep_example() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(to_xep82(t), "2001-09-09T01:46:40.000Z");
    }

    #[test]
    fn parses_what_it_writes_and_offsets() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(parse_xep82(&to_xep82(t)), Some(t));
        assert_eq!(
            parse_xep82("2001-09-09T03:46:40+02:00"),
            Some(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        );
        assert_eq!(
            parse_xep82("2001-09-09T01:46:40Z"),
            parse_xep82("2001-09-09T01:46:40.000Z")
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2001-13-09T01:46:40Z",
            "2001-09-09 01:46:40Z",
            "2001-09-09T01:46:40",
            "2001-09-09T01:46:40.Z",
            "ä001-09-09T01:46:40Z",
        ] {
            assert_eq!(parse_xep82(bad), None, "{bad}");
        }
    }
}
