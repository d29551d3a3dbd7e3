//! Serving past one machine (`serve --nats`): this node's link to a NATS cluster,
//! through which topic messages reach the other Switchyard nodes.
//!
//! What crosses: every message published on this node to a topic that keeps
//! none (not retained) is delivered to this node's subscriptions at once, as
//! without NATS, and published to NATS on the topic's subject
//! (`subject.rs`). The connection is made with `no_echo`, so NATS never hands a
//! node its own messages back: local subscribers get each message once, from
//! the local path, and other nodes once per NATS subscription.
//!
//! What a node subscribes to in NATS: exactly the patterns its own clients (and
//! tails) hold, one NATS subscription per distinct pattern, counted: the first
//! local subscription to `orders.>` subscribes, the last one to go unsubscribes.
//! A message that comes in on the NATS subscription of pattern `P` goes to this
//! node's subscriptions whose pattern is `P` (filters and permissions checked
//! here, on the subscriber's node), so a message matching two patterns held on
//! a node, which NATS sends once per subscription, still reaches each local
//! subscription once.
//!
//! Losing NATS: the link's state follows async-nats' connection events. While
//! it is down, `pub` is refused (`unavailable`) rather than delivered to this
//! node alone, `/healthz` answers 503, and async-nats reconnects by itself
//! (to any server of the list or that the cluster told it of), subscribing
//! again to what it held.
//!
//! The cluster view (`view.rs`): each node's snapshot on NATS, merged into
//! every node's, and the operator ops about another node's client sent to it.
//!
//! Queues live in JetStream (`queue.rs`), and so do retained topics
//! (`retained.rs`). What is not served with `--nats` (seal and delete of a
//! topic that keeps no messages) is refused with `unavailable`, never done on
//! one node alone.

pub(crate) mod queue;
pub(crate) mod retained;
pub(crate) mod subject;
mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::{BrokerError, ErrorCode};
use crate::protocol::Headers;
pub use subject::{QUEUE_STREAM_PREFIX, TOPIC_PREFIX, TOPIC_STREAM_PREFIX};
pub(crate) use view::{split_client, summary, NodeOp, NodeOps};

/// Bytes of messages waiting to be handed to NATS, at most (`limit` past it):
/// NATS slower than this node's publishers must not grow its memory without end.
pub const MAX_OUTGOING_BYTES: usize = 64 << 20;

/// How to reach the NATS cluster, and who this node is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`); any one of them will do to start.
    pub urls: Vec<String>,
    /// A NATS credentials file (JWT and nkey seed), for a secured NATS.
    pub creds: Option<PathBuf>,
    /// This node's name: its NATS connection's name, in logs and in NATS' own
    /// monitoring.
    pub node: String,
}

/// Reads `--nats`'s list: URLs separated by commas (`nats://h1:4222,h2:4222`;
/// the scheme defaults to `nats://`, the port to 4222).
pub fn parse_urls(text: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map(|_| u.to_string())
                .map_err(|e| format!("`{u}` is not a NATS server URL: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err("no NATS server URL given".into());
    }
    Ok(urls)
}

/// Checks a node name: 1 to 64 of `A-Z a-z 0-9 _ - :` (one token of a topic
/// name, so that it can name a NATS subject of its own).
pub fn check_node(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node name `{name}`: 1 to 64 of A-Z a-z 0-9 _ - : (no dots)"
        ))
    }
}

/// The node name when none is given: the host's name and the process id
/// (`web1-4711`), each character a node name cannot hold made `-`.
pub fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .take(48)
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' | ':' => c,
            _ => '-',
        })
        .collect();
    let host = if host.is_empty() {
        "switchyard".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Why a node is not serving through NATS right now, for `/healthz` and refusals.
#[derive(Debug, Clone)]
enum LinkState {
    /// Never connected yet.
    Connecting,
    Connected,
    /// Connected once, lost since; async-nats is reconnecting.
    Lost,
}

/// This node's end of the NATS cluster.
pub(crate) struct Cluster {
    config: ClusterConfig,
    /// The credentials file's text, read at start.
    creds: Option<String>,
    state: Mutex<LinkState>,
    up: AtomicBool,
    /// Messages for NATS, to the task that publishes them; bounded in bytes by
    /// [`MAX_OUTGOING_BYTES`] (`queued`).
    outgoing: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
    /// How many local subscriptions hold each pattern.
    interest: Mutex<HashMap<String, usize>>,
    /// Changes of interest (first holder came, last one went), in order.
    control: mpsc::UnboundedSender<Control>,
    /// The NATS connection, from [`Cluster::start`] on (async-nats reconnects
    /// it by itself), for what else this node keeps in NATS (JetStream).
    client: std::sync::OnceLock<async_nats::Client>,
    /// The other nodes' snapshots (`view.rs`).
    view: view::View,
    /// What this node's queues share (`queue.rs`).
    queues: queue::Shared,
    /// What this node's retained topics share (`retained.rs`).
    retained: retained::Shared,
    /// Taken by [`Cluster::start`].
    receivers: Mutex<
        Option<(
            mpsc::UnboundedReceiver<Outgoing>,
            mpsc::UnboundedReceiver<Control>,
        )>,
    >,
}

/// Messages of one publish (one, or a frame's run to one topic).
struct Outgoing {
    subject: String,
    payloads: Vec<Bytes>,
    bytes: usize,
}

enum Control {
    Subscribe(String),
    Unsubscribe(String),
}

/// Where messages from other nodes go: the broker's topics.
pub(crate) trait RemoteSink: Send + Sync + 'static {
    /// Delivers a message from another node, which came in on the NATS
    /// subscription of `pattern`, to this node's subscriptions of that pattern.
    fn deliver(&self, topic: &str, pattern: &str, time: u64, data: &str, headers: Option<&Headers>);
    /// Records an event operators see (the link lost, back).
    fn event(&self, text: String);
    /// Hands message `seq` of retained topic `topic` to this node's
    /// subscriptions of it, in seq order; with `force`, even after a gap.
    fn deliver_retained(
        &self,
        topic: &str,
        seq: u64,
        msg: &subject::Remote,
        force: bool,
    ) -> retained::Heard;
    /// Makes `topic` retained here, in its stream `store`, handing on the
    /// messages after `heard` (None: after the stream's last).
    fn retain_shared(&self, topic: &str, store: Arc<retained::SharedTopic>, heard: Option<u64>);
    /// The last seq of retained topic `topic` handed on here; None if this
    /// node does not know it as retained.
    fn heard(&self, topic: &str) -> Option<u64>;
    /// Another node sealed retained topic `topic`: its subscriptions end.
    fn seal_shared(&self, topic: &str);
    /// Another node deleted retained topic `topic`: its subscriptions end.
    fn delete_shared(&self, topic: &str);
}

impl Cluster {
    /// The link, not connected yet; fails if the credentials file cannot be
    /// read or is not one, so that a node with a bad file does not start.
    pub(crate) fn new(config: ClusterConfig) -> Result<Arc<Cluster>, BrokerError> {
        let creds = match &config.creds {
            Some(path) => {
                let bad = |e: &dyn std::fmt::Display| {
                    BrokerError::new(
                        ErrorCode::Internal,
                        format!("NATS credentials {}: {e}", path.display()),
                    )
                };
                let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
                async_nats::ConnectOptions::new()
                    .credentials(&text)
                    .map_err(|e| bad(&e))?;
                Some(text)
            }
            None => None,
        };
        let (outgoing, out_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Cluster {
            config,
            creds,
            state: Mutex::new(LinkState::Connecting),
            up: AtomicBool::new(false),
            outgoing,
            queued: Arc::new(AtomicUsize::new(0)),
            interest: Mutex::new(HashMap::new()),
            control,
            client: std::sync::OnceLock::new(),
            view: view::View::default(),
            queues: queue::Shared::new(),
            retained: retained::Shared::new(),
            receivers: Mutex::new(Some((out_rx, control_rx))),
        }))
    }

    /// This node's name.
    pub(crate) fn node(&self) -> &str {
        &self.config.node
    }

    /// Connects (in the background, retrying until NATS answers) and starts
    /// moving messages; `sink` gets what other nodes publish. Called once, from
    /// within the runtime.
    pub(crate) fn start(self: &Arc<Self>, sink: Weak<dyn RemoteSink>) {
        let Some((out_rx, control_rx)) = self.receivers.lock().take() else {
            return;
        };
        tokio::spawn(run(self.clone(), sink, out_rx, control_rx));
    }

    /// The NATS connection, once [`Cluster::start`] has made it (it may be
    /// down: see [`Cluster::down`]).
    pub(crate) fn client(&self) -> Option<&async_nats::Client> {
        self.client.get()
    }

    /// JetStream on this node's connection, once made.
    pub(crate) fn jetstream(&self) -> Option<async_nats::jetstream::Context> {
        self.client().cloned().map(async_nats::jetstream::new)
    }

    /// Why the link is down, or None while it is up.
    pub(crate) fn down(&self) -> Option<String> {
        if self.up.load(Ordering::Acquire) {
            if self.retained.listed() {
                return None;
            }
            // Until then a pub to a retained topic would not be known as one.
            return Some("NATS connected, learning the cluster's retained topics".into());
        }
        let urls = self.config.urls.join(",");
        Some(match *self.state.lock() {
            LinkState::Connecting => format!("NATS not connected yet ({urls})"),
            LinkState::Lost | LinkState::Connected => {
                format!("NATS connection lost, reconnecting ({urls})")
            }
        })
    }

    /// Refuses a publish of `bytes` while the link is down or too far behind.
    pub(crate) fn ready(&self, bytes: usize) -> Result<(), BrokerError> {
        if let Some(why) = self.down() {
            return Err(BrokerError::new(
                ErrorCode::Unavailable,
                format!("{why}: not accepted, as other nodes could not get it"),
            ));
        }
        if self.queued.load(Ordering::Relaxed) + bytes > MAX_OUTGOING_BYTES {
            return Err(BrokerError::new(
                ErrorCode::Limit,
                format!(
                    "{} MiB wait to go to NATS: try again shortly",
                    MAX_OUTGOING_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Hands messages accepted on `topic` to NATS, for the other nodes.
    pub(crate) fn forward(&self, topic: &str, time: u64, msgs: &[(&str, Option<&Headers>)]) {
        let payloads: Vec<Bytes> = msgs
            .iter()
            .map(|(data, headers)| subject::encode(time, data, *headers))
            .collect();
        let bytes = payloads.iter().map(Bytes::len).sum();
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        let out = Outgoing {
            subject: subject::topic_subject(topic),
            payloads,
            bytes,
        };
        if self.outgoing.send(out).is_err() {
            // The link's task is gone (the runtime is shutting down).
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// A local subscription to `pattern` began: the first one subscribes in NATS.
    pub(crate) fn hold(&self, pattern: &str) {
        let mut interest = self.interest.lock();
        let n = interest.entry(pattern.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            // Sent under the lock, so changes of one pattern reach the task in order.
            let _ = self.control.send(Control::Subscribe(pattern.to_string()));
        }
    }

    /// A local subscription to `pattern` ended: the last one unsubscribes.
    pub(crate) fn release(&self, pattern: &str) {
        let mut interest = self.interest.lock();
        let Some(n) = interest.get_mut(pattern) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            interest.remove(pattern);
            let _ = self.control.send(Control::Unsubscribe(pattern.to_string()));
        }
    }

    fn set_up(&self, up: bool, sink: &Weak<dyn RemoteSink>) {
        let was = {
            let mut state = self.state.lock();
            let was = matches!(*state, LinkState::Connected);
            *state = if up {
                LinkState::Connected
            } else if matches!(*state, LinkState::Connecting) {
                LinkState::Connecting
            } else {
                LinkState::Lost
            };
            self.up.store(up, Ordering::Release);
            was
        };
        if was == up {
            return;
        }
        let text = if up {
            format!("node {} connected to NATS", self.config.node)
        } else {
            format!(
                "node {} lost its NATS connection: refusing pub until it is back",
                self.config.node
            )
        };
        // One line in the log (the event log writes it) and one event for the console.
        match sink.upgrade() {
            Some(sink) => sink.event(text),
            None => tracing::info!("{text}"),
        }
    }
}

/// Connects, then publishes what this node hands over and keeps one NATS
/// subscription per pattern its clients hold.
async fn run(
    cluster: Arc<Cluster>,
    sink: Weak<dyn RemoteSink>,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    mut control_rx: mpsc::UnboundedReceiver<Control>,
) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let mut options = async_nats::ConnectOptions::new()
        .name(&cluster.config.node)
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        // Back within a second or two of a server's return, not async-nats'
        // default of up to four.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        })
        .event_callback(move |event| {
            let events_tx = events_tx.clone();
            async move {
                let _ = events_tx.send(event);
            }
        });
    if let Some(creds) = &cluster.creds {
        options = match options.credentials(creds) {
            Ok(o) => o,
            Err(e) => {
                // Read and checked at start: this cannot happen.
                tracing::error!("NATS credentials: {e}");
                return;
            }
        };
    }
    let client = match options.connect(cluster.config.urls.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("NATS: {e}");
            return;
        }
    };
    let _ = cluster.client.set(client.clone());
    tokio::spawn(queue::run(cluster.clone(), client.clone()));
    tokio::spawn(retained::run(cluster.clone(), client.clone(), sink.clone()));
    let mut held: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            Some(event) = events_rx.recv() => match event {
                async_nats::Event::Connected => cluster.set_up(true, &sink),
                async_nats::Event::Disconnected | async_nats::Event::Closed => {
                    cluster.set_up(false, &sink)
                }
                async_nats::Event::SlowConsumer(sid) => {
                    tracing::warn!("NATS: subscription {sid} fell behind; messages were dropped");
                }
                other => tracing::info!("NATS: {other}"),
            },
            out = out_rx.recv() => {
                let Some(out) = out else { break };
                for payload in out.payloads {
                    if let Err(e) = client.publish(out.subject.clone(), payload).await {
                        tracing::debug!("NATS publish on {}: {e}", out.subject);
                    }
                }
                cluster.queued.fetch_sub(out.bytes, Ordering::Relaxed);
            }
            control = control_rx.recv() => match control {
                Some(Control::Subscribe(pattern)) => {
                    let task = tokio::spawn(receive(client.clone(), pattern.clone(), sink.clone()));
                    if let Some(old) = held.insert(pattern, task) {
                        old.abort();
                    }
                }
                Some(Control::Unsubscribe(pattern)) => {
                    // Dropping the subscriber (with its task) unsubscribes.
                    if let Some(task) = held.remove(&pattern) {
                        task.abort();
                    }
                }
                None => break,
            },
        }
    }
    held.values().for_each(|t| t.abort());
}

/// The NATS subscription of one pattern: delivers what comes in until aborted.
async fn receive(client: async_nats::Client, pattern: String, sink: Weak<dyn RemoteSink>) {
    let subject = subject::topic_subject(&pattern);
    let mut subscriber = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("NATS subscribe {subject}: {e}");
            return;
        }
    };
    while let Some(msg) = subscriber.next().await {
        let Some(topic) = subject::subject_topic(&msg.subject) else {
            continue;
        };
        let Some(remote) = subject::decode(&msg.payload) else {
            tracing::debug!(
                "NATS: a message on {} is not a Switchyard message",
                msg.subject
            );
            continue;
        };
        let Some(sink) = sink.upgrade() else {
            return;
        };
        sink.deliver(
            topic,
            &pattern,
            remote.time,
            &remote.data,
            remote.headers.as_ref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_node_names_are_checked() {
        assert_eq!(
            parse_urls("nats://127.0.0.1:4222, h2:4223,").unwrap(),
            vec!["nats://127.0.0.1:4222".to_string(), "h2:4223".to_string()]
        );
        assert!(parse_urls(" , ").is_err());
        assert!(parse_urls("nats://h:notaport").is_err());
        assert!(check_node("web1-4711").is_ok());
        assert!(check_node("a.b").is_err());
        assert!(check_node("").is_err());
        assert!(check_node(&"x".repeat(65)).is_err());
        let node = default_node();
        assert!(check_node(&node).is_ok(), "{node}");
        assert!(node.ends_with(&format!("-{}", std::process::id())));
    }
}
