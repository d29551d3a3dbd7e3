//! Broker-wide counters and the event log the dashboard's overview scrolls through.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

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
    pub(crate) dead: AtomicU64,
    /// Upgrades refused for their Origin.
    pub(crate) refused_origin: AtomicU64,
    /// Failed TLS handshakes.
    pub(crate) tls_failures: AtomicU64,
    log: Mutex<EventLog>,
}

#[derive(Default)]
struct EventLog {
    next_seq: u64,
    records: VecDeque<EventRecord>,
}

impl Activity {
    /// Records an event and logs it at `info`.
    pub(crate) fn record(&self, kind: EventKind, text: String) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
