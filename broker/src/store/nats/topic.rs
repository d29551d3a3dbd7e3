//! A retained topic in a limits-based JetStream stream: appends through the
//! stream's writer, reads through ephemeral pull consumers with JetStream's
//! deliver policies, `seal` as a sealed stream, `delete` as its deletion.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::writer::{self, Health, Op, TIME_HEADER};
use super::{nats_err, stream_path, ticket_path, Description, Jet};
use crate::cluster::subject::TOPIC_STREAM_PREFIX;
use crate::store::{
    Appended, ReadFrom, Retention, RetentionOutcome, StoreError, StoreStats, StoredMessage, Ticket,
    TopicReader, TopicStore,
};

/// Messages a reader fetches per request.
const READ_BATCH: usize = 512;

/// How long one fetch (with the making of its consumer) may take, and how many
/// a reader tries before it gives up for this call of `next`.
const READ_TRY: Duration = Duration::from_secs(4);
const READ_TRIES: usize = 4;

/// How far a reader from a time starts before it, in the stream's own clock (the
/// time each server stored a message), since the time asked for is the
/// broker's (the header each message carries): clocks of the nodes and the
/// servers may differ by this much. Messages before the time asked for are
/// skipped by their header.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The stream configuration of retained topic `name`.
pub(crate) fn config(
    stream: &str,
    subject: &str,
    name: &str,
    r: Retention,
    replicas: usize,
) -> Config {
    let description = Description {
        switchyard: "topic".into(),
        name: name.into(),
        settings: None,
    };
    let mut config = Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        storage: StorageType::File,
        num_replicas: replicas,
        discard: DiscardPolicy::Old,
        description: serde_json::to_string(&description).ok(),
        ..Config::default()
    };
    set_limits(&mut config, r);
    config
}

fn limit(n: Option<u64>) -> i64 {
    n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Puts `r` in the stream's limits.
pub(crate) fn set_limits(config: &mut Config, r: Retention) {
    config.max_messages = limit(r.max_messages);
    config.max_bytes = limit(r.max_bytes);
    config.max_age = Duration::from_secs(r.max_age_s.unwrap_or(0));
}

/// The retention a stream's limits say.
pub(crate) fn retention_of(config: &Config) -> Retention {
    let some = |n: i64| u64::try_from(n).ok().filter(|&n| n > 0);
    Retention {
        max_messages: some(config.max_messages),
        max_bytes: some(config.max_bytes),
        max_age_s: Some(config.max_age.as_secs()).filter(|&s| s > 0),
    }
}

/// One retained topic's stream, shared by every handle opened on it.
pub struct NatsTopicStore {
    jet: Arc<Jet>,
    stream: String,
    subject: String,
    path: Arc<Path>,
    /// The seq the next append gets; held while an append hands its work to the
    /// writer, so the writer gets them in seq order.
    next: Mutex<u64>,
    sealed: AtomicBool,
    deleted: AtomicBool,
    retention: Mutex<Retention>,
    health: Arc<Health>,
    writer: mpsc::UnboundedSender<Op>,
    /// The backend's opens: held while the stream is deleted, so that no open
    /// finds the old stream on its way out.
    opens: Arc<Mutex<()>>,
}

/// What opening a stream found.
pub(crate) struct Found {
    pub(crate) last_seq: u64,
    pub(crate) sealed: bool,
    pub(crate) retention: Retention,
    pub(crate) description: Option<String>,
}

/// Finds the stream `config` names, or creates it as `config` says.
pub(crate) async fn find_or_create(
    js: jetstream::Context,
    config: Config,
) -> Result<Found, String> {
    let found = |info: &jetstream::stream::Info| Found {
        last_seq: info.state.last_sequence,
        sealed: info.config.sealed,
        retention: retention_of(&info.config),
        description: info.config.description.clone(),
    };
    // A cluster just restarted, or losing a server, has no JetStream leader
    // for a few seconds: its requests time out or find no one. Those are
    // tried again, for up to OPEN_RETRIES (within the caller's WAIT_AT_MOST).
    let started = tokio::time::Instant::now();
    loop {
        // Creating a stream that exists as `config` says gives it back; one declared
        // otherwise (other limits, sealed) is refused as in use: then it is read.
        let tried = match js.create_stream(config.clone()).await {
            Ok(s) => Ok(found(s.cached_info())),
            Err(e) if e.to_string().contains("already in use") => js
                .get_stream(&config.name)
                .await
                .map(|s| found(s.cached_info()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match tried {
            Err(e) if transient(&e) && started.elapsed() < OPEN_RETRIES => {
                tracing::debug!("NATS: opening stream {}: {e}; trying again", config.name);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// How long opening a stream keeps trying while JetStream has no leader.
const OPEN_RETRIES: Duration = Duration::from_secs(18);

/// Whether a JetStream error is one a leader election gives (try again).
pub(crate) fn transient(error: &str) -> bool {
    ["timed out", "no responders", "temporarily unavailable"]
        .iter()
        .any(|t| error.contains(t))
}

/// Updates a stream's config with `change`.
pub(crate) async fn update(
    js: jetstream::Context,
    stream: String,
    change: impl FnOnce(&mut Config) + Send,
) -> Result<(), String> {
    let s = js.get_stream(&stream).await.map_err(|e| e.to_string())?;
    let mut config = s.cached_info().config.clone();
    change(&mut config);
    js.update_stream(config).await.map_err(|e| e.to_string())?;
    Ok(())
}

impl NatsTopicStore {
    /// Opens (creating if needed) the stream of retained topic `name`.
    pub(crate) fn open(
        jet: &Arc<Jet>,
        opens: &Arc<Mutex<()>>,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<NatsTopicStore>, StoreError> {
        let stream = jet.stream(TOPIC_STREAM_PREFIX, name);
        let subject = jet.subject(&format!("retained.{name}"));
        let cfg = config(&stream, &subject, name, retention, jet.replicas);
        let found = jet
            .wait(find_or_create(jet.js.clone(), cfg))?
            .map_err(|e| nats_err("opening", &stream, e))?;
        let health = Arc::new(Health::default());
        let writer = {
            let _in = jet.handle.enter();
            writer::start(jet.js.clone(), stream.clone(), health.clone())
        };
        let store = Arc::new(NatsTopicStore {
            jet: jet.clone(),
            path: ticket_path(&stream),
            stream,
            subject,
            next: Mutex::new(found.last_seq + 1),
            sealed: AtomicBool::new(found.sealed),
            deleted: AtomicBool::new(false),
            retention: Mutex::new(found.retention),
            health,
            writer,
            opens: opens.clone(),
        });
        if found.retention != retention {
            store.set_retention(retention)?;
        }
        Ok(store)
    }

    /// Whether a new open may share this handle's stream.
    pub(crate) fn usable(&self) -> bool {
        !self.deleted.load(Ordering::Acquire) && self.health.failed().is_none()
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: stream_path(&self.stream),
        }
    }

    /// Waits until the writer has done everything handed to it so far, then runs `f`.
    fn after_writes<T: Send + 'static>(
        &self,
        f: impl FnOnce(jetstream::Context, String) -> futures_util::future::BoxFuture<'static, T>
            + Send
            + 'static,
    ) -> Result<oneshot::Receiver<T>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let (js, stream) = (self.jet.js.clone(), self.stream.clone());
        self.writer
            .send(Op::Then(Box::new(move || {
                Box::pin(async move {
                    let _ = tx.send(f(js, stream).await);
                })
            })))
            .map_err(|_| self.closed())?;
        Ok(rx)
    }
}

impl TopicStore for NatsTopicStore {
    fn append(&self, time_ms: u64, body: &[u8]) -> Result<Appended, StoreError> {
        let mut next = self.next.lock();
        if self.deleted.load(Ordering::Acquire) || self.jet.closed.load(Ordering::Acquire) {
            return Err(self.closed());
        }
        if let Some(why) = self.health.failed() {
            return Err(writer::failed(&self.stream, why));
        }
        if self.sealed.load(Ordering::Acquire) {
            return Err(StoreError::Sealed {
                path: stream_path(&self.stream),
            });
        }
        let seq = *next;
        let (done, durable) = Ticket::pending(self.path.clone());
        self.writer
            .send(Op::Publish {
                subject: self.subject.clone(),
                seq,
                time_ms,
                body: Bytes::copy_from_slice(body),
                done: Some(done),
            })
            .map_err(|_| self.closed())?;
        *next += 1;
        Ok(Appended { seq, durable })
    }

    fn read(&self, from: ReadFrom) -> TopicReader {
        reader(&self.jet, &self.stream, from)
    }

    fn set_retention(&self, retention: Retention) -> Result<(), StoreError> {
        let mut current = self.retention.lock();
        if *current == retention || self.sealed.load(Ordering::Acquire) {
            // A sealed stream takes no change at all: its limits stay as they were.
            return Ok(());
        }
        self.jet
            .wait(update(self.jet.js.clone(), self.stream.clone(), move |c| {
                set_limits(c, retention)
            }))?
            .map_err(|e| nats_err("setting the limits of", &self.stream, e))?;
        *current = retention;
        Ok(())
    }

    fn apply_retention(&self, _now_ms: u64) -> Result<RetentionOutcome, StoreError> {
        // JetStream applies the limits itself, as messages come and age.
        Ok(RetentionOutcome::default())
    }

    fn seal(&self) -> Result<Ticket, StoreError> {
        let _next = self.next.lock();
        if self.deleted.load(Ordering::Acquire) {
            return Err(self.closed());
        }
        if self.sealed.swap(true, Ordering::AcqRel) {
            return Ok(Ticket::ready(Ok(())));
        }
        let (done, ticket) = Ticket::pending(self.path.clone());
        let path = self.stream.clone();
        let sealed =
            self.after_writes(|js, stream| Box::pin(update(js, stream, |c| c.sealed = true)))?;
        self.jet.handle.spawn(async move {
            let result = match sealed.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(nats_err("sealing", &path, e)),
                Err(_) => Err(StoreError::Closed {
                    path: stream_path(&path),
                }),
            };
            done.resolve(result);
        });
        Ok(ticket)
    }

    fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    fn sync(&self) -> Ticket {
        let (done, ticket) = Ticket::pending(self.path.clone());
        let _ = self.writer.send(Op::Then(Box::new(move || {
            Box::pin(async move { done.resolve(Ok(())) })
        })));
        ticket
    }

    fn stats(&self) -> StoreStats {
        let next_seq = *self.next.lock();
        let info = self
            .after_writes(|js, stream| {
                Box::pin(async move {
                    let s = js.get_stream(&stream).await.ok()?;
                    let i = s.cached_info();
                    Some((i.state.messages, i.state.bytes, i.state.last_sequence))
                })
            })
            .ok()
            .and_then(|rx| self.jet.wait(rx).ok())
            .and_then(|r| r.ok())
            .flatten();
        let (messages, bytes, last) = info.unwrap_or((0, 0, 0));
        StoreStats {
            messages,
            bytes,
            segments: 0,
            corrupt: 0,
            next_seq: next_seq.max(last + 1),
        }
    }

    fn delete(&self) -> Ticket {
        let _opens = self.opens.lock();
        let deleted = {
            let _next = self.next.lock();
            if self.deleted.swap(true, Ordering::AcqRel) {
                return Ticket::ready(Ok(()));
            }
            self.after_writes(|js, stream| {
                Box::pin(async move {
                    match js.delete_stream(&stream).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.to_string().contains("not found") => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
        };
        // Waited for here, so that the name opens again at once as a new stream.
        let result = match deleted.map(|rx| self.jet.wait(rx)) {
            Ok(Ok(Ok(Ok(())))) => Ok(()),
            Ok(Ok(Ok(Err(e)))) => Err(nats_err("deleting", &self.stream, e)),
            _ => Err(self.closed()),
        };
        Ticket::ready(result)
    }
}

/// A reader of `stream` from `from`: each message's stored payload, its seq and
/// time (its `Switchyard-Time` header, else when the server stored it).
pub(crate) fn reader(jet: &Arc<Jet>, stream: &str, from: ReadFrom) -> TopicReader {
    Box::new(Reader {
        jet: jet.clone(),
        stream: stream.to_string(),
        from,
        consumer: None,
        buffer: VecDeque::new(),
        after: None,
        min_time: match from {
            ReadFrom::Time(t) => Some(t),
            _ => None,
        },
    })
}

/// Reads a topic's stream through an ephemeral pull consumer (made at the first
/// `next`, made again from where it was if the server dropped it).
struct Reader {
    jet: Arc<Jet>,
    stream: String,
    from: ReadFrom,
    consumer: Option<Consumer<pull::Config>>,
    buffer: VecDeque<StoredMessage>,
    /// The seq of the last message handed out.
    after: Option<u64>,
    /// Reading from a time: messages stamped before it are skipped.
    min_time: Option<u64>,
}

impl Reader {
    fn policy(&self) -> DeliverPolicy {
        if let Some(seq) = self.after {
            return DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            };
        }
        match self.from {
            ReadFrom::First | ReadFrom::Seq(0) => DeliverPolicy::All,
            ReadFrom::Seq(n) => DeliverPolicy::ByStartSequence { start_sequence: n },
            ReadFrom::Time(t) => {
                let ms = t.saturating_sub(CLOCK_SKEW.as_millis() as u64);
                match async_nats::datetime::from_nanos(i128::from(ms) * 1_000_000) {
                    Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
                    Err(_) => DeliverPolicy::All,
                }
            }
            ReadFrom::End => DeliverPolicy::New,
        }
    }

    /// The next batch: empty when caught up, None (after logging) on failure.
    /// A consumer that does not answer is made again, [`READ_TRIES`] times at
    /// most: an ephemeral consumer lives on one server of the stream's, which
    /// may be the one just lost.
    fn fetch(&mut self) -> Option<Vec<StoredMessage>> {
        for _ in 0..READ_TRIES {
            let consumer = self.consumer.take();
            let policy = self.policy();
            let (js, stream) = (self.jet.js.clone(), self.stream.clone());
            let got = self.jet.wait(async move {
                tokio::time::timeout(READ_TRY, fetch(js, stream, consumer, policy))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()))
            });
            match got {
                Ok(Ok((consumer, batch))) => {
                    self.consumer = Some(consumer);
                    return Some(batch.into_iter().map(|f| f.msg).collect());
                }
                Ok(Err(e)) => tracing::warn!("reading {}: {e}", self.stream),
                Err(_) => return None,
            }
        }
        None
    }
}

/// A message fetched, with the subject it was published on.
pub(super) struct Fetched {
    pub(super) subject: String,
    pub(super) msg: StoredMessage,
}

/// The next batch from `consumer` (made with `policy` if None): empty when caught up.
pub(super) async fn fetch(
    js: jetstream::Context,
    stream: String,
    consumer: Option<Consumer<pull::Config>>,
    policy: DeliverPolicy,
) -> Result<(Consumer<pull::Config>, Vec<Fetched>), String> {
    let consumer = match consumer {
        Some(c) => c,
        None => js
            .create_consumer_on_stream(
                pull::Config {
                    deliver_policy: policy,
                    ack_policy: AckPolicy::None,
                    inactive_threshold: Duration::from_secs(60),
                    memory_storage: true,
                    ..pull::Config::default()
                },
                &stream,
            )
            .await
            .map_err(|e| e.to_string())?,
    };
    let mut batch = consumer
        .fetch()
        .max_messages(READ_BATCH)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.map_err(|e| e.to_string())?;
        let info = m.info().map_err(|e| e.to_string())?;
        let seq = info.stream_sequence;
        let stamped = (info.published.unix_timestamp_nanos() / 1_000_000) as u64;
        let time_ms = m
            .headers
            .as_ref()
            .and_then(|h| h.get(TIME_HEADER))
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(stamped);
        out.push(Fetched {
            subject: m.subject.to_string(),
            msg: StoredMessage {
                seq,
                time_ms,
                body: m.payload.clone(),
            },
        });
    }
    Ok((consumer, out))
}

impl Iterator for Reader {
    type Item = Result<StoredMessage, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(m) = self.buffer.pop_front() {
                self.after = Some(m.seq);
                return Some(Ok(m));
            }
            let batch = self.fetch()?;
            if batch.is_empty() {
                return None;
            }
            for m in batch {
                if let Some(t) = self.min_time {
                    if m.time_ms < t {
                        self.after = Some(m.seq);
                        continue;
                    }
                    self.min_time = None;
                }
                self.buffer.push_back(m);
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(c) = self.consumer.take() {
            let (js, stream) = (self.jet.js.clone(), self.stream.clone());
            let name = c.cached_info().name.clone();
            self.jet.handle.spawn(async move {
                let _ = js.delete_consumer_from_stream(&name, &stream).await;
            });
        }
    }
}
