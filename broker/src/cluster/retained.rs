//! Retained topics with `--nats`: each is a limits-based JetStream stream
//! (`SY_T_<escaped name>`, file storage, on up to 3 servers) that every node
//! appends to and reads from.
//!
//! Appends: a `pub` to a retained topic on any node is published through
//! JetStream on the topic's own subject, `switchyard.topic.<name>`, which the
//! stream captures, in the order the node accepted it; the publisher's `ok`
//! (with the seq) waits for the stream's ack, which JetStream sends once a
//! quorum of the stream's servers stored it. The stream gives the seq, so a
//! topic has one order of seqs whichever nodes publish to it.
//!
//! Deliveries: the stream republishes every message it stored, with its seq
//! (`Nats-Sequence`), on `switchyard.rlive.<name>`. Every node subscribes to
//! `switchyard.rlive.>` and hands each message to its own subscriptions of the
//! topic in seq order, once each: a seq it has handed on already is dropped,
//! and one that comes after a gap (messages core NATS dropped, or that came
//! while the link was down) is handed on after the gap, read from the stream.
//! A message reaches a subscriber only once stored, as on one node. The core
//! NATS copies of a retained topic's messages, which nodes' pattern
//! subscriptions see too, are dropped (`Topics::deliver_remote`).
//!
//! Replays (`sub` with `from`) and `peek` read the stream: up to the last seq
//! this node handed on, the later ones coming live, as on one node.
//!
//! Which topics are retained: a node lists the `SY_T_` streams when it connects
//! and every 10 s; a node that declares, seals or deletes one says so to the
//! others at once (a `Switchyard-Notice` header on `switchyard.rlive.<name>`).
//! Once a second each node reads the state of each retained topic's stream: its
//! counts for the snapshot, a seal or deletion whose notice was lost, and a gap
//! still open after a second (read from the stream then).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{subject, Cluster, RemoteSink};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::{event, Headers};
use crate::store::nats::topic::{config, find_or_create, reader, set_limits, update};
use crate::store::nats::{nats_err, stream_path, Jet, TIME_HEADER};
use crate::store::{
    Appended, ReadFrom, Retention, RetentionOutcome, StoreError, StoreStats, StoredMessage, Ticket,
    TicketSender, TopicReader, TopicStore,
};
use crate::topic::Done;

/// The header of a node's notice about a retained topic: `declared`, `sealed`
/// or `deleted`.
const NOTICE_HEADER: &str = "Switchyard-Notice";

/// The header JetStream puts the stream's seq in on a republished message.
const SEQ_HEADER: &str = "Nats-Sequence";

/// How often each retained topic's stream state is read, and how long a gap may
/// stay open before it is read from the stream.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// Every how many resyncs the `SY_T_` streams are listed again.
const LIST_EVERY: u32 = 10;

/// What handing a message of a retained topic to this node's subscriptions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Handed on (or dropped as one handed on before).
    Delivered,
    /// This node does not know the topic as retained.
    Unknown,
    /// Messages before it have not come: the last seq handed on.
    Gap(u64),
}

/// A retained topic's stream, as this node's topic keeps it (its store).
pub(crate) struct SharedTopic {
    jet: Arc<Jet>,
    client: async_nats::Client,
    name: String,
    stream: String,
    sealed: AtomicBool,
    retention: Mutex<Retention>,
    /// The stream's messages, bytes and last seq, as last read.
    counts: Mutex<(u64, u64, u64)>,
    /// Where a seal made here waits for this node to have handed on every
    /// message before it.
    work: mpsc::UnboundedSender<Work>,
}

/// Work for the task that hands retained messages on, in its order.
enum Work {
    /// The stream is sealed at `last`: resolve `done` once every message up to
    /// it is handed on.
    Sealed {
        name: String,
        last: u64,
        done: TicketSender,
    },
}

/// A message for a retained topic, to be published through JetStream.
struct Write {
    subject: String,
    time: u64,
    payload: Bytes,
    done: Option<Done>,
}

/// What a node's retained topics share: their streams, and the channels of the
/// tasks that write and hand on their messages.
pub(crate) struct Shared {
    jet: OnceLock<Arc<Jet>>,
    topics: Mutex<HashMap<String, Arc<SharedTopic>>>,
    writes: mpsc::UnboundedSender<Write>,
    work: mpsc::UnboundedSender<Work>,
    receivers: Mutex<
        Option<(
            mpsc::UnboundedReceiver<Write>,
            mpsc::UnboundedReceiver<Work>,
        )>,
    >,
    listed: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        let (writes, writes_rx) = mpsc::unbounded_channel();
        let (work, work_rx) = mpsc::unbounded_channel();
        Shared {
            jet: OnceLock::new(),
            topics: Mutex::new(HashMap::new()),
            writes,
            work,
            receivers: Mutex::new(Some((writes_rx, work_rx))),
            listed: AtomicBool::new(false),
        }
    }

    /// Whether the cluster's retained topics were listed once since start.
    pub(crate) fn listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    fn get(&self, name: &str) -> Option<Arc<SharedTopic>> {
        self.topics.lock().get(name).cloned()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::new(ErrorCode::Unavailable, format!("JetStream: {e}"))
}

impl Cluster {
    /// Opens retained topic `name`'s stream: made (or its limits set) with
    /// `retention` if given, else only found (`not_found` when there is none).
    pub(crate) async fn open_retained(
        &self,
        name: &str,
        retention: Option<Retention>,
    ) -> Result<Arc<SharedTopic>, BrokerError> {
        let shared = &self.retained;
        let jet = shared
            .jet
            .get()
            .cloned()
            .ok_or_else(|| unavailable("not connected to NATS yet"))?;
        if let Some(topic) = shared.get(name) {
            if let Some(r) = retention {
                let topic = topic.clone();
                tokio::task::spawn_blocking(move || topic.set_retention(r))
                    .await
                    .map_err(unavailable)??;
            }
            return Ok(topic);
        }
        let stream = subject::stream_name(subject::TOPIC_STREAM_PREFIX, name);
        let found = match retention {
            Some(r) => {
                // The cluster's size as the server tells it now (its INFO
                // right after connecting may not list the others yet).
                let replicas = self
                    .client()
                    .map_or(1, |c| c.server_info().connect_urls.len())
                    .clamp(1, super::queue::MAX_REPLICAS);
                let mut cfg = config(&stream, "", name, r, replicas);
                let subject = subject::topic_subject(name);
                cfg.subjects = vec![subject.clone()];
                cfg.republish = Some(jetstream::stream::Republish {
                    source: subject,
                    destination: subject::live_subject(name),
                    headers_only: false,
                });
                let found = find_or_create(jet.js().clone(), cfg)
                    .await
                    .map_err(unavailable)?;
                if found.retention != r && !found.sealed {
                    update(jet.js().clone(), stream.clone(), move |c| set_limits(c, r))
                        .await
                        .map_err(unavailable)?;
                }
                found
            }
            None => match jet.js().get_stream(&stream).await {
                Ok(s) => {
                    let info = s.cached_info();
                    crate::store::nats::topic::Found {
                        last_seq: info.state.last_sequence,
                        sealed: info.config.sealed,
                        retention: crate::store::nats::topic::retention_of(&info.config),
                        description: None,
                    }
                }
                Err(e) if e.to_string().contains("not found") => {
                    return Err(BrokerError::new(
                        ErrorCode::NotFound,
                        format!("no retained topic `{name}`"),
                    ))
                }
                Err(e) => return Err(unavailable(e)),
            },
        };
        let topic = Arc::new(SharedTopic {
            jet,
            client: self
                .client()
                .cloned()
                .ok_or_else(|| unavailable("no link"))?,
            name: name.to_string(),
            stream,
            sealed: AtomicBool::new(found.sealed),
            retention: Mutex::new(retention.unwrap_or(found.retention)),
            counts: Mutex::new((0, 0, found.last_seq)),
            work: shared.work.clone(),
        });
        let topic = shared
            .topics
            .lock()
            .entry(name.to_string())
            .or_insert(topic)
            .clone();
        if retention.is_some() {
            topic.notice().say("declared").await;
        }
        Ok(topic)
    }

    /// Publishes a message of retained topic `name` through JetStream, after
    /// every one this node handed over before; `done` gets its seq once stored.
    pub(crate) fn publish_retained(
        &self,
        name: &str,
        time: u64,
        data: &str,
        headers: Option<&Headers>,
        done: Option<Done>,
    ) {
        let payload = subject::encode(time, data, headers);
        self.queued.fetch_add(payload.len(), Ordering::Relaxed);
        let write = Write {
            subject: subject::topic_subject(name),
            time,
            payload,
            done,
        };
        if let Err(mpsc::error::SendError(write)) = self.retained.writes.send(write) {
            self.queued
                .fetch_sub(write.payload.len(), Ordering::Relaxed);
            if let Some(done) = write.done {
                done(Err(unavailable("the node is shutting down")));
            }
        }
    }

    /// Forgets retained topic `name` here (it was deleted).
    pub(crate) fn forget_retained(&self, name: &str) {
        self.retained.topics.lock().remove(name);
    }
}

impl SharedTopic {
    /// What tells the other nodes of this topic.
    fn notice(&self) -> Notice {
        Notice {
            client: self.client.clone(),
            name: self.name.clone(),
        }
    }

    /// Counts message `seq` (of `bytes`) as stored, until the next resync reads
    /// the stream's own counts: a `peek` right after a `pub` sees it.
    fn saw(&self, seq: u64, bytes: usize) {
        let mut counts = self.counts.lock();
        if seq > counts.2 {
            counts.0 += 1;
            counts.1 += bytes as u64;
            counts.2 = seq;
        }
    }

    /// Reads the stream from `from`: each message's seq, time and its payload as
    /// published (`subject::encode`).
    fn raw(&self, from: ReadFrom) -> TopicReader {
        reader(&self.jet, &self.stream, from)
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: stream_path(&self.stream),
        }
    }
}

impl TopicStore for SharedTopic {
    fn append(&self, _time_ms: u64, _body: &[u8]) -> Result<Appended, StoreError> {
        // Appends go through the cluster (`Cluster::publish_retained`), which
        // learns the seq from the stream.
        Err(StoreError::Failed {
            path: stream_path(&self.stream),
            cause: "a retained topic of the cluster is appended through NATS".into(),
        })
    }

    fn read(&self, from: ReadFrom) -> TopicReader {
        let name = self.name.clone();
        let path = stream_path(&self.stream);
        Box::new(self.raw(from).map(move |item| {
            let m = item?;
            let Some(remote) = subject::decode(&m.body) else {
                return Err(StoreError::Corrupt {
                    path: path.clone(),
                    offset: m.seq,
                    skipped: m.body.len() as u64,
                    reason: "not a Switchyard message".into(),
                });
            };
            let mut body = String::new();
            event::msg_body(
                &mut body,
                &name,
                m.seq,
                remote.time,
                &remote.data,
                remote.headers.as_ref(),
            );
            Ok(StoredMessage {
                seq: m.seq,
                time_ms: remote.time,
                body: Bytes::from(body),
            })
        }))
    }

    fn set_retention(&self, retention: Retention) -> Result<(), StoreError> {
        let mut current = self.retention.lock();
        if *current == retention || self.sealed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.jet
            .wait(update(
                self.jet.js().clone(),
                self.stream.clone(),
                move |c| set_limits(c, retention),
            ))?
            .map_err(|e| nats_err("setting the limits of", &self.stream, e))?;
        *current = retention;
        Ok(())
    }

    fn apply_retention(&self, _now_ms: u64) -> Result<RetentionOutcome, StoreError> {
        // JetStream applies the limits itself.
        Ok(RetentionOutcome::default())
    }

    /// Seals the stream; the ticket resolves once this node has handed on every
    /// message stored before the seal (so its subscribers get `end` after them).
    fn seal(&self) -> Result<Ticket, StoreError> {
        if self.sealed.swap(true, Ordering::AcqRel) {
            return Ok(Ticket::ready(Ok(())));
        }
        let (done, ticket) = Ticket::pending(stream_path(&self.stream).into());
        let (js, stream, name) = (
            self.jet.js().clone(),
            self.stream.clone(),
            self.name.clone(),
        );
        let work = self.work.clone();
        let notice = self.notice();
        self.jet.handle().spawn(async move {
            let sealed = async {
                update(js.clone(), stream.clone(), |c| c.sealed = true).await?;
                let s = js.get_stream(&stream).await.map_err(|e| e.to_string())?;
                Ok::<u64, String>(s.cached_info().state.last_sequence)
            };
            match sealed.await {
                Ok(last) => {
                    notice.say("sealed").await;
                    if let Err(mpsc::error::SendError(Work::Sealed { done, .. })) =
                        work.send(Work::Sealed { name, last, done })
                    {
                        done.resolve(Ok(()));
                    }
                }
                Err(e) => done.resolve(Err(nats_err("sealing", &stream, e))),
            }
        });
        Ok(ticket)
    }

    fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    fn sync(&self) -> Ticket {
        // What was handed on is stored: the stream republishes only that.
        Ticket::ready(Ok(()))
    }

    fn stats(&self) -> StoreStats {
        let (messages, bytes, last) = *self.counts.lock();
        StoreStats {
            messages,
            bytes,
            segments: 0,
            corrupt: 0,
            next_seq: last + 1,
        }
    }

    fn delete(&self) -> Ticket {
        let (js, stream) = (self.jet.js().clone(), self.stream.clone());
        let deleted = self.jet.wait(async move {
            match js.delete_stream(&stream).await {
                Ok(_) => Ok(()),
                Err(e) if e.to_string().contains("not found") => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        });
        let result = match deleted {
            Ok(Ok(())) => {
                let notice = self.notice();
                self.jet
                    .handle()
                    .spawn(async move { notice.say("deleted").await });
                Ok(())
            }
            Ok(Err(e)) => Err(nats_err("deleting", &self.stream, e)),
            Err(_) => Err(self.closed()),
        };
        Ticket::ready(result)
    }
}

/// Tells the other nodes that a retained topic was declared, sealed or
/// deleted: core NATS, at most once (each node's resync catches what a lost
/// notice said).
struct Notice {
    client: async_nats::Client,
    name: String,
}

impl Notice {
    async fn say(&self, what: &str) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(NOTICE_HEADER, what);
        let subject = subject::live_subject(&self.name);
        let _ = self
            .client
            .publish_with_headers(subject, headers, Bytes::new())
            .await;
        let _ = self.client.flush().await;
    }
}

/// Publishes retained messages in the order handed over, and answers each on
/// its ack, in the same order.
async fn write(
    cluster: Arc<Cluster>,
    js: jetstream::Context,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<(PublishAckFuture, Option<Done>)>();
    tokio::spawn(async move {
        // Awaited together (each ack's timeout runs from when it is awaited, so
        // acks lost with a server must not time out one after another), and
        // answered in order.
        let mut pending = FuturesOrdered::new();
        let answer = |(result, done): (Result<_, _>, Option<Done>)| {
            if let Some(done) = done {
                done(
                    result
                        .map(|a: jetstream::publish::PublishAck| a.sequence)
                        .map_err(refused),
                );
            }
        };
        loop {
            tokio::select! {
                got = acks_rx.recv() => match got {
                    Some((ack, done)) => pending.push_back(async move { (ack.await, done) }),
                    None => break,
                },
                Some(settled) = pending.next(), if !pending.is_empty() => answer(settled),
            }
        }
        while let Some(settled) = pending.next().await {
            answer(settled);
        }
    });
    while let Some(w) = rx.recv().await {
        let bytes = w.payload.len();
        let msg = PublishMessage::build()
            .payload(w.payload)
            .header(TIME_HEADER, w.time.to_string().as_str());
        match js.send_publish(w.subject, msg).await {
            Ok(ack) => {
                let _ = acks_tx.send((ack, w.done));
            }
            Err(e) => {
                if let Some(done) = w.done {
                    done(Err(refused(e)));
                }
            }
        }
        cluster.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The error for a publish JetStream did not store.
fn refused(e: impl std::fmt::Display) -> BrokerError {
    let text = e.to_string();
    if text.contains("sealed") {
        BrokerError::new(ErrorCode::Sealed, "the topic is sealed")
    } else {
        BrokerError::new(
            ErrorCode::Unavailable,
            format!("not stored by JetStream: {text}"),
        )
    }
}

/// Writes and hands on this node's retained messages, and keeps its list of
/// retained topics true: started once the node is connected.
pub(super) async fn run(
    cluster: Arc<Cluster>,
    client: async_nats::Client,
    sink: Weak<dyn RemoteSink>,
) {
    let Some((writes, mut work)) = cluster.retained.receivers.lock().take() else {
        return;
    };
    let jet = Jet::on(
        tokio::runtime::Handle::current(),
        jetstream::new(client.clone()),
        super::queue::MAX_REPLICAS,
    );
    let _ = cluster.retained.jet.set(jet.clone());
    tokio::spawn(write(cluster.clone(), jet.js().clone(), writes));
    let mut live = loop {
        match client.subscribe(subject::LIVE_ALL.to_string()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!("NATS subscribe {}: {e}", subject::LIVE_ALL);
                tokio::time::sleep(RESYNC_EVERY).await;
            }
        }
    };
    let hand = Hand {
        cluster: cluster.clone(),
        sink,
    };
    hand.list().await;
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            msg = live.next() => {
                let Some(msg) = msg else { break };
                if !hand.live(msg).await {
                    return;
                }
            }
            Some(w) = work.recv() => match w {
                Work::Sealed { name, last, done } => {
                    hand.fill(&name, last).await;
                    done.resolve(Ok(()));
                }
            },
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(LIST_EVERY) {
                    hand.list().await;
                }
                hand.resync(&mut seen).await;
            }
        }
    }
}

/// Hands retained messages to this node's subscriptions.
struct Hand {
    cluster: Arc<Cluster>,
    sink: Weak<dyn RemoteSink>,
}

impl Hand {
    fn sink(&self) -> Option<Arc<dyn RemoteSink>> {
        self.sink.upgrade()
    }

    /// A message on `switchyard.rlive.>`; false once the broker is gone.
    async fn live(&self, msg: async_nats::Message) -> bool {
        let Some(name) = subject::live_topic(&msg.subject) else {
            return true;
        };
        let header = |h: &str| {
            msg.headers
                .as_ref()
                .and_then(|hs| hs.get(h))
                .map(|v| v.as_str().to_string())
        };
        if let Some(notice) = header(NOTICE_HEADER) {
            match notice.as_str() {
                "declared" => {
                    self.learn(name, None).await;
                }
                "sealed" | "deleted" => {
                    self.check(name, None).await;
                }
                _ => {}
            }
            return self.sink().is_some();
        }
        let Some(seq) = header(SEQ_HEADER).and_then(|s| s.parse::<u64>().ok()) else {
            return true;
        };
        let Some(remote) = subject::decode(&msg.payload) else {
            tracing::debug!(
                "NATS: a message on {} is not a Switchyard message",
                msg.subject
            );
            return true;
        };
        let Some(sink) = self.sink() else {
            return false;
        };
        if let Some(store) = self.cluster.retained.get(name) {
            store.saw(seq, msg.payload.len());
        }
        match sink.deliver_retained(name, seq, &remote, false) {
            Heard::Delivered => {}
            Heard::Unknown => {
                // Learnt from its first message: this one is the first handed on.
                if self.learn(name, Some(seq.saturating_sub(1))).await {
                    sink.deliver_retained(name, seq, &remote, true);
                }
            }
            Heard::Gap(_) => {
                self.fill(name, seq.saturating_sub(1)).await;
                sink.deliver_retained(name, seq, &remote, true);
            }
        }
        true
    }

    /// Opens a retained topic another node made and makes it this node's
    /// (handing on messages after `heard`, or after the stream's last).
    async fn learn(&self, name: &str, heard: Option<u64>) -> bool {
        let Some(sink) = self.sink() else {
            return false;
        };
        if sink.heard(name).is_some() {
            return true;
        }
        match self.cluster.open_retained(name, None).await {
            Ok(store) => {
                sink.retain_shared(name, store, heard);
                true
            }
            Err(e) => {
                tracing::debug!("retained topic {name}: {e}");
                false
            }
        }
    }

    /// Hands on what this node has not of `name` up to seq `to`, from the stream.
    async fn fill(&self, name: &str, to: u64) {
        let (Some(sink), Some(store)) = (self.sink(), self.cluster.retained.get(name)) else {
            return;
        };
        let Some(heard) = sink.heard(name) else {
            return;
        };
        if heard >= to {
            return;
        }
        let raw = store.raw(ReadFrom::Seq(heard + 1));
        let read = tokio::task::spawn_blocking(move || {
            raw.filter_map(Result::ok)
                .take_while(|m| m.seq <= to)
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(msgs) = read else { return };
        for m in msgs {
            if let Some(remote) = subject::decode(&m.body) {
                sink.deliver_retained(name, m.seq, &remote, true);
            }
        }
    }

    /// Learns every retained topic the cluster has (its `SY_T_` streams).
    async fn list(&self) {
        let Some(jet) = self.cluster.retained.jet.get().cloned() else {
            return;
        };
        let mut names = jet.js().stream_names();
        let mut streams = Vec::new();
        loop {
            match names.next().await {
                Some(Ok(stream)) if stream.starts_with(subject::TOPIC_STREAM_PREFIX) => {
                    streams.push(stream)
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // Tried again at the next listing; the node serves meanwhile.
                    tracing::warn!("NATS: listing the retained topics' streams: {e}");
                    break;
                }
                None => break,
            }
        }
        for stream in streams {
            let Ok(s) = jet.js().get_stream(&stream).await else {
                continue;
            };
            let Some(name) = s
                .cached_info()
                .config
                .description
                .as_deref()
                .and_then(crate::store::nats::described_name)
            else {
                continue;
            };
            if subject::stream_name(subject::TOPIC_STREAM_PREFIX, &name) == stream {
                self.learn(&name, None).await;
            }
        }
        self.cluster.retained.listed.store(true, Ordering::Release);
    }

    /// Reads every retained topic's stream state (see [`Hand::check`]).
    async fn resync(&self, seen: &mut HashMap<String, u64>) {
        let names: Vec<String> = self
            .cluster
            .retained
            .topics
            .lock()
            .keys()
            .cloned()
            .collect();
        seen.retain(|n, _| names.contains(n));
        for name in names {
            let before = seen.get(&name).copied();
            if let Some(last) = self.check(&name, before).await {
                seen.insert(name, last);
            }
        }
    }

    /// Reads `name`'s stream: its counts; sealed there → sealed here, after
    /// every message before it; gone → deleted here; messages up to `before`
    /// (its last seq a resync ago) not come yet → read from it. Its last seq.
    async fn check(&self, name: &str, before: Option<u64>) -> Option<u64> {
        let store = self.cluster.retained.get(name)?;
        let sink = self.sink()?;
        match store.jet.js().get_stream(&store.stream).await {
            Ok(s) => {
                let info = s.cached_info();
                let last = info.state.last_sequence;
                *store.counts.lock() = (info.state.messages, info.state.bytes, last);
                if info.config.sealed {
                    if !store.sealed.swap(true, Ordering::AcqRel) {
                        self.fill(name, last).await;
                        sink.seal_shared(name);
                    }
                } else if let Some(before) = before {
                    self.fill(name, before).await;
                }
                Some(last)
            }
            Err(e) if e.to_string().contains("not found") => {
                self.cluster.forget_retained(name);
                sink.delete_shared(name);
                None
            }
            Err(e) => {
                tracing::debug!("retained topic {name}: {e}");
                None
            }
        }
    }
}
