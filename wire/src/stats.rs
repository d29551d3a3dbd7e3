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
    /// A later frame of a `watch` with `changes`: `topics`, `queues` and `clients`
    /// hold only rows new or changed since the frame before, `events` only newer
    /// events, and `gone` the rows that went away; take it in with
    /// [`Snapshot::apply`]. On the wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub changes: bool,
    /// In a frame with `changes`: the rows gone since the frame before. On the
    /// wire only when some are.
    #[serde(default, skip_serializing_if = "Gone::is_empty")]
    pub gone: Gone,
}

/// The rows a frame with `changes` removes, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gone {
    /// Topic names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Queue names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Client ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
}

impl Gone {
    /// Whether nothing is gone.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.queues.is_empty() && self.clients.is_empty()
    }
}

/// Events a reader of changes keeps, the newest: as many as the broker's log.
pub const EVENTS_KEPT: usize = 500;

impl Snapshot {
    /// Takes in the next frame of a `watch`: a whole snapshot replaces this one; a
    /// frame with `changes` updates it, row by row, to what the broker holds now.
    ///
    /// A client row left as it was has its `connected_s` moved on by the time
    /// `server.uptime_s` moved, and a queue row its `oldest_ready_ms` by the time
    /// `server.time_ms` moved: the broker does not resend a row for its age alone.
    pub fn apply(&mut self, frame: Snapshot) {
        if !frame.changes {
            *self = frame;
            return;
        }
        let elapsed = frame.server.uptime_s.saturating_sub(self.server.uptime_s);
        for client in &mut self.clients {
            client.connected_s += elapsed;
        }
        let elapsed_ms = frame.server.time_ms.saturating_sub(self.server.time_ms);
        for queue in &mut self.queues {
            if let Some(age) = &mut queue.oldest_ready_ms {
                *age += elapsed_ms;
            }
        }
        let Snapshot {
            server,
            topics,
            queues,
            clients,
            inflight,
            events,
            truncated,
            gone,
            ..
        } = frame;
        merge(&mut self.topics, topics, &gone.topics, |t| &t.name);
        merge(&mut self.queues, queues, &gone.queues, |q| &q.name);
        merge(&mut self.clients, clients, &gone.clients, |c| &c.id);
        self.topics.sort_by(|a, b| a.name.cmp(&b.name));
        self.queues.sort_by(|a, b| a.name.cmp(&b.name));
        self.clients
            .sort_by(|a, b| client_order(&a.id).cmp(&client_order(&b.id)));
        let newest = self.events.last().map_or(0, |e| e.seq);
        self.events
            .extend(events.into_iter().filter(|e| e.seq > newest));
        let extra = self.events.len().saturating_sub(EVENTS_KEPT);
        self.events.drain(..extra);
        self.server = server;
        self.inflight = inflight;
        self.truncated = truncated;
        self.changes = false;
        self.gone = Gone::default();
    }
}

/// `rows` with `changed` put in (replacing rows of the same key) and `gone` taken out.
fn merge<T>(rows: &mut Vec<T>, changed: Vec<T>, gone: &[String], key: impl Fn(&T) -> &String) {
    if changed.is_empty() && gone.is_empty() {
        return;
    }
    let mut replaced: std::collections::HashMap<String, T> = changed
        .into_iter()
        .map(|row| (key(&row).clone(), row))
        .collect();
    let gone: std::collections::HashSet<&String> = gone.iter().collect();
    rows.retain(|row| !gone.contains(key(row)));
    for row in rows.iter_mut() {
        if let Some(new) = replaced.remove(key(row)) {
            *row = new;
        }
    }
    rows.extend(replaced.into_values());
}

/// Where a client id sorts: this node's clients first (`c42`), then other
/// nodes' (`c42@web2`) by node; on a node, by the number in the id, which orders
/// clients as they connected.
pub fn client_order(id: &str) -> (&str, u64) {
    let (local, node) = id.split_once('@').unwrap_or((id, ""));
    (
        node,
        local.get(1..).and_then(|n| n.parse().ok()).unwrap_or(0),
    )
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// Broker-wide figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// The broker's version, e.g. `0.1.0`.
    pub version: String,
    /// Seconds since the broker started.
    pub uptime_s: u64,
    /// The broker's clock when it took the snapshot, Unix milliseconds.
    #[serde(default)]
    pub time_ms: u64,
    /// The address the broker listens on, e.g. `127.0.0.1:7400`.
    pub listen: String,
    /// Clients connected: open WebSockets, and HTTP API requests while they
    /// are answered (each is a client of its own meanwhile).
    pub connections: u64,
    /// Jobs delivered and not yet settled, in every queue. The snapshot's
    /// `inflight` list may hold fewer: it is bounded, and a `watch` may ask for
    /// only some.
    #[serde(default)]
    pub inflight: u64,
    /// Messages accepted (`pub`, `send`, `request`).
    pub msgs_in: u64,
    /// Deliveries written to clients (`msg` and `job` events).
    pub msgs_out: u64,
    /// Slow clients kicked: by the broker because their outbound buffer filled,
    /// or by an operator while they were marked slow.
    #[serde(default)]
    pub slow_consumers: u64,
    /// Of `slow_consumers`, those kicked for reading nothing of their buffer,
    /// past the slow mark, for `slow_timeout`.
    #[serde(default)]
    pub stuck_consumers: u64,
    /// Times a publisher waited for a slow reader's buffer (pacing).
    #[serde(default)]
    pub pauses: u64,
    /// The microseconds of those waits, in all.
    #[serde(default)]
    pub paused_us: u64,
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
    /// Bytes of WebSocket frames read from clients' sockets, headers included.
    #[serde(default)]
    pub bytes_received: u64,
    /// Bytes of WebSocket frames written to clients' sockets, headers included.
    #[serde(default)]
    pub bytes_sent: u64,
    /// With `serve --nats`: this node and its link to NATS. Absent on one machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStats>,
}

/// A node's place in its NATS cluster (`serve --nats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    /// This node's name (`--node`).
    pub node: String,
    /// Whether its NATS connection is up.
    pub connected: bool,
    /// While it is not: why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The nodes this node's view holds, this one first then by name: its own,
    /// and every node whose snapshot came in over NATS (docs/PROTOCOL.md,
    /// "The cluster view"). Empty from a node that predates the view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStats>,
}

/// One node of the cluster view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// The node's name.
    pub node: String,
    /// Milliseconds since its last snapshot came in (0 for this node).
    pub age_ms: u64,
    /// Its snapshot has not come for 3 s: its clients and jobs are left out of
    /// the view. On the wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gone: bool,
    /// Its clients, as its last snapshot counted them.
    pub connections: u64,
    /// Whether its last snapshot was cut to its bound, so that it shows only
    /// part of that node. On the wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
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
    /// Messages dead-lettered or dropped: after `max_attempts`, a `nack` without
    /// requeue, or their time to live.
    pub dead: u64,
    /// Of the `dead`, those whose time to live ran out before a consumer took them.
    #[serde(default)]
    pub expired: u64,
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
    /// Its depth (ready and unacked) grew over the last 30 s while no job was
    /// acked. On the wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stuck: bool,
    /// `request`s sent to it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u64,
    /// Of those, the ones whose requester had no reply in time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub request_timeouts: u64,
    /// Median time from `request` to `reply`, in milliseconds, over the last one
    /// to two minutes (none without a reply in that time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_p50_ms: Option<f64>,
    /// The 99th percentile of the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_p99_ms: Option<f64>,
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
    /// How fast its outbound buffer fills, in bytes a second, averaged over the
    /// last seconds; negative while it drains.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub fill_rate: i64,
    /// While its buffer fills: seconds until it is full and the client is kicked
    /// as a slow consumer, at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kick_in_s: Option<u64>,
    /// Messages this client published or sent.
    #[serde(default)]
    pub msgs_in: u64,
    /// Deliveries to this client.
    #[serde(default)]
    pub msgs_out: u64,
    /// Bytes written to its socket (from its welcome on, so not zero for a
    /// client of a socket; left out when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_out: u64,
    /// How fast it reads: bytes a second written to its socket, averaged over
    /// the last seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drain_rate: u64,
    /// Times a publisher was paused because this client's buffer was past the
    /// slow mark while it read (it is slow, not stuck).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pauses: u64,
    /// Times this client, publishing, was paused for a slow reader.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused: u64,
    #[serde(default)]
    /// Its subscriptions, by sid.
    pub subscriptions: Vec<SubscriptionStats>,
    /// With `serve --nats`: the node it is connected to. A client of another
    /// node has the id `c42@web2` in this node's view. Absent on one machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
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
    /// The client holding it (`c42`; `c42@web2` in a cluster view, for a client
    /// of node `web2`).
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
    /// A kind this reader does not know (from a newer broker): the event is kept
    /// with its text rather than failing the whole snapshot.
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, msgs_in: u64) -> TopicStats {
        TopicStats {
            name: name.into(),
            msgs_in,
            ..TopicStats::default()
        }
    }

    fn client(id: &str, connected_s: u64) -> ClientStats {
        ClientStats {
            id: id.into(),
            connected_s,
            ..ClientStats::default()
        }
    }

    fn event(seq: u64) -> EventRecord {
        EventRecord {
            seq,
            ..EventRecord::default()
        }
    }

    fn whole() -> Snapshot {
        Snapshot {
            server: ServerStats {
                uptime_s: 100,
                ..ServerStats::default()
            },
            topics: vec![topic("a", 1), topic("b", 1), topic("c", 1)],
            clients: vec![client("c2", 10), client("c10", 5)],
            events: vec![event(1), event(2)],
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_whole_frame_replaces_and_a_frame_of_changes_merges_row_by_row() {
        let mut seen = Snapshot {
            topics: vec![topic("old", 9)],
            ..Snapshot::default()
        };
        seen.apply(whole());
        assert_eq!(seen, whole());
        seen.apply(Snapshot {
            server: ServerStats {
                uptime_s: 103,
                ..ServerStats::default()
            },
            topics: vec![topic("b", 7), topic("aa", 1)],
            clients: vec![client("c3", 0)],
            events: vec![event(2), event(3)],
            changes: true,
            gone: Gone {
                topics: vec!["c".into()],
                clients: vec!["c10".into()],
                ..Gone::default()
            },
            ..Snapshot::default()
        });
        assert_eq!(
            seen.topics,
            [topic("a", 1), topic("aa", 1), topic("b", 7)],
            "changed rows replace theirs, new ones join in name order, gone ones go"
        );
        // Kept rows age with the broker's clock; clients stay in id order.
        assert_eq!(seen.clients, [client("c2", 13), client("c3", 0)]);
        assert_eq!(
            seen.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(seen.server.uptime_s, 103);
        assert!(!seen.changes && seen.gone.is_empty());
    }

    #[test]
    fn rows_kept_as_they_were_age_with_the_brokers_clock() {
        let mut seen = Snapshot {
            server: ServerStats {
                uptime_s: 10,
                time_ms: 50_000,
                ..ServerStats::default()
            },
            queues: vec![
                QueueStats {
                    name: "backlog".into(),
                    oldest_ready_ms: Some(1_000),
                    ..QueueStats::default()
                },
                QueueStats {
                    name: "empty".into(),
                    ..QueueStats::default()
                },
            ],
            ..Snapshot::default()
        };
        seen.apply(Snapshot {
            server: ServerStats {
                uptime_s: 10,
                time_ms: 50_250,
                ..ServerStats::default()
            },
            changes: true,
            ..Snapshot::default()
        });
        let ages: Vec<_> = seen.queues.iter().map(|q| q.oldest_ready_ms).collect();
        assert_eq!(ages, [Some(1_250), None]);
    }

    #[test]
    fn events_taken_in_by_changes_keep_only_the_newest() {
        let mut seen = whole();
        seen.apply(Snapshot {
            events: (3..=EVENTS_KEPT as u64 + 10).map(event).collect(),
            changes: true,
            ..Snapshot::default()
        });
        assert_eq!(seen.events.len(), EVENTS_KEPT);
        assert_eq!(
            seen.events.last().map(|e| e.seq),
            Some(EVENTS_KEPT as u64 + 10)
        );
    }

    #[test]
    fn changes_and_gone_are_on_the_wire_only_when_set() {
        let json = serde_json::to_string(&whole()).unwrap();
        assert!(
            !json.contains("changes") && !json.contains("gone"),
            "{json}"
        );
        let frame = Snapshot {
            changes: true,
            gone: Gone {
                queues: vec!["q".into()],
                ..Gone::default()
            },
            ..Snapshot::default()
        };
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(
            (&json["changes"], &json["gone"]),
            (
                &serde_json::json!(true),
                &serde_json::json!({"queues":["q"]})
            )
        );
        assert_eq!(serde_json::from_value::<Snapshot>(json).unwrap(), frame);
    }
}
