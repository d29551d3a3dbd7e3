//! Per-second rates derived from the counter deltas between two snapshots, and the
//! rate history the overview's sparklines draw.
//!
//! The broker only counts; rates are the reader's to derive. Deltas are taken over a
//! window of at least [`WINDOW`], not between every two snapshots: a 250 ms delta of
//! a bursty counter makes the figures flicker, and one sample per second lets a
//! sparkline as wide as the screen cover the last few minutes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use switchyard_broker::Snapshot;

/// The shortest interval rates are computed over.
pub const WINDOW: Duration = Duration::from_secs(1);

/// How quickly shown rates follow a change: each is an exponentially weighted
/// average over about this long (as `top` and nats-top smooth theirs), so a
/// steady 0.4 msg/s reads 0.4, not 0 and 1 in turn, and a burst does not make a
/// rate-sorted table reshuffle every second.
pub const SMOOTHING: Duration = Duration::from_secs(5);

/// How many one-per-window rate samples the history keeps (five minutes).
pub const HISTORY_LEN: usize = 300;

/// A pair of per-second rates: messages in and out (or in and acked for a queue).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Messages accepted per second.
    pub msgs_in: f64,
    /// Deliveries per second (acks per second for a queue).
    pub msgs_out: f64,
}

/// Counter totals at one instant, keyed by name so that rows can come and go.
#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    server: (u64, u64),
    topics: HashMap<String, (u64, u64)>,
    queues: HashMap<String, (u64, u64)>,
    /// Each queue's requests and request timeouts.
    requests: HashMap<String, (u64, u64)>,
    clients: HashMap<String, (u64, u64)>,
}

impl Counters {
    fn of(snap: &Snapshot, at: Instant) -> Self {
        Counters {
            at,
            server: (snap.server.msgs_in, snap.server.msgs_out),
            topics: snap
                .topics
                .iter()
                .map(|t| (t.name.clone(), (t.msgs_in, t.msgs_out)))
                .collect(),
            queues: snap
                .queues
                .iter()
                .map(|q| (q.name.clone(), (q.msgs_in, q.acked)))
                .collect(),
            requests: snap
                .queues
                .iter()
                .map(|q| (q.name.clone(), (q.requests, q.request_timeouts)))
                .collect(),
            clients: snap
                .clients
                .iter()
                .map(|c| (c.id.clone(), (c.msgs_in, c.msgs_out)))
                .collect(),
        }
    }
}

/// Rates by name, computed once per window.
#[derive(Debug, Clone, Default)]
struct ByName {
    topics: HashMap<String, Rate>,
    queues: HashMap<String, Rate>,
    requests: HashMap<String, Rate>,
    clients: HashMap<String, Rate>,
}

/// The rates of everything in the latest snapshot, and the broker-wide history.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    base: Option<Counters>,
    by_name: ByName,
    /// Broker-wide rate.
    pub server: Rate,
    /// Broker-wide messages in per second, one sample per window, oldest first.
    pub history_in: VecDeque<u64>,
    /// Broker-wide deliveries per second, one sample per window, oldest first.
    pub history_out: VecDeque<u64>,
    /// Rates of `snapshot.topics`, index for index.
    pub topics: Vec<Rate>,
    /// Rates of `snapshot.queues` (in and acked), index for index.
    pub queues: Vec<Rate>,
    /// Rates of `snapshot.queues`' requests (in: requests, out: timeouts), index
    /// for index.
    pub requests: Vec<Rate>,
    /// Rates of `snapshot.clients`, index for index.
    pub clients: Vec<Rate>,
}

impl Rates {
    /// Take in a new snapshot seen at `now`.
    ///
    /// The first snapshot only sets the baseline (every rate is zero); later ones
    /// recompute the rates once at least [`WINDOW`] has passed since the baseline.
    /// Whatever the time, the per-row rates are realigned to the snapshot's rows.
    pub fn observe(&mut self, snap: &Snapshot, now: Instant) {
        self.base = Some(match self.base.take() {
            None => Counters::of(snap, now),
            Some(base) => {
                let elapsed = now.saturating_duration_since(base.at);
                if elapsed >= WINDOW {
                    let current = Counters::of(snap, now);
                    self.recompute(&base, &current, elapsed);
                    current
                } else {
                    base
                }
            }
        });
        self.align(snap);
    }

    fn recompute(&mut self, base: &Counters, current: &Counters, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        // A counter that went down means the broker restarted: count from zero, not
        // a huge negative (or wrapped) rate.
        let per_sec = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs;
        let pair = |new: (u64, u64), old: (u64, u64)| Rate {
            msgs_in: per_sec(new.0, old.0),
            msgs_out: per_sec(new.1, old.1),
        };
        let map = |new: &HashMap<String, (u64, u64)>, old: &HashMap<String, (u64, u64)>| {
            new.iter()
                .map(|(name, &n)| {
                    // A row new since the baseline counted up from nothing.
                    let o = old.get(name).copied().unwrap_or((0, 0));
                    (name.clone(), pair(n, o))
                })
                .collect::<HashMap<_, _>>()
        };
        // The share of the new window in the smoothed rate.
        let weight = 1.0 - (-secs / SMOOTHING.as_secs_f64()).exp();
        let smooth = |old: Option<Rate>, new: Rate| match old {
            // A row new since the last window starts at what it did in it.
            None => new,
            Some(old) => Rate {
                msgs_in: old.msgs_in + weight * (new.msgs_in - old.msgs_in),
                msgs_out: old.msgs_out + weight * (new.msgs_out - old.msgs_out),
            },
        };
        let smooth_all = |old: &HashMap<String, Rate>, new: HashMap<String, Rate>| {
            new.into_iter()
                .map(|(name, rate)| {
                    let smoothed = smooth(old.get(&name).copied(), rate);
                    (name, smoothed)
                })
                .collect::<HashMap<_, _>>()
        };
        let now = pair(current.server, base.server);
        let first = self.history_in.is_empty();
        self.server = smooth((!first).then_some(self.server), now);
        self.by_name = ByName {
            topics: smooth_all(&self.by_name.topics, map(&current.topics, &base.topics)),
            queues: smooth_all(&self.by_name.queues, map(&current.queues, &base.queues)),
            requests: smooth_all(
                &self.by_name.requests,
                map(&current.requests, &base.requests),
            ),
            clients: smooth_all(&self.by_name.clients, map(&current.clients, &base.clients)),
        };
        // The sparklines draw what each window did, unsmoothed.
        push_bounded(&mut self.history_in, now.msgs_in.round() as u64);
        push_bounded(&mut self.history_out, now.msgs_out.round() as u64);
    }

    fn align(&mut self, snap: &Snapshot) {
        let lookup =
            |map: &HashMap<String, Rate>, name: &str| map.get(name).copied().unwrap_or_default();
        self.topics = snap
            .topics
            .iter()
            .map(|t| lookup(&self.by_name.topics, &t.name))
            .collect();
        self.queues = snap
            .queues
            .iter()
            .map(|q| lookup(&self.by_name.queues, &q.name))
            .collect();
        self.requests = snap
            .queues
            .iter()
            .map(|q| lookup(&self.by_name.requests, &q.name))
            .collect();
        self.clients = snap
            .clients
            .iter()
            .map(|c| lookup(&self.by_name.clients, &c.id))
            .collect();
    }

    /// The rate of the `i`th topic of the latest snapshot.
    pub fn topic(&self, i: usize) -> Rate {
        self.topics.get(i).copied().unwrap_or_default()
    }

    /// The rate (in, acked) of the `i`th queue of the latest snapshot.
    pub fn queue(&self, i: usize) -> Rate {
        self.queues.get(i).copied().unwrap_or_default()
    }

    /// The request rate (requests, timeouts) of the `i`th queue of the latest
    /// snapshot.
    pub fn requests(&self, i: usize) -> Rate {
        self.requests.get(i).copied().unwrap_or_default()
    }

    /// The rate of the `i`th client of the latest snapshot.
    pub fn client(&self, i: usize) -> Rate {
        self.clients.get(i).copied().unwrap_or_default()
    }
}

fn push_bounded(history: &mut VecDeque<u64>, sample: u64) {
    if history.len() == HISTORY_LEN {
        history.pop_front();
    }
    history.push_back(sample);
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_broker::stats::{QueueStats, TopicStats};

    fn snap(server_in: u64, topic_in: u64, acked: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.server.msgs_in = server_in;
        s.server.msgs_out = server_in * 2;
        s.topics.push(TopicStats {
            name: "orders".into(),
            msgs_in: topic_in,
            ..Default::default()
        });
        s.queues.push(QueueStats {
            name: "jobs".into(),
            acked,
            ..Default::default()
        });
        s
    }

    #[test]
    fn first_snapshot_is_only_a_baseline() {
        let mut rates = Rates::default();
        rates.observe(&snap(100, 50, 10), Instant::now());
        assert_eq!(rates.server, Rate::default());
        assert_eq!(rates.topic(0), Rate::default());
        assert!(rates.history_in.is_empty());
    }

    #[test]
    fn rates_are_deltas_over_elapsed_time() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.observe(&snap(100, 50, 10), t0);
        rates.observe(&snap(300, 90, 30), t0 + Duration::from_secs(2));
        assert_eq!(rates.server.msgs_in, 100.0);
        assert_eq!(rates.server.msgs_out, 200.0);
        assert_eq!(rates.topic(0).msgs_in, 20.0);
        assert_eq!(rates.queue(0).msgs_out, 10.0);
        assert_eq!(rates.history_in, [100]);
    }

    #[test]
    fn snapshots_inside_the_window_keep_the_last_rates() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.observe(&snap(0, 0, 0), t0);
        rates.observe(&snap(10, 0, 0), t0 + Duration::from_secs(1));
        rates.observe(&snap(1000, 0, 0), t0 + Duration::from_millis(1250));
        assert_eq!(rates.server.msgs_in, 10.0);
        assert_eq!(rates.history_in.len(), 1);
    }

    #[test]
    fn a_counter_going_down_reads_as_zero() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.observe(&snap(500, 500, 500), t0);
        rates.observe(&snap(5, 5, 5), t0 + Duration::from_secs(1));
        assert_eq!(rates.server.msgs_in, 0.0);
        assert_eq!(rates.topic(0).msgs_in, 0.0);
    }

    #[test]
    fn history_is_bounded() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        for i in 0..(HISTORY_LEN as u64 + 10) {
            rates.observe(&snap(i * 7, 0, 0), t0 + Duration::from_secs(i));
        }
        assert_eq!(rates.history_in.len(), HISTORY_LEN);
    }

    #[test]
    fn a_steady_slow_topic_reads_steady() {
        // 0.4 msg/s: one message every 2.5 s, snapshots every second.
        let start = Instant::now();
        let mut rates = Rates::default();
        let mut shown = Vec::new();
        for t in 0..40u64 {
            let topic_in = t * 2 / 5;
            rates.observe(&snap(topic_in, topic_in, 0), start + Duration::from_secs(t));
            if t >= 20 {
                shown.push(rates.topic(0).msgs_in);
            }
        }
        // Unsmoothed, each second reads 0 or 1.
        for r in &shown {
            assert!((0.25..=0.55).contains(r), "{shown:?}");
        }
        // The sparkline still draws what each second did.
        assert!(rates.history_in.iter().all(|&n| n <= 1));
        assert!(rates.history_in.contains(&0) && rates.history_in.contains(&1));
    }

    #[test]
    fn a_burst_fades_over_seconds_not_at_once() {
        let start = Instant::now();
        let mut rates = Rates::default();
        let mut total = 0;
        for t in 0..12u64 {
            if t == 6 {
                total += 200;
            }
            rates.observe(&snap(total, total, 0), start + Duration::from_secs(t));
        }
        // 200 in one second, then 5 quiet ones: still well above 0, well below 200.
        let r = rates.topic(0).msgs_in;
        assert!((10.0..100.0).contains(&r), "{r}");
    }
}
