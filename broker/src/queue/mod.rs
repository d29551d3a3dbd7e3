//! Work queues: each message goes to one consumer at a time, stays in flight until
//! it is acked, and comes back (attempt + 1) when its consumer goes away, nacks it,
//! or lets its ack deadline pass; after `max_attempts` it is dead-lettered or dropped.
//! A message sent with a time to live is not delivered once that time has passed
//! since its send: it is dead-lettered (reason `expired`) or dropped, as with
//! RabbitMQ's per-message TTL. A job in flight is not taken back for it, but if it
//! comes back after its time, it expires instead of being delivered again.
//!
//! All of a queue's state sits behind one short lock. Anything that reaches beyond
//! the queue (moving a message to a dead-letter queue, answering a waiting sender)
//! is returned as [`Effects`] and carried out by the broker after the lock is gone,
//! so two queues that dead-letter into each other cannot deadlock.

mod config;
mod effects;
pub(crate) mod latency;
mod moving;
mod remote;
mod stored;
mod waiter;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::command::PeekedMessage;
use crate::error::{BrokerError, ErrorCode};
use crate::filter::Query;
use crate::outbound::OutItem;
use crate::page::{ConsumerStats, QueuePage};
use crate::protocol::{event, Headers, Payload, QueueOptions};
use crate::session::Session;
use crate::stats::{InFlightStats, QueueStats};
use crate::store::{QueueStore, QueuedMessage, Ticket};
use crate::time::now_ms;
pub(crate) use config::QueueConfig;
pub(crate) use effects::{dead_letter_headers, DeadLetter, Effects};
pub(crate) use remote::{Pulled, RemoteDepth, RemoteJobs};
pub(crate) use stored::StoredJob;
pub(crate) use waiter::{RemoteAnswer, Settlement, Waiter};

/// The most messages one `peek` looks at (matching or not), so that a peek
/// with a query that matches little holds the queue's lock for a bounded time
/// (about 10 ms for 10,000 small messages with a `data.` filter); its `next`
/// goes on from there.
pub const PEEK_SCAN: usize = 10_000;

/// A message on its way into a queue: what `send`, `request` and a dead letter carry.
pub(crate) struct Outgoing {
    pub(crate) data: Payload,
    pub(crate) headers: Option<Headers>,
    /// How long, in milliseconds, it may wait for a consumer.
    pub(crate) ttl_ms: Option<u64>,
    /// Who waits for its outcome (`confirm: "done"`, `request`).
    pub(crate) waiter: Option<Arc<Waiter>>,
    /// A `request`: its consumer is to `reply`.
    pub(crate) reply: bool,
    /// A move from a durable queue: that queue and the message's id there.
    pub(crate) moved_from: Option<(String, u64)>,
}

impl Outgoing {
    /// A plain message: no time to live, nobody waiting.
    pub(crate) fn new(data: Payload, headers: Option<Headers>) -> Outgoing {
        Outgoing {
            data,
            headers,
            ttl_ms: None,
            waiter: None,
            reply: false,
            moved_from: None,
        }
    }
}

/// What [`Queue::append`] made: the message id, the ticket that resolves when it
/// is on disk (durable queues), and the message itself when it was held back.
type Appended = (Arc<str>, Option<Ticket>, Option<Message>);

/// A message in a queue.
pub(crate) struct Message {
    /// Position in send order; also the message id.
    id: u64,
    msg: Arc<str>,
    time: u64,
    enqueued: Instant,
    pub(crate) data: Payload,
    pub(crate) headers: Option<Arc<Headers>>,
    /// Deliveries so far.
    attempt: u32,
    /// Unix milliseconds after which it is not delivered (its time to live).
    expires: Option<u64>,
    waiter: Option<Arc<Waiter>>,
    reply: bool,
}

struct InFlight {
    message: Message,
    session: Arc<Session>,
    cid: Arc<str>,
    delivered: Instant,
    deadline: Instant,
}

struct Consumer {
    session: Arc<Session>,
    cid: Arc<str>,
    prefetch: u32,
    unacked: u32,
    /// Jobs it acked or replied to.
    acked: u64,
}

/// The number in a client id (`c42` → 42), which orders clients as they connected.
fn client_number(id: &str) -> u64 {
    id.get(1..).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// How a consumer settles a job.
#[derive(Clone)]
pub(crate) enum Settle {
    Ack,
    Reply(Payload),
    Nack { requeue: bool },
}

struct QueueState {
    config: QueueConfig,
    ready: VecDeque<Message>,
    inflight: HashMap<(u64, u64), InFlight>,
    deadlines: BTreeSet<(Instant, u64, u64)>,
    /// The ready messages that have a time to live: (expires, id).
    expiring: BTreeSet<(u64, u64)>,
    consumers: Vec<Consumer>,
    cursor: usize,
    next_id: u64,
    deleted: bool,
    msgs_in: u64,
    acked: u64,
    redelivered: u64,
    dead: u64,
    expired: u64,
    /// `request`s sent.
    requests: u64,
    /// Reply times, from the first reply on.
    latency: Option<Box<latency::Latency>>,
}

/// One work queue.
pub(crate) struct Queue {
    pub(crate) name: Arc<str>,
    /// Where a durable queue keeps its messages; `None` for an in-memory queue.
    store: Option<Arc<dyn QueueStore>>,
    /// Where the messages live when they are shared by several nodes
    /// (`remote.rs`): settlements go there, and `ready` only ever holds what
    /// is being handed to this node's consumers.
    remote: Option<Arc<dyn RemoteJobs>>,
    state: Mutex<QueueState>,
    /// Wakes the queue's ack-deadline timer when the earliest deadline changes.
    pub(crate) timer: Notify,
    /// Its `request`s whose requester had no reply in time, counted by their
    /// waiters (`waiter.rs`).
    pub(crate) request_timeouts: Arc<std::sync::atomic::AtomicU64>,
}

impl Queue {
    pub(crate) fn new(
        name: &str,
        config: QueueConfig,
        store: Option<Arc<dyn QueueStore>>,
    ) -> Arc<Queue> {
        Self::build(name, config, store, None)
    }

    /// Where its messages live, for a queue whose messages live elsewhere.
    pub(crate) fn remote(&self) -> Option<&Arc<dyn RemoteJobs>> {
        self.remote.as_ref()
    }

    /// A queue whose messages live elsewhere (see `remote.rs`).
    pub(crate) fn new_remote(
        name: &str,
        config: QueueConfig,
        remote: Arc<dyn RemoteJobs>,
    ) -> Arc<Queue> {
        Self::build(name, config, None, Some(remote))
    }

    fn build(
        name: &str,
        config: QueueConfig,
        store: Option<Arc<dyn QueueStore>>,
        remote: Option<Arc<dyn RemoteJobs>>,
    ) -> Arc<Queue> {
        Arc::new(Queue {
            name: Arc::from(name),
            store,
            remote,
            state: Mutex::new(QueueState {
                config,
                ready: VecDeque::new(),
                inflight: HashMap::new(),
                deadlines: BTreeSet::new(),
                expiring: BTreeSet::new(),
                consumers: Vec::new(),
                cursor: 0,
                next_id: 1,
                deleted: false,
                msgs_in: 0,
                acked: 0,
                redelivered: 0,
                dead: 0,
                expired: 0,
                requests: 0,
                latency: None,
            }),
            timer: Notify::new(),
            request_timeouts: Arc::default(),
        })
    }

    pub(crate) fn configure(&self, options: &QueueOptions) -> QueueConfig {
        let config = {
            let mut state = self.state.lock();
            state.config.apply(options);
            state.config.clone()
        };
        self.timer.notify_one();
        config
    }

    pub(crate) fn store(&self) -> Option<&Arc<dyn QueueStore>> {
        self.store.as_ref()
    }

    /// Replaces its settings with what another node declared.
    pub(crate) fn set_config(&self, config: QueueConfig) {
        let mut state = self.state.lock();
        if state.config != config {
            state.config = config;
            drop(state);
            self.timer.notify_one();
        }
    }

    /// Jobs this node's consumers have room for and are not being handed yet:
    /// how many a remote queue may pull.
    pub(crate) fn room(&self) -> usize {
        let state = self.state.lock();
        let free: u64 = state
            .consumers
            .iter()
            .map(|c| u64::from(c.prefetch.saturating_sub(c.unacked)))
            .sum();
        usize::try_from(free)
            .unwrap_or(usize::MAX)
            .saturating_sub(state.ready.len())
    }

    /// Takes jobs pulled from the stream (remote queues): each one out of its
    /// attempts or past its time to live dies at once (as it would have when
    /// it came back on one node), the others go to this node's consumers;
    /// what none has room for goes back (see [`Queue::dispatch`]).
    pub(crate) fn arrive(self: &Arc<Self>, jobs: Vec<Pulled>) -> Effects {
        let mut state = self.state.lock();
        let mut effects = Effects::default();
        let now = now_ms();
        for job in jobs {
            state.msgs_in += u64::from(job.attempt == 0);
            let message = Message {
                id: job.id,
                msg: Arc::from(job.id.to_string()),
                time: job.time,
                enqueued: Instant::now(),
                data: job.data,
                headers: job.headers.map(Arc::new),
                attempt: job.attempt,
                expires: job.expires,
                waiter: job.waiter,
                reply: job.reply,
            };
            if message.expires.is_some_and(|at| at <= now) {
                self.kill_expired(&mut state, message, &mut effects);
            } else if state
                .config
                .max_attempts
                .is_some_and(|max| message.attempt >= max)
            {
                // Its last attempt was on a node that never settled it (gone).
                self.kill(&mut state, message, "max_attempts", &mut effects);
            } else {
                self.put_back(&mut state, message);
            }
        }
        self.dispatch(&mut state, &mut effects);
        effects
    }

    /// Puts back what a durable queue's store recovered: every message not acked,
    /// ready again, with its delivery count kept. Returns where the moved ones came
    /// from, (queue, id), for the source to drop its copy if it still has one.
    pub(crate) fn restore(
        &self,
        messages: Vec<QueuedMessage>,
    ) -> Result<Vec<(String, u64)>, String> {
        let mut state = self.state.lock();
        let mut moved = Vec::new();
        for m in messages {
            let job = StoredJob::decode(&m.body).ok_or_else(|| {
                format!("queue `{}`: message {} is not readable", self.name, m.seq)
            })?;
            moved.extend(job.moved_from);
            state.next_id = state.next_id.max(m.seq + 1);
            if let Some(at) = job.expires {
                state.expiring.insert((at, m.seq));
            }
            state.ready.push_back(Message {
                id: m.seq,
                msg: Arc::from(m.seq.to_string()),
                time: m.time_ms,
                enqueued: Instant::now(),
                data: job.data,
                headers: job.headers.map(Arc::new),
                attempt: m.attempts,
                expires: job.expires,
                waiter: None,
                reply: job.reply,
            });
        }
        // Messages whose time ran out while the broker was down go at the first tick.
        drop(state);
        self.timer.notify_one();
        Ok(moved)
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// Appends a message (see [`Queue::dispatch_ready`] to deliver it). For a durable
    /// queue the ticket resolves when the message is on disk.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        message: Outgoing,
    ) -> Result<(Arc<str>, Option<Ticket>), BrokerError> {
        self.append(message, false)
            .map(|(msg, ticket, _)| (msg, ticket))
    }

    /// [`Queue::enqueue`], or with `hold` the message is returned instead of made
    /// ready (a move releases it later).
    fn append(self: &Arc<Self>, message: Outgoing, hold: bool) -> Result<Appended, BrokerError> {
        let Outgoing {
            data,
            headers,
            ttl_ms,
            waiter,
            reply,
            moved_from,
        } = message;
        let mut state = self.state.lock();
        if state.deleted {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("queue `{}` was deleted", self.name),
            ));
        }
        if let Some(max) = state.config.max_len {
            if state.ready.len() as u64 >= max {
                return Err(BrokerError::new(
                    ErrorCode::Limit,
                    format!(
                        "queue `{}` is full: {max} ready messages (max_len)",
                        self.name
                    ),
                ));
            }
        }
        let time = now_ms();
        let expires = ttl_ms.map(|ttl| time.saturating_add(ttl));
        let (id, ticket) = match &self.store {
            Some(store) => {
                let body =
                    StoredJob::encode(&data, headers.as_ref(), reply, expires, moved_from.as_ref());
                let appended = store.append(time, body.as_bytes())?;
                (appended.seq, Some(appended.durable))
            }
            None => (state.next_id, None),
        };
        state.next_id = id + 1;
        state.msgs_in += 1;
        let msg: Arc<str> = Arc::from(id.to_string());
        let message = Message {
            id,
            msg: msg.clone(),
            time,
            enqueued: Instant::now(),
            data,
            headers: headers.map(Arc::new),
            attempt: 0,
            expires,
            waiter,
            reply,
        };
        if hold {
            return Ok((msg, ticket, Some(message)));
        }
        if let Some(at) = expires {
            let first = state.expiring.first().is_none_or(|e| at < e.0);
            state.expiring.insert((at, id));
            if first {
                self.timer.notify_one();
            }
        }
        state.ready.push_back(message);
        Ok((msg, ticket, None))
    }

    /// Hands ready messages to consumers with room. Callers run it after answering the
    /// op that made room or added messages, so that the answer precedes any delivery.
    pub(crate) fn dispatch_ready(self: &Arc<Self>) -> Effects {
        let mut state = self.state.lock();
        let mut effects = Effects::default();
        self.dispatch(&mut state, &mut effects);
        effects
    }

    /// How long a consumer has to ack a job.
    pub(crate) fn ack_timeout(&self) -> std::time::Duration {
        self.state.lock().config.ack_timeout
    }

    /// Adds a consumer (see [`Queue::dispatch_ready`] to give it work).
    pub(crate) fn add_consumer(
        self: &Arc<Self>,
        session: &Arc<Session>,
        cid: &str,
        prefetch: u32,
    ) -> Result<(), BrokerError> {
        let mut state = self.state.lock();
        if state.deleted {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("queue `{}` was deleted", self.name),
            ));
        }
        state.consumers.push(Consumer {
            session: session.clone(),
            cid: Arc::from(cid),
            prefetch,
            unacked: 0,
            acked: 0,
        });
        Ok(())
    }

    /// Removes a consumer; its unacked jobs go back to the queue.
    pub(crate) fn remove_consumer(self: &Arc<Self>, session: &Session, cid: &str) -> Effects {
        let mut state = self.state.lock();
        state
            .consumers
            .retain(|c| !(c.session.id == session.id && &*c.cid == cid));
        let mut effects = Effects::default();
        self.return_jobs_of(&mut state, session, cid, &mut effects);
        self.dispatch(&mut state, &mut effects);
        effects
    }

    /// Acks, replies to or nacks a job this queue delivered to `session` (see
    /// [`Queue::dispatch_ready`]); `None` if no such job is in flight here.
    pub(crate) fn settle(
        self: &Arc<Self>,
        session: &Session,
        tag: u64,
        how: Settle,
    ) -> Option<Effects> {
        let mut state = self.state.lock();
        let key = (session.id, tag);
        let flight = state.inflight.remove(&key)?;
        state.deadlines.remove(&(flight.deadline, key.0, key.1));
        let done = matches!(how, Settle::Ack | Settle::Reply(_));
        if let Some(c) = state
            .consumers
            .iter_mut()
            .find(|c| c.session.id == session.id && c.cid == flight.cid)
        {
            c.unacked = c.unacked.saturating_sub(1);
            c.acked += u64::from(done);
        }
        let mut effects = Effects::default();
        let message = flight.message;
        // A reply that came after its requester was told `timeout` reached nobody:
        // it is counted as the timeout, not as a reply time.
        if done && message.reply && message.waiter.as_ref().is_some_and(|w| !w.is_settled()) {
            state
                .latency
                .get_or_insert_with(|| Box::new(latency::Latency::new()))
                .record(message.enqueued.elapsed());
        }
        match how {
            Settle::Ack | Settle::Reply(_) => {
                state.acked += 1;
                let then = message.waiter.map(|w| {
                    let outcome = match how {
                        Settle::Reply(data) => Settlement::Replied(data),
                        _ => Settlement::Acked,
                    };
                    (w, message.msg, outcome)
                });
                match &self.remote {
                    // The waiter is told once the stream has the ack, not before.
                    Some(remote) => effects.settled = Some(remote.ack(message.id, then)),
                    None => {
                        effects.settled = self.forget(message.id);
                        effects.settle.extend(then);
                    }
                }
            }
            Settle::Nack { requeue: true } => self.requeue(&mut state, message, &mut effects),
            Settle::Nack { requeue: false } => {
                self.kill(&mut state, message, "rejected", &mut effects)
            }
        }
        Some(effects)
    }

    /// Returns every job whose ack deadline has passed and drops (or dead-letters)
    /// every ready message whose time to live is up at `now_ms` (Unix milliseconds,
    /// the clock `now` reads); gives when to look again.
    pub(crate) fn expire(
        self: &Arc<Self>,
        now: Instant,
        now_ms: u64,
    ) -> (Effects, Option<Instant>) {
        let mut state = self.state.lock();
        let mut effects = Effects::default();
        while let Some(&(deadline, sid, tag)) = state.deadlines.first() {
            if deadline > now {
                break;
            }
            self.return_inflight(&mut state, (sid, tag), &mut effects);
        }
        while let Some(&(at, id)) = state.expiring.first() {
            if at > now_ms {
                break;
            }
            state.expiring.pop_first();
            let i = state.ready.partition_point(|m| m.id < id);
            // `expiring` follows `ready` exactly; a stale entry must not take
            // another message with it.
            debug_assert!(state.ready.get(i).is_some_and(|m| m.id == id));
            if state.ready.get(i).is_some_and(|m| m.id == id) {
                if let Some(message) = Self::take_ready_at(&mut state, i) {
                    self.kill_expired(&mut state, message, &mut effects);
                }
            }
        }
        self.dispatch(&mut state, &mut effects);
        let deadline = state.deadlines.first().map(|d| d.0);
        let expiry = (state.expiring.first())
            .map(|&(at, _)| now + std::time::Duration::from_millis(at.saturating_sub(now_ms)));
        let next = match (deadline, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (effects, next)
    }

    /// Puts an in-flight message back now, as if its deadline had passed.
    pub(crate) fn requeue_msg(self: &Arc<Self>, msg: &str) -> Result<Effects, BrokerError> {
        let mut state = self.state.lock();
        let Some(key) = state
            .inflight
            .iter()
            .find(|(_, f)| &*f.message.msg == msg)
            .map(|(k, _)| *k)
        else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("message {msg} is not in flight on `{}`", self.name),
            ));
        };
        let mut effects = Effects::default();
        self.return_inflight(&mut state, key, &mut effects);
        self.dispatch(&mut state, &mut effects);
        Ok(effects)
    }

    /// Puts every job one consumer holds back now, as if their deadlines had
    /// passed; the consumer stays. Returns how many went back.
    pub(crate) fn requeue_consumer(
        self: &Arc<Self>,
        session: &Session,
        cid: &str,
    ) -> (u64, Effects) {
        let mut state = self.state.lock();
        let mut effects = Effects::default();
        let count = self.return_jobs_of(&mut state, session, cid, &mut effects);
        self.dispatch(&mut state, &mut effects);
        (count, effects)
    }

    /// Removes every ready message; in-flight ones stay.
    pub(crate) fn purge(&self) -> (u64, Effects) {
        let mut state = self.state.lock();
        let mut effects = Effects::default();
        let purged: Vec<Message> = state.ready.drain(..).collect();
        state.expiring.clear();
        let n = purged.len() as u64;
        for m in purged {
            // Purged messages are gone at once; their acks are durable with the
            // next group commit, and nobody waits on them one by one.
            drop(self.forget(m.id));
            if let Some(w) = m.waiter {
                effects
                    .settle
                    .push((w, m.msg, Settlement::Dead("purged".into())));
            }
        }
        (n, effects)
    }

    /// Deletes the queue: every message is dropped, and its consumers are returned
    /// in the effects, for the broker to tell them and to forget them.
    pub(crate) fn delete(&self) -> Effects {
        let mut state = self.state.lock();
        state.deleted = true;
        let mut effects = Effects {
            cancelled: state
                .consumers
                .drain(..)
                .map(|c| (c.session, c.cid))
                .collect(),
            ..Effects::default()
        };
        let flights: Vec<InFlight> = state.inflight.drain().map(|(_, f)| f).collect();
        state.deadlines.clear();
        state.expiring.clear();
        let ready: Vec<Message> = state.ready.drain(..).collect();
        for m in ready
            .into_iter()
            .chain(flights.into_iter().map(|f| f.message))
        {
            if let Some(w) = m.waiter {
                effects
                    .settle
                    .push((w, m.msg, Settlement::Dead("queue deleted".into())));
            }
        }
        drop(state);
        self.timer.notify_one();
        effects
    }

    /// Up to `n` ready messages after the one with id `after` (from the first when
    /// `None`) that `query` selects, not consumed, looking at no more than
    /// [`PEEK_SCAN`] of them; and the cursor to go on from (the id of the last
    /// message looked at) when more ready messages follow it.
    pub(crate) fn peek(
        &self,
        n: usize,
        after: Option<u64>,
        query: &Query,
    ) -> (Vec<PeekedMessage>, Option<u64>) {
        let state = self.state.lock();
        // `ready` is in id order (send order; a requeued message goes back to its
        // place), so a cursor by id is stable however the queue moves.
        let start = after.map_or(0, |a| state.ready.partition_point(|m| m.id <= a));
        let mut out = Vec::new();
        let mut last = None;
        for m in state.ready.range(start..).take(PEEK_SCAN) {
            if out.len() == n {
                break;
            }
            last = Some(m.id);
            if !query.matches(&self.name, m.headers.as_deref(), m.data.as_json()) {
                continue;
            }
            out.push(PeekedMessage {
                msg: Some(m.msg.to_string()),
                seq: None,
                time: m.time,
                attempt: m.attempt,
                expires: m.expires,
                data: m.data.to_value(),
                headers: m.headers.as_deref().cloned(),
            });
        }
        let more = last.is_some_and(|id| state.ready.back().is_some_and(|b| b.id > id));
        (out, last.filter(|_| more))
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let state = self.state.lock();
        let depth = self.remote.as_ref().and_then(|r| r.depth());
        QueueStats {
            name: self.name.to_string(),
            // A remote queue's depth is the stream's, across every node.
            ready: depth.map_or(state.ready.len() as u64, |d| d.ready),
            unacked: depth.map_or(state.inflight.len() as u64, |d| d.unacked),
            consumers: state.consumers.len() as u64,
            msgs_in: state.msgs_in,
            acked: state.acked,
            redelivered: state.redelivered,
            dead: state.dead,
            expired: state.expired,
            durable: state.config.durable,
            // Ready messages are kept in send order and were enqueued in that order
            // (a requeued one goes back to its place), so the oldest is the first:
            // a snapshot costs the same whatever the queue's depth.
            oldest_ready_ms: state
                .ready
                .front()
                .map(|m| m.enqueued.elapsed().as_millis() as u64),
            stored: depth.map_or_else(
                || self.store.as_ref().map_or(0, |s| s.stats().messages),
                |d| d.stored,
            ),
            stored_bytes: depth.map_or_else(
                || self.store.as_ref().map_or(0, |s| s.stats().bytes),
                |d| d.stored_bytes,
            ),
            stuck: false,
            requests: state.requests,
            request_timeouts: self
                .request_timeouts
                .load(std::sync::atomic::Ordering::Relaxed),
            reply_p50_ms: state.latency.as_ref().and_then(|l| l.quantile_ms(0.5)),
            reply_p99_ms: state.latency.as_ref().and_then(|l| l.quantile_ms(0.99)),
        }
    }

    /// Counts a `request` sent to it.
    pub(crate) fn count_request(&self) {
        self.state.lock().requests += 1;
    }

    /// Starts a new minute of reply times (see `latency.rs`).
    pub(crate) fn turn_latency(&self) {
        if let Some(l) = self.state.lock().latency.as_mut() {
            l.turn();
        }
    }

    /// Its reply times over its life, as `/metrics` exports them; none before
    /// its first reply.
    pub(crate) fn reply_histogram(&self) -> Option<latency::Histogram> {
        self.state.lock().latency.as_ref().map(|l| l.histogram())
    }

    /// Its settings, consumers and queue row, for `describe`.
    pub(crate) fn page(&self) -> QueuePage {
        let stats = self.stats();
        let state = self.state.lock();
        let mut consumers: Vec<ConsumerStats> = state
            .consumers
            .iter()
            .map(|c| ConsumerStats {
                client: c.session.name_id.to_string(),
                name: c.session.hello_name.lock().clone(),
                cid: c.cid.to_string(),
                prefetch: c.prefetch,
                unacked: c.unacked,
                acked: c.acked,
            })
            .collect();
        consumers.sort_by(|a, b| {
            client_number(&a.client)
                .cmp(&client_number(&b.client))
                .then_with(|| a.cid.cmp(&b.cid))
        });
        QueuePage {
            stats,
            ack_timeout_ms: u64::try_from(state.config.ack_timeout.as_millis()).unwrap_or(u64::MAX),
            max_attempts: state.config.max_attempts,
            dead_letter: state.config.dead_letter.clone(),
            max_len: state.config.max_len,
            consumers,
            ..QueuePage::default()
        }
    }

    /// Jobs held unacked by one consumer.
    pub(crate) fn unacked_of(&self, session: u64, cid: &str) -> u32 {
        let state = self.state.lock();
        state
            .consumers
            .iter()
            .find(|c| c.session.id == session && &*c.cid == cid)
            .map_or(0, |c| c.unacked)
    }

    pub(crate) fn inflight_stats(&self, now: Instant, out: &mut Vec<InFlightStats>) {
        let state = self.state.lock();
        out.extend(state.inflight.iter().map(|((_, tag), f)| InFlightStats {
            queue: self.name.to_string(),
            tag: *tag,
            msg: f.message.msg.to_string(),
            client: f.session.name_id.to_string(),
            cid: f.cid.to_string(),
            attempt: f.message.attempt,
            age_ms: now.saturating_duration_since(f.delivered).as_millis() as u64,
            deadline_in_ms: if f.deadline >= now {
                (f.deadline - now).as_millis() as i64
            } else {
                -((now - f.deadline).as_millis() as i64)
            },
        }));
    }

    /// Takes back every job one consumer holds (see [`Queue::return_inflight`]);
    /// returns how many.
    fn return_jobs_of(
        &self,
        state: &mut QueueState,
        session: &Session,
        cid: &str,
        effects: &mut Effects,
    ) -> u64 {
        let keys: Vec<(u64, u64)> = state
            .inflight
            .iter()
            .filter(|(k, f)| k.0 == session.id && &*f.cid == cid)
            .map(|(k, _)| *k)
            .collect();
        for &key in &keys {
            self.return_inflight(state, key, effects);
        }
        keys.len() as u64
    }

    /// Takes an in-flight job back from its consumer and requeues (or kills) it.
    fn return_inflight(&self, state: &mut QueueState, key: (u64, u64), effects: &mut Effects) {
        let Some(flight) = state.inflight.remove(&key) else {
            return;
        };
        state.deadlines.remove(&(flight.deadline, key.0, key.1));
        if let Some(c) = state
            .consumers
            .iter_mut()
            .find(|c| c.session.id == key.0 && c.cid == flight.cid)
        {
            c.unacked = c.unacked.saturating_sub(1);
        }
        self.requeue(state, flight.message, effects);
    }

    /// Puts a message back in send order, or kills it if it has had all its attempts
    /// or its time to live is up.
    fn requeue(&self, state: &mut QueueState, message: Message, effects: &mut Effects) {
        if let Some(at) = message.expires {
            if at <= now_ms() {
                return self.kill_expired(state, message, effects);
            }
        }
        if let Some(max) = state.config.max_attempts {
            if message.attempt >= max {
                return self.kill(state, message, "max_attempts", effects);
            }
        }
        match &self.remote {
            // Back to the stream, for whichever node has room first.
            Some(remote) => remote.give_back(message.id),
            None => self.put_back(state, message),
        }
    }

    /// Takes the ready message at `i` out of `ready`, and out of `expiring` with it.
    fn take_ready_at(state: &mut QueueState, i: usize) -> Option<Message> {
        let message = state.ready.remove(i)?;
        if let Some(at) = message.expires {
            state.expiring.remove(&(at, message.id));
        }
        Some(message)
    }

    /// Returns a message to `ready` at its place in send order.
    fn put_back(&self, state: &mut QueueState, message: Message) {
        if let Some(at) = message.expires {
            state.expiring.insert((at, message.id));
        }
        let at = state.ready.partition_point(|m| m.id < message.id);
        state.ready.insert(at, message);
    }

    /// Dead-letters or drops a message whose time to live is up (no longer in
    /// `ready` nor in `expiring`).
    fn kill_expired(&self, state: &mut QueueState, mut message: Message, effects: &mut Effects) {
        state.expired += 1;
        if message.reply {
            // A request's job lives as long as its requester waits: what the
            // requester learns is that nobody answered in time, whichever of its
            // timer and this one runs first.
            if let Some(w) = message.waiter.take() {
                effects
                    .settle
                    .push((w, message.msg.clone(), Settlement::Timeout));
            }
        }
        self.kill(state, message, "expired", effects);
    }

    /// Dead-letters or drops a message, and tells whoever waits for it.
    fn kill(
        &self,
        state: &mut QueueState,
        message: Message,
        reason: &'static str,
        effects: &mut Effects,
    ) {
        state.dead += 1;
        if let Some(w) = message.waiter {
            effects
                .settle
                .push((w, message.msg.clone(), Settlement::Dead(reason.into())));
        }
        // A request that expired is dropped: its requester was told `timeout`, and
        // nobody is left to want its reply, so it would only fill a dead-letter queue.
        let to = match (message.reply, reason) {
            (true, "expired") => None,
            _ => state.config.dead_letter.clone(),
        };
        let mut remote_source = None;
        let settle_source = match (&to, &self.store, &self.remote) {
            (Some(_), Some(store), _) => Some((store.clone(), message.id)),
            // Removed from the stream once its dead letter is stored there.
            (Some(_), None, Some(remote)) => {
                remote_source = Some((remote.clone(), message.id));
                None
            }
            (None, _, Some(remote)) => {
                remote.term(message.id);
                None
            }
            _ => {
                effects.settled = self.forget(message.id);
                None
            }
        };
        effects.dead_letters.push(DeadLetter {
            to,
            from: self.name.clone(),
            reason,
            data: message.data,
            headers: message.headers,
            settle_source,
            remote_source,
        });
    }

    /// Hands ready messages to consumers with room, round-robin, in send order.
    /// A remote queue then gives back what is left (no consumer here has room
    /// for it: it must not wait on this node), and asks for more if there is room.
    fn dispatch(self: &Arc<Self>, state: &mut QueueState, effects: &mut Effects) {
        self.dispatch_here(state, effects);
        if let Some(remote) = &self.remote {
            while let Some(message) = Self::take_ready_at(state, 0) {
                remote.give_back(message.id);
            }
            remote.room();
        }
    }

    fn dispatch_here(self: &Arc<Self>, state: &mut QueueState, effects: &mut Effects) {
        while !state.ready.is_empty() && !state.consumers.is_empty() {
            let n = state.consumers.len();
            let Some(idx) = (0..n)
                .map(|i| (state.cursor + i) % n)
                .find(|&i| state.consumers[i].unacked < state.consumers[i].prefetch)
            else {
                return;
            };
            state.cursor = (idx + 1) % n;
            let Some(mut message) = Self::take_ready_at(state, 0) else {
                return;
            };
            if let Some(at) = message.expires {
                if at <= now_ms() {
                    // Its time ran out between two ticks of the timer.
                    self.kill_expired(state, message, effects);
                    continue;
                }
            }
            let consumer = &mut state.consumers[idx];
            let session = consumer.session.clone();
            let tag = session.next_tag();
            message.attempt += 1;
            let frame = event::job(
                &consumer.cid,
                &self.name,
                tag,
                &message.msg,
                message.attempt,
                message.reply,
                &message.data,
                message.headers.as_deref(),
            );
            if session.push(OutItem::Job(&frame)).is_err() {
                // The consumer's connection is going away: it gets nothing more, and
                // the message keeps its place and its attempt count.
                message.attempt -= 1;
                self.put_back(state, message);
                state.consumers.remove(idx);
                state.cursor = 0;
                continue;
            }
            consumer.unacked += 1;
            effects.delivered += 1;
            if let Some(store) = &self.store {
                if let Err(e) = store.record_attempt(message.id, message.attempt) {
                    tracing::warn!(
                        "queue {}: recording attempt {} of {}: {e}",
                        self.name,
                        message.attempt,
                        message.id
                    );
                }
            }
            let cid = consumer.cid.clone();
            if message.attempt > 1 {
                state.redelivered += 1;
            }
            let now = Instant::now();
            let deadline = now + state.config.ack_timeout;
            let was_first = state.deadlines.first().is_none_or(|d| deadline < d.0);
            state.deadlines.insert((deadline, session.id, tag));
            state.inflight.insert(
                (session.id, tag),
                InFlight {
                    message,
                    session,
                    cid,
                    delivered: now,
                    deadline,
                },
            );
            if was_first {
                self.timer.notify_one();
            }
        }
    }
}

impl Queue {
    /// Records in the store that a message is settled and must not come back; the
    /// ticket resolves once that is durable (`None` for a queue in memory).
    fn forget(&self, id: u64) -> Option<Ticket> {
        let store = self.store.as_ref()?;
        Some(store.ack(id).unwrap_or_else(|e| {
            tracing::warn!("queue {}: recording the ack of {id}: {e}", self.name);
            Ticket::ready(Err(e))
        }))
    }
}

#[cfg(test)]
mod tests;
