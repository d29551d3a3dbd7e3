//! The storage seam on NATS JetStream: [`NatsBackend`] keeps every retained topic
//! and every durable queue in a JetStream stream of its own, replicated by the
//! NATS cluster instead of written to this machine's disk.
//!
//! - A retained topic is a limits-based stream `SY_T_<escaped name>` on subject
//!   `switchyard.retained.<name>`: its retention is the stream's limits
//!   (`max_messages`, `max_bytes`, `max_age_s` as `max_msgs`, `max_bytes`,
//!   `max_age`), `seal` seals the stream, `delete` deletes it. Reads are
//!   ephemeral pull consumers with JetStream's deliver policies (all, by start
//!   seq, by start time, new).
//! - A durable queue of one node is a stream `SY_SQ_<escaped name>`: messages on
//!   `switchyard.store.queue.<name>`, delivery attempts as small records on
//!   `switchyard.store.attempt.<name>.<seq>`; an ack deletes the message and
//!   purges its attempts. (The queues several nodes share, `SY_Q_`, are the
//!   cluster's, not this seam's: this store keeps the seam's contract, one
//!   owner recovering its queue at start-up.)
//! - What was declared (the Switchyard name, a queue's settings) is the stream's
//!   description, as JSON: 2.9 has no stream metadata. A topic's retention is
//!   read back from the limits themselves.
//!
//! Seqs: the seam hands out an append's seq at once, and a stream assigns it
//! only when it stores the message. Each stream here has one writer (this
//! backend; several handles share it): it counts the seq itself and publishes
//! with `Nats-Expected-Last-Sequence`, so the stream refuses rather than
//! renumbers, and a stream that refused or failed takes no more appends until it
//! is opened again (as the log's `Failed`). Appends never wait: an in-order
//! writer task per stream publishes them and resolves each ticket on its
//! publish ack, which JetStream sends once the message is stored on a quorum of
//! the stream's replicas.
//!
//! Replicas: [`NatsStoreConfig::replicas`] (3 by default), capped at the number
//! of servers the NATS cluster tells of (the `connect_urls` of its INFO; 1 for a
//! server not in a cluster), so that a one-server NATS works too.
//!
//! Blocking calls of the seam (open, stats, recover, delete, ...) wait on this
//! backend's own runtime, so they may be called from a plain thread or from a
//! multi-threaded tokio runtime (through `block_in_place`).

mod queue;
pub(crate) mod topic;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{
    Backend, QueueSettings, QueueStore, Retention, StoreError, Stored, StoredQueue, StoredTopic,
    TopicStore,
};
use crate::cluster::subject::{stream_name, TOPIC_STREAM_PREFIX};
pub use queue::NatsQueueStore;
pub use topic::NatsTopicStore;
pub(crate) use writer::TIME_HEADER;

/// The prefix of the stream of one node's durable queue kept through the seam.
pub const STORE_QUEUE_STREAM_PREFIX: &str = "SY_SQ_";

/// How long a JetStream request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a blocking call of the seam waits at most (a few requests' worth),
/// after which it fails as closed.
const WAIT_AT_MOST: Duration = Duration::from_secs(30);

/// Tuning of the NATS backend. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsStoreConfig {
    /// Replicas of each stream, at most (capped at the cluster's size).
    pub replicas: usize,
    /// Put before every stream name and after `switchyard.` in every subject
    /// (letters and digits; empty in production), so that tests can share one
    /// NATS cluster without seeing each other's streams.
    pub namespace: String,
}

impl Default for NatsStoreConfig {
    fn default() -> NatsStoreConfig {
        NatsStoreConfig {
            replicas: 3,
            namespace: String::new(),
        }
    }
}

/// What a stream's description holds: who made it and what was declared.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Description {
    /// `topic` or `queue`.
    switchyard: String,
    /// The Switchyard name.
    name: String,
    /// A queue's declared settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settings: Option<QueueSettings>,
}

/// The Switchyard name of a retained topic's stream, from its description.
pub(crate) fn described_name(description: &str) -> Option<String> {
    serde_json::from_str::<Description>(description)
        .ok()
        .filter(|d| d.switchyard == "topic")
        .map(|d| d.name)
}

/// The NATS connection, JetStream on it and the runtime it runs on, shared by
/// the backend and every store it opened.
pub(crate) struct Jet {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    js: jetstream::Context,
    replicas: usize,
    namespace: String,
    /// Set by [`Backend::close`]: every store refuses appends from then on.
    closed: AtomicBool,
}

impl Jet {
    /// JetStream on a connection made elsewhere (a cluster node's), waited on
    /// from `handle`'s runtime: for the cluster's retained topics, which read
    /// their streams as this backend's stores do.
    pub(crate) fn on(
        handle: tokio::runtime::Handle,
        mut js: jetstream::Context,
        replicas: usize,
    ) -> Arc<Jet> {
        js.set_timeout(REQUEST_TIMEOUT);
        Arc::new(Jet {
            runtime: Mutex::new(None),
            handle,
            js,
            replicas: replicas.max(1),
            namespace: String::new(),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.js
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `fut` on the backend's runtime and waits for it, from a plain thread
    /// or from a multi-threaded runtime's worker; [`WAIT_AT_MOST`] at most (a
    /// server that never answers must not hang the caller).
    pub(crate) fn wait<F>(&self, fut: F) -> Result<F::Output, StoreError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            if let Ok(out) = tokio::time::timeout(WAIT_AT_MOST, fut).await {
                let _ = tx.send(out);
            }
        });
        let recv = move || rx.recv();
        let got = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        };
        got.map_err(|_| StoreError::Closed {
            path: PathBuf::from("nats"),
        })
    }

    fn stream(&self, prefix: &str, name: &str) -> String {
        format!("{}{}", self.namespace, stream_name(prefix, name))
    }

    /// `switchyard.<namespace.>rest`.
    fn subject(&self, rest: &str) -> String {
        if self.namespace.is_empty() {
            format!("switchyard.{rest}")
        } else {
            format!("switchyard.{}.{rest}", self.namespace)
        }
    }
}

/// The error of a failed JetStream call on `stream`, worded for an operator.
pub(crate) fn nats_err(op: &'static str, stream: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        op,
        path: stream_path(stream),
        detail: format!("NATS: {e}"),
    }
}

/// How a stream is named in errors and tickets: `nats:SY_T_events`.
pub(crate) fn stream_path(stream: &str) -> PathBuf {
    PathBuf::from(format!("nats:{stream}"))
}

/// The seam's backend on a NATS JetStream cluster.
pub struct NatsBackend {
    jet: Arc<Jet>,
    topics: Mutex<HashMap<String, Arc<NatsTopicStore>>>,
    queues: Mutex<HashMap<String, Arc<NatsQueueStore>>>,
    /// Held by an open and by a deletion, so that one never sees the other halfway.
    opens: Arc<Mutex<()>>,
}

impl NatsBackend {
    /// Connects to the NATS servers at `urls` (any one will do). Blocking; fails if
    /// none answers within a few seconds or JetStream is not enabled there.
    pub fn connect(urls: &[String], config: NatsStoreConfig) -> Result<NatsBackend, StoreError> {
        Self::connect_with(urls, async_nats::ConnectOptions::new(), config)
    }

    /// The same, with the connection's options (credentials, name) given.
    pub fn connect_with(
        urls: &[String],
        options: async_nats::ConnectOptions,
        config: NatsStoreConfig,
    ) -> Result<NatsBackend, StoreError> {
        let bad = |e: &dyn std::fmt::Display| nats_err("connecting to", &urls.join(","), e);
        if !config.namespace.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::BadName(config.namespace.clone()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nats-store")
            .enable_all()
            .build()
            .map_err(|e| bad(&e))?;
        let handle = runtime.handle().clone();
        let urls = urls.to_vec();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            let connected = tokio::time::timeout(
                Duration::from_secs(10),
                options
                    .connection_timeout(Duration::from_secs(5))
                    .connect(urls),
            )
            .await;
            let _ = tx.send(connected);
        });
        let recv = move || rx.recv();
        let connected = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        };
        let client = match connected {
            Ok(Ok(Ok(c))) => c,
            Ok(Ok(Err(e))) => return Err(bad(&e)),
            Ok(Err(e)) => return Err(bad(&e)),
            Err(e) => return Err(bad(&e)),
        };
        let peers = client.server_info().connect_urls.len().max(1);
        let mut js = {
            // JetStream's context starts a task of its own.
            let _in = handle.enter();
            jetstream::new(client)
        };
        js.set_timeout(REQUEST_TIMEOUT);
        let jet = Arc::new(Jet {
            runtime: Mutex::new(Some(runtime)),
            handle,
            js,
            replicas: config.replicas.clamp(1, peers),
            namespace: config.namespace,
            closed: AtomicBool::new(false),
        });
        Ok(NatsBackend {
            jet,
            topics: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            opens: Arc::new(Mutex::new(())),
        })
    }

    /// The replicas each new stream gets.
    pub fn replicas(&self) -> usize {
        self.jet.replicas
    }
}

impl Drop for NatsBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.jet.runtime.lock().take() {
            rt.shutdown_background();
        }
    }
}

/// Every stream of the account, with its description, on `jet`.
async fn list_streams(js: jetstream::Context) -> Result<Vec<jetstream::stream::Info>, String> {
    let mut streams = js.streams();
    let mut out = Vec::new();
    while let Some(info) = streams.next().await {
        out.push(info.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

impl Backend for NatsBackend {
    fn open_queue(
        &self,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<Arc<dyn QueueStore>, StoreError> {
        if self.jet.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed {
                path: stream_path(&self.jet.stream(STORE_QUEUE_STREAM_PREFIX, name)),
            });
        }
        let _opens = self.opens.lock();
        let mut open = self.queues.lock();
        if let Some(q) = open.get(name).filter(|q| q.usable()) {
            q.set_settings(settings)?;
            return Ok(q.clone());
        }
        let q = NatsQueueStore::open(&self.jet, &self.opens, name, settings)?;
        open.insert(name.to_string(), q.clone());
        Ok(q)
    }

    fn open_topic(
        &self,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<dyn TopicStore>, StoreError> {
        if self.jet.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed {
                path: stream_path(&self.jet.stream(TOPIC_STREAM_PREFIX, name)),
            });
        }
        let _opens = self.opens.lock();
        let mut open = self.topics.lock();
        if let Some(t) = open.get(name).filter(|t| t.usable()) {
            t.set_retention(retention)?;
            return Ok(t.clone());
        }
        let t = NatsTopicStore::open(&self.jet, &self.opens, name, retention)?;
        open.insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn stored(&self) -> Result<Stored, StoreError> {
        let infos = self
            .jet
            .wait(list_streams(self.jet.js.clone()))?
            .map_err(|e| nats_err("listing", "streams", e))?;
        let topic_prefix = format!("{}{TOPIC_STREAM_PREFIX}", self.jet.namespace);
        let queue_prefix = format!("{}{STORE_QUEUE_STREAM_PREFIX}", self.jet.namespace);
        let mut stored = Stored::default();
        for info in infos {
            let Some(d) = info
                .config
                .description
                .as_deref()
                .and_then(|d| serde_json::from_str::<Description>(d).ok())
            else {
                continue;
            };
            let stream = &info.config.name;
            if stream.starts_with(&topic_prefix) && d.switchyard == "topic" {
                stored.topics.push(StoredTopic {
                    name: d.name,
                    retention: topic::retention_of(&info.config),
                });
            } else if stream.starts_with(&queue_prefix) && d.switchyard == "queue" {
                stored.queues.push(StoredQueue {
                    name: d.name,
                    settings: d.settings,
                });
            }
        }
        stored.topics.sort_by(|a, b| a.name.cmp(&b.name));
        stored.queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stored)
    }

    fn close(&self) {
        self.jet.closed.store(true, Ordering::Release);
        let topics: Vec<_> = self.topics.lock().values().cloned().collect();
        let queues: Vec<_> = self.queues.lock().values().cloned().collect();
        let tickets: Vec<_> = topics
            .iter()
            .map(|t| TopicStore::sync(&**t))
            .chain(queues.iter().map(|q| QueueStore::sync(&**q)))
            .collect();
        for ticket in tickets {
            let _ = self
                .jet
                .wait(async move { tokio::time::timeout(REQUEST_TIMEOUT, ticket).await });
        }
    }
}

/// The path streams are named by in tickets (shared, so no allocation per append).
fn ticket_path(stream: &str) -> Arc<Path> {
    Arc::from(stream_path(stream).as_path())
}
