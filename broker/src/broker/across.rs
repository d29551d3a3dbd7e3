//! Operator ops on queues kept in JetStream (`serve --nats`), across nodes:
//! `peek`, `drop` and `move` read the queue's stream itself (not this node's
//! share of it), and `requeue` of a job reaches the node that holds it.
//!
//! A stream does not tell which of its messages are in flight (JetStream 2.9
//! lists no consumer's pending messages), so "ready" is found out: a message
//! the shared consumer never delivered (above its delivered sequence) is ready;
//! one it did is ready unless a node holds it now, which every node is asked
//! (`switchyard.node.<node>.op`, `held`: each node knows exactly what it
//! pulled and has not settled). A node nobody answers for holds nothing (it is
//! gone: JetStream gives its jobs back after the ack wait).

use std::collections::HashSet;
use std::sync::Arc;

use super::Broker;
use crate::cluster::queue::StreamJob;
use crate::cluster::{Cluster, NodeOp};
use crate::command::PeekedMessage;
use crate::error::{BrokerError, ErrorCode};
use crate::filter::Query;
use crate::page::QueuePage;
use crate::queue::{Queue, Settlement, PEEK_SCAN};
use crate::stats::EventKind;

/// Messages read from a stream at a time, and asked about at once.
const CHUNK: usize = 100;

fn no_ready(queue: &str, msg: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::NotFound,
        format!("no ready message `{msg}` in `{queue}` (in flight, gone, or not matching)"),
    )
}

/// A message id of a queue in JetStream: its stream sequence.
fn seq_of(queue: &str, msg: &str) -> Result<u64, BrokerError> {
    msg.parse::<u64>()
        .ok()
        .filter(|&seq| seq > 0)
        .ok_or_else(|| no_ready(queue, msg))
}

impl Broker {
    /// Which of `msgs` of `queue` this node holds now (pulled, not settled).
    pub(crate) fn held_here(&self, queue: &str, msgs: &[u64]) -> Vec<u64> {
        let Some(q) = self.inner.queues.read().get(queue).cloned() else {
            return Vec::new();
        };
        let Some(remote) = q.remote() else {
            return Vec::new();
        };
        msgs.iter().copied().filter(|&m| remote.holds(m)).collect()
    }

    /// Which of `msgs` of `queue` any node holds now: this one, and every other
    /// the view has (asked in turn).
    async fn held_anywhere(
        &self,
        cluster: &Cluster,
        queue: &str,
        msgs: &[u64],
    ) -> Result<HashSet<u64>, BrokerError> {
        let mut held: HashSet<u64> = self.held_here(queue, msgs).into_iter().collect();
        if msgs.is_empty() {
            return Ok(held);
        }
        for node in cluster.other_nodes() {
            held.extend(cluster.held_on(&node, queue, msgs).await?);
        }
        Ok(held)
    }

    /// The ready messages of `queue`'s stream after `after` that `query`
    /// selects: at most `n`, looking at no more than `scan` messages; and the
    /// sequence of the last message looked at when more follow it.
    async fn ready_in_stream(
        &self,
        cluster: &Cluster,
        queue: &str,
        after: u64,
        n: usize,
        scan: usize,
        query: &Query,
    ) -> Result<(Vec<(StreamJob, bool)>, Option<u64>), BrokerError> {
        let mut out = Vec::new();
        let (mut cursor, mut looked, mut more) = (after, 0, true);
        while out.len() < n && looked < scan && more {
            let read = cluster
                .read_queue(queue, cursor, (scan - looked).min(CHUNK))
                .await?;
            more = read.more;
            let Some(last) = read.last else {
                more = false;
                break;
            };
            let delivered: Vec<u64> = read
                .jobs
                .iter()
                .map(|j| j.seq)
                .filter(|&seq| seq <= read.delivered)
                .collect();
            let held = self.held_anywhere(cluster, queue, &delivered).await?;
            let count = read.jobs.len();
            for (i, job) in read.jobs.into_iter().enumerate() {
                cursor = job.seq;
                looked += 1;
                if held.contains(&job.seq)
                    || !query.matches(queue, job.job.headers.as_ref(), job.job.data.as_json())
                {
                    continue;
                }
                let was_delivered = job.seq <= read.delivered;
                out.push((job, was_delivered));
                if out.len() == n {
                    more |= i + 1 < count;
                    break;
                }
            }
            if out.len() < n {
                // Past what was not a Switchyard job, too.
                cursor = last;
                looked += read.looked - count;
            }
        }
        Ok((out, Some(cursor).filter(|_| more)))
    }

    /// `peek` of a queue: with --nats, the ready messages of its stream,
    /// whichever node they were sent on; else this broker's.
    pub(crate) fn peek_queue_page(
        &self,
        queue: &str,
        n: usize,
        after: Option<u64>,
        query: &Query,
    ) -> Result<(Vec<PeekedMessage>, Option<u64>), BrokerError> {
        let Some(cluster) = self.inner.cluster.clone() else {
            return Ok(self.existing_queue(queue)?.peek(n, after, query));
        };
        let after = after.unwrap_or(0);
        let (jobs, next) = super::queues::wait(
            &self.inner.runtime,
            self.ready_in_stream(&cluster, queue, after, n, PEEK_SCAN, query),
        )?;
        let messages = jobs
            .into_iter()
            .map(|(j, delivered)| PeekedMessage {
                msg: Some(j.seq.to_string()),
                seq: None,
                time: j.time,
                // The stream counts deliveries only as it makes them.
                attempt: u32::from(delivered),
                expires: j.job.expires,
                data: j.job.data.to_value(),
                headers: j.job.headers,
            })
            .collect();
        Ok((messages, next))
    }

    /// `drop` with --nats: removes ready message `msg` from `queue`'s stream;
    /// `not_found` if it is not there or some node holds it.
    pub(super) fn drop_from_stream(
        &self,
        cluster: &Cluster,
        queue: &str,
        msg: &str,
    ) -> Result<(), BrokerError> {
        let seq = seq_of(queue, msg)?;
        super::queues::wait(&self.inner.runtime, async {
            let read = cluster.read_queue(queue, seq - 1, 1).await?;
            let job = read
                .jobs
                .into_iter()
                .find(|j| j.seq == seq)
                .ok_or_else(|| no_ready(queue, msg))?;
            if !self.held_anywhere(cluster, queue, &[seq]).await?.is_empty() {
                return Err(BrokerError::new(
                    ErrorCode::NotFound,
                    format!("message {msg} of `{queue}` is in flight: requeue it first"),
                ));
            }
            if !cluster.remove_job(queue, seq).await? {
                return Err(no_ready(queue, msg));
            }
            cluster
                .tell_waiter(&job, Settlement::Dead("dropped".into()))
                .await;
            Ok(())
        })
    }

    /// `move` with --nats: ready messages of `from`'s stream appended to `to`'s
    /// (with `x-moved-from`), each removed from `from` once `to` stored it.
    /// Waits for it all here, on the broker's runtime, whose timers and NATS
    /// client it needs.
    pub(super) fn move_in_streams(
        &self,
        from: &str,
        to: &str,
        n: usize,
        query: &Query,
        msg: Option<&str>,
        actor: &str,
    ) -> Result<u64, BrokerError> {
        let Some(cluster) = self.inner.cluster.clone() else {
            return Err(BrokerError::new(ErrorCode::Internal, "not a cluster node"));
        };
        let moved = super::queues::wait(
            &self.inner.runtime,
            self.move_each(&cluster, from, to, n, query, msg),
        );
        if let Ok(moved) = &moved {
            self.inner.activity.record(
                EventKind::Other,
                format!("{actor} moved {moved} messages from {from} to {to}"),
            );
        }
        moved
    }

    async fn move_each(
        &self,
        cluster: &Cluster,
        from: &str,
        to: &str,
        n: usize,
        query: &Query,
        msg: Option<&str>,
    ) -> Result<u64, BrokerError> {
        cluster.open_queue(to, None).await?;
        let mut moved = 0u64;
        let mut refused = None;
        let mut after = 0;
        let single = match msg {
            Some(m) => Some(seq_of(from, m)?),
            None => None,
        };
        'pages: loop {
            let left = n.saturating_sub(usize::try_from(moved).unwrap_or(usize::MAX));
            let (jobs, next) = match single {
                Some(seq) => {
                    let (jobs, _) = self
                        .ready_in_stream(cluster, from, seq - 1, 1, 1, query)
                        .await?;
                    let jobs: Vec<_> = jobs.into_iter().filter(|(j, _)| j.seq == seq).collect();
                    if jobs.is_empty() {
                        return Err(no_ready(from, msg.unwrap_or_default()));
                    }
                    (jobs, None)
                }
                None => {
                    self.ready_in_stream(cluster, from, after, left, PEEK_SCAN, query)
                        .await?
                }
            };
            for (job, _) in jobs {
                if let Err(e) = cluster.append_moved(from, to, &job).await {
                    refused = Some(e);
                    break 'pages;
                }
                // Stored in `to` first: a move cut short here leaves a copy in
                // both, never in neither.
                match cluster.remove_job(from, job.seq).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        "queue {from}: message {} went while it was moved to {to}",
                        job.seq
                    ),
                    Err(e) => {
                        tracing::warn!("queue {from}: a moved message stays: {e}");
                        refused = Some(e);
                        moved += 1;
                        break 'pages;
                    }
                }
                moved += 1;
            }
            match next {
                Some(cursor) if usize::try_from(moved).unwrap_or(usize::MAX) < n => after = cursor,
                _ => break,
            }
        }
        match refused {
            Some(e) if moved == 0 => Err(e),
            _ => Ok(moved),
        }
    }

    /// `requeue` of a job with --nats: this node's, else the node's that holds
    /// it (each other node is asked in turn).
    pub(super) fn requeue_anywhere(
        &self,
        cluster: &Cluster,
        queue: &str,
        msg: &str,
        actor: &str,
    ) -> Result<(), BrokerError> {
        match self.requeue_here(queue, msg, actor) {
            Err(e) if e.code == ErrorCode::NotFound => {}
            other => return other,
        }
        super::queues::wait(&self.inner.runtime, async {
            let mut unreachable = None;
            for node in cluster.other_nodes() {
                let op = NodeOp::RequeueMsg {
                    queue: queue.to_string(),
                    msg: msg.to_string(),
                    actor: format!("{actor} on {}", cluster.node()),
                };
                match cluster.route(&node, op).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.code == ErrorCode::NotFound => {}
                    Err(e) => unreachable = Some(e),
                }
            }
            Err(unreachable.unwrap_or_else(|| {
                BrokerError::new(
                    ErrorCode::NotFound,
                    format!("message {msg} is not in flight on `{queue}` on any node"),
                )
            }))
        })
    }

    /// The queue `describe` shows: with --nats, this node's share of the
    /// cluster's queue, opened if this node has not served it yet (as a
    /// `consume` would, without a consumer), `not_found` if it has no stream.
    pub(crate) fn queue_to_describe(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        let Some(cluster) = self.inner.cluster.clone() else {
            return self.existing_queue(name);
        };
        if let Ok(q) = self.existing_queue(name) {
            return Ok(q);
        }
        super::queues::wait(&self.inner.runtime, cluster.read_queue(name, 0, 0))?;
        self.queue(name, None)
    }

    /// With --nats, adds every other node's consumers of the queue to its page
    /// (a node that does not answer is left out), and counts them in its row.
    pub(crate) fn describe_across(&self, page: &mut QueuePage) {
        let Some(cluster) = self.inner.cluster.clone() else {
            return;
        };
        let name = page.stats.name.clone();
        let others = super::queues::wait(&self.inner.runtime, async {
            let mut all = Vec::new();
            for node in cluster.other_nodes() {
                match cluster.consumers_on(&node, &name).await {
                    Ok(consumers) => all.extend(consumers),
                    Err(e) => tracing::debug!("describe {name}: node {node}: {e}"),
                }
            }
            all
        });
        page.consumers.extend(others);
        page.stats.consumers = page.consumers.len() as u64;
    }
}
