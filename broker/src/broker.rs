//! The broker core: topics, queues and sessions behind one cheap, cloneable handle.
//!
//! Connections call it for every client op; the dashboard calls [`Broker::snapshot`]
//! and [`Broker::execute`]. Nothing here awaits: every operation takes short locks,
//! pushes frames into outbound buffers and returns.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::command::{Command, CommandOutcome, PeekTarget, PeekedMessage};
use crate::error::{BrokerError, ErrorCode};
use crate::events::Shared;
use crate::filter::Filter;
use crate::meta;
use crate::names;
use crate::protocol::{event, From, Headers, Payload, QueueOptions, Retention};
use crate::queue::{dead_letter_headers, Effects, Queue, QueueConfig, Settle, Settlement, Waiter};
use crate::session::Session;
use crate::stats::{EventKind, ServerStats, Snapshot};
use crate::store::{Backend, FsyncPolicy, LogBackend, OsDisk, ReadFrom, StoreConfig, Ticket};

/// Which kind of stream an operation is about, as event texts name it.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Queue,
    Topic,
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Queue => "queue",
            Stream::Topic => "topic",
        })
    }
}
use crate::time::now_ms;
use crate::topic::{Done, Subscription, TailBuffer, Target, TopicCache, Topics};

/// Queues that have gained messages or room and will be dispatched together: a
/// frame of sends or acks then hands out jobs once, not after every one.
#[derive(Default)]
pub(crate) struct Later {
    queues: Vec<Arc<Queue>>,
}

impl Later {
    fn add(&mut self, queue: Arc<Queue>) {
        if !self.queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
            self.queues.push(queue);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

/// What one connection keeps between its publishes: the topic it last published to,
/// and, for one frame, the time its messages get (the clock is read once per frame,
/// not per message) and the counts it adds to the broker's once the frame is done.
#[derive(Default)]
pub(crate) struct Publisher {
    cache: TopicCache,
    now: Option<u64>,
    msgs_in: u64,
    msgs_out: u64,
}

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest frame a client may send, in bytes.
    pub max_payload: usize,
    /// Size of each connection's outbound buffer, in bytes.
    pub max_pending: usize,
    pub max_connections: usize,
    /// Time a new connection has to finish its HTTP request or WebSocket handshake.
    pub handshake_timeout: Duration,
    /// When stored messages are fsynced (and so when a stored confirm is sent).
    pub fsync: FsyncPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            data_dir: PathBuf::from("switchyard-data"),
            max_payload: 1024 * 1024,
            max_pending: 8 * 1024 * 1024,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            fsync: FsyncPolicy::Batch,
        }
    }
}

/// The server string sent in `welcome`.
pub const SERVER: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// A handle to the broker. Clones share one broker.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    listen: Mutex<String>,
    started: Instant,
    shared: Arc<Shared>,
    topics: Topics,
    queues: RwLock<HashMap<Arc<str>, Arc<Queue>>>,
    sessions: RwLock<HashMap<u64, Arc<Session>>>,
    next_session: AtomicU64,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Sender<bool>,
    backend: Arc<dyn Backend>,
}

/// A live tail of a topic pattern for an in-process reader; ends when dropped.
pub struct Tail {
    broker: Weak<Inner>,
    sub: Arc<Subscription>,
    buffer: Arc<TailBuffer>,
}

impl Tail {
    /// Messages that arrived since the last call, oldest first (at most `max`).
    pub fn drain(&self, max: usize) -> Vec<crate::command::TailMessage> {
        self.buffer.drain(max)
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        if let Some(inner) = self.broker.upgrade() {
            inner.topics.unsubscribe(&self.sub);
        }
    }
}

impl Broker {
    /// Opens a broker on its data directory, bringing back every durable queue (and
    /// retained topic) with what it held. Blocking (it reads the disk); must be called
    /// from within a tokio runtime, which runs the broker's timers.
    pub fn open(config: Config) -> Result<Broker, BrokerError> {
        let store_config = StoreConfig {
            fsync: config.fsync,
            ..StoreConfig::default()
        };
        let backend = LogBackend::open(&config.data_dir, Arc::new(OsDisk), store_config)?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        let broker = Broker {
            inner: Arc::new(Inner {
                listen: Mutex::new(config.listen.to_string()),
                config,
                started: Instant::now(),
                topics: Topics::new(shared.clone(), tokio::runtime::Handle::current()),
                shared,
                queues: RwLock::new(HashMap::new()),
                sessions: RwLock::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                runtime: tokio::runtime::Handle::current(),
                shutdown,
                backend: Arc::new(backend),
            }),
        };
        broker.recover()?;
        Ok(broker)
    }

    /// Reopens every stored queue with its unacked messages, and every retained topic.
    fn recover(&self) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let stored = inner.backend.stored()?;
        for topic in stored.topics {
            let name = topic.name;
            let store = inner.backend.open_topic(&name, topic.retention)?;
            self.report_repairs();
            let stats = store.stats();
            inner.topics.retain(&name, store)?;
            inner.shared.record(
                EventKind::Storage,
                format!("recovered topic {name}: {} stored messages", stats.messages),
            );
        }
        inner.runtime.spawn(run_retention(Arc::downgrade(inner)));
        for queue in stored.queues {
            let name = queue.name;
            let config = queue
                .settings
                .as_ref()
                .map(meta::queue_config)
                .unwrap_or_default();
            let store = inner
                .backend
                .open_queue(&name, &meta::queue_settings(&config))?;
            let messages = store.recover()?;
            let count = messages.len();
            let queue = Queue::new(&name, config, Some(store.clone()));
            queue
                .restore(messages)
                .map_err(|e| BrokerError::new(ErrorCode::Internal, e))?;
            self.report_repairs();
            inner.shared.record(
                EventKind::Storage,
                format!("recovered queue {name}: {count} unacked messages"),
            );
            inner
                .queues
                .write()
                .insert(queue.name.clone(), queue.clone());
            inner
                .runtime
                .spawn(run_ack_timer(Arc::downgrade(inner), queue));
        }
        Ok(())
    }

    /// Records what opening stores repaired (torn tails, corrupt records) as events.
    fn report_repairs(&self) {
        for r in self.inner.backend.take_repairs() {
            self.inner.shared.record(EventKind::Storage, r.to_string());
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn set_listen(&self, addr: SocketAddr) {
        *self.inner.listen.lock() = addr.to_string();
    }

    /// Starts a graceful shutdown: connections are told and closed.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Flushes and closes storage: everything appended or acked so far is made
    /// durable. The last step of a graceful shutdown; later appends fail. Blocking.
    pub fn close_storage(&self) {
        self.inner.backend.close();
    }

    /// Becomes `true` when the broker starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    // ----- sessions -----

    pub(crate) fn open_session(&self, addr: SocketAddr) -> Arc<Session> {
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session::new(
            id,
            addr,
            self.inner.config.max_pending,
            self.inner.shared.clone(),
        ));
        self.inner.sessions.write().insert(id, session.clone());
        self.inner.shared.record(
            EventKind::Connect,
            format!("{} connected from {addr}", session.name_id),
        );
        session
    }

    /// Forgets a client: its subscriptions end and its unacked jobs go back to their queues.
    pub(crate) fn close_session(&self, session: &Arc<Session>, why: &str) {
        session.outbound.close();
        self.inner.sessions.write().remove(&session.id);
        let subs: Vec<Arc<Subscription>> = session.subs.lock().drain().map(|(_, s)| s).collect();
        for sub in subs {
            self.inner.topics.unsubscribe(&sub);
        }
        let consumers: Vec<(String, Arc<Queue>)> = session.consumers.lock().drain().collect();
        for (cid, queue) in consumers {
            let effects = queue.remove_consumer(session, &cid);
            self.apply(effects);
        }
        self.inner.shared.record(
            EventKind::Disconnect,
            format!("{} disconnected: {why}", session.describe()),
        );
    }

    // ----- topics -----

    /// Publishes a message whose `data` is compact JSON text (no raw newline). `done`
    /// gets its seq once delivered (for a retained topic, once it is on disk) or the
    /// error that stopped it. Counted once `publisher` is flushed.
    pub(crate) fn publish(
        &self,
        publisher: &mut Publisher,
        topic: &str,
        data: &str,
        headers: Option<&Headers>,
        done: Option<Done>,
    ) -> Result<(), BrokerError> {
        names::check_topic(topic)?;
        let now = *publisher.now.get_or_insert_with(now_ms);
        let delivered =
            self.inner
                .topics
                .publish(topic, data, headers, done, now, &mut publisher.cache)?;
        publisher.msgs_in += 1;
        publisher.msgs_out += delivered;
        Ok(())
    }

    /// Publishes a run of messages to one topic, each compact JSON text with its
    /// headers, without confirmations; `failed` gets the error of each message that
    /// was refused. Counted once `publisher` is flushed.
    pub(crate) fn publish_many(
        &self,
        publisher: &mut Publisher,
        topic: &str,
        msgs: &[(&str, Option<&Headers>)],
        mut failed: impl FnMut(BrokerError),
    ) {
        let now = *publisher.now.get_or_insert_with(now_ms);
        let batch = names::check_topic(topic).and_then(|()| {
            self.inner
                .topics
                .publish_many(topic, msgs, now, &mut publisher.cache)
        });
        match batch {
            Ok(Some(delivered)) => {
                publisher.msgs_in += msgs.len() as u64;
                publisher.msgs_out += delivered;
            }
            // A retained topic: each message is appended and confirmed on its own.
            Ok(None) => {
                for (data, headers) in msgs {
                    if let Err(e) = self.publish(publisher, topic, data, *headers, None) {
                        failed(e);
                    }
                }
            }
            Err(e) => msgs.iter().for_each(|_| failed(e.clone())),
        }
    }

    /// Ends a publisher's frame: adds what it counted to the broker's (and its
    /// client's) counters, and lets the next frame read the clock again.
    pub(crate) fn end_frame(&self, publisher: &mut Publisher, session: Option<&Session>) {
        publisher.now = None;
        let shared = &self.inner.shared;
        if publisher.msgs_in > 0 {
            shared
                .msgs_in
                .fetch_add(publisher.msgs_in, Ordering::Relaxed);
            if let Some(s) = session {
                s.msgs_in.fetch_add(publisher.msgs_in, Ordering::Relaxed);
            }
        }
        shared.add_out(publisher.msgs_out);
        publisher.msgs_in = 0;
        publisher.msgs_out = 0;
    }

    /// Declares a topic; with `retain`, its messages are kept on disk (and the
    /// retention limits replaced if it already was retained).
    pub(crate) fn declare_topic(
        &self,
        name: &str,
        retain: Option<&Retention>,
    ) -> Result<(), BrokerError> {
        names::check_topic(name)?;
        let topic = self.inner.topics.topic(name)?;
        let Some(retention) = retain else {
            return Ok(());
        };
        match topic.store() {
            Some(store) => store.set_retention(store_retention(retention))?,
            None => {
                let store = self
                    .inner
                    .backend
                    .open_topic(name, store_retention(retention))?;
                self.inner.topics.retain(name, store)?;
            }
        }
        Ok(())
    }

    pub(crate) fn seal(&self, name: &str, done: Done) -> Result<(), BrokerError> {
        names::check_topic(name)?;
        self.inner.topics.seal(name, done)
    }

    pub(crate) fn delete_topic(&self, name: &str, actor: &str) -> Result<(), BrokerError> {
        names::check_topic(name)?;
        let store = self.inner.topics.delete(name)?;
        self.finish_delete(Stream::Topic, name, actor, store.map(|s| s.delete()));
        Ok(())
    }

    /// What deleting a queue or a topic leaves to do: log if its stored data (a
    /// deletion already started, so the name can be declared again at once) fails
    /// to go, and record who deleted it.
    fn finish_delete(&self, kind: Stream, name: &str, actor: &str, deleted: Option<Ticket>) {
        if let Some(deleted) = deleted {
            self.inner.runtime.spawn(async move {
                if let Err(e) = deleted.await {
                    tracing::error!("deleting a {kind}'s files: {e}");
                }
            });
        }
        self.inner
            .shared
            .record(EventKind::Delete, format!("{actor} deleted {kind} {name}"));
    }

    /// The last `n` messages of a retained topic.
    pub fn peek_topic(&self, name: &str, n: usize) -> Result<Vec<PeekedMessage>, BrokerError> {
        self.inner.topics.peek(name, n)
    }

    /// Adds a subscription; `added` runs before any message can reach it (to answer first).
    pub(crate) fn subscribe(
        &self,
        session: &Arc<Session>,
        sid: String,
        pattern: String,
        filter: Option<String>,
        from: Option<From>,
        added: impl FnOnce(),
    ) -> Result<(), BrokerError> {
        names::check_pattern(&pattern)?;
        let filter = filter.as_deref().map(Filter::parse).transpose()?;
        let mut subs = session.subs.lock();
        if subs.contains_key(&sid) {
            return Err(BrokerError::new(
                ErrorCode::AlreadySubscribed,
                format!("sid `{sid}` is already subscribed"),
            ));
        }
        let sub = Arc::new(Subscription::new(
            self.inner.topics.next_key(),
            sid.clone(),
            pattern,
            filter,
            Target::Session(session.clone()),
        ));
        subs.insert(sid.clone(), sub.clone());
        drop(subs);
        let read_from = match from {
            None | Some(From::New) => None,
            Some(From::First) => Some(ReadFrom::First),
            Some(From::Seq(n)) => Some(ReadFrom::Seq(n)),
            Some(From::Time(t)) => Some(ReadFrom::Time(t)),
        };
        match read_from {
            None => self.inner.topics.subscribe(sub, added),
            Some(from) => {
                if let Err(e) = self.inner.topics.subscribe_from(sub, from, added) {
                    session.subs.lock().remove(&sid);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&self, session: &Session, sid: &str) -> Result<(), BrokerError> {
        let Some(sub) = session.subs.lock().remove(sid) else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no subscription `{sid}`"),
            ));
        };
        self.inner.topics.unsubscribe(&sub);
        Ok(())
    }

    /// Starts an in-process tail of a topic pattern (and optional filter), keeping the
    /// latest `capacity` messages.
    pub fn tail(
        &self,
        pattern: &str,
        filter: Option<&str>,
        capacity: usize,
    ) -> Result<Tail, BrokerError> {
        names::check_pattern(pattern)?;
        let filter = filter.map(Filter::parse).transpose()?;
        let buffer = Arc::new(TailBuffer::new(capacity.max(1)));
        let sub = Arc::new(Subscription::new(
            self.inner.topics.next_key(),
            "tail".into(),
            pattern.to_string(),
            filter,
            Target::Tail(buffer.clone()),
        ));
        self.inner.topics.subscribe(sub.clone(), || {});
        Ok(Tail {
            broker: Arc::downgrade(&self.inner),
            sub,
            buffer,
        })
    }

    // ----- queues -----

    /// The queue of that name, created (durable, default settings) if it does not exist.
    pub(crate) fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.queue_with(name, true)
    }

    fn queue_with(&self, name: &str, durable: bool) -> Result<Arc<Queue>, BrokerError> {
        if let Some(q) = self.inner.queues.read().get(name) {
            return Ok(q.clone());
        }
        names::check_queue(name)?;
        let mut queues = self.inner.queues.write();
        if let Some(q) = queues.get(name) {
            return Ok(q.clone());
        }
        let config = QueueConfig {
            durable,
            ..QueueConfig::default()
        };
        let store = if durable {
            // Creating a queue's log is a few small file operations, once per queue.
            let store = self
                .inner
                .backend
                .open_queue(name, &meta::queue_settings(&config))?;
            Some(store)
        } else {
            None
        };
        let queue = Queue::new(name, config, store);
        queues.insert(queue.name.clone(), queue.clone());
        drop(queues);
        self.inner
            .runtime
            .spawn(run_ack_timer(Arc::downgrade(&self.inner), queue.clone()));
        Ok(queue)
    }

    fn existing_queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.inner
            .queues
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::new(ErrorCode::NotFound, format!("no queue `{name}`")))
    }

    pub(crate) fn declare_queue(
        &self,
        name: &str,
        options: &QueueOptions,
    ) -> Result<(), BrokerError> {
        if let Some(dl) = &options.dead_letter {
            names::check_queue(dl)?;
            if dl == name {
                return Err(BrokerError::new(
                    ErrorCode::BadName,
                    "a queue cannot be its own dead_letter queue",
                ));
            }
        }
        let queue = self.queue_with(name, options.durable.unwrap_or(true))?;
        if let Some(durable) = options.durable {
            if durable != queue.store().is_some() {
                return Err(BrokerError::new(
                    ErrorCode::BadFrame,
                    format!(
                        "queue `{name}` exists and is {}: `durable` cannot change",
                        if durable { "in memory" } else { "durable" }
                    ),
                ));
            }
        }
        let config = queue.configure(options);
        if let Some(store) = queue.store() {
            store.set_settings(&meta::queue_settings(&config))?;
        }
        Ok(())
    }

    /// Appends a message to a queue; returns its message id. `stored` runs once the
    /// message is in the queue and before it is delivered (to answer the sender first),
    /// with, for a durable queue, the ticket that resolves when it is on disk.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        session: Option<&Session>,
        queue: &str,
        data: Payload,
        headers: Option<Headers>,
        waiter: Option<Arc<Waiter>>,
        reply: bool,
        stored: impl FnOnce(&str, Option<Ticket>),
    ) -> Result<Arc<str>, BrokerError> {
        let mut later = Later::default();
        let sent = self.send_later(
            session, queue, data, headers, waiter, reply, stored, &mut later,
        );
        self.dispatch(&mut later);
        sent
    }

    /// [`Broker::send`], leaving the delivery to [`Broker::dispatch`] with `later`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_later(
        &self,
        session: Option<&Session>,
        queue: &str,
        data: Payload,
        headers: Option<Headers>,
        waiter: Option<Arc<Waiter>>,
        reply: bool,
        stored: impl FnOnce(&str, Option<Ticket>),
        later: &mut Later,
    ) -> Result<Arc<str>, BrokerError> {
        let queue = self.queue(queue)?;
        let (msg, ticket) = queue.enqueue(data, headers.map(Arc::new), waiter, reply)?;
        self.inner.shared.msgs_in.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = session {
            s.msgs_in.fetch_add(1, Ordering::Relaxed);
        }
        stored(&msg, ticket);
        later.add(queue);
        Ok(msg)
    }

    /// Delivers what the queues in `later` have ready, and empties it.
    pub(crate) fn dispatch(&self, later: &mut Later) {
        for queue in later.queues.drain(..) {
            self.apply(queue.dispatch_ready());
        }
    }

    /// Sends a request and answers the requester when it is replied to or times out.
    pub(crate) fn request(
        &self,
        session: &Arc<Session>,
        queue: &str,
        data: Payload,
        headers: Option<Headers>,
        id: crate::protocol::RequestId,
        timeout: Duration,
    ) -> Result<(), BrokerError> {
        let waiter = Waiter::new(session, id, true);
        let msg = self.send(
            Some(session),
            queue,
            data,
            headers,
            Some(waiter.clone()),
            true,
            |_, _| {},
        )?;
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            waiter.settle(&msg, Settlement::Timeout);
        });
        Ok(())
    }

    /// Adds a consumer; `added` runs before it is given any job (to answer first).
    pub(crate) fn consume(
        &self,
        session: &Arc<Session>,
        queue: &str,
        cid: &str,
        prefetch: u32,
        added: impl FnOnce(),
    ) -> Result<(), BrokerError> {
        if prefetch == 0 {
            return Err(BrokerError::new(
                ErrorCode::BadFrame,
                "field `prefetch` must be at least 1",
            ));
        }
        let queue = self.queue(queue)?;
        {
            let mut consumers = session.consumers.lock();
            if consumers.contains_key(cid) {
                return Err(BrokerError::new(
                    ErrorCode::AlreadySubscribed,
                    format!("cid `{cid}` is already consuming"),
                ));
            }
            consumers.insert(cid.to_string(), queue.clone());
        }
        match queue.add_consumer(session, cid, prefetch) {
            Ok(()) => {
                added();
                self.apply(queue.dispatch_ready());
                Ok(())
            }
            Err(e) => {
                session.consumers.lock().remove(cid);
                Err(e)
            }
        }
    }

    pub(crate) fn cancel(&self, session: &Arc<Session>, cid: &str) -> Result<(), BrokerError> {
        let Some(queue) = session.consumers.lock().remove(cid) else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no consumer `{cid}`"),
            ));
        };
        let effects = queue.remove_consumer(session, cid);
        self.apply(effects);
        Ok(())
    }

    pub(crate) fn settle(
        &self,
        session: &Session,
        tag: u64,
        how: Settle,
        settled: impl FnOnce(),
        later: &mut Later,
    ) -> Result<(), BrokerError> {
        let Some(queue) = session.jobs.lock().remove(&tag) else {
            return Err(BrokerError::new(
                ErrorCode::UnknownTag,
                format!("tag {tag} is unknown or already settled"),
            ));
        };
        let effects = queue.settle(session, tag, how)?;
        self.apply(effects);
        settled();
        // The room this frees is filled by `dispatch`, after the answer.
        later.add(queue);
        Ok(())
    }

    /// Removes a queue's ready messages; returns how many.
    pub fn purge(&self, queue: &str, actor: &str) -> Result<u64, BrokerError> {
        let q = self.existing_queue(queue)?;
        let (n, effects) = q.purge();
        self.apply(effects);
        self.inner.shared.record(
            EventKind::Purge,
            format!("{actor} purged {n} ready messages from {queue}"),
        );
        Ok(n)
    }

    pub(crate) fn delete_queue(&self, queue: &str, actor: &str) -> Result<(), BrokerError> {
        let Some(q) = self.inner.queues.write().remove(queue) else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no queue `{queue}`"),
            ));
        };
        let effects = q.delete();
        self.apply(effects);
        let store = q.store().cloned();
        self.finish_delete(Stream::Queue, queue, actor, store.map(|s| s.delete()));
        Ok(())
    }

    /// The next ready messages of a queue, not consumed.
    pub fn peek_queue(&self, queue: &str, n: usize) -> Result<Vec<PeekedMessage>, BrokerError> {
        Ok(self.existing_queue(queue)?.peek(n))
    }

    /// Puts an in-flight job back in its queue now.
    pub fn requeue(&self, queue: &str, msg: &str, actor: &str) -> Result<(), BrokerError> {
        let effects = self.existing_queue(queue)?.requeue_msg(msg)?;
        self.apply(effects);
        self.inner.shared.record(
            EventKind::Requeue,
            format!("{actor} requeued message {msg} of {queue}"),
        );
        Ok(())
    }

    /// Disconnects a client after telling it why.
    pub fn kick(&self, client: &str, reason: &str, actor: &str) -> Result<(), BrokerError> {
        let session = self
            .inner
            .sessions
            .read()
            .values()
            .find(|s| &*s.name_id == client)
            .cloned()
            .ok_or_else(|| {
                BrokerError::new(ErrorCode::NotFound, format!("no client `{client}`"))
            })?;
        self.inner.shared.record(
            EventKind::Kick,
            format!("{actor} kicked {}: {reason}", session.describe()),
        );
        session.outbound.kick(reason);
        Ok(())
    }

    /// Carries out what a queue operation left to do outside the queue's lock.
    fn apply(&self, mut effects: Effects) {
        self.inner.shared.add_out(effects.delivered);
        effects.settle_waiters();
        for letter in effects.dead_letters {
            self.inner.shared.dead.fetch_add(1, Ordering::Relaxed);
            let Some(to) = letter.to.clone() else {
                self.inner.shared.record(
                    EventKind::DeadLetter,
                    format!(
                        "a message of {} was dropped: {}",
                        letter.from, letter.reason
                    ),
                );
                continue;
            };
            let headers = dead_letter_headers(&letter);
            let settle_source = letter.settle_source.clone();
            let runtime = self.inner.runtime.clone();
            let moved = move |_: &str, ticket: Option<Ticket>| {
                let Some((source, seq)) = settle_source else {
                    return;
                };
                // The source forgets the message only once its new queue has it on disk.
                runtime.spawn(async move {
                    let durable = match ticket {
                        Some(t) => t.await,
                        None => Ok(()),
                    };
                    if durable.is_ok() {
                        let _ = source.ack(seq);
                    }
                });
            };
            let outcome = self.send(None, &to, letter.data, Some(headers), None, false, moved);
            let text = match outcome {
                Ok(msg) => format!(
                    "a message of {} was dead-lettered to {to} as {msg}: {}",
                    letter.from, letter.reason
                ),
                Err(e) => format!(
                    "a message of {} was lost on its way to dead-letter queue {to}: {e}",
                    letter.from
                ),
            };
            self.inner.shared.record(EventKind::DeadLetter, text);
        }
    }

    // ----- operators -----

    /// Everything an operator can see, now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = &self.inner;
        let sessions: Vec<Arc<Session>> = inner.sessions.read().values().cloned().collect();
        let queues: Vec<Arc<Queue>> = inner.queues.read().values().cloned().collect();
        let mut clients: Vec<_> = sessions.iter().map(|s| s.stats()).collect();
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
                connections: sessions.len() as u64,
                msgs_in: inner.shared.msgs_in.load(Ordering::Relaxed),
                msgs_out: inner.shared.msgs_out.load(Ordering::Relaxed),
                slow_consumers: inner.shared.slow_kicks.load(Ordering::Relaxed),
                dead: inner.shared.dead.load(Ordering::Relaxed),
            },
            topics: inner.topics.stats(),
            queues: queue_stats,
            clients,
            inflight,
            events: inner.shared.events(),
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
                self.inner.shared.record(
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
                self.inner.shared.record(
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
            Command::Peek { target, n } => match target {
                PeekTarget::Queue(q) => Ok(CommandOutcome::Peeked(self.peek_queue(&q, n)?)),
                PeekTarget::Topic(t) => Ok(CommandOutcome::Peeked(self.peek_topic(&t, n)?)),
            },
        }
    }

    /// The Prometheus text exposition of the broker's counters.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.snapshot())
    }
}

/// The store's retention limits from the protocol's.
fn store_retention(r: &Retention) -> crate::store::Retention {
    crate::store::Retention {
        max_messages: r.max_messages,
        max_bytes: r.max_bytes,
        max_age_s: r.max_age_s,
    }
}

/// Applies retained topics' limits (by age, which no append triggers) every few seconds.
async fn run_retention(broker: Weak<Inner>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticks.tick().await;
        let Some(inner) = broker.upgrade() else {
            return;
        };
        if *inner.shutdown.borrow() {
            return;
        }
        let stores = inner.topics.stores();
        drop(inner);
        let _ = tokio::task::spawn_blocking(move || {
            let now = crate::time::now_ms();
            for (name, store) in stores {
                if let Err(e) = store.apply_retention(now) {
                    tracing::warn!("retention of topic {name}: {e}");
                }
            }
        })
        .await;
    }
}

/// Requeues a queue's jobs whose ack deadline passed, sleeping until the next deadline.
async fn run_ack_timer(broker: Weak<Inner>, queue: Arc<Queue>) {
    let mut shutdown = match broker.upgrade() {
        Some(inner) => inner.shutdown.subscribe(),
        None => return,
    };
    loop {
        let (effects, next) = queue.expire(Instant::now());
        match broker.upgrade() {
            Some(inner) => Broker { inner }.apply(effects),
            None => return,
        }
        if queue.is_deleted() {
            return;
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = queue.timer.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Frames the broker sends outside of a request: for connection handling.
pub(crate) fn welcome(broker: &Broker, session: &Session) -> String {
    event::welcome(&session.name_id, SERVER, broker.inner.config.max_payload)
}
