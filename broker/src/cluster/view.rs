//! The cluster view: every node's snapshot on NATS, so that any node's `stats`,
//! `watch`, console and `switchyard top` show the whole cluster, and the operator
//! ops about a client (`kick`, `requeue` of a consumer's jobs) or a job
//! (`requeue` of one) reach the node that holds it; the ops about a queue ask
//! every node what it holds (`held`) and which consumers it has (`consumers`).
//!
//! Each node publishes its own snapshot once a second on
//! `switchyard.node.<node>.snapshot` and listens on `switchyard.node.*.snapshot`
//! for the others'. What it sends is a summary of what the view shows: its
//! server figures, queues, topics, clients (without their subscription lists)
//! and its oldest [`INFLIGHT_SHARED`] in-flight jobs; no events. That is about
//! 240 bytes a client and 200 a queue: 2.4 MB of JSON for 10,000 clients, 4.4 MB
//! with 10,000 queues too (the test `ten_thousand_clients_cross_in_parts`
//! measures it), more than NATS' default max payload of 1 MB. So the JSON is cut into parts of at
//! most the server's max payload (less a line of header), each headed
//! `SYV1 <gen> <part> <parts>\n`, and a reader takes a snapshot in once every
//! part of one `gen` came (a part lost to a slow subscription loses that
//! second's snapshot, not the view). A summary is at most [`MAX_SUMMARY_BYTES`]:
//! past it, it is cut as a `stats` answer is (in-flight jobs first, queues
//! last) and its node is marked `truncated` in the view.
//!
//! A node whose snapshot has not come for [`GONE_AFTER`] is shown as gone: its
//! clients and jobs leave the view (they can no longer be kicked or requeued
//! from here), it stays in the node list marked `gone` for [`FORGET_AFTER`],
//! then it is forgotten. A node's own part is always its live snapshot.
//!
//! Operator ops about another node's client go as a NATS request to
//! `switchyard.node.<node>.op`, answered by that node with what the op would
//! answer there; no answer within [`OP_TIMEOUT`] is an `unavailable` error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{check_node, Cluster};
use crate::command::CommandOutcome;
use crate::error::{BrokerError, ErrorCode};
use crate::page::ConsumerStats;
use crate::stats::{NodeStats, QueueStats, Snapshot, TopicStats};

/// How often a node publishes its snapshot.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// A node whose snapshot has not come for this long is shown as gone.
pub const GONE_AFTER: Duration = Duration::from_secs(3);
/// A gone node is forgotten this long after its last snapshot.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// How long an operator op waits for the node that holds the client.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest summary a node publishes, in bytes of JSON (then cut).
pub const MAX_SUMMARY_BYTES: usize = 16 << 20;
/// In-flight jobs a node shares, its oldest.
pub const INFLIGHT_SHARED: usize = 1000;
/// Other nodes a view holds at most; snapshots of more are ignored.
pub const MAX_NODES: usize = 256;
/// Parts one snapshot may come in at most: a hostile or broken peer cannot
/// make a node hold more than this many max payloads for it.
const MAX_PARTS: usize = 64;

const NODE_PREFIX: &str = "switchyard.node.";

fn snapshot_subject(node: &str) -> String {
    format!("{NODE_PREFIX}{node}.snapshot")
}

fn op_subject(node: &str) -> String {
    format!("{NODE_PREFIX}{node}.op")
}

/// What the view needs of the broker: its own snapshot and its own ops. It
/// holds the broker weakly: each answers None once the broker is gone.
pub(crate) trait NodeOps: Send + Sync + 'static {
    /// Whether the broker is still there.
    fn alive(&self) -> bool;
    /// This node's snapshot alone, as [`summary`] makes it, cut to at most
    /// `max_bytes` of JSON as a `stats` answer is; None once the broker is gone.
    fn summary(&self, max_bytes: usize) -> Option<Snapshot>;
    /// Runs an op another node routed here; None once the broker is gone.
    fn run(&self, op: NodeOp) -> Option<Result<CommandOutcome, BrokerError>>;
    /// Which of `msgs` (stream sequences) of `queue` this node holds now.
    fn held(&self, queue: &str, msgs: &[u64]) -> Vec<u64>;
    /// This node's consumers of `queue`.
    fn consumers(&self, queue: &str) -> Vec<ConsumerStats>;
}

/// An operator op routed to the node that holds its client, as it crosses NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum NodeOp {
    /// `kick`: `client` is that node's own id (`c42`).
    Kick {
        client: String,
        reason: String,
        actor: String,
    },
    /// `requeue` with `client`: every job of that consumer back to its queue.
    Requeue {
        client: String,
        cid: String,
        actor: String,
    },
    /// `requeue` with `queue` and `msg`: that job back to its queue, if this
    /// node holds it (`not_found` if not).
    RequeueMsg {
        queue: String,
        msg: String,
        actor: String,
    },
    /// Which of these jobs (stream sequences) of `queue` the node holds now:
    /// answered `{"held":[...]}`, for `peek`, `drop` and `move` on another node.
    Held { queue: String, msgs: Vec<u64> },
    /// The node's own consumers of `queue`, for `describe` on another node:
    /// answered `{"consumers":[...]}`.
    Consumers { queue: String },
}

/// A routed op's answer, as it crosses NATS.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OpAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<OpError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requeued: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consumers: Option<Vec<ConsumerStats>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OpError {
    code: ErrorCode,
    message: String,
}

/// Splits a client id of the cluster view: `c42@web2` is client `c42` of node
/// `web2`; a plain id is this node's.
pub(crate) fn split_client(id: &str) -> (&str, Option<&str>) {
    match id.split_once('@') {
        Some((client, node)) => (client, Some(node)),
        None => (id, None),
    }
}

/// The other nodes' last snapshots.
#[derive(Default)]
pub(crate) struct View {
    nodes: Mutex<HashMap<String, Part>>,
}

/// What a view holds of one other node.
struct Part {
    /// Its last whole snapshot, and when it came.
    snapshot: Option<(Arc<Snapshot>, Instant)>,
    /// The parts of the snapshot coming in.
    assembling: Option<Assembly>,
}

struct Assembly {
    generation: u64,
    parts: Vec<Bytes>,
    expected: usize,
}

/// A part's header: `SYV1 <gen> <part> <parts>`.
fn part_header(generation: u64, part: usize, parts: usize) -> String {
    format!("SYV1 {generation} {part} {parts}\n")
}

fn parse_part(payload: &Bytes) -> Option<(u64, usize, usize, Bytes)> {
    let end = payload.iter().take(64).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&payload[..end]).ok()?;
    let mut words = header.split(' ');
    if words.next()? != "SYV1" {
        return None;
    }
    let generation = words.next()?.parse().ok()?;
    let part = words.next()?.parse().ok()?;
    let parts: usize = words.next()?.parse().ok()?;
    if words.next().is_some() || part >= parts || parts > MAX_PARTS {
        return None;
    }
    Some((generation, part, parts, payload.slice(end + 1..)))
}

/// `body` cut into parts of at most `max_payload` bytes, each with its header.
fn split_parts(body: &[u8], generation: u64, max_payload: usize) -> Vec<Bytes> {
    let room = max_payload.saturating_sub(64).max(1024);
    let chunks: Vec<&[u8]> = if body.is_empty() {
        vec![body]
    } else {
        body.chunks(room).collect()
    };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut part = part_header(generation, i, n).into_bytes();
            part.extend_from_slice(chunk);
            Bytes::from(part)
        })
        .collect()
}

/// What a node publishes of its snapshot: what the cluster view shows of it.
pub(crate) fn summary(mut snapshot: Snapshot) -> Snapshot {
    for client in &mut snapshot.clients {
        client.subscriptions = Vec::new();
    }
    snapshot.events = Vec::new();
    // Oldest first, as the snapshot lists them.
    snapshot.inflight.truncate(INFLIGHT_SHARED);
    snapshot
}

impl View {
    /// Takes in one part from `node`; a whole snapshot once its last part came.
    fn take_part(&self, node: &str, payload: &Bytes) {
        let Some((generation, part, parts, chunk)) = parse_part(payload) else {
            tracing::debug!("cluster view: a snapshot part from {node} is not one");
            return;
        };
        let whole = {
            let mut nodes = self.nodes.lock();
            if !nodes.contains_key(node) && nodes.len() >= MAX_NODES {
                return;
            }
            let entry = nodes.entry(node.to_string()).or_insert(Part {
                snapshot: None,
                assembling: None,
            });
            if part == 0 {
                entry.assembling = Some(Assembly {
                    generation,
                    parts: Vec::with_capacity(parts),
                    expected: parts,
                });
            }
            let Some(assembly) = entry.assembling.as_mut() else {
                return;
            };
            // A part out of turn (one lost before it) drops this generation.
            if assembly.generation != generation
                || assembly.expected != parts
                || assembly.parts.len() != part
            {
                entry.assembling = None;
                return;
            }
            assembly.parts.push(chunk);
            if assembly.parts.len() < parts {
                return;
            }
            entry.assembling.take().map(|a| a.parts.concat())
        };
        let Some(body) = whole else { return };
        // Parsed outside the lock: a big snapshot takes milliseconds.
        match serde_json::from_slice::<Snapshot>(&body) {
            Ok(snapshot) => {
                if let Some(entry) = self.nodes.lock().get_mut(node) {
                    entry.snapshot = Some((Arc::new(snapshot), Instant::now()));
                }
            }
            Err(e) => tracing::debug!("cluster view: the snapshot of {node}: {e}"),
        }
    }

    /// The other nodes' last snapshots, by name, with their age; forgets those
    /// gone for [`FORGET_AFTER`].
    fn others(&self, now: Instant) -> Vec<(String, Arc<Snapshot>, Duration)> {
        let mut nodes = self.nodes.lock();
        nodes.retain(|_, part| match &part.snapshot {
            Some((_, at)) => now.saturating_duration_since(*at) < FORGET_AFTER,
            // Still coming in: kept while it is.
            None => part.assembling.is_some(),
        });
        let mut others: Vec<_> = nodes
            .iter()
            .filter_map(|(node, part)| {
                let (snapshot, at) = part.snapshot.as_ref()?;
                Some((
                    node.clone(),
                    snapshot.clone(),
                    now.saturating_duration_since(*at),
                ))
            })
            .collect();
        others.sort_by(|a, b| a.0.cmp(&b.0));
        others
    }

    /// `local` (this node's snapshot) made the cluster view: see [`merge`].
    pub(crate) fn merge(&self, own: &str, local: &mut Snapshot) {
        let others = self.others(Instant::now());
        merge(own, local, &others);
    }
}

/// Merges other nodes' snapshots into this node's:
/// - every client gets its `node`; another node's has the id `c42@web2`, and so
///   has the `client` of its in-flight jobs;
/// - queues by name: the figures of the newest snapshot (by its `time_ms`: with
///   queues in JetStream every node counts the same depths), `consumers`
///   summed, as each node counts its own;
/// - topics by name: `subscribers`, `msgs_in` and `msgs_out` summed;
/// - `server.cluster.nodes` lists this node, then the others by name; a node
///   gone (no snapshot for [`GONE_AFTER`]) is listed `gone`, and nothing else of
///   it is kept. `server`'s other figures stay this node's.
fn merge(own: &str, local: &mut Snapshot, others: &[(String, Arc<Snapshot>, Duration)]) {
    for client in &mut local.clients {
        client.node = Some(own.to_string());
    }
    let mut nodes = vec![NodeStats {
        node: own.to_string(),
        age_ms: 0,
        gone: false,
        connections: local.server.connections,
        truncated: false,
    }];
    let mut queues: HashMap<String, (QueueStats, u64)> = HashMap::new();
    let local_time = local.server.time_ms;
    for q in std::mem::take(&mut local.queues) {
        queues.insert(q.name.clone(), (q, local_time));
    }
    let mut topics: HashMap<String, TopicStats> = std::mem::take(&mut local.topics)
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    for (node, snapshot, age) in others {
        if node == own {
            continue;
        }
        let gone = *age >= GONE_AFTER;
        nodes.push(NodeStats {
            node: node.clone(),
            age_ms: age.as_millis() as u64,
            gone,
            connections: snapshot.server.connections,
            truncated: snapshot.truncated,
        });
        if gone {
            continue;
        }
        let time = snapshot.server.time_ms;
        for q in &snapshot.queues {
            match queues.get_mut(&q.name) {
                Some((mine, at)) => {
                    let consumers = mine.consumers + q.consumers;
                    if time > *at {
                        *mine = q.clone();
                        *at = time;
                    }
                    mine.consumers = consumers;
                }
                None => {
                    queues.insert(q.name.clone(), (q.clone(), time));
                }
            }
        }
        for t in &snapshot.topics {
            match topics.get_mut(&t.name) {
                Some(mine) => {
                    mine.subscribers += t.subscribers;
                    mine.msgs_in += t.msgs_in;
                    mine.msgs_out += t.msgs_out;
                    mine.retained |= t.retained;
                    mine.sealed |= t.sealed;
                    mine.stored = mine.stored.max(t.stored);
                    mine.stored_bytes = mine.stored_bytes.max(t.stored_bytes);
                }
                None => {
                    topics.insert(t.name.clone(), t.clone());
                }
            }
        }
        for c in &snapshot.clients {
            let mut c = c.clone();
            c.id = format!("{}@{node}", split_client(&c.id).0);
            c.node = Some(node.clone());
            local.clients.push(c);
        }
        for job in &snapshot.inflight {
            let mut job = job.clone();
            job.client = format!("{}@{node}", split_client(&job.client).0);
            local.inflight.push(job);
        }
    }
    let mut queues: Vec<QueueStats> = queues.into_values().map(|(q, _)| q).collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut topics: Vec<TopicStats> = topics.into_values().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    local.queues = queues;
    local.topics = topics;
    local
        .inflight
        .sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then(a.tag.cmp(&b.tag)));
    if let Some(cluster) = &mut local.server.cluster {
        cluster.nodes = nodes;
    }
}

impl Cluster {
    /// Starts the cluster view's tasks: publishing this node's snapshot,
    /// taking in the others', answering ops routed here.
    pub(crate) fn start_view(self: &Arc<Self>, ops: Arc<dyn NodeOps>) {
        tokio::spawn(run_view(self.clone(), ops));
    }

    /// This node's snapshot made the cluster view.
    pub(crate) fn merge_view(&self, local: &mut Snapshot) {
        self.view.merge(self.node(), local);
    }

    /// The other nodes, by name, as the view has them now (not those gone).
    pub(crate) fn other_nodes(&self) -> Vec<String> {
        self.view
            .others(Instant::now())
            .into_iter()
            .filter(|(node, _, age)| *age < GONE_AFTER && node != self.node())
            .map(|(node, _, _)| node)
            .collect()
    }

    /// Runs `op` on `node`, which holds its client, and answers what it answered.
    pub(crate) async fn route(
        &self,
        node: &str,
        op: NodeOp,
    ) -> Result<CommandOutcome, BrokerError> {
        let Some(answer) = self.ask(node, &op).await? else {
            return Err(BrokerError::new(
                ErrorCode::Unavailable,
                format!(
                    "node {node} is not in the cluster (no answer on {})",
                    op_subject(node)
                ),
            ));
        };
        Ok(match op {
            NodeOp::Requeue { .. } => CommandOutcome::RequeuedAll {
                count: answer.requeued.unwrap_or(0),
            },
            NodeOp::RequeueMsg { .. } => CommandOutcome::Requeued,
            // `held` and `consumers` are asked with `held_on` and
            // `consumers_on`, never routed as commands.
            NodeOp::Kick { .. } | NodeOp::Held { .. } | NodeOp::Consumers { .. } => {
                CommandOutcome::Kicked
            }
        })
    }

    /// Which of `msgs` of `queue` node `node` holds now; none if that node is
    /// no longer there (nobody answers on its subject: what it held comes back
    /// after the ack wait).
    pub(crate) async fn held_on(
        &self,
        node: &str,
        queue: &str,
        msgs: &[u64],
    ) -> Result<Vec<u64>, BrokerError> {
        let op = NodeOp::Held {
            queue: queue.to_string(),
            msgs: msgs.to_vec(),
        };
        Ok(self
            .ask(node, &op)
            .await?
            .and_then(|a| a.held)
            .unwrap_or_default())
    }

    /// Node `node`'s own consumers of `queue` (none if it is no longer there),
    /// their clients named as in the view (`c42@web2`).
    pub(crate) async fn consumers_on(
        &self,
        node: &str,
        queue: &str,
    ) -> Result<Vec<ConsumerStats>, BrokerError> {
        let op = NodeOp::Consumers {
            queue: queue.to_string(),
        };
        let mut consumers = self
            .ask(node, &op)
            .await?
            .and_then(|a| a.consumers)
            .unwrap_or_default();
        for c in &mut consumers {
            c.client = format!("{}@{node}", split_client(&c.client).0);
        }
        Ok(consumers)
    }

    /// Asks `node` to run `op`: its answer, None if no node answers on its
    /// subject, or the error it answered.
    async fn ask(&self, node: &str, op: &NodeOp) -> Result<Option<OpAnswer>, BrokerError> {
        let unavailable = |why: String| BrokerError::new(ErrorCode::Unavailable, why);
        if check_node(node).is_err() {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no node `{node}`"),
            ));
        }
        if let Some(why) = self.down() {
            return Err(unavailable(format!("{why}: node {node} cannot be reached")));
        }
        let Some(client) = self.client().cloned() else {
            return Err(unavailable("NATS not connected yet".into()));
        };
        let payload = serde_json::to_vec(op)
            .map(Bytes::from)
            .map_err(|e| BrokerError::new(ErrorCode::Internal, format!("an op for {node}: {e}")))?;
        let asked = tokio::time::timeout(OP_TIMEOUT, client.request(op_subject(node), payload));
        let message = match asked.await {
            Err(_) => {
                return Err(unavailable(format!(
                    "node {node} did not answer within {} ms",
                    OP_TIMEOUT.as_millis()
                )))
            }
            Ok(Err(e)) if e.kind() == async_nats::client::RequestErrorKind::NoResponders => {
                return Ok(None)
            }
            Ok(Err(e)) => return Err(unavailable(format!("node {node}: {e}"))),
            Ok(Ok(message)) => message,
        };
        let answer: OpAnswer = serde_json::from_slice(&message.payload).map_err(|e| {
            BrokerError::new(ErrorCode::Internal, format!("node {node} answered: {e}"))
        })?;
        if let Some(error) = answer.error {
            return Err(BrokerError::new(error.code, error.message));
        }
        Ok(Some(answer))
    }
}

/// The view's tasks, once NATS is connected.
async fn run_view(cluster: Arc<Cluster>, ops: Arc<dyn NodeOps>) {
    let client = loop {
        if let Some(client) = cluster.client() {
            break client.clone();
        }
        if !ops.alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let own = cluster.node().to_string();
    let snapshots = match client.subscribe(format!("{NODE_PREFIX}*.snapshot")).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cluster view: subscribing to snapshots: {e}");
            return;
        }
    };
    let op_requests = match client.subscribe(op_subject(&own)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cluster view: subscribing to {}: {e}", op_subject(&own));
            return;
        }
    };
    let taking = tokio::spawn(take_snapshots(cluster.clone(), snapshots));
    let answering = tokio::spawn(answer_ops(client.clone(), ops.clone(), op_requests));
    publish_snapshots(client, own, ops).await;
    taking.abort();
    answering.abort();
}

/// Publishes this node's summary once a second, until the broker is gone.
async fn publish_snapshots(client: async_nats::Client, own: String, ops: Arc<dyn NodeOps>) {
    let subject = snapshot_subject(&own);
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut generation = 0u64;
    loop {
        tick.tick().await;
        let Some(summary) = ops.summary(MAX_SUMMARY_BYTES) else {
            return;
        };
        let body = match serde_json::to_vec(&summary) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cluster view: this node's snapshot: {e}");
                continue;
            }
        };
        generation += 1;
        for part in split_parts(&body, generation, client.server_info().max_payload) {
            // Down: the view of others goes stale and marks this node gone, which
            // is what it is to them.
            if let Err(e) = client.publish(subject.clone(), part).await {
                tracing::debug!("cluster view: publishing this node's snapshot: {e}");
                break;
            }
        }
    }
}

/// Takes in the other nodes' snapshots.
async fn take_snapshots(cluster: Arc<Cluster>, mut snapshots: async_nats::Subscriber) {
    while let Some(msg) = snapshots.next().await {
        let node = msg
            .subject
            .strip_prefix(NODE_PREFIX)
            .and_then(|rest| rest.strip_suffix(".snapshot"));
        let Some(node) = node.filter(|n| check_node(n).is_ok()) else {
            continue;
        };
        if node == cluster.node() {
            continue;
        }
        cluster.view.take_part(node, &msg.payload);
    }
}

/// Answers the ops other nodes route to this one.
async fn answer_ops(
    client: async_nats::Client,
    ops: Arc<dyn NodeOps>,
    mut requests: async_nats::Subscriber,
) {
    while let Some(msg) = requests.next().await {
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        let answer = match serde_json::from_slice::<NodeOp>(&msg.payload) {
            Err(e) => OpAnswer {
                error: Some(OpError {
                    code: ErrorCode::BadFrame,
                    message: format!("not an op: {e}"),
                }),
                ..OpAnswer::default()
            },
            Ok(NodeOp::Held { queue, msgs }) => {
                if !ops.alive() {
                    return;
                }
                OpAnswer {
                    held: Some(ops.held(&queue, &msgs)),
                    ..OpAnswer::default()
                }
            }
            Ok(NodeOp::Consumers { queue }) => {
                if !ops.alive() {
                    return;
                }
                OpAnswer {
                    consumers: Some(ops.consumers(&queue)),
                    ..OpAnswer::default()
                }
            }
            Ok(op) => {
                // Kicks and requeues are quick, in memory: run here, in turn.
                let Some(result) = ops.run(op) else { return };
                match result {
                    Ok(CommandOutcome::RequeuedAll { count }) => OpAnswer {
                        requeued: Some(count),
                        ..OpAnswer::default()
                    },
                    Ok(_) => OpAnswer::default(),
                    Err(e) => OpAnswer {
                        error: Some(OpError {
                            code: e.code,
                            message: e.message,
                        }),
                        ..OpAnswer::default()
                    },
                }
            }
        };
        let payload = serde_json::to_vec(&answer).unwrap_or_default();
        if let Err(e) = client.publish(reply, payload.into()).await {
            tracing::debug!("cluster view: answering a routed op: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ClientStats, ClusterStats, InFlightStats, ServerStats};

    fn client(id: &str) -> ClientStats {
        ClientStats {
            id: id.into(),
            name: Some(format!("worker-{id}")),
            addr: "127.0.0.1:52814".into(),
            connected_s: 12_345,
            subs: 3,
            pending_limit: 8 << 20,
            ..ClientStats::default()
        }
    }

    fn node_snapshot(node: &str, time_ms: u64) -> Snapshot {
        Snapshot {
            server: ServerStats {
                time_ms,
                connections: 1,
                cluster: Some(ClusterStats {
                    node: node.into(),
                    connected: true,
                    ..ClusterStats::default()
                }),
                ..ServerStats::default()
            },
            ..Snapshot::default()
        }
    }

    #[test]
    fn ten_thousand_clients_cross_in_parts() {
        let mut snapshot = node_snapshot("web2", 1);
        snapshot.clients = (1..=10_000).map(|i| client(&format!("c{i}"))).collect();
        snapshot.queues = (0..10_000)
            .map(|i| QueueStats {
                name: format!("orders.region-{i:05}"),
                ready: 1234,
                msgs_in: 99_999,
                durable: true,
                ..QueueStats::default()
            })
            .collect();
        let body = serde_json::to_vec(&summary(snapshot.clone())).unwrap();
        // Measured, and said in the module's doc: 2.4 MB of clients, 4.4 MB in
        // all, in 5 parts.
        let clients_bytes = serde_json::to_vec(&snapshot.clients).unwrap().len();
        assert!(
            (1_500_000..2_500_000).contains(&clients_bytes),
            "{clients_bytes} bytes for 10,000 clients"
        );
        assert!(body.len() > 1 << 20, "{} bytes", body.len());
        let parts = split_parts(&body, 7, 1 << 20);
        assert!(parts.iter().all(|p| p.len() <= 1 << 20));
        assert_eq!(parts.len(), body.len().div_ceil((1 << 20) - 64));

        let view = View::default();
        for part in &parts[..parts.len() - 1] {
            view.take_part("web2", part);
        }
        assert!(view.others(Instant::now()).is_empty(), "not whole yet");
        view.take_part("web2", &parts[parts.len() - 1]);
        let others = view.others(Instant::now());
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].1.clients.len(), 10_000);
        assert_eq!(others[0].1.queues, snapshot.queues);
    }

    #[test]
    fn a_lost_part_loses_that_snapshot_only() {
        let body = serde_json::to_vec(&node_snapshot("web2", 1)).unwrap();
        let first = split_parts(&body, 1, 1100 + 64);
        assert!(first.len() >= 2 || body.len() <= 1100);
        let view = View::default();
        // Generation 1 without its first part, then generation 2 whole.
        for part in &first[1..] {
            view.take_part("web2", part);
        }
        assert!(view.others(Instant::now()).is_empty());
        for part in split_parts(&body, 2, 1 << 20) {
            view.take_part("web2", &part);
        }
        assert_eq!(view.others(Instant::now()).len(), 1);
        // Not parts at all.
        view.take_part("web3", &Bytes::from_static(b"hello"));
        view.take_part("web3", &Bytes::from_static(b"SYV1 1 0 100000\n{}"));
        assert_eq!(view.others(Instant::now()).len(), 1);
    }

    #[test]
    fn clients_are_named_by_node_queues_and_topics_merge_by_name() {
        let mut local = node_snapshot("web1", 1000);
        local.clients = vec![client("c1")];
        local.queues = vec![QueueStats {
            name: "jobs".into(),
            ready: 5,
            consumers: 1,
            ..QueueStats::default()
        }];
        local.topics = vec![TopicStats {
            name: "orders".into(),
            subscribers: 2,
            msgs_in: 10,
            ..TopicStats::default()
        }];
        let mut other = node_snapshot("web2", 2000);
        other.clients = vec![client("c1")];
        other.queues = vec![QueueStats {
            name: "jobs".into(),
            ready: 3,
            consumers: 2,
            ..QueueStats::default()
        }];
        other.topics = local.topics.clone();
        other.inflight = vec![InFlightStats {
            queue: "jobs".into(),
            client: "c1".into(),
            ..InFlightStats::default()
        }];
        let gone = node_snapshot("web3", 0);
        let others = vec![
            (
                "web2".to_string(),
                Arc::new(other),
                Duration::from_millis(500),
            ),
            ("web3".to_string(), Arc::new(gone), Duration::from_secs(4)),
        ];
        merge("web1", &mut local, &others);
        let ids: Vec<_> = local
            .clients
            .iter()
            .map(|c| (c.id.as_str(), c.node.as_deref()))
            .collect();
        assert_eq!(ids, [("c1", Some("web1")), ("c1@web2", Some("web2"))]);
        assert_eq!(local.inflight[0].client, "c1@web2");
        assert_eq!(
            (local.queues[0].ready, local.queues[0].consumers),
            (3, 3),
            "the newest depth, consumers summed"
        );
        assert_eq!(
            (local.topics[0].subscribers, local.topics[0].msgs_in),
            (4, 20)
        );
        let nodes: Vec<_> = local.server.cluster.unwrap().nodes;
        let nodes: Vec<_> = nodes.iter().map(|n| (n.node.as_str(), n.gone)).collect();
        assert_eq!(nodes, [("web1", false), ("web2", false), ("web3", true)]);
    }

    #[test]
    fn client_ids_name_their_node() {
        assert_eq!(split_client("c4"), ("c4", None));
        assert_eq!(split_client("c4@web2"), ("c4", Some("web2")));
    }
}
