//! What is measured and how: payloads that carry the time they were (meant to be)
//! sent, finding that stamp again on arrival, and the latency histogram.

use std::time::Duration;

use hdrhistogram::Histogram;

/// One scenario's outcome.
pub(crate) struct Outcome {
    /// The scenario as the table names it (`pubsub 1→10`).
    pub(crate) label: String,
    /// Messages that arrived (or, for senders, were confirmed).
    pub(crate) received: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
    /// What should have arrived (every message sent, once per receiver that
    /// should get it), where the scenario can tell: a loss or a duplicate then
    /// shows under the row.
    pub(crate) expected: Option<u64>,
    /// Sends or pubs the broker refused (`error` frames to the publisher), and
    /// the first such frame.
    pub(crate) refused: Refused,
}

impl Outcome {
    /// An outcome with nothing expected to compare and nothing refused.
    pub(crate) fn new(
        label: String,
        received: u64,
        elapsed: Duration,
        latency: Histogram<u64>,
    ) -> Outcome {
        Outcome {
            label,
            received,
            elapsed,
            latency,
            expected: None,
            refused: Refused::default(),
        }
    }
}

/// The `error` frames a publisher got back for what it sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// How many.
    pub(crate) count: u64,
    /// The first, as the broker sent it.
    pub(crate) first: Option<String>,
}

impl Refused {
    /// Counts the `error` lines of a frame the broker sent the publisher.
    pub(crate) fn scan(&mut self, text: &str) {
        for line in text.split('\n').filter(|l| l.contains("\"ev\":\"error\"")) {
            self.count += 1;
            if self.first.is_none() {
                self.first = Some(line.to_string());
            }
        }
    }
}

/// The payload: `{"t":<micros>,"p":"xxx…"}` padded to `size` bytes.
pub(crate) fn payload(t: u64, size: usize) -> String {
    payload_with(t, "", size)
}

/// A payload with extra fields after the timestamp (`"k":3,`).
pub(crate) fn payload_with(t: u64, extra: &str, size: usize) -> String {
    let head = format!("{{\"t\":{t},{extra}\"p\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut s = String::with_capacity(size);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// The timestamp of a payload found in `text` after `from`.
pub(crate) fn stamp_after(text: &[u8], from: usize) -> Option<u64> {
    const KEY: &[u8] = b"{\"t\":";
    let at = text[from..].windows(KEY.len()).position(|w| w == KEY)? + from + KEY.len();
    let mut t = 0u64;
    for &b in &text[at..] {
        if !b.is_ascii_digit() {
            break;
        }
        t = t * 10 + u64::from(b - b'0');
    }
    Some(t)
}

/// An empty latency histogram, in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s, 3 significant digits; these bounds are valid constants.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_requested_size_and_their_stamp() {
        let p = payload(123456, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(stamp_after(p.as_bytes(), 0), Some(123456));
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["t"], 123456);
    }

    #[test]
    fn refusals_are_counted_per_error_line() {
        let mut r = Refused::default();
        r.scan("{\"ev\":\"welcome\"}");
        assert_eq!(r, Refused::default());
        r.scan(
            "{\"ev\":\"error\",\"code\":\"limit\"}\n{\"ev\":\"error\",\"code\":\"unavailable\"}",
        );
        assert_eq!(r.count, 2);
        assert_eq!(
            r.first.as_deref(),
            Some("{\"ev\":\"error\",\"code\":\"limit\"}")
        );
    }
}
