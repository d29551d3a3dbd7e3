//! The operator streams a connection may hold open: a `watch` (a snapshot every
//! interval, whole or as changes) and a `tail` (every message on a topic pattern,
//! as the console's tail shows them). Each is a task of its own, ended when the
//! client asks, asks again with other options, or goes away.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::broker::{Broker, Tail};
use crate::outbound::OutItem;
use crate::protocol::{event, RequestId, WatchOptions};
use crate::session::Session;
use crate::stats::{ClientStats, Gone, Snapshot};

/// Shortest interval a `watch` may ask for.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// How often a tail hands what arrived to its connection.
const TAIL_EVERY: Duration = Duration::from_millis(100);

/// Messages a tail keeps while its connection cannot take them; past this the
/// oldest go, as the console's own tail drops them. A tail is a look, not a
/// subscription: it never holds a publisher or gets its reader kicked.
pub(super) const TAIL_CAPACITY: usize = 1000;

/// A task that stops when dropped: a connection's stream ends with it.
pub(super) struct Stream(JoinHandle<()>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.abort();
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
    let broker = broker.clone();
    Stream(broker.runtime().clone().spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = options.changes.then(Sent::default);
        loop {
            ticks.tick().await;
            if session.outbound.is_closed() {
                return;
            }
            let snapshot = select_inflight(broker.snapshot(), &options);
            let snapshot = match &mut sent {
                None => broker.bound(snapshot),
                Some(sent) => sent.next_frame(&broker, snapshot),
            };
            let frame = event::stats(id.as_ref(), &snapshot);
            if session.push(OutItem::Text(&frame)).is_err() {
                return;
            }
        }
    }))
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

/// What a watch with `changes` has sent: a digest of each row as last sent, and
/// the newest event sent. A row whose digest is unchanged is not sent again.
#[derive(Default)]
struct Sent {
    /// Whether the first, whole frame has gone.
    started: bool,
    topics: HashMap<String, u64>,
    queues: HashMap<String, u64>,
    clients: HashMap<String, u64>,
    last_event: u64,
}

impl Sent {
    /// The next frame: whole the first time, then only what changed. Rows that do
    /// not fit the frame's bound are not marked sent, so a later frame carries them.
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
        let changes = self.started;
        let topics = changed(&self.topics, topics, |t| &t.name, digest);
        let queues = changed(&self.queues, queues, |q| &q.name, digest);
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
            gone: Gone::default(),
        });
        for t in &frame.topics {
            self.topics.insert(t.name.clone(), digest(t));
        }
        for q in &frame.queues {
            self.queues.insert(q.name.clone(), digest(q));
        }
        for c in &frame.clients {
            self.clients.insert(c.id.clone(), client_digest(c));
        }
        if let Some(newest) = frame.events.iter().map(|e| e.seq).max() {
            self.last_event = newest;
        }
        self.started = true;
        // Gone names are short and always whole: a reader must never keep a row
        // the broker no longer has.
        Snapshot { gone, ..frame }
    }
}

/// Names sent before and missing now, forgotten as they are returned.
fn vanished<'a>(
    sent: &mut HashMap<String, u64>,
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

/// The rows whose digest differs from the one last sent (new rows among them).
fn changed<T>(
    sent: &HashMap<String, u64>,
    rows: Vec<T>,
    key: impl Fn(&T) -> &String,
    digest: impl Fn(&T) -> u64,
) -> Vec<T> {
    rows.into_iter()
        .filter(|row| sent.get(key(row)) != Some(&digest(row)))
        .collect()
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

/// Starts a `tail` of `pattern`: every message published to a matching topic, as
/// a `tail` event, until dropped or the client goes away. What arrives while the
/// connection's buffer is over a quarter full waits in the tail (the newest
/// [`TAIL_CAPACITY`] are kept), so a tail never gets its reader kicked.
pub(super) fn tail(broker: &Broker, session: Arc<Session>, tail: Tail) -> Stream {
    Stream(broker.runtime().clone().spawn(async move {
        let mut ticks = tokio::time::interval(TAIL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if session.outbound.is_closed() {
                return;
            }
            while session.outbound.bytes() < session.outbound.limit() / 4 {
                let messages = tail.drain(64);
                if messages.is_empty() {
                    break;
                }
                for message in &messages {
                    if session.push(OutItem::Text(&event::tail(message))).is_err() {
                        return;
                    }
                }
            }
        }
    }))
}
