//! The snapshot of broker state: what `stats`/`watch` send and what the dashboard draws.
//!
//! Counters are totals since the broker started; rates are the reader's to derive
//! from the deltas between two snapshots. Field names follow PROTOCOL.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything an operator can see at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Broker-wide figures.
    pub server: ServerStats,
    /// Every topic, by name.
    pub topics: Vec<TopicStats>,
    /// Every queue, by name.
    pub queues: Vec<QueueStats>,
    /// Every connected client, by id.
    pub clients: Vec<ClientStats>,
    /// Every unacked job, oldest first.
    #[serde(default)]
    pub inflight: Vec<InFlightStats>,
    /// The most recent broker events, oldest first, each with an increasing `seq`.
    #[serde(default)]
    pub events: Vec<EventRecord>,
    /// Whether lists were cut so the frame fits its bound in bytes: a `stats` or
    /// `watch` answer is at most half the client's outbound buffer, so asking never
    /// gets a client kicked as slow. `server` is always whole; in-flight jobs are cut
    /// first, then events, clients, topics and queues (docs/PROTOCOL.md). On the
    /// wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Broker-wide figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// The broker's version, e.g. `0.1.0`.
    pub version: String,
    /// Seconds since the broker started.
    pub uptime_s: u64,
    /// The address the broker listens on, e.g. `127.0.0.1:7400`.
    pub listen: String,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Messages accepted (`pub`, `send`, `request`).
    pub msgs_in: u64,
    /// Deliveries written to clients (`msg` and `job` events).
    pub msgs_out: u64,
    /// Clients disconnected because their outbound buffer filled.
    #[serde(default)]
    pub slow_consumers: u64,
    /// Messages dead-lettered or dropped after `max_attempts`.
    #[serde(default)]
    pub dead: u64,
    /// Whether clients must present a token (the config file names users or a JWT
    /// secret). The dashboard marks a broker on a non-loopback address without it.
    #[serde(default)]
    pub auth: bool,
    /// WebSocket upgrades refused because their `Origin` is not let in.
    #[serde(default)]
    pub refused_origin: u64,
    /// Connections to a TLS port whose TLS handshake failed (plain HTTP among them).
    #[serde(default)]
    pub tls_failures: u64,
    /// Refusals because a limit was reached or a rule broken, by reason (the
    /// labels of `switchyard_refusals_total`, docs/OPERATIONS.md).
    #[serde(default)]
    pub refusals: BTreeMap<String, u64>,
    /// `error` events sent to clients, by code.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Bytes every connection's read buffers hold now (unfinished frames
    /// above all).
    #[serde(default)]
    pub inbound_bytes: u64,
    /// What they may hold together (`max_inbound`).
    #[serde(default)]
    pub max_inbound: u64,
    /// Bytes waiting in all outbound buffers together (pushed, not yet written).
    #[serde(default)]
    pub outbound_bytes: u64,
    /// The most they may hold together (`max_outbound`); past it the clients
    /// holding the most are kicked. 0 from a broker that predates the budget.
    #[serde(default)]
    pub outbound_budget: u64,
}

/// One topic: a name that was published to, declared or subscribed to exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicStats {
    /// The topic's name.
    pub name: String,
    /// Subscriptions whose pattern matches this topic.
    pub subscribers: u64,
    /// Messages published to it.
    pub msgs_in: u64,
    /// Deliveries of its messages to subscriptions.
    pub msgs_out: u64,
    /// Whether its messages are kept on disk.
    pub retained: bool,
    /// Messages held on disk (retained topics only).
    pub stored: u64,
    #[serde(default)]
    /// Bytes on disk (retained topics only).
    pub stored_bytes: u64,
    /// Whether it is sealed: it takes no more messages.
    pub sealed: bool,
}

/// One work queue, with RabbitMQ's notions of ready and unacknowledged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages delivered and not yet acked.
    pub unacked: u64,
    /// Consumers attached.
    pub consumers: u64,
    /// Messages sent to it.
    pub msgs_in: u64,
    /// Jobs acked (or replied to).
    pub acked: u64,
    /// Deliveries after the first (timeouts, nacks, consumers gone).
    pub redelivered: u64,
    /// Messages dead-lettered or dropped after `max_attempts`.
    pub dead: u64,
    /// Whether its messages are kept on disk.
    pub durable: bool,
    /// Age in milliseconds of the oldest ready message, if any.
    #[serde(default)]
    pub oldest_ready_ms: Option<u64>,
    /// Messages held on disk (durable queues only).
    #[serde(default)]
    pub stored: u64,
    #[serde(default)]
    /// Bytes on disk (durable queues only).
    pub stored_bytes: u64,
}

/// One connected client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Broker-assigned id, e.g. `c42`.
    pub id: String,
    /// The name the client gave in `hello`, if any.
    pub name: Option<String>,
    /// The user whose token it presented (auth on), if one was accepted.
    #[serde(default)]
    pub user: Option<String>,
    /// The client's address, e.g. `127.0.0.1:52814`.
    pub addr: String,
    /// Seconds since it connected.
    pub connected_s: u64,
    /// Number of topic subscriptions.
    pub subs: u64,
    /// Number of queue consumers.
    pub consumers: u64,
    /// Jobs delivered to this client and not yet settled.
    pub unacked: u64,
    /// Frames waiting in the outbound buffer.
    pub pending: u64,
    /// Bytes waiting in its outbound buffer.
    pub pending_bytes: u64,
    /// Capacity of the outbound buffer in bytes: `pending_bytes / pending_limit` is its fill.
    #[serde(default)]
    pub pending_limit: u64,
    /// Whether its buffer is over the slow mark.
    pub slow: bool,
    /// Messages this client published or sent.
    #[serde(default)]
    pub msgs_in: u64,
    /// Deliveries to this client.
    #[serde(default)]
    pub msgs_out: u64,
    #[serde(default)]
    /// Its subscriptions, by sid.
    pub subscriptions: Vec<SubscriptionStats>,
}

/// One subscription held by a client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionStats {
    /// The subscription's id on its connection.
    pub sid: String,
    /// The topic pattern it matches.
    pub pattern: String,
    #[serde(default)]
    /// Its filter's text, if it has one.
    pub filter: Option<String>,
}

/// One unacked job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InFlightStats {
    /// The queue the job came from.
    pub queue: String,
    /// The tag its consumer settles it by.
    pub tag: u64,
    /// The message id.
    pub msg: String,
    /// The client holding it (`c42`).
    pub client: String,
    /// The consumer on that client.
    pub cid: String,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// Milliseconds since this delivery started.
    pub age_ms: u64,
    /// Milliseconds until the ack deadline; negative once it has passed.
    pub deadline_in_ms: i64,
}

/// Something that happened in the broker, for the dashboard's event log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Increasing from 1, so a reader can tell new events from seen ones.
    pub seq: u64,
    /// Unix milliseconds.
    pub time: u64,
    /// What kind of event.
    pub kind: EventKind,
    /// What happened, in words.
    pub text: String,
}

/// What kind of thing an [`EventRecord`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    #[default]
    /// A client connected.
    Connect,
    /// A client disconnected.
    Disconnect,
    /// A client was kicked.
    Kick,
    /// A client became slow.
    Slow,
    /// A message was dead-lettered or dropped.
    DeadLetter,
    /// A queue was purged.
    Purge,
    /// A queue or topic was deleted.
    Delete,
    /// A job was requeued by an operator.
    Requeue,
    /// An operator published or sent.
    Publish,
    /// Storage: recovery, repairs, failures.
    Storage,
    /// Something refused: a browser's upgrade from a foreign Origin, a bad token,
    /// an op the user may not do.
    Refused,
}
