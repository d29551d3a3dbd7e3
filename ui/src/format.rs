//! Numbers, rates, durations, sizes and times as an operator reads them: short,
//! fixed-width-friendly, and the same everywhere on the screen.

use ratatui::text::Span;

/// A count with a metric suffix: `999`, `1.2k`, `45.6M`.
pub fn count(n: u64) -> String {
    scaled(n as f64, &["", "k", "M", "G", "T", "P"], 1000.0)
}

/// A count in full with thousands separated: `7,012`. For a question whose answer
/// depends on the number, where `7.0k` would be too vague.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A per-second rate: `0`, `0.4`, `12`, `1.2k`.
pub fn rate(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        "0".to_string()
    } else if r < 10.0 {
        let s = format!("{r:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        scaled(r, &["", "k", "M", "G", "T", "P"], 1000.0)
    }
}

/// A rate rounded to what [`rate`] shows of it: 10.02 and 10.01 both read `10`,
/// 1,234 and 1,249 both `1.2k`. What rate-sorted tables compare, so that rows
/// whose rates read the same do not trade places as the figures wobble.
pub fn rate_shown(r: f64) -> f64 {
    if !r.is_finite() || r <= 0.0 {
        return 0.0;
    }
    if r < 10.0 {
        return (r * 10.0).round() / 10.0;
    }
    let (mut value, mut scale) = (r, 1.0);
    // `rate` has five units past the first.
    for _ in 0..5 {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        scale *= 1000.0;
    }
    if scale == 1.0 || value >= 100.0 {
        value.round() * scale
    } else {
        (value * 10.0).round() / 10.0 * scale
    }
}

/// A size in bytes with binary units: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for next in ["KiB", "MiB", "GiB", "TiB", "PiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

fn scaled(mut value: f64, units: &[&str], step: f64) -> String {
    let mut unit = 0;
    while value >= step && unit + 1 < units.len() {
        value /= step;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0}")
    } else if value < 100.0 {
        format!("{value:.1}{}", units[unit])
    } else {
        format!("{value:.0}{}", units[unit])
    }
}

/// A duration in milliseconds, two units at most: `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h`.
/// A time in milliseconds with its fraction, as latencies are: `0.42ms`,
/// `8.1ms`, `120ms`, `2.5s`.
pub fn ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

/// [`ms`] without its unit, to stand before another time that has one:
/// `1.2` in `1.2/8.0ms`.
pub fn ms_short(ms: f64) -> String {
    let text = self::ms(ms);
    text.trim_end_matches("ms").to_string()
}

pub fn millis(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    seconds(ms / 1000)
}

/// A duration in whole seconds: `42s`, `4m05s`, `2h03m`, `3d04h`.
pub fn seconds(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// An uptime, precise to the second: `03:25:07`, `1d 03:25:07`.
pub fn uptime(s: u64) -> String {
    let clock = format!(
        "{:02}:{:02}:{:02}",
        (s % 86_400) / 3600,
        (s % 3600) / 60,
        s % 60
    );
    match s / 86_400 {
        0 => clock,
        days => format!("{days}d {clock}"),
    }
}

/// Time left until a deadline: `27.7s`, or `overdue 1.0s` once it has passed.
pub fn deadline(ms: i64) -> String {
    if ms >= 0 {
        millis(ms.unsigned_abs())
    } else {
        format!("overdue {}", millis(ms.unsigned_abs()))
    }
}

/// The UTC time of day of a unix-milliseconds timestamp: `16:00:05`.
pub fn clock(unix_ms: u64) -> String {
    let s = (unix_ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// Like [`clock`], with milliseconds: `16:00:05.123`.
pub fn clock_ms(unix_ms: u64) -> String {
    format!("{}.{:03}", clock(unix_ms), unix_ms % 1000)
}

/// Cut `text` to at most `width` terminal columns, ending with `…` when it was cut.
pub fn fit(text: &str, width: usize) -> String {
    let mut used = 0;
    if Span::raw(text).width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    for c in text.chars() {
        let mut utf8 = [0; 4];
        let w = Span::raw(&*c.encode_utf8(&mut utf8)).width();
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Cut `text` to at most `width` columns by dropping its middle: `tenants.acme…created.v2.0001`.
/// For names, whose end (a tenant, a shard, a number) tells rows apart as much as
/// their start.
pub fn fit_middle(text: &str, width: usize) -> String {
    if Span::raw(text).width() <= width {
        return text.to_string();
    }
    if width < 3 {
        return fit(text, width);
    }
    let tail_width = (width - 1) / 2;
    let head = fit(text, width - tail_width);
    let mut tail = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let mut utf8 = [0; 4];
        let w = Span::raw(&*c.encode_utf8(&mut utf8)).width();
        if used + w > tail_width {
            break;
        }
        used += w;
        tail.push(c);
    }
    head + &tail.into_iter().rev().collect::<String>()
}

/// Does `haystack` contain `needle_lower` (already lowercase), ignoring case?
pub fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle_lower.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle_lower.as_bytes());
        return h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle_lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates_are_short() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234), "1.2k");
        assert_eq!(count(123_456), "123k");
        assert_eq!(count(45_600_000), "45.6M");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(0.44), "0.4");
        assert_eq!(rate(3.0), "3");
        assert_eq!(rate(12.4), "12");
        assert_eq!(rate(1_250.0), "1.2k");
        assert_eq!(rate(f64::NAN), "0");
    }

    #[test]
    fn rates_compare_as_shown() {
        assert_eq!(rate_shown(10.02), rate_shown(10.01));
        assert_eq!(rate_shown(9.96), rate_shown(10.02));
        assert_eq!(rate_shown(0.44), rate_shown(0.36));
        assert_eq!(rate_shown(1_234.0), rate_shown(1_249.0));
        assert!(rate_shown(1_250.0) < rate_shown(1_350.0));
        assert!(rate_shown(10.0) < rate_shown(20.0));
        assert_eq!(rate_shown(f64::NAN), 0.0);
        // Rates that read the same compare the same, and the order is kept
        // (off the exact halves, where rounding modes may differ).
        let samples: Vec<f64> = (0..20_000)
            .map(|k| (k as f64 * 0.0731 + 0.003).powf(1.6))
            .collect();
        for pair in samples.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if rate(a) == rate(b) {
                assert_eq!(rate_shown(a), rate_shown(b), "{a} and {b} read {}", rate(a));
            }
            assert!(rate_shown(a) <= rate_shown(b), "{a} and {b}");
        }
    }

    #[test]
    fn grouped_counts_are_whole() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(7_012), "7,012");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_use_two_units() {
        assert_eq!(millis(850), "850ms");
        assert_eq!(millis(12_340), "12.3s");
        assert_eq!(millis(245_000), "4m05s");
        assert_eq!(seconds(7_380), "2h03m");
        assert_eq!(seconds(3 * 86_400 + 4 * 3600), "3d04h");
        assert_eq!(uptime(98_707), "1d 03:25:07");
        assert_eq!(deadline(-1_000), "overdue 1.0s");
        assert_eq!(clock(1_764_000_005_123), "16:00:05");
        assert_eq!(clock_ms(1_764_000_005_123), "16:00:05.123");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("orders", 10), "orders");
        assert_eq!(fit("orders.eu.created", 8), "orders.…");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit_middle("orders.eu", 9), "orders.eu");
        assert_eq!(fit_middle("tenants.acme.orders.0042", 13), "tenant…s.0042");
        assert_eq!(fit_middle("abcdef", 2), "a…");
    }

    #[test]
    fn filter_matching_ignores_case() {
        assert!(contains_ignore_case("Orders.EU", "eu"));
        assert!(!contains_ignore_case("orders.us", "eu"));
        assert!(contains_ignore_case("Ärger", "ärg"));
        assert!(contains_ignore_case("anything", ""));
    }
}
