//! Wall-clock helpers: unix milliseconds now, and RFC 3339 / date parsing without a
//! calendar crate (days-from-civil arithmetic, proleptic Gregorian, UTC).

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DD` into unix milliseconds at midnight UTC.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    let (y, rest) = s.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (digits(y)? as i64, digits(m)?, digits(d)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// Parses an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, `...T10:00:00.5+02:00`)
/// into unix milliseconds. Returns `None` for anything else.
pub fn parse_rfc3339_signed_ms(s: &str) -> Option<i64> {
    if s.len() < 20 || !s.is_char_boundary(10) {
        return None;
    }
    let date = parse_date_ms(&s[..10])?;
    let sep = s.as_bytes()[10];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let rest = &s[11..];
    if rest.len() < 9 || !rest.is_char_boundary(8) {
        return None;
    }
    let (hms, mut tail) = rest.split_at(8);
    let mut parts = hms.split(':');
    let (h, mi, se) = (parts.next()?, parts.next()?, parts.next()?);
    if h.len() != 2 || mi.len() != 2 || se.len() != 2 {
        return None;
    }
    let (h, mi, se) = (digits(h)?, digits(mi)?, digits(se)?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut millis = 0i64;
    if let Some(frac) = tail.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 {
            return None;
        }
        // Milliseconds from the first three fraction digits, without allocating.
        millis = frac.as_bytes()[..end]
            .iter()
            .chain(b"000")
            .take(3)
            .fold(0i64, |ms, d| ms * 10 + i64::from(d - b'0'));
        tail = &frac[end..];
    }
    let offset_min: i64 = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = tail[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om) = (digits(oh)?, digits(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh as i64 * 60 + om as i64)
        }
    };
    let secs = h as i64 * 3600 + mi as i64 * 60 + se as i64 - offset_min * 60;
    Some(date + secs * 1000 + millis)
}

/// [`parse_rfc3339_signed_ms`] for times at or after the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    parse_rfc3339_signed_ms(s).and_then(|ms| u64::try_from(ms).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date_ms("1970-01-01"), Some(0));
        assert_eq!(parse_date_ms("2026-01-01"), Some(1_767_225_600_000));
        assert_eq!(parse_date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_date_ms("2023-02-29"), None);
        assert_eq!(parse_date_ms("2026-13-01"), None);
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T00:00:00Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T02:00:00.25+02:00"),
            Some(1_767_225_600_250)
        );
        assert_eq!(parse_rfc3339_ms("2026-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339_ms("2026-01-01X00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("é026-01-01T00:00:00Z"), None);
    }
}
