//! Fixed broker states and a scripted [`Source`], for tests and for drawing the
//! dashboard without a broker.
//!
//! Everything here is a pure function of its arguments: no clock, no randomness.
//! Counters grow with a `step` (one step is one second of traffic) so that two
//! snapshots a step apart give the dashboard non-zero, varied rates.

use std::collections::{BTreeMap, HashMap, VecDeque};

use switchyard_broker::names::{check_queue, check_topic, pattern_matches};
use switchyard_broker::protocol::{HeaderValue, Headers};
use switchyard_broker::stats::{
    ClientStats, EventKind, EventRecord, InFlightStats, QueueStats, ServerStats, SubscriptionStats,
    TopicStats,
};
use switchyard_broker::{
    BrokerError, Command, CommandOutcome, ErrorCode, PeekTarget, PeekedMessage, Snapshot,
    TailMessage,
};

use crate::source::Source;

/// Unix milliseconds that fixture timestamps count from: 2025-11-24T16:00:00Z.
pub const BASE_TIME_MS: u64 = 1_764_000_000_000;

/// The outbound buffer size fixture clients have: 1 MiB.
pub const PENDING_LIMIT: u64 = 1024 * 1024;

/// A total that has grown for `step` seconds at about `rate` per second, wobbling
/// so that sparklines have a shape.
fn grown(base: u64, rate: u64, step: u64, phase: u64) -> u64 {
    (0..step).fold(base, |total, k| {
        let wobble = (k * 7 + phase * 3) % 11;
        total + rate + rate * wobble / 8
    })
}

/// A cheap deterministic scramble of `i`, for varied crowded rows.
fn mix(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761).rotate_left(13) % 1_000_003
}

/// A broker that has just started: nothing connected, nothing declared.
pub fn empty() -> Snapshot {
    Snapshot {
        server: ServerStats {
            version: "0.1.0".into(),
            uptime_s: 3,
            listen: "127.0.0.1:7400".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn topic(name: &str, subscribers: u64, rate: u64, step: u64, phase: u64) -> TopicStats {
    let msgs_in = grown(10_000 * (phase + 1), rate, step, phase);
    TopicStats {
        name: name.into(),
        subscribers,
        msgs_in,
        msgs_out: msgs_in * subscribers,
        ..Default::default()
    }
}

fn headers(pairs: &[(&str, &[&str])]) -> Headers {
    pairs
        .iter()
        .map(|(name, values)| {
            let value = match values {
                [one] => HeaderValue::One((*one).to_string()),
                many => HeaderValue::Many(many.iter().map(|v| (*v).to_string()).collect()),
            };
            ((*name).to_string(), value)
        })
        .collect::<BTreeMap<_, _>>()
}

fn subscription(sid: &str, pattern: &str, filter: Option<&str>) -> SubscriptionStats {
    SubscriptionStats {
        sid: sid.into(),
        pattern: pattern.into(),
        filter: filter.map(str::to_string),
    }
}

fn event(seq: u64, offset_s: u64, kind: EventKind, text: &str) -> EventRecord {
    EventRecord {
        seq,
        time: BASE_TIME_MS + offset_s * 1000,
        kind,
        text: text.into(),
    }
}

/// A small, busy broker: six topics, four queues (one backed up, one without
/// consumers), six clients (one slow), three unacked jobs (one overdue) and a dozen
/// events, after `step` seconds of traffic. `orders.eu` has three subscriptions,
/// each with a filter that passes some of [`tail_orders`] and not others.
pub fn typical(step: u64) -> Snapshot {
    let mut topics = vec![
        topic("orders.eu", 3, 120, step, 0),
        topic("orders.us", 2, 85, step, 1),
        topic("audit.log", 1, 0, 0, 2),
        topic("metrics.cpu", 4, 40, step, 3),
        topic("metrics.mem", 4, 40, step, 4),
        topic("chat.lobby", 0, 2, step, 5),
    ];
    topics[0].retained = true;
    topics[0].stored = 48_210;
    topics[0].stored_bytes = 9_874_432;
    topics[2].retained = true;
    topics[2].sealed = true;
    topics[2].stored = 1_000_000;
    topics[2].stored_bytes = 214_958_080;
    // Nobody listens on chat.lobby: its messages are dropped, not delivered.
    topics[5].msgs_out = 0;

    let queue = |name: &str, rate: u64, ack_rate: u64, phase: u64| QueueStats {
        name: name.into(),
        msgs_in: grown(5_000 * (phase + 1), rate, step, phase),
        acked: grown(4_900 * (phase + 1), ack_rate, step, phase),
        durable: true,
        ..Default::default()
    };
    let mut queues = vec![
        queue("jobs", 30, 29, 0),
        queue("emails", 4, 4, 1),
        queue("thumbnails", 12, 0, 2),
        queue("reports", 1, 0, 3),
    ];
    let q = &mut queues[0];
    (q.ready, q.unacked, q.consumers, q.redelivered) = (5, 2, 2, 14);
    (q.oldest_ready_ms, q.stored, q.stored_bytes) = (Some(12_400), 7, 3_584);
    let q = &mut queues[1];
    (q.ready, q.unacked, q.consumers, q.redelivered, q.dead) = (0, 1, 1, 3, 1);
    (q.stored, q.stored_bytes) = (1, 912);
    let q = &mut queues[2];
    (q.ready, q.consumers, q.dead) = (1_250, 0, 3);
    (q.oldest_ready_ms, q.stored, q.stored_bytes) = (Some(185_000), 1_250, 2_560_000);
    let q = &mut queues[3];
    (q.ready, q.consumers, q.durable, q.oldest_ready_ms) = (42, 0, false, Some(3_000));

    let client = |id: &str, name: Option<&str>, addr: &str, connected_s: u64| ClientStats {
        id: id.into(),
        name: name.map(str::to_string),
        addr: addr.into(),
        connected_s: connected_s + step,
        pending_limit: PENDING_LIMIT,
        ..Default::default()
    };
    let mut clients = vec![
        client("c1", Some("order-service"), "10.0.0.5:51234", 86_000),
        client("c2", Some("worker-1"), "10.0.0.7:40112", 7_380),
        client("c3", Some("worker-2"), "10.0.0.8:40200", 7_375),
        client("c4", Some("analytics"), "10.0.0.9:51820", 245),
        client("c5", None, "192.168.1.20:60111", 42),
        client("c6", Some("metrics-sink"), "10.0.0.12:39004", 3_600),
    ];
    let c = &mut clients[0];
    c.msgs_in = topics[0].msgs_in + topics[1].msgs_in;
    c.subs = 1;
    c.subscriptions = vec![subscription(
        "vip",
        "orders.eu",
        Some("data.amount >= 50 AND tags CONTAINS 'vip'"),
    )];
    let c = &mut clients[1];
    (c.consumers, c.unacked, c.msgs_out) = (2, 2, grown(3_000, 17, step, 1));
    (c.pending, c.pending_bytes) = (1, 312);
    let c = &mut clients[2];
    (c.consumers, c.unacked, c.msgs_out) = (1, 1, grown(2_900, 16, step, 2));
    let c = &mut clients[3];
    (c.subs, c.slow, c.pending, c.pending_bytes) = (3, true, 812, 734_003);
    c.msgs_out = grown(20_000, 90, step, 3);
    c.subscriptions = vec![
        subscription(
            "s1",
            "orders.*",
            Some("region = 'eu' AND data.amount > 100"),
        ),
        subscription("s2", "orders.us", Some("status IN ('new', 'paid')")),
        subscription("s3", "audit.log", None),
    ];
    let c = &mut clients[4];
    (c.subs, c.msgs_out, c.msgs_in) = (2, 12, 3);
    c.subscriptions = vec![
        subscription("lobby", "chat.>", None),
        subscription("john", "orders.eu", Some("data.account.name = 'John'")),
    ];
    let c = &mut clients[5];
    (c.subs, c.msgs_out, c.pending, c.pending_bytes) = (2, grown(8_000, 320, step, 5), 3, 2_048);
    c.subscriptions = vec![
        subscription("cpu", "metrics.cpu", None),
        subscription(
            "mem",
            "metrics.mem",
            Some("host IN ('a1', 'a2') OR NOT data.test EXISTS"),
        ),
    ];

    let job =
        |queue: &str, tag, msg: &str, client: &str, cid: &str, attempt, age_ms, deadline_in_ms| {
            InFlightStats {
                queue: queue.into(),
                tag,
                msg: msg.into(),
                client: client.into(),
                cid: cid.into(),
                attempt,
                age_ms,
                deadline_in_ms,
            }
        };
    let inflight = vec![
        job("emails", 5, "m000012", "c2", "mail", 3, 31_000, -1_000),
        job("jobs", 9, "m000039", "c3", "w2", 2, 14_900, 15_100),
        job("jobs", 17, "m000041", "c2", "w1", 1, 2_300, 27_700),
    ];

    let events = vec![
        event(
            1,
            0,
            EventKind::Connect,
            "c1 order-service connected from 10.0.0.5:51234",
        ),
        event(
            2,
            4,
            EventKind::Connect,
            "c2 worker-1 connected from 10.0.0.7:40112",
        ),
        event(
            3,
            9,
            EventKind::Connect,
            "c3 worker-2 connected from 10.0.0.8:40200",
        ),
        event(
            4,
            31,
            EventKind::Publish,
            "dashboard published to orders.eu (seq 48102)",
        ),
        event(
            5,
            62,
            EventKind::DeadLetter,
            "emails: m000007 dead after 5 attempts, moved to emails.dead",
        ),
        event(
            6,
            75,
            EventKind::Purge,
            "dashboard purged 17 ready messages from reports",
        ),
        event(
            7,
            80,
            EventKind::Slow,
            "c9 batch-export marked slow (buffer 52% full)",
        ),
        event(
            8,
            84,
            EventKind::Kick,
            "dashboard kicked c9 batch-export (slow consumer)",
        ),
        event(
            9,
            84,
            EventKind::Disconnect,
            "c9 batch-export disconnected: kicked",
        ),
        event(
            10,
            97,
            EventKind::Requeue,
            "dashboard requeued m000030 in jobs",
        ),
        event(
            11,
            120,
            EventKind::Connect,
            "c4 analytics connected from 10.0.0.9:51820",
        ),
        event(
            12,
            133,
            EventKind::Slow,
            "c4 analytics marked slow (buffer 70% full)",
        ),
        event(
            13,
            150,
            EventKind::Storage,
            "orders.eu: segment 00000012 rolled (64.0 MiB)",
        ),
        event(
            14,
            171,
            EventKind::Connect,
            "c5 connected from 192.168.1.20:60111",
        ),
    ];

    finish(
        ServerStats {
            version: "0.1.0".into(),
            uptime_s: 98_707 + step,
            listen: "127.0.0.1:7400".into(),
            slow_consumers: 1,
            ..Default::default()
        },
        topics,
        queues,
        clients,
        inflight,
        events,
    )
}

/// Fill in the broker-wide figures that follow from the rows.
fn finish(
    mut server: ServerStats,
    topics: Vec<TopicStats>,
    queues: Vec<QueueStats>,
    clients: Vec<ClientStats>,
    inflight: Vec<InFlightStats>,
    events: Vec<EventRecord>,
) -> Snapshot {
    server.connections = clients.len() as u64;
    server.msgs_in = topics.iter().map(|t| t.msgs_in).sum::<u64>()
        + queues.iter().map(|q| q.msgs_in).sum::<u64>();
    server.msgs_out = topics.iter().map(|t| t.msgs_out).sum::<u64>()
        + queues.iter().map(|q| q.acked + q.unacked).sum::<u64>();
    server.dead = queues.iter().map(|q| q.dead).sum();
    Snapshot {
        server,
        topics,
        queues,
        clients,
        inflight,
        events,
    }
}

const TENANTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
const LONG_TENANT: &str = "acme-international-holdings-limited.eu-west-1";

/// A broker under load: 1,000 topics, queues, clients and unacked jobs, some
/// names far longer than their columns, some clients slow, 200 events.
pub fn crowded(step: u64) -> Snapshot {
    crowded_with(1_000, step)
}

/// Like [`crowded`], with `n` rows of each kind (10,000 to check the dashboard
/// stays usable at that size).
pub fn crowded_with(n: u64, step: u64) -> Snapshot {
    let tenant = |i: u64| TENANTS[(i % TENANTS.len() as u64) as usize];
    let topics = (0..n)
        .map(|i| {
            let name = if i % 10 == 0 {
                format!("tenants.{LONG_TENANT}.orders.created.v2.{i:04}")
            } else {
                format!("tenants.{}.orders.{:04}", tenant(i), i)
            };
            let mut t = topic(&name, mix(i) % 12, mix(i) % 400, step, i % 11);
            t.retained = i % 7 == 0;
            t.sealed = i % 50 == 0;
            t.stored = if t.retained { mix(i) * 10 } else { 0 };
            t
        })
        .collect();
    let queues = (0..n)
        .map(|i| {
            let name = if i % 10 == 0 {
                format!("jobs.{LONG_TENANT}.thumbnail-rendering.{i:04}")
            } else {
                format!("jobs.{}.{:04}", tenant(i), i)
            };
            let rate = mix(i) % 90;
            QueueStats {
                name,
                ready: mix(i + 1) % 5_000,
                unacked: mix(i + 2) % 20,
                consumers: mix(i + 3) % 6,
                msgs_in: grown(mix(i) * 10, rate, step, i % 11),
                acked: grown(mix(i) * 9, rate.saturating_sub(3), step, i % 11),
                redelivered: mix(i + 4) % 300,
                dead: mix(i + 5) % 7,
                durable: i % 3 != 0,
                oldest_ready_ms: (i % 4 != 0).then(|| mix(i + 6) % 600_000),
                stored: mix(i + 1) % 5_000,
                stored_bytes: (mix(i + 1) % 5_000) * 512,
            }
        })
        .collect();
    let clients = (0..n)
        .map(|i| {
            let slow = i % 97 == 3;
            let pending_bytes = if slow {
                PENDING_LIMIT / 2 + mix(i) % (PENDING_LIMIT / 2)
            } else {
                mix(i) % (PENDING_LIMIT / 4)
            };
            ClientStats {
                id: format!("c{}", i + 1),
                name: match i % 10 {
                    0 => Some(format!("{}-billing-reconciliation-worker-{i}", tenant(i))),
                    9 => None,
                    _ => Some(format!("{}-worker-{i}", tenant(i))),
                },
                addr: format!(
                    "10.{}.{}.{}:{}",
                    i / 250,
                    (i / 10) % 25,
                    i % 250,
                    40_000 + i
                ),
                connected_s: 60 + mix(i) % 200_000 + step,
                subs: mix(i + 1) % 8,
                consumers: mix(i + 2) % 3,
                unacked: mix(i + 3) % 10,
                pending: pending_bytes / 600,
                pending_bytes,
                pending_limit: PENDING_LIMIT,
                slow,
                msgs_in: grown(mix(i) * 3, mix(i) % 50, step, i % 11),
                msgs_out: grown(mix(i) * 5, mix(i) % 120, step, i % 11),
                subscriptions: (0..mix(i + 1) % 8)
                    .map(|s| {
                        let filter = format!("data.amount > {}", 10 * s);
                        subscription(
                            &format!("s{s}"),
                            &format!("tenants.{}.orders.*", tenant(i + s)),
                            (s % 3 == 1).then_some(filter.as_str()),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let inflight = (0..n)
        .map(|i| InFlightStats {
            queue: format!("jobs.{}.{:04}", tenant(i), (i * 10 + 1) % n),
            tag: 1 + i % 40,
            msg: format!("m{:06}", mix(i) % 1_000_000),
            client: format!("c{}", 1 + (i * 7) % n),
            cid: format!("worker-{}", i % 4),
            attempt: (1 + mix(i) % 4) as u32,
            age_ms: mix(i) % 60_000,
            deadline_in_ms: 30_000 - (mix(i) % 60_000) as i64,
        })
        .collect();
    let kinds = [
        (EventKind::Connect, "connected from 10.0.3.7:41234"),
        (EventKind::Disconnect, "disconnected: closed by client"),
        (EventKind::Slow, "marked slow (buffer 61% full)"),
        (EventKind::Kick, "kicked by dashboard (slow consumer)"),
        (EventKind::DeadLetter, "job m004211 dead after 5 attempts"),
    ];
    let events = (0..200)
        .map(|i| {
            let (kind, what) = kinds[(i % kinds.len() as u64) as usize];
            event(i + 1, i * 3, kind, &format!("c{} {what}", 1 + mix(i) % n))
        })
        .collect();
    finish(
        ServerStats {
            version: "0.1.0".into(),
            uptime_s: 1_209_600 + step,
            listen: "0.0.0.0:7400".into(),
            slow_consumers: 37,
            ..Default::default()
        },
        topics,
        queues,
        clients,
        inflight,
        events,
    )
}

/// The next ready messages of the `jobs` queue in [`typical`], as `peek` returns them.
pub fn peeked_jobs() -> Vec<PeekedMessage> {
    let msg = |id: &str, attempt, offset_ms, data: serde_json::Value, headers| PeekedMessage {
        msg: Some(id.into()),
        seq: None,
        time: BASE_TIME_MS + offset_ms,
        attempt,
        data,
        headers,
    };
    vec![
        msg(
            "m000042",
            0,
            160_100,
            serde_json::json!({"task": "resize", "image": "cat.png", "sizes": [64, 128, 256]}),
            Some(headers(&[("trace", &["4bf92f35"])])),
        ),
        msg(
            "m000043",
            2,
            161_250,
            serde_json::json!({"task": "transcode", "video": "intro.mp4", "codec": "av1"}),
            None,
        ),
        msg("m000044", 0, 162_000, serde_json::json!("ping"), None),
    ]
}

/// Messages published to `orders.eu` in [`typical`], as a live tail sees them.
pub fn tail_orders() -> Vec<TailMessage> {
    (0..5u64)
        .map(|i| {
            let region = [if i == 3 { "us" } else { "eu" }];
            let tags = &["urgent", "vip"][..(i % 3) as usize];
            let mut pairs: Vec<(&str, &[&str])> = vec![("region", &region), ("status", &["new"])];
            if !tags.is_empty() {
                pairs.push(("tags", tags));
            }
            TailMessage {
                topic: format!("orders.{}", region[0]),
                seq: 48_211 + i,
                time: BASE_TIME_MS + 180_000 + i * 250,
                data: serde_json::json!({
                    "id": 1001 + i,
                    "amount": 20.5 * (i + 1) as f64,
                    "account": {"name": if i % 2 == 0 { "John" } else { "Mary" }},
                }),
                headers: Some(headers(&pairs)),
            }
        })
        .collect()
}

/// A [`Source`] over a fixed snapshot that acts like a tiny broker: it records every
/// command, applies the effect a real broker would have on its snapshot (a purge
/// empties the queue, a kick removes the client), replays scripted tail messages
/// and peek results, and shows what is published to an open tail.
#[derive(Debug, Clone, Default)]
pub struct FixtureSource {
    /// What [`Source::snapshot`] returns.
    pub snapshot: Snapshot,
    /// Every command passed to [`Source::execute`], in order, failed ones included.
    pub executed: Vec<Command>,
    /// What a peek of each queue or topic returns, by name.
    pub peeks: HashMap<String, Vec<PeekedMessage>>,
    /// The patterns passed to [`Source::open_tail`], in order.
    pub tails_opened: Vec<String>,
    tail: Option<String>,
    tail_pending: VecDeque<TailMessage>,
    fail_next: Option<BrokerError>,
    next_msg: u64,
}

impl FixtureSource {
    /// A source that serves `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        FixtureSource {
            snapshot,
            ..Default::default()
        }
    }

    /// The [`typical`] broker at `step`, with the `jobs` queue's next messages to peek.
    pub fn typical(step: u64) -> Self {
        let mut source = FixtureSource::new(typical(step));
        source.peeks.insert("jobs".into(), peeked_jobs());
        source
    }

    /// Make the next command fail with `code` and `message`.
    pub fn fail_next(&mut self, code: ErrorCode, message: &str) {
        self.fail_next = Some(BrokerError::new(code, message));
    }

    /// Queue `messages` for the open tail (delivered if they match its pattern).
    pub fn push_tail(&mut self, messages: impl IntoIterator<Item = TailMessage>) {
        self.tail_pending.extend(messages);
    }

    /// The pattern of the open tail, if any.
    pub fn open_tail_pattern(&self) -> Option<&str> {
        self.tail.as_deref()
    }

    fn not_found(what: &str, name: &str) -> BrokerError {
        BrokerError::new(ErrorCode::NotFound, format!("no {what} {name}"))
    }

    fn run(&mut self, cmd: &Command) -> Result<CommandOutcome, BrokerError> {
        let snap = &mut self.snapshot;
        match cmd {
            Command::Publish { topic, .. } => {
                check_topic(topic)?;
                match snap.topics.iter_mut().find(|t| &t.name == topic) {
                    Some(t) if t.sealed => Err(BrokerError::new(
                        ErrorCode::Sealed,
                        format!("topic {topic} is sealed"),
                    )),
                    Some(t) => {
                        t.msgs_in += 1;
                        Ok(CommandOutcome::Published { seq: t.msgs_in })
                    }
                    None => Ok(CommandOutcome::Published { seq: 1 }),
                }
            }
            Command::Send { queue, .. } => {
                check_queue(queue)?;
                if let Some(q) = snap.queues.iter_mut().find(|q| &q.name == queue) {
                    q.ready += 1;
                    q.msgs_in += 1;
                }
                self.next_msg += 1;
                Ok(CommandOutcome::Sent {
                    msg: format!("m9{:05}", self.next_msg),
                })
            }
            Command::Purge { queue } => {
                let q = snap
                    .queues
                    .iter_mut()
                    .find(|q| &q.name == queue)
                    .ok_or_else(|| Self::not_found("queue", queue))?;
                let count = std::mem::take(&mut q.ready);
                q.oldest_ready_ms = None;
                Ok(CommandOutcome::Purged { count })
            }
            Command::Kick { client, .. } => {
                let before = snap.clients.len();
                snap.clients.retain(|c| &c.id != client);
                if snap.clients.len() == before {
                    return Err(Self::not_found("client", client));
                }
                snap.server.connections = snap.clients.len() as u64;
                snap.inflight.retain(|j| &j.client != client);
                Ok(CommandOutcome::Kicked)
            }
            Command::Requeue { queue, msg } => {
                let at = snap
                    .inflight
                    .iter()
                    .position(|j| &j.queue == queue && &j.msg == msg)
                    .ok_or_else(|| Self::not_found("unacked message", msg))?;
                snap.inflight.remove(at);
                if let Some(q) = snap.queues.iter_mut().find(|q| &q.name == queue) {
                    q.unacked = q.unacked.saturating_sub(1);
                    q.ready += 1;
                    q.redelivered += 1;
                }
                Ok(CommandOutcome::Requeued)
            }
            Command::Peek { target, n } => {
                let (what, name) = match target {
                    PeekTarget::Queue(name) => ("queue", name),
                    PeekTarget::Topic(name) => ("topic", name),
                };
                let known = match target {
                    PeekTarget::Queue(_) => snap.queues.iter().any(|q| &q.name == name),
                    PeekTarget::Topic(_) => snap.topics.iter().any(|t| &t.name == name),
                };
                if !known {
                    return Err(Self::not_found(what, name));
                }
                let messages = self.peeks.get(name).cloned().unwrap_or_default();
                Ok(CommandOutcome::Peeked(
                    messages.into_iter().take(*n).collect(),
                ))
            }
        }
    }
}

impl Source for FixtureSource {
    fn snapshot(&mut self) -> Snapshot {
        self.snapshot.clone()
    }

    fn execute(&mut self, cmd: Command) -> Result<CommandOutcome, BrokerError> {
        let result = match self.fail_next.take() {
            Some(err) => Err(err),
            None => self.run(&cmd),
        };
        // Like a broker, an open tail sees what is published while it is open.
        if let (
            Ok(CommandOutcome::Published { seq }),
            Command::Publish {
                topic,
                data,
                headers,
            },
        ) = (&result, &cmd)
        {
            if self.tail.is_some() {
                self.tail_pending.push_back(TailMessage {
                    topic: topic.clone(),
                    seq: *seq,
                    // The fixture's clock stands still: a fixed instant after the
                    // scripted tail messages, a quarter second per command.
                    time: BASE_TIME_MS + 190_000 + 250 * self.executed.len() as u64,
                    data: data.clone(),
                    headers: headers.clone(),
                });
            }
        }
        self.executed.push(cmd);
        result
    }

    fn open_tail(&mut self, pattern: &str) -> Result<(), BrokerError> {
        if pattern.is_empty() {
            return Err(BrokerError::new(ErrorCode::BadName, "empty topic pattern"));
        }
        self.tails_opened.push(pattern.to_string());
        self.tail = Some(pattern.to_string());
        Ok(())
    }

    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage> {
        let Some(pattern) = &self.tail else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < max {
            let Some(msg) = self.tail_pending.pop_front() else {
                break;
            };
            if pattern_matches(pattern, &msg.topic) {
                out.push(msg);
            }
        }
        out
    }

    fn close_tail(&mut self) {
        self.tail = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_deterministic() {
        assert_eq!(typical(7), typical(7));
        assert_eq!(crowded(3), crowded(3));
        assert_ne!(typical(7).server.msgs_in, typical(8).server.msgs_in);
    }

    #[test]
    fn crowded_has_a_thousand_rows_and_slow_clients() {
        let s = crowded(0);
        assert_eq!(s.topics.len(), 1000);
        assert_eq!(s.queues.len(), 1000);
        assert_eq!(s.clients.len(), 1000);
        assert_eq!(s.inflight.len(), 1000);
        assert!(s.clients.iter().any(|c| c.slow));
        assert!(s.topics.iter().any(|t| t.name.len() > 60));
    }

    #[test]
    fn fixture_source_applies_commands() {
        let mut source = FixtureSource::typical(0);
        let purged = source.execute(Command::Purge {
            queue: "jobs".into(),
        });
        assert_eq!(purged, Ok(CommandOutcome::Purged { count: 5 }));
        assert_eq!(source.snapshot().queues[0].ready, 0);
        assert!(source
            .execute(Command::Kick {
                client: "nobody".into(),
                reason: None
            })
            .is_err());
        assert_eq!(source.executed.len(), 2);
    }

    #[test]
    fn tail_delivers_only_matching_messages_while_open() {
        let mut source = FixtureSource::typical(0);
        source.push_tail(tail_orders());
        assert!(source.poll_tail(10).is_empty());
        source.open_tail("orders.eu").unwrap();
        let got = source.poll_tail(10);
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|m| m.topic == "orders.eu"));
    }
}
