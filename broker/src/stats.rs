//! The snapshot of broker state: what `stats`/`watch` send and what the dashboard draws.
//!
//! Counters are totals since the broker started; rates are the reader's to derive
//! from the deltas between two snapshots. Field names follow PROTOCOL.md.

use serde::{Deserialize, Serialize};

/// Everything an operator can see at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub server: ServerStats,
    pub topics: Vec<TopicStats>,
    pub queues: Vec<QueueStats>,
    pub clients: Vec<ClientStats>,
    /// Every unacked job, oldest first.
    #[serde(default)]
    pub inflight: Vec<InFlightStats>,
    /// The most recent broker events, oldest first, each with an increasing `seq`.
    #[serde(default)]
    pub events: Vec<EventRecord>,
}

/// Broker-wide figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    pub version: String,
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
}

/// One topic: a name that was published to, declared or subscribed to exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicStats {
    pub name: String,
    /// Subscriptions whose pattern matches this topic.
    pub subscribers: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub retained: bool,
    /// Messages held on disk (retained topics only).
    pub stored: u64,
    #[serde(default)]
    pub stored_bytes: u64,
    pub sealed: bool,
}

/// One work queue, with RabbitMQ's notions of ready and unacknowledged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    pub name: String,
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages delivered and not yet acked.
    pub unacked: u64,
    pub consumers: u64,
    pub msgs_in: u64,
    pub acked: u64,
    pub redelivered: u64,
    pub dead: u64,
    pub durable: bool,
    /// Age in milliseconds of the oldest ready message, if any.
    #[serde(default)]
    pub oldest_ready_ms: Option<u64>,
    /// Messages held on disk (durable queues only).
    #[serde(default)]
    pub stored: u64,
    #[serde(default)]
    pub stored_bytes: u64,
}

/// One connected client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Broker-assigned id, e.g. `c42`.
    pub id: String,
    /// The name the client gave in `hello`, if any.
    pub name: Option<String>,
    pub addr: String,
    pub connected_s: u64,
    /// Number of topic subscriptions.
    pub subs: u64,
    /// Number of queue consumers.
    pub consumers: u64,
    /// Jobs delivered to this client and not yet settled.
    pub unacked: u64,
    /// Frames waiting in the outbound buffer.
    pub pending: u64,
    pub pending_bytes: u64,
    /// Capacity of the outbound buffer in bytes: `pending_bytes / pending_limit` is its fill.
    #[serde(default)]
    pub pending_limit: u64,
    pub slow: bool,
    /// Messages this client published or sent.
    #[serde(default)]
    pub msgs_in: u64,
    /// Deliveries to this client.
    #[serde(default)]
    pub msgs_out: u64,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionStats>,
}

/// One subscription held by a client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionStats {
    pub sid: String,
    pub pattern: String,
    #[serde(default)]
    pub filter: Option<String>,
}

/// One unacked job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InFlightStats {
    pub queue: String,
    pub tag: u64,
    pub msg: String,
    pub client: String,
    pub cid: String,
    pub attempt: u32,
    pub age_ms: u64,
    /// Milliseconds until the ack deadline; negative once it has passed.
    pub deadline_in_ms: i64,
}

/// Something that happened in the broker, for the dashboard's event log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    /// Unix milliseconds.
    pub time: u64,
    pub kind: EventKind,
    pub text: String,
}

/// What kind of thing an [`EventRecord`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    #[default]
    Connect,
    Disconnect,
    Kick,
    Slow,
    DeadLetter,
    Purge,
    Delete,
    Requeue,
    Publish,
    Storage,
}
