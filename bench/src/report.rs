//! The table `switchyard bench` prints: a header line, then one row per scenario
//! with its rate and latency quantiles.

use crate::measure::Outcome;

/// The table's column names.
pub(crate) fn print_columns() {
    println!(
        "{:<16} {:>14} {:>10} {:>10} {:>10}",
        "scenario", "msgs/s", "p50", "p99", "p99.9"
    );
}

/// One scenario's row.
pub(crate) fn print_row(outcome: &Outcome) {
    let rate = outcome.received as f64 / outcome.elapsed.as_secs_f64();
    println!(
        "{:<16} {:>14} {:>10} {:>10} {:>10}",
        outcome.label,
        group(rate as u64),
        micros(outcome.latency.value_at_quantile(0.5)),
        micros(outcome.latency.value_at_quantile(0.99)),
        micros(outcome.latency.value_at_quantile(0.999)),
    );
    for note in notes(outcome) {
        println!("{:<16} {note}", "");
    }
}

/// What to say under a row: deliveries missing or more than sent, and sends the
/// broker refused. Nothing when every expected message came once.
fn notes(outcome: &Outcome) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(expected) = outcome.expected {
        let got = outcome.received;
        if got < expected {
            notes.push(format!(
                "missing {} of {} expected deliveries ({:.3}%): nothing more came for {} s",
                group(expected - got),
                group(expected),
                100.0 * (expected - got) as f64 / expected.max(1) as f64,
                crate::scenarios::DRAIN.as_secs(),
            ));
        } else if got > expected {
            notes.push(format!(
                "{} deliveries more than the {} expected (redelivered or duplicated)",
                group(got - expected),
                group(expected),
            ));
        }
    }
    if outcome.refused.count > 0 {
        notes.push(format!(
            "{} refused, the first: {}",
            group(outcome.refused.count),
            outcome.refused.first.as_deref().unwrap_or(""),
        ));
    }
    notes
}

/// A row for a scenario nats-server has no counterpart for.
pub(crate) fn print_skipped() {
    println!("{:<16} (not a core NATS feature; skipped)", "queue/filters");
}

/// The row of `idle:N`: bytes per connection, then the broker's resident memory
/// before, with the connections open, and after they closed.
pub(crate) fn print_idle(o: &crate::scenarios::IdleOutcome) {
    println!(
        "{:<16} {:>14}   RSS {} MB before, {} MB open, {} MB after closing",
        format!("idle {}", o.connections),
        format!("{} B/conn", group(o.per_connection())),
        mb(o.before),
        mb(o.open),
        mb(o.after),
    );
}

/// The rows of `slow:MB`: what the steady reader got, the fast reader's longest
/// wait, when the stuck one was kicked, and the publisher's pauses.
pub(crate) fn print_slow(mb: usize, o: &crate::scenarios::SlowOutcome) {
    let pct = |n: u64| 100.0 * n as f64 / o.total.max(1) as f64;
    println!(
        "{:<16} steady reader (20 MB/s) got {:.1}% ({} of {}, {}); fast reader {:.1}%, longest wait {:.1} ms; burst sent in {:.2} s",
        format!("slow {mb} MB"),
        pct(o.steady),
        group(o.steady),
        group(o.total),
        o.steady_why,
        pct(o.fast),
        o.fast_max_gap.as_secs_f64() * 1e3,
        o.burst.as_secs_f64(),
    );
    if let Some(gone) = o.stuck_gone {
        println!(
            "{:<16} stuck reader kicked {:.2} s into the burst",
            "",
            gone.as_secs_f64()
        );
    }
    if let Some((pauses, us)) = o.pauses {
        println!(
            "{:<16} publisher paused {} times, {:.1} ms in all, {:.2} ms each on average",
            "",
            group(pauses),
            us as f64 / 1e3,
            us as f64 / 1e3 / pauses.max(1) as f64
        );
    }
}

/// The rows of `watch:N`: bytes a second each kind of watch sends.
pub(crate) fn print_watch(o: &crate::scenarios::WatchOutcome) {
    for row in &o.rows {
        println!(
            "{:<16} {:>14}   {:.1} frames/s; {} jobs in flight, {} topics, {} backlogged queues, {}",
            format!("watch {}", row.label),
            format!("{} B/s", group(row.bytes_per_s as u64)),
            row.frames_per_s,
            group(o.jobs as u64),
            group(o.topics as u64),
            group(o.topics as u64),
            if row.busy {
                "100 topics publishing"
            } else {
                "idle"
            },
        );
    }
}

/// `idle:N` against a broker whose process is not known.
pub(crate) fn print_idle_unknown(n: usize) {
    println!(
        "{:<16} (needs the broker's process: give --pid with --url)",
        format!("idle {n}")
    );
}

/// Bytes as megabytes with one decimal.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as `850 µs` or, from 10 ms, `12.5 ms`; none recorded as `-`.
fn micros(us: u64) -> String {
    if us == 0 {
        "-".to_string()
    } else if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::histogram;

    #[test]
    fn losses_duplicates_and_refusals_show_under_the_row() {
        let mut o = Outcome::new("pubsub 1→1".into(), 900, Default::default(), histogram());
        assert!(notes(&o).is_empty(), "nothing expected, nothing to say");
        o.expected = Some(900);
        assert!(notes(&o).is_empty());
        o.expected = Some(1000);
        assert_eq!(
            notes(&o),
            ["missing 100 of 1,000 expected deliveries (10.000%): nothing more came for 2 s"]
        );
        o.expected = Some(800);
        o.refused.scan("{\"ev\":\"error\",\"code\":\"limit\"}");
        assert_eq!(
            notes(&o),
            [
                "100 deliveries more than the 800 expected (redelivered or duplicated)",
                "1 refused, the first: {\"ev\":\"error\",\"code\":\"limit\"}"
            ]
        );
    }

    #[test]
    fn numbers_read_the_way_the_table_prints_them() {
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(999), "999");
        assert_eq!(
            (micros(0), micros(850), micros(12_500)),
            ("-".into(), "850 µs".into(), "12.5 ms".into())
        );
    }
}
