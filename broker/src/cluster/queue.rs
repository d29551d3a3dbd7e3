//! Queues with `--nats`: each Switchyard queue is a JetStream work-queue stream
//! (`SY_Q_<escaped name>`, subject `switchyard.queue.<name>`) with one durable
//! pull consumer (`switchyard`) that every node pulls from.
//!
//! A node keeps its own consumers (clients) and the queue machinery of one node
//! (`queue/`: in-flight jobs, ack deadlines, prefetch, counters); the queue is
//! made remote (`queue/remote.rs`): its ready jobs are those this node pulled,
//! never more than its consumers have room for, and every settlement goes back
//! to the stream: an ack is a JetStream ack (confirmed by the server before the
//! client's `ok`), a job given back (nack with requeue, ack deadline, consumer
//! gone) a nak, so that any node gets it at once, and a dead job a term, once
//! its dead letter is stored in the dead-letter queue's own stream.
//!
//! Ack deadlines: the consumer's ack wait is the queue's `ack_timeout_ms` plus
//! [`ACK_GRACE`]. The node holding a job takes it back from its client at
//! `ack_timeout_ms` after delivery (as on one node) and naks it at once, so
//! JetStream's own redelivery only ever happens for a job whose node is gone:
//! a job is never held by two clients at once, as long as a node's delivery
//! follows its pull by less than the grace (it is handed over at once, or
//! given back).
//!
//! Attempts: the consumer has no max deliveries (a job that reached it would
//! stay in the stream, undeliverable, for ever); the node enforces
//! `max_attempts` from the stream's delivery count instead: a job given back on
//! its last attempt dies there, and one pulled after its last attempt (its node
//! died holding it) dies on the node that pulls it, so none is stranded.
//!
//! Settings (`max_len`, `ack_timeout_ms`, `max_attempts`, `dead_letter`) are
//! kept in the stream's description as JSON, and `max_len` is the stream's
//! `max_msgs` with discard new (a send to a full queue is refused, as on one
//! node); every node reads them back every second.
//!
//! Waiters (`confirm: "done"`, `request`): the sending node keeps the waiter
//! under a token and names `switchyard.node.<node>.reply.<token>` in the
//! message's `Switchyard-Reply` header; the node that settles the job sends
//! the outcome there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use super::{subject, Cluster};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::Payload;
use crate::queue::{
    Effects, Outgoing, Pulled, Queue, QueueConfig, RemoteAnswer, RemoteDepth, RemoteJobs,
    Settlement, StoredJob, Waiter,
};
use crate::store::{QueueSettings, StoreError, Ticket};

/// The durable consumer every node pulls from.
pub(crate) const CONSUMER: &str = "switchyard";
/// How much longer than `ack_timeout_ms` JetStream waits for an ack: the node
/// holding a job settles it first (see the module's comment).
pub(crate) const ACK_GRACE: Duration = Duration::from_secs(1);
/// How often a node with room and nothing pulled asks again.
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// How long a fetch may go unanswered before the consumer is looked up again.
const FETCH_SILENCE: Duration = Duration::from_secs(1);
/// How often a node reads a queue's depth and settings back from JetStream.
const INFO_EVERY: Duration = Duration::from_secs(1);
/// How long opening a queue's stream keeps trying while JetStream has no leader.
const OPEN_RETRIES: Duration = Duration::from_secs(10);
/// Streams are replicated on this many servers, at most the cluster's size.
pub(crate) const MAX_REPLICAS: usize = 3;
/// Bytes of sends waiting for JetStream, at most (`limit` past it).
pub(crate) const MAX_SENDING_BYTES: usize = 64 << 20;
/// The header naming where a message's outcome goes.
const REPLY_HEADER: &str = "Switchyard-Reply";
/// In-flight-before-ack JetStream allows the shared consumer (all nodes).
const MAX_ACK_PENDING: i64 = 100_000;

/// What every queue of this node shares: the waiters of its sends and
/// requests, and the sends on their way to JetStream, in order.
pub(crate) struct Shared {
    waiting: Mutex<HashMap<u64, Arc<Waiter>>>,
    next: AtomicU64,
    sending: mpsc::UnboundedSender<Publish>,
    sending_bytes: Arc<AtomicUsize>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Publish>>>,
}

type Done = Box<dyn FnOnce(Result<u64, BrokerError>) + Send>;

struct Publish {
    queue: String,
    headers: async_nats::HeaderMap,
    body: Bytes,
    done: Done,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        let (sending, rx) = mpsc::unbounded_channel();
        Shared {
            waiting: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            sending,
            sending_bytes: Arc::default(),
            receiver: Mutex::new(Some(rx)),
        }
    }

    /// Keeps a waiter until another node settles its message; the token names it.
    fn wait_for(&self, waiter: Arc<Waiter>) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.waiting.lock();
        // Waiters answered otherwise (a request's timeout) or whose client left
        // are dropped now and then, so the map does not grow with them.
        if token.is_multiple_of(1024) {
            waiting.retain(|_, w| !w.is_gone());
        }
        waiting.insert(token, waiter);
        token
    }
}

fn unavailable(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::new(ErrorCode::Unavailable, what.to_string())
}

/// Whether JetStream said the stream or consumer does not exist (its error
/// code may sit in the error's source only, which Debug shows).
fn not_found(e: &(impl std::fmt::Display + std::fmt::Debug)) -> bool {
    let text = format!("{e} {e:?}");
    text.contains("not found") || text.contains("10059") || text.contains("10014")
}

/// The settings a queue's stream holds in its description.
fn settings_of(description: Option<&str>) -> QueueSettings {
    description
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_else(|| QueueConfig::default().settings())
}

impl Cluster {
    /// For a send whose answer never came (the node is shutting down).
    pub(crate) fn gone_error() -> BrokerError {
        unavailable("this node is shutting down: the send is not known to be stored")
    }

    /// JetStream, or `unavailable` while NATS is down.
    fn js(&self) -> Result<jetstream::Context, BrokerError> {
        if let Some(why) = self.down() {
            return Err(unavailable(format!(
                "{why}: queues live in JetStream, not on this node"
            )));
        }
        self.jetstream()
            .ok_or_else(|| unavailable("NATS not connected yet"))
    }

    /// Makes sure queue `name`'s stream and consumer exist, with `declared`
    /// applied to its settings if given; returns the settings in force.
    pub(crate) async fn open_queue(
        &self,
        name: &str,
        declared: Option<&crate::protocol::QueueOptions>,
    ) -> Result<QueueConfig, BrokerError> {
        // A cluster electing a leader (just started, or a server lost) times out
        // or finds no one for a few seconds: tried again meanwhile.
        let started = Instant::now();
        loop {
            match self.open_queue_once(name, declared).await {
                Err(e)
                    if crate::store::nats::topic::transient(&e.message)
                        && started.elapsed() < OPEN_RETRIES =>
                {
                    tracing::debug!("queue {name}: {}; trying again", e.message);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    async fn open_queue_once(
        &self,
        name: &str,
        declared: Option<&crate::protocol::QueueOptions>,
    ) -> Result<QueueConfig, BrokerError> {
        let js = self.js()?;
        let started = Instant::now();
        let stream_name = subject::queue_stream(name);
        let existing = match js.get_stream(&stream_name).await {
            Ok(mut s) => {
                let info = s.info().await.map_err(unavailable)?;
                Some(settings_of(info.config.description.as_deref()))
            }
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(unavailable(format!("JetStream: {e}"))),
        };
        let mut config = match &existing {
            Some(settings) => QueueConfig::durable_from(settings),
            None => QueueConfig::default(),
        };
        if let Some(options) = declared {
            config.apply(options);
            config.durable = true;
        }
        let settings = config.settings();
        let description = serde_json::to_string(&settings).unwrap_or_default();
        let replicas = self
            .client()
            .map_or(1, |c| c.server_info().connect_urls.len())
            .clamp(1, MAX_REPLICAS);
        let stream_config = |replicas: usize| jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject::queue_subject(name)],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas,
            max_messages: settings
                .max_len
                .and_then(|n| i64::try_from(n).ok())
                .unwrap_or(-1),
            discard: jetstream::stream::DiscardPolicy::New,
            description: Some(description.clone()),
            ..Default::default()
        };
        let stream = match (&existing, declared) {
            (Some(_), None) => js.get_stream(&stream_name).await.map_err(unavailable)?,
            (Some(_), Some(_)) => {
                js.update_stream(stream_config(replicas))
                    .await
                    .map_err(|e| unavailable(format!("JetStream: {e}")))?;
                js.get_stream(&stream_name).await.map_err(unavailable)?
            }
            (None, _) => match js.create_stream(stream_config(replicas)).await {
                Ok(s) => s,
                // Another node made it first, maybe with settings of its own.
                Err(_) if js.get_stream(&stream_name).await.is_ok() => {
                    return Box::pin(self.open_queue(name, declared)).await;
                }
                Err(e) if replicas > 1 && e.to_string().contains("insufficient") => js
                    .create_stream(stream_config(1))
                    .await
                    .map_err(|e| unavailable(format!("JetStream: {e}")))?,
                Err(e) => return Err(unavailable(format!("JetStream: {e}"))),
            },
        };
        let consumer = jetstream::consumer::pull::Config {
            durable_name: Some(CONSUMER.into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: config.ack_timeout + ACK_GRACE,
            max_deliver: -1,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        stream
            .create_consumer(consumer)
            .await
            .map_err(|e| unavailable(format!("JetStream consumer: {e}")))?;
        tracing::info!(
            "queue {name}: stream {stream_name} {} in {} ms",
            if existing.is_some() {
                "opened"
            } else {
                "created"
            },
            started.elapsed().as_millis()
        );
        Ok(config)
    }

    /// Removes a queue's ready messages across the cluster (a stream purge);
    /// returns how many.
    pub(crate) async fn purge_queue(&self, name: &str) -> Result<u64, BrokerError> {
        let stream = self.stream_of(name).await?;
        let purged = stream.purge().await.map_err(unavailable)?;
        Ok(purged.purged)
    }

    /// Queue `name`'s stream (`not_found` if there is none).
    async fn stream_of(&self, name: &str) -> Result<jetstream::stream::Stream, BrokerError> {
        let js = self.js()?;
        js.get_stream(subject::queue_stream(name))
            .await
            .map_err(|e| match not_found(&e) {
                true => BrokerError::new(ErrorCode::NotFound, format!("no queue `{name}`")),
                false => unavailable(format!("JetStream: {e}")),
            })
    }

    /// Up to `max` messages of queue `name`'s stream with a sequence above
    /// `after`, oldest first, read without consuming them (JetStream's message
    /// get by sequence, from the stream's leader): ready or in flight, the
    /// stream does not tell which (see [`StreamRead::delivered`]).
    pub(crate) async fn read_queue(
        &self,
        name: &str,
        after: u64,
        max: usize,
    ) -> Result<StreamRead, BrokerError> {
        let stream = self.stream_of(name).await?;
        let last_seq = stream.cached_info().state.last_sequence;
        let delivered = match stream.consumer_info(CONSUMER).await {
            Ok(c) => c.delivered.stream_sequence,
            Err(e) if not_found(&e) => 0,
            Err(e) => return Err(unavailable(format!("JetStream consumer: {e}"))),
        };
        let subject = subject::queue_subject(name);
        let mut read = StreamRead {
            jobs: Vec::new(),
            looked: 0,
            last: None,
            more: false,
            delivered,
        };
        let mut seq = after.saturating_add(1);
        while read.looked < max && seq <= last_seq {
            let m = match stream.get_first_raw_message_by_subject(&subject, seq).await {
                Ok(m) => m,
                Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                    break
                }
                Err(e) => return Err(unavailable(format!("JetStream: reading {name}: {e}"))),
            };
            seq = m.sequence.saturating_add(1);
            read.last = Some(m.sequence);
            read.looked += 1;
            // Not a Switchyard job: passed over, as its puller removes it.
            if let Some(job) = StreamJob::of(m) {
                read.jobs.push(job);
            }
        }
        read.more = read.last.is_some_and(|l| l < last_seq);
        Ok(read)
    }

    /// Removes message `seq` from queue `name`'s stream; false if it was not there.
    pub(crate) async fn remove_job(&self, name: &str, seq: u64) -> Result<bool, BrokerError> {
        let stream = self.stream_of(name).await?;
        match stream.delete_message(seq).await {
            Ok(done) => Ok(done),
            Err(e)
                if format!("{e} {e:?}").contains("10057")
                    || e.to_string().contains("no message found") =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(format!(
                "JetStream: removing {seq} from {name}: {e}"
            ))),
        }
    }

    /// Appends `job` (of queue `from`) to queue `to`'s stream, with
    /// `x-moved-from`, what is left of its time to live and its waiter's reply
    /// subject; returns its new sequence. Its `Nats-Msg-Id` names where it came
    /// from, so that the same move run again within the stream's duplicate
    /// window (2 minutes) appends it once.
    pub(crate) async fn append_moved(
        &self,
        from: &str,
        to: &str,
        job: &StreamJob,
    ) -> Result<u64, BrokerError> {
        let js = self.js()?;
        let mut headers = job.job.headers.clone().unwrap_or_default();
        headers.insert(
            "x-moved-from".into(),
            crate::protocol::HeaderValue::One(from.to_string()),
        );
        let body = StoredJob::encode(
            &job.job.data,
            Some(&headers),
            job.job.reply,
            job.job.expires,
            None,
        );
        let mut nats = async_nats::HeaderMap::new();
        nats.insert("Nats-Expected-Stream", subject::queue_stream(to).as_str());
        let id = format!(
            "moved:{}:{}:{}",
            subject::queue_stream(from),
            job.seq,
            job.time
        );
        nats.insert("Nats-Msg-Id", id.as_str());
        if let Some(to) = &job.reply_to {
            nats.insert(REPLY_HEADER, to.as_str());
        }
        let ack = js
            .publish_with_headers(subject::queue_subject(to), nats, Bytes::from(body))
            .await
            .map_err(|e| unavailable(format!("not moved to `{to}`: {e}")))?;
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.to_string().contains("maximum messages") => Err(BrokerError::new(
                ErrorCode::Limit,
                format!("queue `{to}` is full (max_len)"),
            )),
            Err(e) => Err(unavailable(format!(
                "not known to be stored in queue `{to}`: {e}"
            ))),
        }
    }

    /// Tells whoever waits for `job` (a `confirm: "done"` sender or a
    /// requester, on any node) how it ended.
    pub(crate) async fn tell_waiter(&self, job: &StreamJob, how: Settlement) {
        let (Some(to), Some(client)) = (&job.reply_to, self.client()) else {
            return;
        };
        let payload = encode_outcome(&job.seq.to_string(), &how);
        if let Err(e) = client.publish(to.clone(), payload).await {
            tracing::debug!("NATS: an outcome for {to} was not sent: {e}");
        }
    }

    /// Deletes a queue's stream (and with it its consumer); false if there was none.
    pub(crate) async fn delete_queue(&self, name: &str) -> Result<bool, BrokerError> {
        let js = self.js()?;
        match js.delete_stream(subject::queue_stream(name)).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(unavailable(format!("JetStream: {e}"))),
        }
    }

    /// Hands a message to JetStream, in order with this node's other sends;
    /// `done` gets its stream sequence once JetStream stored it (or why not).
    /// A waiter goes with it, to be told by whichever node settles it.
    pub(crate) fn publish(&self, queue: &str, message: Outgoing, done: Done) {
        if let Err(e) = self.js() {
            return done(Err(e));
        }
        let expires = message
            .ttl_ms
            .map(|ttl| crate::time::now_ms().saturating_add(ttl));
        let body = StoredJob::encode(
            &message.data,
            message.headers.as_ref(),
            message.reply,
            expires,
            None,
        );
        let shared = &self.queues;
        if shared.sending_bytes.load(Ordering::Relaxed) + body.len() > MAX_SENDING_BYTES {
            return done(Err(BrokerError::new(
                ErrorCode::Limit,
                format!(
                    "{} MiB of sends wait for JetStream: try again shortly",
                    MAX_SENDING_BYTES >> 20
                ),
            )));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Expected-Stream",
            subject::queue_stream(queue).as_str(),
        );
        if let Some(waiter) = message.waiter {
            let token = shared.wait_for(waiter);
            let to = format!("{}{token}", reply_prefix(self.node()));
            headers.insert(REPLY_HEADER, to.as_str());
        }
        shared
            .sending_bytes
            .fetch_add(body.len(), Ordering::Relaxed);
        let publish = Publish {
            queue: queue.to_string(),
            headers,
            body: Bytes::from(body),
            done,
        };
        if let Err(mpsc::error::SendError(p)) = shared.sending.send(publish) {
            shared
                .sending_bytes
                .fetch_sub(p.body.len(), Ordering::Relaxed);
            (p.done)(Err(unavailable("this node is shutting down")));
        }
    }

    /// The JetStream side of queue `name`, for its [`Queue`] on this node.
    pub(crate) fn queue_link(&self, name: &str, runtime: tokio::runtime::Handle) -> Arc<JsQueue> {
        Arc::new(JsQueue {
            stream: subject::queue_stream(name),
            held: Mutex::new(HashMap::new()),
            more: Notify::new(),
            depth: Mutex::new(None),
            runtime,
            path: Arc::from(Path::new(&subject::queue_stream(name))),
        })
    }
}

/// What [`Cluster::read_queue`] read of a queue's stream.
pub(crate) struct StreamRead {
    /// The Switchyard jobs read, oldest first.
    pub(crate) jobs: Vec<StreamJob>,
    /// Messages read, jobs or not.
    pub(crate) looked: usize,
    /// The sequence of the last message looked at.
    pub(crate) last: Option<u64>,
    /// Whether messages may follow `last`.
    pub(crate) more: bool,
    /// The last stream sequence the shared consumer delivered (to any node):
    /// a message above it was never delivered, so no node holds it.
    pub(crate) delivered: u64,
}

/// One message of a queue's stream, read without consuming it.
pub(crate) struct StreamJob {
    /// Its stream sequence: the message id.
    pub(crate) seq: u64,
    /// When the stream stored it (Unix ms).
    pub(crate) time: u64,
    pub(crate) job: StoredJob,
    /// Where its outcome goes, if someone waits for it.
    reply_to: Option<String>,
}

impl StreamJob {
    fn of(m: jetstream::message::StreamMessage) -> Option<StreamJob> {
        let job = StoredJob::decode(&m.payload)?;
        let reply_to = m
            .headers
            .get(REPLY_HEADER)
            .map(|to| to.as_str().to_string())
            .filter(|to| to.starts_with("switchyard.node."));
        Some(StreamJob {
            seq: m.sequence,
            time: u64::try_from(m.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
            job,
            reply_to,
        })
    }
}

/// The subjects of replies to this node's waiters.
fn reply_prefix(node: &str) -> String {
    format!("switchyard.node.{node}.reply.")
}

/// Publishes this node's sends in order, and answers each once stored; then
/// answers waiters from the outcomes other nodes send back. Spawned once
/// connected.
pub(super) async fn run(cluster: Arc<Cluster>, client: async_nats::Client) {
    let Some(mut rx) = cluster.queues.receiver.lock().take() else {
        return;
    };
    let js = jetstream::new(client.clone());
    let mut replying = false;
    while let Some(p) = rx.recv().await {
        // The first message with a waiter subscribes to this node's replies,
        // before it is published (so before any outcome can come back): a
        // node that never waits holds no subscription but its topics'.
        if !replying && p.headers.get(REPLY_HEADER).is_some() {
            replying = subscribe_replies(&cluster, &client).await;
        }
        let bytes = p.body.len();
        let sending = cluster.queues.sending_bytes.clone();
        let subject = subject::queue_subject(&p.queue);
        match js.publish_with_headers(subject, p.headers, p.body).await {
            Ok(ack) => {
                let queue = p.queue;
                let done = p.done;
                tokio::spawn(async move {
                    let stored = ack.await;
                    sending.fetch_sub(bytes, Ordering::Relaxed);
                    done(match stored {
                        Ok(ack) => Ok(ack.sequence),
                        Err(e) if e.to_string().contains("maximum messages") => {
                            Err(BrokerError::new(
                                ErrorCode::Limit,
                                format!("queue `{queue}` is full (max_len)"),
                            ))
                        }
                        Err(e) => Err(unavailable(format!(
                            "not known to be stored in queue `{queue}`: {e}"
                        ))),
                    });
                });
            }
            Err(e) => {
                sending.fetch_sub(bytes, Ordering::Relaxed);
                (p.done)(Err(unavailable(format!("not stored: {e}"))));
            }
        }
    }
}

/// An outcome, as it travels to the waiter's node.
#[derive(Serialize, Deserialize)]
struct Outcome {
    msg: String,
    how: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<serde_json::value::RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

fn encode_outcome(msg: &str, how: &Settlement) -> Bytes {
    let (how, data, why) = match how {
        Settlement::Acked => ("acked", None, None),
        Settlement::Replied(d) => (
            "replied",
            serde_json::value::RawValue::from_string(d.as_json().to_string()).ok(),
            None,
        ),
        Settlement::Dead(why) => ("dead", None, Some(why.clone())),
        Settlement::Timeout => ("timeout", None, None),
    };
    let outcome = Outcome {
        msg: msg.to_string(),
        how: how.into(),
        data,
        why,
    };
    Bytes::from(serde_json::to_vec(&outcome).unwrap_or_default())
}

fn decode_outcome(payload: &[u8]) -> Option<(String, Settlement)> {
    let o: Outcome = serde_json::from_slice(payload).ok()?;
    let how = match o.how.as_str() {
        "acked" => Settlement::Acked,
        "replied" => Settlement::Replied(Payload::from_raw(o.data.as_deref()?)),
        "dead" => Settlement::Dead(o.why.unwrap_or_default()),
        "timeout" => Settlement::Timeout,
        _ => return None,
    };
    Some((o.msg, how))
}

/// Subscribes to the outcomes other nodes send this node's waiters, and
/// answers them from then on; false if NATS refused the subscription.
async fn subscribe_replies(cluster: &Arc<Cluster>, client: &async_nats::Client) -> bool {
    let prefix = reply_prefix(cluster.node());
    match client.subscribe(format!("{prefix}*")).await {
        Ok(replies) => {
            tokio::spawn(receive_replies(cluster.clone(), prefix, replies));
            true
        }
        Err(e) => {
            tracing::error!("NATS subscribe {prefix}*: {e}");
            false
        }
    }
}

async fn receive_replies(
    cluster: Arc<Cluster>,
    prefix: String,
    mut replies: async_nats::Subscriber,
) {
    while let Some(m) = replies.next().await {
        let Some(token) = m
            .subject
            .strip_prefix(prefix.as_str())
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let Some((msg, how)) = decode_outcome(&m.payload) else {
            continue;
        };
        let waiter = cluster.queues.waiting.lock().remove(&token);
        if let Some(waiter) = waiter {
            waiter.settle(&msg, how);
        }
    }
}

/// Tells a waiter on another node.
struct ReplyTo {
    client: async_nats::Client,
    subject: String,
    runtime: tokio::runtime::Handle,
}

impl RemoteAnswer for ReplyTo {
    fn answer(&self, msg: &str, how: Settlement) {
        let (client, subject) = (self.client.clone(), self.subject.clone());
        let payload = encode_outcome(msg, &how);
        self.runtime.spawn(async move {
            if let Err(e) = client.publish(subject.clone(), payload).await {
                tracing::debug!("NATS: an outcome for {subject} was not sent: {e}");
            }
        });
    }
}

/// One queue's stream, seen from this node: the jobs it pulled and not settled yet.
pub(crate) struct JsQueue {
    stream: String,
    /// Pulled and not settled yet, by stream sequence: each one's ack handle.
    held: Mutex<HashMap<u64, jetstream::Message>>,
    /// Woken when this node's consumers have more room.
    more: Notify,
    depth: Mutex<Option<RemoteDepth>>,
    runtime: tokio::runtime::Handle,
    /// The stream's name, for ack tickets' errors.
    path: Arc<Path>,
}

impl JsQueue {
    fn take(&self, id: u64) -> Option<jetstream::Message> {
        self.held.lock().remove(&id)
    }

    fn send_ack(&self, id: u64, kind: AckKind) {
        if let Some(m) = self.take(id) {
            self.runtime.spawn(async move {
                if let Err(e) = m.ack_with(kind).await {
                    tracing::debug!("JetStream: settling a job: {e}");
                }
            });
        }
    }
}

impl RemoteJobs for JsQueue {
    fn ack(&self, id: u64, then: Option<(Arc<Waiter>, Arc<str>, Settlement)>) -> Ticket {
        let Some(m) = self.take(id) else {
            if let Some((waiter, msg, how)) = then {
                waiter.settle(&msg, how);
            }
            return Ticket::ready(Ok(()));
        };
        let (tx, ticket) = Ticket::pending(self.path.clone());
        let stream = self.stream.clone();
        self.runtime.spawn(async move {
            match m.double_ack().await {
                Ok(()) => {
                    if let Some((waiter, msg, how)) = then {
                        waiter.settle(&msg, how);
                    }
                    tx.resolve(Ok(()));
                }
                Err(e) => tx.resolve(Err(StoreError::Io {
                    op: "acking in JetStream",
                    path: PathBuf::from(stream),
                    detail: format!("{e}: the job comes back after its ack wait"),
                })),
            }
        });
        ticket
    }

    fn give_back(&self, id: u64) {
        self.send_ack(id, AckKind::Nak(None));
    }

    fn term(&self, id: u64) {
        self.send_ack(id, AckKind::Term);
    }

    fn room(&self) {
        self.more.notify_one();
    }

    fn holds(&self, id: u64) -> bool {
        self.held.lock().contains_key(&id)
    }

    fn depth(&self) -> Option<RemoteDepth> {
        *self.depth.lock()
    }
}

/// What a queue's puller needs of the broker.
pub(crate) trait QueueSink: Send + Sync + 'static {
    /// Carries out what the queue left to do (dead letters, waiters).
    fn apply(&self, effects: Effects);
    /// The queue's stream is gone (deleted from another node): the queue goes too.
    fn gone(&self, queue: &str);
}

/// Pulls jobs for this node's consumers of one queue while it lives: as many
/// as they have room for, and reads its depth and settings back every second.
pub(crate) async fn pull(
    cluster: Arc<Cluster>,
    link: Arc<JsQueue>,
    queue: Arc<Queue>,
    sink: Arc<dyn QueueSink>,
) {
    let mut consumer: Option<(jetstream::stream::Stream, PullConsumer)> = None;
    let mut info_at = Instant::now() - INFO_EVERY;
    loop {
        if queue.is_deleted() {
            return;
        }
        let Ok(js) = cluster.js() else {
            tokio::time::sleep(POLL * 4).await;
            continue;
        };
        if consumer.is_none() {
            match js.get_stream(&link.stream).await {
                Ok(s) => match s
                    .get_consumer::<jetstream::consumer::pull::Config>(CONSUMER)
                    .await
                {
                    Ok(c) => consumer = Some((s, c)),
                    Err(e) => {
                        tracing::debug!("JetStream consumer of {}: {e}", link.stream);
                        tokio::time::sleep(POLL * 4).await;
                        continue;
                    }
                },
                Err(e) if not_found(&e) => {
                    sink.gone(&queue.name);
                    return;
                }
                Err(e) => {
                    tracing::debug!("JetStream stream {}: {e}", link.stream);
                    tokio::time::sleep(POLL * 4).await;
                    continue;
                }
            }
        }
        let Some((stream, pull)) = consumer.as_mut() else {
            continue;
        };
        if info_at.elapsed() >= INFO_EVERY {
            info_at = Instant::now();
            match (stream.info().await, pull.info().await) {
                (Ok(s), Ok(c)) => {
                    let depth = RemoteDepth {
                        ready: c.num_pending,
                        unacked: c.num_ack_pending as u64,
                        stored: s.state.messages,
                        stored_bytes: s.state.bytes,
                    };
                    let settings = settings_of(s.config.description.as_deref());
                    *link.depth.lock() = Some(depth);
                    queue.set_config(QueueConfig::durable_from(&settings));
                }
                (Err(e), _) if not_found(&e) => {
                    sink.gone(&queue.name);
                    return;
                }
                (_, Err(e)) if not_found(&e) => {
                    consumer = None;
                    continue;
                }
                (s, c) => {
                    tracing::debug!(
                        "JetStream info of {}: {:?} {:?}",
                        link.stream,
                        s.err(),
                        c.err()
                    );
                }
            }
        }
        let room = queue.room();
        if room == 0 {
            tokio::select! {
                _ = link.more.notified() => {}
                _ = tokio::time::sleep(INFO_EVERY) => {}
            }
            continue;
        }
        let mut got = 0;
        match pull.fetch().max_messages(room).messages().await {
            Ok(mut batch) => loop {
                // A fetch that does not wait is answered at once; silence
                // may mean nobody serves the consumer any more (deleted), or a
                // server slow to send the rest of the batch.
                match tokio::time::timeout(FETCH_SILENCE, batch.next()).await {
                    Ok(Some(Ok(m))) => {
                        got += 1;
                        arrive(&cluster, &link, &queue, &sink, m);
                    }
                    Ok(Some(Err(e))) => {
                        tracing::debug!("JetStream fetch from {}: {e}", link.stream);
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        info_at = Instant::now() - INFO_EVERY;
                        break;
                    }
                }
            },
            Err(e) => tracing::debug!("JetStream fetch from {}: {e}", link.stream),
        }
        if got == 0 {
            tokio::select! {
                _ = link.more.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// One pulled job: to this node's consumers (or back, or dead).
fn arrive(
    cluster: &Cluster,
    link: &JsQueue,
    queue: &Arc<Queue>,
    sink: &Arc<dyn QueueSink>,
    m: jetstream::Message,
) {
    let Ok(info) = m.info() else {
        return;
    };
    let (seq, delivered) = (info.stream_sequence, info.delivered);
    let time = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let Some(job) = StoredJob::decode(&m.payload) else {
        // Not a Switchyard job (someone else published on our subject): it
        // would only come back for ever.
        tracing::warn!(
            "queue {}: message {seq} is not a Switchyard job: removed",
            queue.name
        );
        link.runtime.spawn(async move {
            let _ = m.ack_with(AckKind::Term).await;
        });
        return;
    };
    let waiter = m
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLY_HEADER))
        .map(|to| to.as_str().to_string())
        .filter(|to| to.starts_with("switchyard.node."))
        .and_then(|subject| {
            let client = cluster.client()?.clone();
            Some(Waiter::remote(Box::new(ReplyTo {
                client,
                subject,
                runtime: link.runtime.clone(),
            })))
        });
    link.held.lock().insert(seq, m);
    let pulled = Pulled {
        id: seq,
        time,
        attempt: u32::try_from(delivered.saturating_sub(1)).unwrap_or(u32::MAX),
        data: job.data,
        headers: job.headers,
        expires: job.expires,
        reply: job.reply,
        waiter,
    };
    sink.apply(queue.arrive(vec![pulled]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_the_trip() {
        for how in [
            Settlement::Acked,
            Settlement::Replied(Payload::from_value(&serde_json::json!({"a": [1, "x"]}))),
            Settlement::Dead("max_attempts".into()),
            Settlement::Timeout,
        ] {
            let back = decode_outcome(&encode_outcome("42", &how)).unwrap();
            assert_eq!(back, ("42".to_string(), how));
        }
        assert!(decode_outcome(b"{\"msg\":\"1\",\"how\":\"what\"}").is_none());
        assert!(decode_outcome(b"not json").is_none());
    }
}
