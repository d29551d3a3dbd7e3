//! The broker's view of one connected client as queues and topics deliver to it:
//! its identity, its outbound buffer and its counters. What it holds (its
//! subscriptions and consumers) is the broker's business, in `broker/peer.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::activity::Activity;
use crate::outbound::{OutItem, Outbound, Pushed, Refused};
use crate::stats::{ClientStats, EventKind, SubscriptionStats};

/// One connected client, activity by its connection task and everything that delivers to it.
pub(crate) struct Session {
    pub(crate) id: u64,
    /// `c42`: the id clients and operators see.
    pub(crate) name_id: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) connected: Instant,
    pub(crate) hello_name: Mutex<Option<String>>,
    pub(crate) outbound: Outbound,
    next_tag: AtomicU64,
    /// Messages this client published or sent.
    pub(crate) msgs_in: AtomicU64,
    /// Times this client, publishing, was paused for a slow reader (`pacing.rs`).
    pub(crate) paused: AtomicU64,
    activity: Arc<Activity>,
}

impl Session {
    pub(crate) fn new(
        id: u64,
        addr: SocketAddr,
        outbound_limit: usize,
        activity: Arc<Activity>,
    ) -> Self {
        Session {
            id,
            name_id: Arc::from(format!("c{id}")),
            addr,
            connected: Instant::now(),
            hello_name: Mutex::new(None),
            outbound: Outbound::new(outbound_limit, activity.outbound.clone()),
            next_tag: AtomicU64::new(1),
            msgs_in: AtomicU64::new(0),
            paused: AtomicU64::new(0),
            activity,
        }
    }

    /// Whether a publisher should wait for this client's buffer now: past the
    /// slow mark and reading (`Outbound::wants_pacing`, `pacing.rs`).
    pub(crate) fn wants_pacing(&self) -> bool {
        let slow_timeout = self.activity.slow_timeout_ms.load(Ordering::Relaxed);
        self.outbound.wants_pacing(
            crate::pacing::clock_ms(),
            crate::pacing::reading_ms(slow_timeout),
        )
    }

    /// Kicks this client as a slow consumer that drained nothing of its buffer,
    /// past the slow mark, for `timeout_ms` (`pacing.rs`): counted and recorded.
    pub(crate) fn kick_stuck(&self, timeout_ms: u64) {
        self.activity.slow_kicks.fetch_add(1, Ordering::Relaxed);
        self.activity.stuck_kicks.fetch_add(1, Ordering::Relaxed);
        self.activity.record(
            EventKind::Kick,
            format!(
                "{} kicked: slow_consumer (read nothing of its {} bytes waiting for {:.1} s, slow_timeout)",
                self.describe(),
                self.outbound.bytes(),
                timeout_ms as f64 / 1000.0
            ),
        );
        self.outbound.kick("slow_consumer");
    }

    /// Answers this client with an `error` event, counted by its code.
    pub(crate) fn send_error(
        &self,
        id: Option<&crate::protocol::RequestId>,
        error: &crate::error::BrokerError,
    ) {
        self.activity.refusals.count_error(error.code);
        self.send_text(crate::protocol::event::error(id, error));
    }

    /// Counts `bytes` written to this client's socket in the broker's traffic.
    pub(crate) fn count_sent(&self, bytes: u64) {
        self.activity
            .traffic
            .sent
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a refusal of this client's (`/metrics`).
    pub(crate) fn refused(&self, reason: crate::refusals::Refusal) {
        self.activity.refusals.count(reason);
    }

    /// Queues a frame for this client, recording a slow mark or a slow-consumer kick.
    pub(crate) fn push(&self, item: OutItem<'_>) -> Result<(), Refused> {
        self.push_all(std::slice::from_ref(&item))
    }

    /// Queues frames in order under one lock, recording as [`Session::push`] does.
    pub(crate) fn push_all(&self, items: &[OutItem<'_>]) -> Result<(), Refused> {
        match self.outbound.push_all(items) {
            Ok(Pushed::Queued) => Ok(()),
            Ok(Pushed::BecameSlow { unreported }) => {
                let again = match unreported {
                    0 => String::new(),
                    n => format!(" (it went slow {n} more times since the last such line)"),
                };
                self.activity.record(
                    EventKind::Slow,
                    format!(
                        "{} is slow: {} bytes waiting{again}",
                        self.describe(),
                        self.outbound.bytes()
                    ),
                );
                Ok(())
            }
            Err(Refused::Full) => {
                self.activity.slow_kicks.fetch_add(1, Ordering::Relaxed);
                self.activity.record(
                    EventKind::Kick,
                    format!(
                        "{} kicked: slow_consumer (outbound buffer of {} bytes full)",
                        self.describe(),
                        self.outbound.limit()
                    ),
                );
                Err(Refused::Full)
            }
            Err(Refused::Closed) => Err(Refused::Closed),
        }
    }

    /// Queues a compact JSON object.
    pub(crate) fn send_text(&self, text: String) {
        // A refused frame means the client is gone or kicked: nothing left to tell it.
        let _ = self.push(OutItem::Text(&text));
    }

    pub(crate) fn next_tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    /// `c42 (name)` or `c42`, for event texts.
    pub(crate) fn describe(&self) -> String {
        match &*self.hello_name.lock() {
            Some(n) => format!("{} ({n})", self.name_id),
            None => self.name_id.to_string(),
        }
    }

    /// What an operator sees of this client, with what the broker knows it holds.
    pub(crate) fn stats(
        &self,
        subscriptions: Vec<SubscriptionStats>,
        consumers: u64,
        unacked: u64,
    ) -> ClientStats {
        ClientStats {
            id: self.name_id.to_string(),
            name: self.hello_name.lock().clone(),
            user: None,
            addr: self.addr.to_string(),
            connected_s: self.connected.elapsed().as_secs(),
            subs: subscriptions.len() as u64,
            consumers,
            unacked,
            pending: self.outbound.frames() as u64,
            pending_bytes: self.outbound.bytes() as u64,
            pending_limit: self.outbound.limit() as u64,
            slow: self.outbound.is_slow(),
            msgs_in: self.msgs_in.load(Ordering::Relaxed),
            msgs_out: self.outbound.delivered.load(Ordering::Relaxed),
            bytes_out: self.outbound.drained_bytes(),
            pauses: self.outbound.pauses.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
            subscriptions,
            ..ClientStats::default()
        }
    }

    /// Its outbound buffer's fill alone, as the history samples it every second.
    pub(crate) fn fill(&self) -> ClientStats {
        ClientStats {
            id: self.name_id.to_string(),
            pending_bytes: self.outbound.bytes() as u64,
            pending_limit: self.outbound.limit() as u64,
            bytes_out: self.outbound.drained_bytes(),
            ..ClientStats::default()
        }
    }
}

#[cfg(test)]
impl Session {
    /// Every frame queued for this client since the last call, parsed, as the
    /// writer would have sent them (tests read deliveries this way).
    pub(crate) fn take_sent_frames(&self) -> Vec<serde_json::Value> {
        let mut batch = crate::outbound::Batch::default();
        self.outbound.take(&mut batch);
        let parsed = batch
            .text
            .lines()
            .map(|line| serde_json::from_str(line).expect("every queued frame is JSON"))
            .collect();
        self.outbound.written(&batch);
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_keeps_up_only_just_is_logged_slow_once() {
        let activity = Arc::new(Activity::new(1 << 30));
        let session = Session::new(3, "127.0.0.1:9".parse().unwrap(), 1000, activity.clone());
        // Each push passes half of the buffer, and each batch written empties it:
        // in and out of the slow mark 69 times, as a flooded subscriber went.
        for _ in 0..69 {
            session.send_text("x".repeat(600));
            let mut batch = crate::outbound::Batch::default();
            session.outbound.take(&mut batch);
            session.outbound.written(&batch);
        }
        let slow: Vec<String> = activity
            .events()
            .into_iter()
            .filter(|e| e.kind == EventKind::Slow)
            .map(|e| e.text)
            .collect();
        assert_eq!(slow, ["c3 is slow: 600 bytes waiting"]);
    }
}
