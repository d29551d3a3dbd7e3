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
use crate::stats::{ClientStats, Gone, QueueStats, Snapshot, TopicStats};

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
    topics: Ledger,
    queues: Ledger,
    clients: Ledger,
    last_event: u64,
}

/// One list's rows as last sent: by key, the row's digest and the frame that
/// sent it.
type Ledger = HashMap<String, (u64, u64)>;

/// A row of a list a watch of changes sends: its key, and its digest (what,
/// changing, makes the row go again).
trait Row: Serialize + Sized {
    fn key(&self) -> &String;

    fn digest(&self) -> u64 {
        digest(self)
    }
}

impl Row for TopicStats {
    fn key(&self) -> &String {
        &self.name
    }
}

/// Without `oldest_ready_ms` (only whether there is one), which moves every
/// frame for every queue with a backlog: a reader advances it by the change in
/// `server.time_ms`.
impl Row for QueueStats {
    fn key(&self) -> &String {
        &self.name
    }

    fn digest(&self) -> u64 {
        digest(&QueueStats {
            oldest_ready_ms: self.oldest_ready_ms.map(|_| 0),
            ..self.clone()
        })
    }
}

/// Without `connected_s`, which changes every second for every client: a reader
/// advances it by the change in `server.uptime_s`, so an idle client costs
/// nothing per frame.
impl Row for ClientStats {
    fn key(&self) -> &String {
        &self.id
    }

    fn digest(&self) -> u64 {
        digest(&ClientStats {
            connected_s: 0,
            ..self.clone()
        })
    }
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
            topics: vanished(&mut self.topics, &topics),
            queues: vanished(&mut self.queues, &queues),
            clients: vanished(&mut self.clients, &clients),
        };
        let changes = self.frames > 0;
        let topics = changed(&self.topics, topics);
        let queues = changed(&self.queues, queues);
        let clients = changed(&self.clients, clients);
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
        sent(&mut self.topics, &frame.topics, at);
        sent(&mut self.queues, &frame.queues, at);
        sent(&mut self.clients, &frame.clients, at);
        if let Some(newest) = frame.events.iter().map(|e| e.seq).max() {
            self.last_event = newest;
        }
        frame
    }
}

/// Keys sent before and missing now, forgotten as they are returned.
fn vanished<T: Row>(ledger: &mut Ledger, now: &[T]) -> Vec<String> {
    let now: HashSet<&String> = now.iter().map(Row::key).collect();
    let mut gone: Vec<String> = ledger
        .keys()
        .filter(|k| !now.contains(k))
        .cloned()
        .collect();
    gone.sort();
    for key in &gone {
        ledger.remove(key);
    }
    gone
}

/// The rows whose digest differs from the one last sent (new rows among them),
/// those sent longest ago first (new ones before all).
fn changed<T: Row>(ledger: &Ledger, rows: Vec<T>) -> Vec<T> {
    let mut rows: Vec<(u64, T)> = rows
        .into_iter()
        .filter_map(|row| match ledger.get(row.key()) {
            Some(&(d, _)) if d == row.digest() => None,
            Some(&(_, at)) => Some((at, row)),
            None => Some((0, row)),
        })
        .collect();
    rows.sort_by_key(|(at, _)| *at);
    rows.into_iter().map(|(_, row)| row).collect()
}

/// Marks `rows` as sent in frame `at`.
fn sent<T: Row>(ledger: &mut Ledger, rows: &[T], at: u64) {
    for row in rows {
        ledger.insert(row.key().clone(), (row.digest(), at));
    }
}

/// A digest of a row's JSON.
fn digest<T: Serialize + ?Sized>(row: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    // Plain data: serializing it cannot fail.
    serde_json::to_string(row)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
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
        let topic = |name: &str, msgs_in| TopicStats {
            name: name.into(),
            msgs_in,
            ..TopicStats::default()
        };
        let now: Vec<_> = ["a", "b", "c", "d", "e"].map(|n| topic(n, 1)).into();
        // `a` is as sent; `e` was never sent; the others changed, sent at 2, 7, 1.
        let ledger: Ledger = [
            ("a", now[0].digest(), 5),
            ("b", 0, 2),
            ("c", 0, 7),
            ("d", 0, 1),
        ]
        .into_iter()
        .map(|(k, d, at)| (k.to_string(), (d, at)))
        .collect();
        let out: Vec<String> = changed(&ledger, now).into_iter().map(|t| t.name).collect();
        assert_eq!(out, ["e", "d", "b", "c"]);
    }

    #[test]
    fn a_queue_whose_only_change_is_its_age_keeps_its_digest() {
        let queue = |ready, age| QueueStats {
            name: "q".into(),
            ready,
            oldest_ready_ms: age,
            ..QueueStats::default()
        };
        assert_eq!(queue(1, Some(10)).digest(), queue(1, Some(900)).digest());
        assert_ne!(queue(1, Some(10)).digest(), queue(1, None).digest());
        assert_ne!(queue(1, Some(10)).digest(), queue(2, Some(10)).digest());
    }
}
