//! The broker core: topics, queues and sessions behind one cheap, cloneable handle.
//!
//! Connections call it for every client op; the dashboard calls [`Broker::snapshot`]
//! and [`Broker::execute`]. Nothing here awaits: every operation takes short locks,
//! pushes frames into outbound buffers and returns.
//!
//! This file holds the handle and its lifecycle (open and recover, sessions,
//! shutdown); reopening what the data directory holds is in `recovery.rs`, the
//! ops in `topics.rs`, `queues.rs` and `operator.rs`, the background timers in
//! `timers.rs`.

mod access;
mod across;
mod budget;
mod creators;
mod operator;
mod pages;
mod peer;
mod queues;
mod recovery;
mod timers;
mod topics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::activity::Activity;
use crate::auth::{Authenticator, Security};
use crate::cluster::Cluster;
use crate::dirlock::DirLock;
use crate::error::BrokerError;
use crate::protocol::{event, Retention};
use crate::queue::Queue;
use crate::session::Session;
use crate::stats::EventKind;
use crate::store::{Backend, FsyncPolicy, LogBackend, OsDisk, StoreConfig, Ticket};
use crate::topic::{Subscription, Topics};
pub(crate) use peer::Peer;

/// The lock a queue's or topic's creator holds while it touches the disk.
type Gate = Arc<Mutex<()>>;

/// Which kind of stream an operation is about, as event texts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where durable queues and retained topics keep their files.
    pub data_dir: PathBuf,
    /// Largest frame a client may send, in bytes.
    pub max_payload: usize,
    /// Size of each connection's outbound buffer, in bytes.
    pub max_pending: usize,
    /// Longest a publisher waits, after the frames of one read, for subscribers
    /// past their slow mark that are reading (`pacing.rs`); zero: never.
    pub max_pause: Duration,
    /// A subscriber past its slow mark that drains nothing for this long is
    /// kicked (`slow_consumer`).
    pub slow_timeout: Duration,
    /// Most bytes all outbound buffers may hold together; past it, the clients
    /// holding the most are kicked (`outbound_budget`). Default: a quarter of
    /// physical memory.
    pub max_outbound: usize,
    /// Connections past this many get HTTP 503.
    pub max_connections: usize,
    /// Time a new connection has to finish its HTTP request or WebSocket handshake.
    pub handshake_timeout: Duration,
    /// When stored messages are fsynced (and so when a stored confirm is sent).
    pub fsync: FsyncPolicy,
    /// Users, tokens, Origins and TLS; the default is auth off.
    pub security: Security,
    /// With auth on, how long a connection may go without a valid token before
    /// it is closed (1008).
    pub auth_timeout: Duration,
    /// How often the broker pings each client; a client that answers none of
    /// two pings in a row (and sends nothing else meanwhile) is closed (1001).
    pub ping_interval: Duration,
    /// How long a frame (or a fragmented message) may take to arrive once its
    /// first byte has: a client slower than that is closed (1008).
    pub frame_timeout: Duration,
    /// Bytes all connections together may hold in read buffers (unfinished
    /// frames above all); a frame that would pass it closes its connection (1013).
    pub max_inbound: usize,
    /// Most topics the broker keeps counters for; past it, a `pub` to a new
    /// topic that no subscription matches gets `limit`.
    pub max_topics: usize,
    /// Connections one IP address may hold open at once (`None`: a quarter of
    /// `max_connections`, at least 1; `Some(0)`: no cap).
    pub max_connections_per_ip: Option<usize>,
    /// Log files (segments, acks files) kept open at most; idle ones past it are
    /// closed and reopened when next used. `None`: half the soft open-files limit
    /// at [`Broker::open`] (see [`crate::store::default_max_open_files`]).
    pub max_open_files: Option<usize>,
    /// Queues and retained topics one user may create and hold at once (a user's
    /// own `max_streams` overrides it; with auth off all clients share one count);
    /// 0: no cap.
    pub max_streams_per_user: usize,
    /// Webhook consumers started with the broker (the config file's `[[webhooks]]`).
    pub webhooks: Vec<crate::webhook::ConfiguredWebhook>,
    /// HTTP API requests (`/v1/...`) answered at once, apart from the WebSockets'
    /// `max_connections`; past it, HTTP 503 (`http_requests_full`).
    pub max_http_requests: usize,
    /// Queues and topics together that keep 15 minutes of per-second history
    /// (`describe`); past it, new names get none (`switchyard_history_untracked`).
    pub max_history: usize,
    /// The NATS cluster this node serves topics through (`serve --nats`); None:
    /// one machine, on its own log.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            data_dir: PathBuf::from("switchyard-data"),
            max_payload: 1024 * 1024,
            max_pending: 8 * 1024 * 1024,
            max_pause: Duration::from_millis(10),
            slow_timeout: Duration::from_secs(2),
            max_outbound: crate::outbound_budget::default_max_outbound(),
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            fsync: FsyncPolicy::Batch,
            security: Security::default(),
            auth_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            frame_timeout: Duration::from_secs(30),
            max_inbound: 256 * 1024 * 1024,
            max_connections_per_ip: None,
            max_open_files: None,
            max_topics: crate::topic::MAX_TOPICS,
            max_streams_per_user: 1000,
            webhooks: Vec::new(),
            max_http_requests: 1000,
            max_history: crate::history::DEFAULT_MAX_HISTORY,
            cluster: None,
        }
    }
}

impl Config {
    /// The per-IP cap in force: `max_connections_per_ip`, or a quarter of
    /// `max_connections` (at least 1); `None` when there is none.
    pub fn per_ip_cap(&self) -> Option<usize> {
        match self.max_connections_per_ip {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some((self.max_connections / 4).max(1)),
        }
    }
}

/// The server string sent in `welcome`.
pub const SERVER: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// A handle to the broker. Clones share one broker.
#[derive(Clone)]
pub struct Broker {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    config: Config,
    listen: Mutex<String>,
    started: Instant,
    activity: Arc<Activity>,
    topics: Topics,
    queues: RwLock<HashMap<Arc<str>, Arc<Queue>>>,
    /// Names whose queue is being created, each with the lock its creator holds
    /// while it touches the disk: others wanting that name wait on it, and nobody
    /// else waits at all (no broker-wide lock is held across disk I/O).
    creating: Mutex<HashMap<(Stream, String), Gate>>,
    /// Who created each queue and retained topic, against `max_streams_per_user`.
    creators: Creators,
    /// Every connected client, by session id.
    sessions: RwLock<HashMap<u64, Arc<Peer>>>,
    next_session: AtomicU64,
    /// The most sessions open at once since memory was last given back.
    peak_sessions: std::sync::atomic::AtomicUsize,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Sender<bool>,
    backend: Arc<dyn Backend>,
    /// The data directory's lock, held while the broker lives (`Broker::open` only:
    /// another backend's storage is its own business).
    _dir_lock: Option<DirLock>,
    /// The users' compiled rules and the JWT key.
    auth: Authenticator,
    /// What every connection's read buffers hold, against `max_inbound`.
    read_budget: Arc<crate::connection::ReadBudget>,
    /// The last 15 minutes of every queue and topic, sampled once a second.
    history: crate::history::History,
    /// This node's link to NATS, with `--nats`.
    cluster: Option<Arc<Cluster>>,
}

impl Broker {
    /// Opens a broker on its data directory, bringing back every durable queue (and
    /// retained topic) with what it held. Blocking (it reads the disk); must be called
    /// from within a tokio runtime, which runs the broker's timers.
    ///
    /// Fails, touching no store file, if another broker holds the data directory.
    pub fn open(config: Config) -> Result<Broker, BrokerError> {
        let lock = DirLock::acquire(&config.data_dir)?;
        let store_config = StoreConfig {
            fsync: config.fsync,
            max_open_files: config
                .max_open_files
                .unwrap_or_else(crate::store::default_max_open_files),
            ..StoreConfig::default()
        };
        let backend = LogBackend::open(&config.data_dir, Arc::new(OsDisk), store_config)?;
        Broker::open_locked(config, Arc::new(backend), Some(lock))
    }

    /// Opens a broker on another storage backend (`config.data_dir` and
    /// `config.fsync` are then the backend's business). Blocking, like [`Broker::open`].
    pub fn open_on(config: Config, backend: Arc<dyn Backend>) -> Result<Broker, BrokerError> {
        Broker::open_locked(config, backend, None)
    }

    fn open_locked(
        config: Config,
        backend: Arc<dyn Backend>,
        dir_lock: Option<DirLock>,
    ) -> Result<Broker, BrokerError> {
        let auth = Authenticator::new(&config.security)?;
        let (shutdown, _) = watch::channel(false);
        let read_budget = Arc::new(crate::connection::ReadBudget::new(config.max_inbound));
        let activity = Arc::new(Activity::new(config.max_outbound));
        activity
            .slow_timeout_ms
            .store(config.slow_timeout.as_millis() as u64, Ordering::Relaxed);
        let max_topics = config.max_topics;
        let history = crate::history::History::new(config.max_history);
        let cluster = config.cluster.clone().map(Cluster::new).transpose()?;
        let broker = Broker {
            inner: Arc::new(Inner {
                read_budget,
                listen: Mutex::new(config.listen.to_string()),
                config,
                started: Instant::now(),
                topics: Topics::new(activity.clone(), tokio::runtime::Handle::current())
                    .with_max_topics(max_topics)
                    .with_cluster(cluster.clone()),
                activity,
                queues: RwLock::new(HashMap::new()),
                creating: Mutex::new(HashMap::new()),
                creators: Creators::default(),
                sessions: RwLock::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                peak_sessions: Default::default(),
                runtime: tokio::runtime::Handle::current(),
                shutdown,
                backend,
                _dir_lock: dir_lock,
                auth,
                history,
                cluster,
            }),
        };
        if let Some(cluster) = &broker.inner.cluster {
            let sink: std::sync::Weak<dyn crate::cluster::RemoteSink> =
                Arc::downgrade(&broker.inner) as _;
            cluster.start(sink);
            cluster.start_view(Arc::new(operator::NodeView(Arc::downgrade(&broker.inner))));
        }
        broker.recover()?;
        for hook in &broker.inner.config.webhooks {
            broker.start_webhook(
                &hook.queue,
                &hook.spec,
                &Creator::default(),
                "the config file",
            )?;
        }
        let inner = &broker.inner;
        inner
            .runtime
            .spawn(run_outbound_budget(Arc::downgrade(inner)));
        inner
            .runtime
            .spawn(timers::run_stuck_readers(Arc::downgrade(inner)));
        Ok(broker)
    }

    /// Waits (at most `max_pause`) for the slow readers `publisher`'s last
    /// frames went to (`pacing.rs`).
    pub(crate) async fn pace(
        &self,
        publisher: &crate::session::Session,
        slow: Vec<Arc<crate::session::Session>>,
    ) {
        let config = &self.inner.config;
        crate::pacing::pause(publisher, slow, config.max_pause, &self.inner.activity).await
    }

    /// Records what opening stores repaired (torn tails, corrupt records) as events.
    fn report_repairs(&self) {
        for r in self.inner.backend.take_repairs() {
            self.inner
                .activity
                .record(EventKind::Storage, r.to_string());
        }
    }

    /// The settings the broker was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The broker-wide counters and event log, for the server's refusals at the door.
    /// Counts a refusal (`/metrics`, the snapshot).
    pub(crate) fn refused(&self, reason: crate::refusals::Refusal) {
        self.inner.activity.refusals.count(reason);
    }

    /// The budget every connection's reader counts its buffers in.
    pub(crate) fn read_budget(&self) -> Arc<crate::connection::ReadBudget> {
        self.inner.read_budget.clone()
    }

    pub(crate) fn activity(&self) -> &Activity {
        &self.inner.activity
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

    /// Why this node cannot serve now (its NATS link is down), for `/healthz`;
    /// None when it can (or runs without NATS).
    pub fn cluster_down(&self) -> Option<String> {
        self.inner.cluster.as_ref().and_then(|c| c.down())
    }

    /// This node's name in its NATS cluster, with `--nats`.
    pub fn node(&self) -> Option<&str> {
        self.inner.cluster.as_ref().map(|c| c.node())
    }

    /// Becomes `true` when the broker starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    /// Adds an event to the log operators see.
    pub(crate) fn record_event(&self, kind: EventKind, text: String) {
        self.inner.activity.record(kind, text);
    }

    pub(crate) fn open_session(&self, addr: SocketAddr) -> Arc<Peer> {
        self.open_peer(addr, None)
    }

    /// A session for one HTTP API request, named by its request line (`what`) in
    /// the snapshot while it is answered. Its coming and going are not event-log
    /// lines: a script posting a message a second would bury every other event.
    pub(crate) fn open_http_session(&self, addr: SocketAddr, what: String) -> Arc<Peer> {
        self.open_peer(addr, Some(what))
    }

    fn open_peer(&self, addr: SocketAddr, http: Option<String>) -> Arc<Peer> {
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session::new(
            id,
            addr,
            self.inner.config.max_pending,
            self.inner.activity.clone(),
        ));
        let logged = http.is_none();
        *session.hello_name.lock() = http;
        let peer = Arc::new(Peer::new(session, logged));
        let open = {
            let mut sessions = self.inner.sessions.write();
            sessions.insert(id, peer.clone());
            sessions.len()
        };
        self.inner.peak_sessions.fetch_max(open, Ordering::Relaxed);
        if !logged {
            return peer;
        }
        self.inner.activity.record(
            EventKind::Connect,
            format!("{} connected from {addr}", peer.session.name_id),
        );
        peer
    }

    /// Forgets a client: its subscriptions end and its unacked jobs go back to their queues.
    pub(crate) fn close_session(&self, peer: &Peer, why: &str) {
        let session = &peer.session;
        session.outbound.close();
        self.inner.sessions.write().remove(&session.id);
        let subs: Vec<Arc<Subscription>> = peer.subs.lock().drain().map(|(_, s)| s).collect();
        for sub in subs {
            self.inner.topics.unsubscribe(&sub);
        }
        let consumers: Vec<(String, Arc<Queue>)> = peer.consumers.lock().drain().collect();
        for (cid, queue) in consumers {
            let effects = queue.remove_consumer(session, &cid);
            self.apply(effects);
        }
        if !peer.logged {
            return;
        }
        self.inner.activity.record(
            EventKind::Disconnect,
            format!("{} disconnected: {why}", session.describe()),
        );
    }

    /// Runs `f`, which creates the store of the queue or topic `name`, while no
    /// other caller does so for the same name; callers for other names, and every
    /// other op, go on. (A blocking wait, on the name's gate only: its creator is
    /// doing a few file operations.)
    fn one_at_a_time<R>(&self, kind: Stream, name: &str, f: impl FnOnce() -> R) -> R {
        let key = (kind, name.to_string());
        let gate = self
            .inner
            .creating
            .lock()
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _creator = gate.lock();
            f()
        };
        let mut creating = self.inner.creating.lock();
        // Clones are taken under this lock: two left (the map's and ours) means no
        // one else waits, and the gate can go.
        if Arc::strong_count(&gate) == 2 {
            creating.remove(&key);
        }
        result
    }

    /// Takes `creator`'s place for the new queue or retained topic `name`, or
    /// refuses (`limit`, counted as `streams_limit`). A stream no client's request
    /// creates (a dead letter's queue, the console's send) has no creator and
    /// counts against no one. Called under the name's gate.
    fn take_place(
        &self,
        kind: Stream,
        name: &str,
        creator: Option<&Creator>,
    ) -> Result<(), BrokerError> {
        let Some(creator) = creator else {
            return Ok(());
        };
        let cap = self.inner.config.max_streams_per_user;
        self.inner
            .creators
            .take(kind, name, creator, cap)
            .inspect_err(|_| self.refused(crate::refusals::Refusal::StreamsLimit))
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
            .activity
            .record(EventKind::Delete, format!("{actor} deleted {kind} {name}"));
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

/// Frames the broker sends outside of a request: for connection handling.
pub(crate) fn welcome(broker: &Broker, session: &Session) -> String {
    event::welcome(&session.name_id, SERVER, broker.inner.config.max_payload)
}

pub(crate) use access::RefusalLog;
use budget::run_outbound_budget;
pub(crate) use creators::Creator;
use creators::Creators;
pub(crate) use queues::ToDispatch;
use timers::run_ack_timer;
pub(crate) use topics::Publisher;
pub use topics::Tail;
