//! The broker's memory of the last 15 minutes: once a second, each queue's depth
//! and rates and each topic's rates go into a ring of samples, which `describe`
//! answers with, so a console attached later sees what came before it. From the
//! same samples: a queue is `stuck` when its depth grew over the last 30 s while
//! nothing was acked, and each client's outbound buffer has a fill rate and, while
//! it grows, the time until it would be full (and the client kicked).
//!
//! Bounded: rings for at most `max_history` queues and topics together (the first
//! seen keep theirs; past the cap a new name gets none and is counted in
//! `untracked`). A queue sample is 20 bytes, a topic's 12: 2,000 rings of 900
//! samples are at most 36 MB.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::page::{QueueHistory, TopicHistory, HISTORY_SAMPLES};
use crate::stats::{ClientStats, QueueStats, TopicStats};

/// Streams (queues and topics together) with a history at most, by default.
pub const DEFAULT_MAX_HISTORY: usize = 2_000;

/// The sampling interval.
pub(crate) const INTERVAL_MS: u64 = 1_000;

/// A queue is stuck when, over this many samples, its depth grew and no job was acked.
const STUCK_SAMPLES: usize = 30;

/// Weight of the newest second in a client's fill rate (an exponential average).
const FILL_WEIGHT: f64 = 0.5;

#[derive(Debug, Clone, Copy, Default)]
struct QueueSample {
    ready: u32,
    unacked: u32,
    msgs_in: u32,
    acked: u32,
    redelivered: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct TopicSample {
    msgs_in: u32,
    msgs_out: u32,
    subscribers: u32,
}

/// A counter's total at the last sample, to take the next sample's delta from.
#[derive(Debug, Default)]
struct QueueRing {
    last: (u64, u64, u64),
    samples: VecDeque<QueueSample>,
    stuck: bool,
    seen: bool,
}

#[derive(Debug, Default)]
struct TopicRing {
    last: (u64, u64),
    samples: VecDeque<TopicSample>,
    seen: bool,
}

/// A client's buffer between two samples.
#[derive(Debug, Default, Clone, Copy)]
struct Fill {
    bytes: u64,
    rate: f64,
    /// Bytes written to its socket, ever, and how fast (averaged as `rate` is).
    drained: u64,
    drain_rate: f64,
    seen: bool,
}

#[derive(Default)]
struct State {
    queues: HashMap<Arc<str>, QueueRing>,
    topics: HashMap<Arc<str>, TopicRing>,
    clients: HashMap<String, Fill>,
    /// Streams with no ring for want of room, at the last sample.
    untracked: u64,
    /// When the last sample was taken, Unix milliseconds.
    end_ms: u64,
}

/// Every ring, behind one lock taken once a second and by `describe`.
pub(crate) struct History {
    max: usize,
    state: Mutex<State>,
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn push<T>(ring: &mut VecDeque<T>, sample: T) {
    if ring.len() == HISTORY_SAMPLES {
        ring.pop_front();
    }
    ring.push_back(sample);
}

impl History {
    pub(crate) fn new(max: usize) -> History {
        History {
            max,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes one sample of every queue, topic and client, at `now_ms`; forgets
    /// those gone since the last.
    pub(crate) fn sample(
        &self,
        now_ms: u64,
        queues: &[QueueStats],
        topics: &[TopicStats],
        clients: &[ClientStats],
    ) {
        let mut state = self.state.lock();
        let state = &mut *state;
        state.end_ms = now_ms;
        let mut untracked = 0;
        // Rings of names gone go first, so their room is free for new names now.
        state.queues.values_mut().for_each(|r| r.seen = false);
        state.topics.values_mut().for_each(|r| r.seen = false);
        for q in queues {
            if let Some(r) = state.queues.get_mut(q.name.as_str()) {
                r.seen = true;
            }
        }
        for t in topics {
            if let Some(r) = state.topics.get_mut(t.name.as_str()) {
                r.seen = true;
            }
        }
        state.queues.retain(|_, r| r.seen);
        state.topics.retain(|_, r| r.seen);
        for q in queues {
            let tracked = state.queues.len() + state.topics.len();
            let ring = match state.queues.get_mut(q.name.as_str()) {
                Some(ring) => ring,
                None if tracked < self.max => {
                    // The first sample of a queue starts from its totals: what it
                    // did before it was seen is not this second's.
                    let ring = QueueRing {
                        last: (q.msgs_in, q.acked, q.redelivered),
                        samples: VecDeque::with_capacity(HISTORY_SAMPLES),
                        ..QueueRing::default()
                    };
                    state
                        .queues
                        .entry(Arc::from(q.name.as_str()))
                        .or_insert(ring)
                }
                None => {
                    untracked += 1;
                    continue;
                }
            };
            ring.seen = true;
            // A total below the last one: the queue was deleted and made again
            // within the second, its counters from zero.
            if q.msgs_in < ring.last.0 || q.acked < ring.last.1 || q.redelivered < ring.last.2 {
                ring.last = (0, 0, 0);
            }
            let sample = QueueSample {
                ready: clamp(q.ready),
                unacked: clamp(q.unacked),
                msgs_in: clamp(q.msgs_in.saturating_sub(ring.last.0)),
                acked: clamp(q.acked.saturating_sub(ring.last.1)),
                redelivered: clamp(q.redelivered.saturating_sub(ring.last.2)),
            };
            ring.last = (q.msgs_in, q.acked, q.redelivered);
            push(&mut ring.samples, sample);
            ring.stuck = is_stuck(&ring.samples);
        }
        for t in topics {
            let tracked = state.queues.len() + state.topics.len();
            let ring = match state.topics.get_mut(t.name.as_str()) {
                Some(ring) => ring,
                None if tracked < self.max => {
                    let ring = TopicRing {
                        last: (t.msgs_in, t.msgs_out),
                        samples: VecDeque::with_capacity(HISTORY_SAMPLES),
                        ..TopicRing::default()
                    };
                    state
                        .topics
                        .entry(Arc::from(t.name.as_str()))
                        .or_insert(ring)
                }
                None => {
                    untracked += 1;
                    continue;
                }
            };
            ring.seen = true;
            if t.msgs_in < ring.last.0 || t.msgs_out < ring.last.1 {
                ring.last = (0, 0);
            }
            let sample = TopicSample {
                msgs_in: clamp(t.msgs_in.saturating_sub(ring.last.0)),
                msgs_out: clamp(t.msgs_out.saturating_sub(ring.last.1)),
                subscribers: clamp(t.subscribers),
            };
            ring.last = (t.msgs_in, t.msgs_out);
            push(&mut ring.samples, sample);
        }
        state.untracked = untracked;
        let mut clients_now = HashMap::with_capacity(clients.len());
        for c in clients {
            let before = state.clients.get(&c.id).copied().unwrap_or_default();
            let delta = c.pending_bytes as f64 - before.bytes as f64;
            let rate = if before.seen {
                FILL_WEIGHT * delta + (1.0 - FILL_WEIGHT) * before.rate
            } else {
                0.0
            };
            // An empty buffer is not filling, whatever the average remembers.
            let rate = if c.pending_bytes == 0 {
                rate.min(0.0)
            } else {
                rate
            };
            let drain_rate = if before.seen {
                let delta = c.bytes_out.saturating_sub(before.drained) as f64;
                FILL_WEIGHT * delta + (1.0 - FILL_WEIGHT) * before.drain_rate
            } else {
                0.0
            };
            clients_now.insert(
                c.id.clone(),
                Fill {
                    bytes: c.pending_bytes,
                    rate,
                    drained: c.bytes_out,
                    drain_rate,
                    seen: true,
                },
            );
        }
        state.clients = clients_now;
    }

    /// Sets `stuck` on each queue row, as of the last sample.
    pub(crate) fn mark_queues(&self, queues: &mut [QueueStats]) {
        let state = self.state.lock();
        for q in queues {
            q.stuck = state.queues.get(q.name.as_str()).is_some_and(|r| r.stuck);
        }
    }

    /// Sets each client row's fill rate and, while its buffer grows, the seconds
    /// until it is full, as of the last sample.
    pub(crate) fn mark_clients(&self, clients: &mut [ClientStats]) {
        let state = self.state.lock();
        for c in clients {
            let Some(fill) = state.clients.get(&c.id) else {
                continue;
            };
            c.fill_rate = fill.rate.round() as i64;
            c.drain_rate = fill.drain_rate.round() as u64;
            c.kick_in_s = kick_in(c.pending_bytes, c.pending_limit, fill.rate);
        }
    }

    /// Streams left without a history at the last sample, for want of room.
    pub(crate) fn untracked(&self) -> u64 {
        self.state.lock().untracked
    }

    /// A queue's last 15 minutes (empty if it has no ring).
    pub(crate) fn queue(&self, name: &str) -> QueueHistory {
        let state = self.state.lock();
        let mut out = QueueHistory {
            interval_ms: INTERVAL_MS,
            ..QueueHistory::default()
        };
        if let Some(ring) = state.queues.get(name) {
            out.end_ms = state.end_ms;
            for s in &ring.samples {
                out.ready.push(u64::from(s.ready));
                out.unacked.push(u64::from(s.unacked));
                out.msgs_in.push(u64::from(s.msgs_in));
                out.acked.push(u64::from(s.acked));
                out.redelivered.push(u64::from(s.redelivered));
            }
        }
        out
    }

    /// A topic's last 15 minutes (empty if it has no ring).
    pub(crate) fn topic(&self, name: &str) -> TopicHistory {
        let state = self.state.lock();
        let mut out = TopicHistory {
            interval_ms: INTERVAL_MS,
            ..TopicHistory::default()
        };
        if let Some(ring) = state.topics.get(name) {
            out.end_ms = state.end_ms;
            for s in &ring.samples {
                out.msgs_in.push(u64::from(s.msgs_in));
                out.msgs_out.push(u64::from(s.msgs_out));
                out.subscribers.push(u64::from(s.subscribers));
            }
        }
        out
    }
}

/// Depth grew over the last [`STUCK_SAMPLES`] seconds and nothing was acked.
fn is_stuck(samples: &VecDeque<QueueSample>) -> bool {
    if samples.len() <= STUCK_SAMPLES {
        return false;
    }
    let depth = |s: &QueueSample| u64::from(s.ready) + u64::from(s.unacked);
    let then = &samples[samples.len() - 1 - STUCK_SAMPLES];
    let now = &samples[samples.len() - 1];
    let acked: u64 = samples
        .iter()
        .rev()
        .take(STUCK_SAMPLES)
        .map(|s| u64::from(s.acked))
        .sum();
    acked == 0 && depth(now) > depth(then)
}

/// Seconds until a buffer of `bytes` of `limit` filling at `rate` bytes a second
/// is full; none while it is not filling.
fn kick_in(bytes: u64, limit: u64, rate: f64) -> Option<u64> {
    // Under a byte a second is noise, not filling.
    if rate < 1.0 || limit == 0 || bytes == 0 {
        return None;
    }
    Some((limit.saturating_sub(bytes) as f64 / rate).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, ready: u64, msgs_in: u64, acked: u64) -> QueueStats {
        QueueStats {
            name: name.into(),
            ready,
            msgs_in,
            acked,
            ..QueueStats::default()
        }
    }

    #[test]
    fn samples_are_deltas_from_the_first_sight_and_bounded_to_15_minutes() {
        let h = History::new(10);
        h.sample(1_000, &[queue("jobs", 5, 100, 40)], &[], &[]);
        h.sample(2_000, &[queue("jobs", 7, 103, 41)], &[], &[]);
        let got = h.queue("jobs");
        assert_eq!(got.ready, vec![5, 7]);
        assert_eq!(got.msgs_in, vec![0, 3]);
        assert_eq!(got.acked, vec![0, 1]);
        assert_eq!(got.end_ms, 2_000);
        for i in 0..1_000u64 {
            h.sample(3_000 + i, &[queue("jobs", i, 103 + i, 41)], &[], &[]);
        }
        let got = h.queue("jobs");
        assert_eq!(got.ready.len(), HISTORY_SAMPLES);
        assert_eq!(got.ready.last(), Some(&999));
        assert_eq!(got.msgs_in.iter().sum::<u64>(), 900);
    }

    #[test]
    fn a_queue_made_again_within_a_second_counts_from_zero() {
        let h = History::new(10);
        h.sample(1, &[queue("jobs", 0, 1_000_000, 999_000)], &[], &[]);
        h.sample(2, &[queue("jobs", 0, 5, 2)], &[], &[]);
        let got = h.queue("jobs");
        assert_eq!((got.msgs_in, got.acked), (vec![0, 5], vec![0, 2]));
    }

    #[test]
    fn a_queue_gone_loses_its_ring_and_the_cap_counts_the_rest() {
        let h = History::new(2);
        let three = [
            queue("a", 0, 0, 0),
            queue("b", 0, 0, 0),
            queue("c", 0, 0, 0),
        ];
        h.sample(1, &three, &[], &[]);
        assert_eq!(h.untracked(), 1);
        assert!(h.queue("c").ready.is_empty());
        h.sample(2, &three[1..], &[], &[]);
        assert_eq!(h.untracked(), 0, "a's ring went with it, so c got one");
        assert_eq!(h.queue("c").ready, vec![0]);
        assert!(h.queue("a").ready.is_empty());
    }

    #[test]
    fn stuck_is_depth_grown_over_30_s_with_no_ack() {
        let h = History::new(10);
        let mark = |h: &History| {
            let mut rows = [queue("jobs", 0, 0, 0)];
            h.mark_queues(&mut rows);
            rows[0].stuck
        };
        for i in 0..30 {
            h.sample(i, &[queue("jobs", i, i, 0)], &[], &[]);
        }
        assert!(!mark(&h), "30 samples span 29 s");
        h.sample(30, &[queue("jobs", 30, 30, 0)], &[], &[]);
        assert!(mark(&h));
        h.sample(31, &[queue("jobs", 31, 31, 0)], &[], &[]);
        assert!(mark(&h));
        // One ack in the window: not stuck.
        h.sample(32, &[queue("jobs", 32, 32, 1)], &[], &[]);
        assert!(!mark(&h));
        // Deep but not growing, with no ack: not stuck either.
        for i in 33..=70 {
            h.sample(i, &[queue("jobs", 32, 32, 1)], &[], &[]);
        }
        assert!(!mark(&h));
    }

    #[test]
    fn a_filling_buffer_says_when_it_will_be_full() {
        let h = History::new(10);
        let client = |bytes| ClientStats {
            id: "c1".into(),
            pending_bytes: bytes,
            pending_limit: 1_000_000,
            ..ClientStats::default()
        };
        let marked = |h: &History, bytes| {
            let mut rows = [client(bytes)];
            h.mark_clients(&mut rows);
            (rows[0].fill_rate, rows[0].kick_in_s)
        };
        h.sample(0, &[], &[], &[client(0)]);
        h.sample(1, &[], &[], &[client(100_000)]);
        // Half of the first second's 100,000 (the average starts at 0).
        assert_eq!(marked(&h, 100_000), (50_000, Some(18)));
        h.sample(2, &[], &[], &[client(200_000)]);
        assert_eq!(marked(&h, 200_000), (75_000, Some(11)));
        h.sample(3, &[], &[], &[client(200_000)]);
        h.sample(4, &[], &[], &[client(200_000)]);
        h.sample(5, &[], &[], &[client(150_000)]);
        let (rate, kick) = marked(&h, 150_000);
        assert!(rate < 0, "draining: {rate}");
        assert_eq!(kick, None);
        h.sample(6, &[], &[], &[client(0)]);
        assert_eq!(marked(&h, 0).1, None);
    }
}
