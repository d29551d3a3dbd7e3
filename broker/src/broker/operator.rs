//! Operator ops on the broker handle: the snapshot, the operator commands the
//! console and the wire's operator frames run, kicks and the metrics text.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Broker, Peer, Publisher};
use crate::cluster::{NodeOp, NodeOps};
use crate::command::{Command, CommandOutcome, PeekTarget, PeekedMessage};
use crate::error::{BrokerError, ErrorCode};
use crate::filter::Query;
use crate::protocol::Payload;
use crate::queue::{Outgoing, Queue};
use crate::stats::{EventKind, ServerStats, Snapshot};
use crate::topic::Done;

impl Broker {
    /// Disconnects a client after telling it why.
    pub fn kick(&self, client: &str, reason: &str, actor: &str) -> Result<(), BrokerError> {
        let session = self
            .inner
            .sessions
            .read()
            .values()
            .find(|p| &*p.session.name_id == client)
            .map(|p| p.session.clone())
            .ok_or_else(|| {
                BrokerError::new(ErrorCode::NotFound, format!("no client `{client}`"))
            })?;
        self.inner.activity.record(
            EventKind::Kick,
            format!("{actor} kicked {}: {reason}", session.describe()),
        );
        // A slow client an operator kicks is a slow client kicked, as the
        // broker's own kick of one is: `slow_consumers` counts both.
        if session.outbound.is_slow() {
            self.inner
                .activity
                .slow_kicks
                .fetch_add(1, Ordering::Relaxed);
        }
        session.outbound.kick(reason);
        Ok(())
    }

    /// Everything an operator can see, now: with `serve --nats`, the cluster
    /// view (this node's snapshot with the other nodes' merged in,
    /// `cluster/view.rs`); on one machine, this broker.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.local_snapshot();
        if let Some(cluster) = &self.inner.cluster {
            cluster.merge_view(&mut snapshot);
        }
        snapshot
    }

    /// This broker's own snapshot, without other nodes.
    pub(crate) fn local_snapshot(&self) -> Snapshot {
        let inner = &self.inner;
        let peers: Vec<Arc<Peer>> = inner.sessions.read().values().cloned().collect();
        let queues: Vec<Arc<Queue>> = inner.queues.read().values().cloned().collect();
        let mut clients: Vec<_> = peers.iter().map(|p| p.stats()).collect();
        clients.sort_by_key(|c| c.id[1..].parse::<u64>().unwrap_or(0));
        let mut queue_stats: Vec<_> = queues.iter().map(|q| q.stats()).collect();
        queue_stats.sort_by(|a, b| a.name.cmp(&b.name));
        inner.history.mark_queues(&mut queue_stats);
        inner.history.mark_clients(&mut clients);
        let now = Instant::now();
        let mut inflight = Vec::new();
        for q in &queues {
            q.inflight_stats(now, &mut inflight);
        }
        inflight.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then(a.tag.cmp(&b.tag)));
        Snapshot {
            server: ServerStats {
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_s: inner.started.elapsed().as_secs(),
                listen: inner.listen.lock().clone(),
                time_ms: crate::time::now_ms(),
                connections: peers.len() as u64,
                inflight: inflight.len() as u64,
                msgs_in: inner.activity.msgs_in.load(Ordering::Relaxed),
                msgs_out: inner.activity.msgs_out.load(Ordering::Relaxed),
                slow_consumers: inner.activity.slow_kicks.load(Ordering::Relaxed),
                stuck_consumers: inner.activity.stuck_kicks.load(Ordering::Relaxed),
                pauses: inner.activity.pauses.load(Ordering::Relaxed),
                paused_us: inner.activity.paused_us.load(Ordering::Relaxed),
                dead: inner.activity.dead.load(Ordering::Relaxed),
                auth: inner.config.security.auth_on(),
                refused_origin: inner.activity.refused_origin.load(Ordering::Relaxed),
                tls_failures: inner.activity.tls_failures.load(Ordering::Relaxed),
                refusals: inner.activity.refusals.reasons(),
                errors: inner.activity.refusals.errors(),
                inbound_bytes: inner.read_budget.used() as u64,
                max_inbound: inner.read_budget.max() as u64,
                outbound_bytes: inner.activity.outbound.used() as u64,
                outbound_budget: inner.activity.outbound.limit() as u64,
                bytes_received: inner.activity.traffic.received.load(Ordering::Relaxed),
                bytes_sent: inner.activity.traffic.sent.load(Ordering::Relaxed),
                cluster: inner.cluster.as_ref().map(|c| {
                    let why = c.down();
                    crate::stats::ClusterStats {
                        node: c.node().to_string(),
                        connected: why.is_none(),
                        why,
                        nodes: Vec::new(),
                    }
                }),
            },
            topics: inner.topics.stats(),
            queues: queue_stats,
            clients,
            inflight,
            events: inner.activity.events(),
            ..Snapshot::default()
        }
    }

    /// The snapshot as a client is sent it (`stats`, `watch`): at most half of
    /// `max_pending` bytes of JSON, as a peek is, so that asking for it can never
    /// get the client kicked as a slow consumer ([`bound_snapshot`]).
    pub fn bounded_snapshot(&self) -> Snapshot {
        self.bound(self.snapshot())
    }

    /// `snapshot` cut as a client is sent it ([`Broker::bounded_snapshot`]).
    pub(crate) fn bound(&self, snapshot: Snapshot) -> Snapshot {
        bound_snapshot(snapshot, self.inner.config.max_pending / 2)
    }

    /// Runs an operator command; `actor` names who asked, for the event log.
    pub fn execute(&self, command: Command, actor: &str) -> Result<CommandOutcome, BrokerError> {
        match command {
            Command::Publish {
                topic,
                data,
                headers,
            } => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let done: Done = Box::new(move |r| {
                    let _ = tx.send(r);
                });
                let mut publisher = Publisher::default();
                let published = self.publish(
                    &mut publisher,
                    &topic,
                    &data.to_string(),
                    headers.as_ref(),
                    Some(done),
                );
                self.end_frame(&mut publisher, None);
                published?;
                // A retained topic answers after its fsync: a few ms.
                let seq = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
                    BrokerError::new(ErrorCode::Timeout, "the publish was not confirmed in time")
                })??;
                self.inner.activity.record(
                    EventKind::Publish,
                    format!("{actor} published seq {seq} to {topic}"),
                );
                // An operator publish is rare: a look over the topics' stats is
                // cheap enough to say who was listening.
                let subscribers = self
                    .inner
                    .topics
                    .stats()
                    .into_iter()
                    .find(|t| t.name == topic)
                    .map_or(0, |t| t.subscribers);
                Ok(CommandOutcome::Published { seq, subscribers })
            }
            Command::Send {
                queue,
                data,
                headers,
            } => {
                let message = Outgoing::new(Payload::from_value(&data), headers);
                let msg = self.send(None, None, &queue, message, |_, _| {})?;
                self.inner.activity.record(
                    EventKind::Publish,
                    format!("{actor} sent message {msg} to {queue}"),
                );
                Ok(CommandOutcome::Sent {
                    msg: msg.to_string(),
                })
            }
            Command::Purge { queue } => Ok(CommandOutcome::Purged {
                count: self.purge(&queue, actor)?,
            }),
            Command::Kick { .. } | Command::RequeueConsumer { .. } => {
                match self.routed(&command, actor) {
                    // Another node's client: this thread waits for that node's
                    // answer (the console's command thread does; a connection
                    // routes before it gets here, without waiting).
                    Some(routed) => {
                        let (tx, rx) = std::sync::mpsc::sync_channel(1);
                        self.inner.runtime.spawn(async move {
                            let _ = tx.send(routed.await);
                        });
                        rx.recv().map_err(|_| {
                            BrokerError::new(ErrorCode::Internal, "the broker is shutting down")
                        })?
                    }
                    None => self.client_op(command, actor),
                }
            }
            Command::Requeue { queue, msg } => {
                self.requeue(&queue, &msg, actor)?;
                Ok(CommandOutcome::Requeued)
            }
            Command::Move {
                from,
                to,
                n,
                filter,
                msg,
            } => {
                let moving =
                    self.start_move(&from, &to, n, filter.as_deref(), msg.as_deref(), actor)?;
                Ok(CommandOutcome::Moved {
                    count: super::queues::block_on(moving)?,
                })
            }
            Command::Drop { queue, msg } => {
                self.drop_message(&queue, &msg, actor)?;
                Ok(CommandOutcome::Dropped)
            }
            Command::Peek {
                target,
                n,
                after,
                query,
            } => {
                let query = Query::compile(&query)?;
                let (messages, next) = match target {
                    PeekTarget::Queue(q) => self.peek_queue_page(&q, n, after, &query)?,
                    // Without a cursor or a query, a retained topic shows its last
                    // messages, as it always has.
                    PeekTarget::Topic(t) if after.is_none() && query.is_empty() => {
                        (self.peek_topic(&t, n)?, None)
                    }
                    PeekTarget::Topic(t) => {
                        self.learn_retained(&t);
                        self.inner.topics.peek_from(&t, n, after, &query)?
                    }
                };
                // Every client's outbound buffer is `max_pending` bytes: half of it
                // for one answer leaves room for what else it is waiting for.
                let first = messages.first().and_then(cursor);
                let (messages, truncated) = bound_peek(messages, self.inner.config.max_pending / 2);
                let next = match (truncated, messages.last()) {
                    (false, _) => next,
                    // Go on after the last message sent; if not even the first
                    // fits, after it (passed over, as `truncated` says).
                    (true, Some(last)) => cursor(last),
                    (true, None) => first,
                };
                Ok(CommandOutcome::Peeked {
                    messages,
                    truncated,
                    next,
                })
            }
            Command::Describe { target } => match target {
                PeekTarget::Queue(q) => Ok(CommandOutcome::QueuePage(Box::new(
                    self.describe_queue(&q)?,
                ))),
                PeekTarget::Topic(t) => Ok(CommandOutcome::TopicPage(Box::new(
                    self.describe_topic(&t)?,
                ))),
            },
        }
    }

    /// An operator op about a client of this node (`c42`, or `c42@<this node>`).
    fn client_op(&self, command: Command, actor: &str) -> Result<CommandOutcome, BrokerError> {
        match command {
            Command::Kick { client, reason } => {
                self.kick(
                    self.own_client(&client)?,
                    reason.as_deref().unwrap_or(DEFAULT_KICK_REASON),
                    actor,
                )?;
                Ok(CommandOutcome::Kicked)
            }
            Command::RequeueConsumer { client, cid } => Ok(CommandOutcome::RequeuedAll {
                count: self.requeue_consumer(self.own_client(&client)?, &cid, actor)?,
            }),
            other => self.execute(other, actor),
        }
    }

    /// `id` as this node knows it: `c42@web1` on node web1 is its `c42`.
    fn own_client<'a>(&self, id: &'a str) -> Result<&'a str, BrokerError> {
        match crate::cluster::split_client(id) {
            (client, None) => Ok(client),
            (client, Some(node)) if Some(node) == self.node() => Ok(client),
            // A node name on one machine, or an op routed here for another node.
            (_, Some(_)) => Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no client `{id}`"),
            )),
        }
    }

    /// When `command` is about a client of another node (`kick` or `requeue`
    /// of `c42@web2`): the answer of that node, to wait for. None: this node's
    /// to run.
    pub(crate) fn routed(
        &self,
        command: &Command,
        actor: &str,
    ) -> Option<
        impl std::future::Future<Output = Result<CommandOutcome, BrokerError>> + Send + 'static,
    > {
        let cluster = self.inner.cluster.clone()?;
        let (client, op) = match command {
            Command::Kick { client, reason } => (
                client,
                NodeOp::Kick {
                    client: String::new(),
                    reason: reason.as_deref().unwrap_or(DEFAULT_KICK_REASON).to_string(),
                    actor: format!("{actor} on {}", cluster.node()),
                },
            ),
            Command::RequeueConsumer { client, cid } => (
                client,
                NodeOp::Requeue {
                    client: String::new(),
                    cid: cid.clone(),
                    actor: format!("{actor} on {}", cluster.node()),
                },
            ),
            _ => return None,
        };
        let (id, node) = match crate::cluster::split_client(client) {
            (id, Some(node)) if node != cluster.node() => (id.to_string(), node.to_string()),
            _ => return None,
        };
        let op = match op {
            NodeOp::Kick { reason, actor, .. } => NodeOp::Kick {
                client: id,
                reason,
                actor,
            },
            NodeOp::Requeue { cid, actor, .. } => NodeOp::Requeue {
                client: id,
                cid,
                actor,
            },
            other => other,
        };
        Some(async move { cluster.route(&node, op).await })
    }

    /// The Prometheus text exposition of the broker's counters: this node's
    /// alone, with `node="<name>"` on every series under `serve --nats`.
    pub fn metrics(&self) -> String {
        let mut text = crate::metrics::render(&self.local_snapshot());
        let queues: Vec<Arc<Queue>> = self.inner.queues.read().values().cloned().collect();
        let mut replies: crate::metrics::ReplyHistograms = queues
            .iter()
            .filter_map(|q| Some((q.name.to_string(), q.reply_histogram()?)))
            .collect();
        replies.sort_by(|a, b| a.0.cmp(&b.0));
        crate::metrics::render_reply_times(&mut text, &replies, self.inner.history.untracked());
        crate::process::ProcessStats::read().render(&mut text);
        match self.node() {
            Some(node) => crate::metrics::with_node_label(&text, node),
            None => text,
        }
    }
}

/// What a kicked client is told when the operator gave no reason.
const DEFAULT_KICK_REASON: &str = "kicked by operator";

/// The broker as the cluster view sees it (`cluster/view.rs`): held weakly, so
/// that the view's tasks end with the broker.
pub(crate) struct NodeView(pub(crate) std::sync::Weak<super::Inner>);

impl NodeView {
    fn broker(&self) -> Option<Broker> {
        self.0.upgrade().map(|inner| Broker { inner })
    }
}

impl NodeOps for NodeView {
    fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    fn summary(&self, max_bytes: usize) -> Option<Snapshot> {
        let broker = self.broker()?;
        let summary = crate::cluster::summary(broker.local_snapshot());
        Some(bound_snapshot(summary, max_bytes))
    }

    fn run(&self, op: NodeOp) -> Option<Result<CommandOutcome, BrokerError>> {
        let broker = self.broker()?;
        Some(match op {
            NodeOp::Kick {
                client,
                reason,
                actor,
            } => broker
                .kick(&client, &reason, &actor)
                .map(|()| CommandOutcome::Kicked),
            NodeOp::Requeue { client, cid, actor } => broker
                .requeue_consumer(&client, &cid, &actor)
                .map(|count| CommandOutcome::RequeuedAll { count }),
            NodeOp::RequeueMsg { queue, msg, actor } => broker
                .requeue_here(&queue, &msg, &actor)
                .map(|()| CommandOutcome::Requeued),
            // Answered by `held` and `consumers`, before any op is run.
            NodeOp::Held { .. } | NodeOp::Consumers { .. } => {
                Err(BrokerError::new(ErrorCode::Internal, "not an op to run"))
            }
        })
    }

    fn held(&self, queue: &str, msgs: &[u64]) -> Vec<u64> {
        self.broker()
            .map_or_else(Vec::new, |b| b.held_here(queue, msgs))
    }

    fn consumers(&self, queue: &str) -> Vec<crate::page::ConsumerStats> {
        self.broker()
            .and_then(|b| b.existing_queue(queue).ok())
            .map_or_else(Vec::new, |q| q.page().consumers)
    }
}

/// Where a peek goes on after `m`: its seq in a topic, its id in a queue.
fn cursor(m: &PeekedMessage) -> Option<u64> {
    m.seq
        .or_else(|| m.msg.as_deref().and_then(|id| id.parse().ok()))
}

/// Room in a bounded answer for what is not a message: `{"ev":"ok","id":...,
/// "messages":[],"truncated":true}` with a long request id.
const ANSWER_OVERHEAD: usize = 256;

/// The first messages whose JSON fits in `budget` bytes, and whether any were left
/// out. A reply to a client's own request is bounded so it can never kick the client.
fn bound_peek(messages: Vec<PeekedMessage>, budget: usize) -> (Vec<PeekedMessage>, bool) {
    keep_fitting(messages, &mut 0, budget.saturating_sub(ANSWER_OVERHEAD))
}

/// `snapshot` cut to at most `budget` bytes of JSON, `truncated` set if anything
/// was cut. The server figures are always whole. The lists are filled in order of
/// worth to an operator: queues, topics, clients, events, in-flight jobs, each as
/// far as it fits; once one is cut, those after it are left empty, so in-flight
/// jobs are cut first and queues last. Within a list the first are kept (queues
/// and topics by name, clients by id, the oldest jobs), except events, where the
/// newest are.
fn bound_snapshot(snapshot: Snapshot, budget: usize) -> Snapshot {
    let budget = budget.saturating_sub(ANSWER_OVERHEAD);
    if json_len(&snapshot) <= budget {
        return snapshot;
    }
    let Snapshot {
        server,
        topics,
        queues,
        clients,
        inflight,
        mut events,
        changes,
        gone,
        ..
    } = snapshot;
    let mut bounded = Snapshot {
        server,
        truncated: true,
        changes,
        gone,
        ..Snapshot::default()
    };
    let mut used = json_len(&bounded);
    let mut cut;
    (bounded.queues, cut) = keep_fitting(queues, &mut used, budget);
    if !cut {
        (bounded.topics, cut) = keep_fitting(topics, &mut used, budget);
    }
    if !cut {
        (bounded.clients, cut) = keep_fitting(clients, &mut used, budget);
    }
    if !cut && changes {
        // A frame of changes goes on from the last event sent: the oldest first,
        // and those cut come in the next frame.
        (bounded.events, cut) = keep_fitting(events, &mut used, budget);
    } else if !cut {
        events.reverse();
        (bounded.events, cut) = keep_fitting(events, &mut used, budget);
        bounded.events.reverse();
    }
    if !cut {
        (bounded.inflight, _) = keep_fitting(inflight, &mut used, budget);
    }
    bounded
}

/// The first `items` whose JSON (a comma each) fits in `budget` with `used` bytes
/// already taken, adding theirs to `used`; and whether any were left out.
fn keep_fitting<T: Serialize>(
    mut items: Vec<T>,
    used: &mut usize,
    budget: usize,
) -> (Vec<T>, bool) {
    for (i, item) in items.iter().enumerate() {
        let len = json_len(item) + 1;
        if *used + len > budget {
            items.truncate(i);
            return (items, true);
        }
        *used += len;
    }
    (items, false)
}

/// The length of `value`'s JSON. Plain data: serializing it cannot fail.
fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: u64, len: usize) -> PeekedMessage {
        PeekedMessage {
            msg: Some(i.to_string()),
            seq: None,
            time: 0,
            attempt: 0,
            expires: None,
            data: serde_json::Value::String("x".repeat(len)),
            headers: None,
        }
    }

    #[test]
    fn bound_peek_keeps_the_first_messages_that_fit() {
        let all: Vec<_> = (1..=10).map(|i| message(i, 1000)).collect();
        let (kept, truncated) = bound_peek(all.clone(), 4096);
        assert!(truncated);
        assert_eq!(kept, all[..3].to_vec());
        assert_eq!(bound_peek(all.clone(), 1 << 20), (all.clone(), false));
        assert_eq!(bound_peek(all, 100), (Vec::new(), true));
        assert_eq!(bound_peek(Vec::new(), 0), (Vec::new(), false));
    }

    fn queue(i: usize) -> crate::stats::QueueStats {
        crate::stats::QueueStats {
            name: format!("q{i:04}"),
            ..Default::default()
        }
    }

    #[test]
    fn bound_snapshot_cuts_in_flight_jobs_first_and_queues_last() {
        use crate::stats::{ClientStats, EventRecord, InFlightStats};
        let whole = Snapshot {
            server: ServerStats {
                connections: 7,
                ..Default::default()
            },
            queues: (0..100).map(queue).collect(),
            clients: vec![ClientStats::default()],
            inflight: vec![InFlightStats::default()],
            events: (1..=3)
                .map(|seq| EventRecord {
                    seq,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(bound_snapshot(whole.clone(), 1 << 20), whole);

        // Room for everything but the in-flight job.
        let without_job = Snapshot {
            inflight: Vec::new(),
            truncated: true,
            ..whole.clone()
        };
        let budget = json_len(&without_job) + ANSWER_OVERHEAD + 3;
        assert_eq!(bound_snapshot(whole.clone(), budget), without_job);

        // Room for some queues only: the first by name, nothing after them.
        let bounded = bound_snapshot(whole.clone(), 2048);
        assert!(bounded.truncated);
        assert_eq!(bounded.server, whole.server);
        assert!(!bounded.queues.is_empty() && bounded.queues.len() < 100);
        assert_eq!(
            bounded.queues,
            whole.queues[..bounded.queues.len()].to_vec()
        );
        assert!(bounded.topics.is_empty() && bounded.clients.is_empty());
        assert!(bounded.events.is_empty() && bounded.inflight.is_empty());
        assert!(json_len(&bounded) <= 2048 - ANSWER_OVERHEAD);

        // Events cut keep the newest.
        let no_room_for_all_events = Snapshot {
            queues: Vec::new(),
            clients: Vec::new(),
            inflight: Vec::new(),
            ..whole
        };
        let one_event = Snapshot {
            events: no_room_for_all_events.events[2..].to_vec(),
            truncated: true,
            ..no_room_for_all_events.clone()
        };
        let budget = json_len(&one_event) + ANSWER_OVERHEAD + 1;
        assert_eq!(
            bound_snapshot(no_room_for_all_events.clone(), budget),
            one_event
        );

        // In a frame of changes they keep the oldest: the next frame goes on from
        // there, so none is skipped. What is gone is always whole.
        let changes = Snapshot {
            changes: true,
            gone: crate::stats::Gone {
                topics: vec!["t".into()],
                ..Default::default()
            },
            ..no_room_for_all_events
        };
        let oldest = Snapshot {
            events: changes.events[..1].to_vec(),
            truncated: true,
            ..changes.clone()
        };
        let budget = json_len(&oldest) + ANSWER_OVERHEAD + 1;
        assert_eq!(bound_snapshot(changes, budget), oldest);
    }
}
