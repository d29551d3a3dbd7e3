//! The operator streams a connection may hold open: a `watch` (a snapshot every
//! interval, whole or as changes) and a `tail` (every message on a topic pattern,
//! as the console's tail shows them). Each is a task of its own, ended when the
//! client asks, asks again with other options, or goes away.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::broker::{Broker, Tail};
use crate::outbound::OutItem;
use crate::protocol::{event, RequestId, WatchOptions};
use crate::session::Session;
use crate::stats::{ClientStats, Gone, QueueStats, Snapshot};

/// Shortest interval a `watch` may ask for.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// How often a tail hands what arrived to its connection.
const TAIL_EVERY: Duration = Duration::from_millis(100);

/// Messages a tail keeps while its connection cannot take them; past this the
/// oldest go, as the console's own tail drops them. A tail is a look, not a
/// subscription: it never holds a publisher or gets its reader kicked.
pub(super) const TAIL_CAPACITY: usize = 1000;

/// A stream's task, which stops when this is dropped: a connection's streams end
/// with it. Stopping is immediate: the task pushes only while holding `alive`
/// and sees it false once the drop has returned, so nothing of an old stream
/// follows the `ok` to `unwatch`, `untail` or a replacing `watch` or `tail`.
pub(super) struct Stream {
    task: JoinHandle<()>,
    alive: Arc<Mutex<bool>>,
}

impl Stream {
    fn spawn<F>(broker: &Broker, run: impl FnOnce(Arc<Mutex<bool>>) -> F) -> Stream
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let alive = Arc::new(Mutex::new(true));
        let task = broker.runtime().spawn(run(Arc::clone(&alive)));
        Stream { task, alive }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        *self.alive.lock() = false;
        self.task.abort();
    }
}

/// Starts a `watch`: a `stats` frame every interval until dropped or the client
/// goes away.
pub(super) fn watch(
    broker: &Broker,
    session: Arc<Session>,
    id: Option<RequestId>,
    options: WatchOptions,
) -> Stream {
    let interval = Duration::from_millis(options.interval_ms).max(MIN_WATCH_INTERVAL);
    let broker_in_task = broker.clone();
    Stream::spawn(broker, move |alive| async move {
        let broker = broker_in_task;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = options.changes.then(Sent::default);
        loop {
            ticks.tick().await;
            if session.outbound.is_closed() {
                return;
            }
            let snapshot = select_inflight(broker.snapshot(), &options);
            let alive = alive.lock();
            if !*alive {
                return;
            }
            let snapshot = match &mut sent {
                None => broker.bound(snapshot),
                Some(sent) => sent.next_frame(&broker, snapshot),
            };
            let frame = event::stats(id.as_ref(), &snapshot);
            if session.push(OutItem::Text(&frame)).is_err() {
                return;
            }
        }
    })
}

/// The snapshot with only the in-flight jobs the watch asked for.
fn select_inflight(mut snapshot: Snapshot, options: &WatchOptions) -> Snapshot {
    if let Some(client) = &options.client {
        snapshot.inflight.retain(|job| &job.client == client);
    }
    if let Some(limit) = options.inflight {
        snapshot
            .inflight
            .truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    snapshot
}

/// What a watch with `changes` has sent: for each row, a digest of it as last
/// sent and the frame that sent it, and the newest event sent. A row whose
/// digest is unchanged is not sent again.
#[derive(Default)]
struct Sent {
    /// Frames made so far; the first is whole.
    frames: u64,
    topics: HashMap<String, (u64, u64)>,
    queues: HashMap<String, (u64, u64)>,
    clients: HashMap<String, (u64, u64)>,
    last_event: u64,
}

impl Sent {
    /// The next frame: whole the first time, then only what changed. Rows that do
    /// not fit the frame's bound are not marked sent, so a later frame carries
    /// them; changed rows go in the order they were last sent, the longest
    /// waiting first, so under a bound that cuts every frame no row waits for ever.
    /// Events go oldest first and are cut at the newest, so the next frame goes
    /// on from the last one sent and none is skipped.
    fn next_frame(&mut self, broker: &Broker, snapshot: Snapshot) -> Snapshot {
        let Snapshot {
            server,
            topics,
            queues,
            clients,
            inflight,
            events,
            ..
        } = snapshot;
        let gone = Gone {
            topics: vanished(&mut self.topics, topics.iter().map(|t| &t.name)),
            queues: vanished(&mut self.queues, queues.iter().map(|q| &q.name)),
            clients: vanished(&mut self.clients, clients.iter().map(|c| &c.id)),
        };
        let changes = self.frames > 0;
        let topics = changed(&self.topics, topics, |t| &t.name, digest);
        let queues = changed(&self.queues, queues, |q| &q.name, queue_digest);
        let clients = changed(&self.clients, clients, |c| &c.id, client_digest);
        let last_event = self.last_event;
        let events = events.into_iter().filter(|e| e.seq > last_event).collect();
        let frame = broker.bound(Snapshot {
            server,
            topics,
            queues,
            clients,
            inflight,
            events,
            truncated: false,
            changes,
            gone,
        });
        self.frames += 1;
        let at = self.frames;
        for t in &frame.topics {
            self.topics.insert(t.name.clone(), (digest(t), at));
        }
        for q in &frame.queues {
            self.queues.insert(q.name.clone(), (queue_digest(q), at));
        }
        for c in &frame.clients {
            self.clients.insert(c.id.clone(), (client_digest(c), at));
        }
        if let Some(newest) = frame.events.iter().map(|e| e.seq).max() {
            self.last_event = newest;
        }
        frame
    }
}

/// Names sent before and missing now, forgotten as they are returned.
fn vanished<'a>(
    sent: &mut HashMap<String, (u64, u64)>,
    now: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let now: HashSet<&String> = now.collect();
    let mut gone: Vec<String> = sent.keys().filter(|k| !now.contains(k)).cloned().collect();
    gone.sort();
    for name in &gone {
        sent.remove(name);
    }
    gone
}

/// The rows whose digest differs from the one last sent (new rows among them),
/// those sent longest ago first (new ones before all).
fn changed<T>(
    sent: &HashMap<String, (u64, u64)>,
    rows: Vec<T>,
    key: impl Fn(&T) -> &String,
    digest: impl Fn(&T) -> u64,
) -> Vec<T> {
    let mut rows: Vec<(u64, T)> = rows
        .into_iter()
        .filter_map(|row| match sent.get(key(&row)) {
            Some(&(d, _)) if d == digest(&row) => None,
            Some(&(_, at)) => Some((at, row)),
            None => Some((0, row)),
        })
        .collect();
    rows.sort_by_key(|(at, _)| *at);
    rows.into_iter().map(|(_, row)| row).collect()
}

/// A digest of a row's JSON.
fn digest<T: Serialize>(row: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    // Plain data: serializing it cannot fail.
    serde_json::to_string(row)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// A client's digest without `connected_s`, which changes every second for every
/// client: a reader advances it by the change in `server.uptime_s` instead, so an
/// idle client costs nothing per frame.
fn client_digest(client: &ClientStats) -> u64 {
    digest(&ClientStats {
        connected_s: 0,
        ..client.clone()
    })
}

/// A queue's digest without the age of its oldest ready message (only whether
/// it has one), which moves every frame for every queue with a backlog: a
/// reader advances it by the change in `server.time_ms`.
fn queue_digest(queue: &QueueStats) -> u64 {
    digest(&QueueStats {
        oldest_ready_ms: queue.oldest_ready_ms.map(|_| 0),
        ..queue.clone()
    })
}

/// Starts a `tail`: every message published to a topic `tail` matches, as a
/// `tail` event, until dropped or the client goes away. A message is pushed only
/// while the connection's buffer, with it, stays under a quarter of its limit;
/// the rest wait in the tail (which keeps the newest, [`TAIL_CAPACITY`] messages
/// or its byte bound), so a tail never gets its reader kicked. Each tick hands
/// over at most a tail's worth, then waits for the next.
pub(super) fn tail(broker: &Broker, session: Arc<Session>, tail: Tail) -> Stream {
    Stream::spawn(broker, move |alive| async move {
        let mut ticks = tokio::time::interval(TAIL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut waiting: Option<String> = None;
        loop {
            ticks.tick().await;
            if session.outbound.is_closed() {
                return;
            }
            let room = session.outbound.limit() / 4;
            let alive = alive.lock();
            if !*alive {
                return;
            }
            for _ in 0..TAIL_CAPACITY {
                let frame = match waiting.take() {
                    Some(frame) => frame,
                    None => match tail.drain(1).pop() {
                        Some(message) => event::tail(&message),
                        None => break,
                    },
                };
                if session.outbound.bytes() + frame.len() > room {
                    // A frame larger than the room is never sent: passed over, so
                    // it does not hold every message after it.
                    if frame.len() <= room {
                        waiting = Some(frame);
                    }
                    break;
                }
                if session.push(OutItem::Text(&frame)).is_err() {
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_rows_go_longest_waiting_first_and_unchanged_ones_not_at_all() {
        let rows =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
        let sent: HashMap<String, (u64, u64)> = [
            ("a".to_string(), (digest(&"a"), 5)),
            ("b".to_string(), (1, 2)),
            ("c".to_string(), (1, 7)),
            ("d".to_string(), (1, 1)),
        ]
        .into_iter()
        .collect();
        fn key(s: &String) -> &String {
            s
        }
        // `a` is as sent; `e` was never sent; the others changed, sent at 2, 7, 1.
        let out = changed(&sent, rows(&["a", "b", "c", "d", "e"]), key, |s| {
            digest(&s.as_str())
        });
        assert_eq!(out, rows(&["e", "d", "b", "c"]));
    }

    #[test]
    fn a_queue_whose_only_change_is_its_age_keeps_its_digest() {
        let queue = |ready, age| QueueStats {
            name: "q".into(),
            ready,
            oldest_ready_ms: age,
            ..QueueStats::default()
        };
        assert_eq!(
            queue_digest(&queue(1, Some(10))),
            queue_digest(&queue(1, Some(900)))
        );
        assert_ne!(
            queue_digest(&queue(1, Some(10))),
            queue_digest(&queue(1, None))
        );
        assert_ne!(
            queue_digest(&queue(1, Some(10))),
            queue_digest(&queue(2, Some(10)))
        );
    }
}
