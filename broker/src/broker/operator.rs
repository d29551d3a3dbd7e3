//! Operator ops on the broker handle: the snapshot, the operator commands the
//! console and the wire's operator frames run, kicks and the metrics text.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Broker, Peer, Publisher};
use crate::command::{Command, CommandOutcome, PeekTarget, PeekedMessage};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::Payload;
use crate::queue::Queue;
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
        session.outbound.kick(reason);
        Ok(())
    }

    /// Everything an operator can see, now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = &self.inner;
        let peers: Vec<Arc<Peer>> = inner.sessions.read().values().cloned().collect();
        let queues: Vec<Arc<Queue>> = inner.queues.read().values().cloned().collect();
        let mut clients: Vec<_> = peers.iter().map(|p| p.stats()).collect();
        clients.sort_by_key(|c| c.id[1..].parse::<u64>().unwrap_or(0));
        let mut queue_stats: Vec<_> = queues.iter().map(|q| q.stats()).collect();
        queue_stats.sort_by(|a, b| a.name.cmp(&b.name));
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
                connections: peers.len() as u64,
                msgs_in: inner.activity.msgs_in.load(Ordering::Relaxed),
                msgs_out: inner.activity.msgs_out.load(Ordering::Relaxed),
                slow_consumers: inner.activity.slow_kicks.load(Ordering::Relaxed),
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
            },
            topics: inner.topics.stats(),
            queues: queue_stats,
            clients,
            inflight,
            events: inner.activity.events(),
        }
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
                Ok(CommandOutcome::Published { seq })
            }
            Command::Send {
                queue,
                data,
                headers,
            } => {
                let msg = self.send(
                    None,
                    &queue,
                    Payload::from_value(&data),
                    headers,
                    None,
                    false,
                    |_, _| {},
                )?;
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
            Command::Kick { client, reason } => {
                self.kick(
                    &client,
                    reason.as_deref().unwrap_or("kicked by operator"),
                    actor,
                )?;
                Ok(CommandOutcome::Kicked)
            }
            Command::Requeue { queue, msg } => {
                self.requeue(&queue, &msg, actor)?;
                Ok(CommandOutcome::Requeued)
            }
            Command::Peek { target, n } => {
                let messages = match target {
                    PeekTarget::Queue(q) => self.peek_queue(&q, n)?,
                    PeekTarget::Topic(t) => self.peek_topic(&t, n)?,
                };
                // Every client's outbound buffer is `max_pending` bytes: half of it
                // for one answer leaves room for what else it is waiting for.
                let (messages, truncated) = bound_peek(messages, self.inner.config.max_pending / 2);
                Ok(CommandOutcome::Peeked {
                    messages,
                    truncated,
                })
            }
        }
    }

    /// The Prometheus text exposition of the broker's counters.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.snapshot())
    }
}

/// Room in a bounded answer for what is not a message: `{"ev":"ok","id":...,
/// "messages":[],"truncated":true}` with a long request id.
const ANSWER_OVERHEAD: usize = 256;

/// The first messages whose JSON fits in `budget` bytes, and whether any were left
/// out. A reply to a client's own request is bounded so it can never kick the client.
fn bound_peek(mut messages: Vec<PeekedMessage>, budget: usize) -> (Vec<PeekedMessage>, bool) {
    let budget = budget.saturating_sub(ANSWER_OVERHEAD);
    let mut used = 0;
    for (i, m) in messages.iter().enumerate() {
        // Plain data: serializing it cannot fail. One more byte for the comma.
        used += serde_json::to_string(m).map_or(0, |s| s.len()) + 1;
        if used > budget {
            messages.truncate(i);
            return (messages, true);
        }
    }
    (messages, false)
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
}
