//! Broker-wide counters and the event log the dashboard's overview scrolls through.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::outbound_budget::OutboundBudget;
use crate::refusals::Refusals;
use crate::stats::{EventKind, EventRecord};
use crate::time::now_ms;

/// How many events the broker remembers.
const EVENT_LOG_LEN: usize = 500;

/// What every part of the broker reports into: the broker-wide counters and the
/// event log the dashboard scrolls through.
#[derive(Default)]
pub(crate) struct Activity {
    pub(crate) msgs_in: AtomicU64,
    pub(crate) msgs_out: AtomicU64,
    pub(crate) slow_kicks: AtomicU64,
    /// Of `slow_kicks`, the readers kicked for draining nothing for `slow_timeout`.
    pub(crate) stuck_kicks: AtomicU64,
    /// Publishers paused for a slow reader (`pacing.rs`), and for how long in all.
    pub(crate) pauses: AtomicU64,
    pub(crate) paused_us: AtomicU64,
    /// The broker's `slow_timeout`, in ms (0 until the broker sets it): the
    /// longest a reader may drain nothing and still be paced for.
    pub(crate) slow_timeout_ms: AtomicU64,
    pub(crate) dead: AtomicU64,
    /// Upgrades refused for their Origin.
    pub(crate) refused_origin: AtomicU64,
    /// Failed TLS handshakes.
    pub(crate) tls_failures: AtomicU64,
    /// Refusals by reason and `error` events by code.
    pub(crate) refusals: Refusals,
    /// Bytes waiting in every outbound buffer, and the most they may.
    pub(crate) outbound: Arc<OutboundBudget>,
    /// Bytes read from and written to clients' sockets.
    pub(crate) traffic: Arc<Traffic>,
    log: Mutex<EventLog>,
}

/// Bytes of WebSocket frames read from and written to clients' sockets, headers
/// included (`switchyard_bytes_received_total`, `switchyard_bytes_sent_total`).
/// Added to once per read and once per batch written, not per frame: the readers
/// and writers of every connection share these two atomics.
#[derive(Default)]
pub(crate) struct Traffic {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
}

#[derive(Default)]
struct EventLog {
    next_seq: u64,
    records: VecDeque<EventRecord>,
}

impl Activity {
    /// Fresh counters, with every outbound buffer held to `max_outbound` bytes in all.
    pub(crate) fn new(max_outbound: usize) -> Self {
        Activity {
            outbound: Arc::new(OutboundBudget::new(max_outbound)),
            ..Activity::default()
        }
    }

    /// Records an event and logs it at `info`. Every event text goes through here,
    /// so this is where control characters are escaped: a name or a reason that
    /// carries a newline cannot forge a line in the log or the dashboard.
    pub(crate) fn record(&self, kind: EventKind, text: String) {
        let text = match clean(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(cleaned) => cleaned,
        };
        tracing::info!(kind = ?kind, "{text}");
        let mut log = self.log.lock();
        log.next_seq += 1;
        let record = EventRecord {
            seq: log.next_seq,
            time: now_ms(),
            kind,
            text,
        };
        if log.records.len() == EVENT_LOG_LEN {
            log.records.pop_front();
        }
        log.records.push_back(record);
    }

    pub(crate) fn events(&self) -> Vec<EventRecord> {
        self.log.lock().records.iter().cloned().collect()
    }

    pub(crate) fn add_out(&self, n: u64) {
        if n > 0 {
            self.msgs_out.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Whether `c` must not be shown raw: C0, DEL, C1 and the Unicode line and
/// paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` with every control character replaced by a visible escape: `\n`, `\r`,
/// `\t`, and `\u{1b}` for the others. What every logged field and every name
/// shown anywhere (snapshot, dashboard, log) goes through.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_every_control_character() {
        assert!(matches!(clean("plain name é ✓"), Cow::Borrowed(_)));
        assert_eq!(
            clean("a\nb\r\tc\u{1b}[31m\u{0}\u{7f}\u{85}\u{9f}\u{2028}\u{2029}z"),
            "a\\nb\\r\\tc\\u{1b}[31m\\u{0}\\u{7f}\\u{85}\\u{9f}\\u{2028}\\u{2029}z"
        );
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!clean(&all).chars().any(is_unsafe));
    }

    #[test]
    fn recorded_texts_are_cleaned() {
        let activity = Activity::default();
        activity.record(EventKind::Kick, "x kicked: a\nforged".into());
        assert_eq!(activity.events()[0].text, "x kicked: a\\nforged");
    }

    #[test]
    fn keeps_the_latest_events_in_order() {
        let activity = Activity::default();
        for i in 0..(EVENT_LOG_LEN + 3) {
            activity.record(EventKind::Connect, format!("e{i}"));
        }
        let events = activity.events();
        assert_eq!(events.len(), EVENT_LOG_LEN);
        assert_eq!(events[0].seq, 4);
        assert_eq!(events[0].text, "e3");
        assert_eq!(events.last().map(|e| e.seq), Some(EVENT_LOG_LEN as u64 + 3));
    }
}
