//! Unit tests of the queue state machine: no sockets and no runtime. A consumer is
//! a real [`Session`]; what it was delivered is read back from its outbound buffer
//! as whole JSON frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::activity::Activity;
use crate::protocol::{HeaderValue, RequestId};

const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn session(id: u64) -> Arc<Session> {
    let addr = "127.0.0.1:7401".parse().unwrap();
    Arc::new(Session::new(
        id,
        addr,
        1 << 20,
        Arc::new(Activity::default()),
    ))
}

/// A queue `jobs` with no store, set up by `config` (start from [`in_memory`]).
fn queue_with(config: QueueConfig) -> Arc<Queue> {
    Queue::new("jobs", config, None)
}

/// Not durable, with a 10 s ack deadline; the rest as `declare`'s defaults.
fn in_memory() -> QueueConfig {
    QueueConfig {
        durable: false,
        ack_timeout: ACK_TIMEOUT,
        ..QueueConfig::default()
    }
}

fn queue() -> Arc<Queue> {
    queue_with(in_memory())
}

/// Sends `data` (no headers, nobody waiting); returns the message id.
fn send(q: &Arc<Queue>, data: Value) -> String {
    let (msg, ticket) = q
        .enqueue(Outgoing::new(Payload::from_value(&data), None))
        .unwrap();
    assert!(ticket.is_none(), "an in-memory queue gives no ticket");
    msg.to_string()
}

/// Sends `data` with someone waiting for its outcome (a `confirm: "done"` send).
fn send_waited(q: &Arc<Queue>, data: Value, sender: &Arc<Session>, id: u64) -> String {
    let waiter = Waiter::new(sender, RequestId::from_value(&json!(id)).unwrap(), false);
    let (msg, _) = q
        .enqueue(Outgoing {
            waiter: Some(waiter),
            ..Outgoing::new(Payload::from_value(&data), None)
        })
        .unwrap();
    msg.to_string()
}

fn consume(q: &Arc<Queue>, s: &Arc<Session>, cid: &str, prefetch: u32) {
    q.add_consumer(s, cid, prefetch).unwrap();
}

/// Every frame the session was sent since the last call, parsed.
fn frames(s: &Session) -> Vec<Value> {
    s.take_sent_frames()
}

/// The `job` frame a consumer gets for a message sent without headers.
fn job(cid: &str, tag: u64, msg: &str, attempt: u32, data: Value) -> Value {
    json!({
        "ev": "job", "cid": cid, "queue": "jobs", "tag": tag,
        "msg": msg, "attempt": attempt, "data": data,
    })
}

/// The ready messages as (id, attempts so far).
fn ready(q: &Queue) -> Vec<(String, u32)> {
    q.peek(usize::MAX, None, &Query::default())
        .0
        .into_iter()
        .map(|m| (m.msg.unwrap(), m.attempt))
        .collect()
}

/// What the waiters of these effects are to be told, as (msg, outcome).
fn settlements(effects: &Effects) -> Vec<(String, Settlement)> {
    effects
        .settle
        .iter()
        .map(|(_, msg, how)| (msg.to_string(), how.clone()))
        .collect()
}

/// The queue's stats that scenarios change, in one line to compare whole.
fn counts(q: &Queue) -> String {
    let s = q.stats();
    format!(
        "ready={} unacked={} consumers={} in={} acked={} redelivered={} dead={}",
        s.ready, s.unacked, s.consumers, s.msgs_in, s.acked, s.redelivered, s.dead
    )
}

fn nack(requeue: bool) -> Settle {
    Settle::Nack { requeue }
}

mod dead_letters;
mod delivery;
mod expiry;
mod limits;
mod redelivery;
mod settlement;
