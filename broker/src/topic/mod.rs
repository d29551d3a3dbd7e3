//! Topics: fan-out of published messages to every matching subscription. The
//! subscriptions themselves are in `subscription.rs`; retained topics, which keep
//! their messages in a log to be replayed, in `retained.rs`.
//!
//! Subscriptions live in a subject trie. Each topic caches the list of subscriptions
//! that match it, tagged with the trie's generation; a `sub` or `unsub` bumps the
//! generation and the next publish to a topic rebuilds its list. A publish takes only
//! its topic's lock (to keep seq order and delivery order the same), serializes the
//! message once, evaluates filters, and copies it into each matching subscriber's
//! outbound buffer. A run of messages to one topic (consecutive pubs in a frame)
//! goes through under one lock, with one push per subscriber.
//!
//! A retained topic appends each message to its store under the same lock, and a
//! per-topic task delivers messages in seq order only once they are durable (an
//! unconfirmed seq may be reused after a crash, so nobody may see it before). A
//! subscription with `from` first replays the log up to the seq where it joined,
//! while live messages for it wait in its backlog: no gap, no duplicate.

mod retained;
mod subscription;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use crate::activity::Activity;
use crate::cluster::retained::Heard;
use crate::cluster::Cluster;
use crate::error::{BrokerError, ErrorCode};
use crate::filter::MessageView;
use crate::names::SubjectTrie;
use crate::page::{SubscriberStats, TopicPage};
use crate::protocol::{event, Headers};
use crate::stats::TopicStats;
use crate::store::TopicStore;
use retained::Deferred;
use subscription::Delivery;
pub(crate) use subscription::{Subscription, TailBuffer, Target};

thread_local! {
    /// Where a publish builds its delivery, copied from there into each subscriber's
    /// buffer: reused, so a publish allocates nothing.
    static SCRATCH: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

/// Adds to a counter that only one writer at a time changes (its owner's lock is
/// held): a plain store, not an atomic add, on the publish path.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// What is called with the outcome of a publish: its seq once delivered (for a
/// retained topic, once durable), or why it failed.
pub(crate) type Done = Box<dyn FnOnce(Result<u64, BrokerError>) + Send>;

/// A connection's last topic, so a publisher that keeps to one topic skips the
/// broker-wide name lookup.
pub(crate) type TopicCache = Option<Arc<Topic>>;

/// One topic's counters and publish state.
pub(crate) struct Topic {
    name: Arc<str>,
    state: Mutex<TopicState>,
    /// Written only under the state lock (a plain store), read without it.
    msgs_in: AtomicU64,
    msgs_out: AtomicU64,
    /// Bytes of messages accepted on a retained topic and not yet delivered (they
    /// wait for their fsync in the delivery task's channel).
    deferred_bytes: AtomicUsize,
    /// Removed from the broker (deleted, or forgotten at the cap): a [`TopicCache`]
    /// holding it must look the name up again.
    gone: AtomicBool,
}

struct TopicState {
    seq: u64,
    /// The time of the last message: times never go back along seqs, whatever the
    /// wall clock or the publishers' clock readings do.
    last_time: u64,
    generation: u64,
    matching: Arc<[Arc<Subscription>]>,
    sealed: bool,
    /// The log of a retained topic.
    store: Option<Arc<dyn TopicStore>>,
    /// The retained topic's delivery task. Unbounded as a channel, bounded in
    /// bytes: an append is refused (`limit`) while [`Topic::deferred_bytes`] is
    /// over [`retained::MAX_DEFERRED_BYTES`], so a stalled disk cannot grow it without end.
    deferred: Option<mpsc::UnboundedSender<Deferred>>,
}

/// Every topic and subscription of the broker.
pub(crate) struct Topics {
    trie: RwLock<SubjectTrie<Arc<Subscription>>>,
    /// Bumped on every change to the trie; topics compare it with their cached list's.
    generation: AtomicU64,
    by_name: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    next_key: AtomicU64,
    max_topics: usize,
    activity: Arc<Activity>,
    runtime: tokio::runtime::Handle,
    /// With `--nats`: told of every pattern subscribed and let go, so this node
    /// holds NATS subscriptions for exactly its clients' patterns.
    cluster: Option<Arc<Cluster>>,
}

/// Most topics the broker keeps counters for, by default (`max_topics`). Past
/// it, topics that no subscription matches (and that are not retained) are
/// forgotten, so a client publishing to endless new names cannot grow the
/// broker's memory.
pub const MAX_TOPICS: usize = 100_000;

impl Topic {
    fn refresh_matching(&self, state: &mut TopicState, topics: &Topics) {
        let generation = topics.generation.load(Ordering::SeqCst);
        if state.generation != generation {
            let mut matching = Vec::new();
            topics.trie.read().matches_into(&self.name, &mut matching);
            state.matching = Arc::from(matching);
            state.generation = generation;
        }
    }

    /// Tells every matching subscription that the topic ended.
    fn end_all(&self, topics: &Topics) {
        let mut state = self.state.lock();
        self.refresh_matching(&mut state, topics);
        for sub in state.matching.iter() {
            sub.end(&self.name);
        }
    }

    /// Builds one message's delivery and hands it to the matching subscriptions
    /// (only those of `pattern`, if given) that its filter passes; how many took it.
    fn deliver_one(
        &self,
        state: &TopicState,
        seq: u64,
        time: u64,
        data: &str,
        headers: Option<&Headers>,
        pattern: Option<&str>,
    ) -> u64 {
        let name = &*self.name;
        let mut body = SCRATCH.take();
        body.clear();
        let data_at = event::msg_body(&mut body, name, seq, time, data, headers);
        let delivery = Delivery {
            topic: name,
            seq,
            time,
            body: &body,
            data: &body[data_at],
            headers,
        };
        let view = MessageView::new(name, headers, delivery.data);
        let delivered = state
            .matching
            .iter()
            .filter(|s| pattern.is_none_or(|p| s.pattern == p) && !s.hides(name))
            .filter(|s| s.filter.as_ref().is_none_or(|f| f.matches(&view)))
            .filter(|s| s.deliver(&delivery))
            .count() as u64;
        self.msgs_out.fetch_add(delivered, Ordering::Relaxed);
        drop(view);
        SCRATCH.set(body);
        delivered
    }

    pub(crate) fn store(&self) -> Option<Arc<dyn TopicStore>> {
        self.state.lock().store.clone()
    }
}

impl Topics {
    /// These topics, keeping counters for at most `max` of them.
    pub(crate) fn with_max_topics(mut self, max: usize) -> Self {
        self.max_topics = max;
        self
    }

    /// These topics, telling `cluster` (with `--nats`) which patterns are held.
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    pub(crate) fn new(activity: Arc<Activity>, runtime: tokio::runtime::Handle) -> Self {
        Topics {
            trie: RwLock::new(SubjectTrie::new()),
            generation: AtomicU64::new(1),
            by_name: RwLock::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            max_topics: MAX_TOPICS,
            activity,
            runtime,
            cluster: None,
        }
    }

    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().get(name).cloned()
    }

    /// The topic of that name, from `cache` if it holds it, else looked up (and
    /// created if needed) and kept there.
    fn cached<'c>(
        &self,
        name: &str,
        cache: &'c mut TopicCache,
    ) -> Result<&'c Arc<Topic>, BrokerError> {
        let hit = matches!(cache, Some(t) if *t.name == *name && !t.gone.load(Ordering::Acquire));
        if !hit {
            *cache = None;
        }
        match cache {
            Some(t) => Ok(t),
            None => Ok(cache.insert(self.topic(name)?)),
        }
    }

    /// The topic of that name, created if needed.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        if let Some(t) = self.by_name.read().get(name) {
            return Ok(t.clone());
        }
        let mut map = self.by_name.write();
        if let Some(t) = map.get(name) {
            return Ok(t.clone());
        }
        if map.len() >= self.max_topics {
            // Which names no subscription matches, with the trie's guard let go
            // before any topic's lock is taken: a publish holds its topic's lock
            // and then reads the trie, so the other order could deadlock.
            let unmatched: std::collections::HashSet<Arc<str>> = {
                let trie = self.trie.read();
                map.keys()
                    .filter(|name| trie.count_matches(name) == 0)
                    .cloned()
                    .collect()
            };
            map.retain(|name, t| {
                let keep = !unmatched.contains(name) || t.state.lock().store.is_some();
                if !keep {
                    t.gone.store(true, Ordering::Release);
                }
                keep
            });
            if map.len() >= self.max_topics {
                return Err(BrokerError::new(
                    ErrorCode::Limit,
                    format!("the broker tracks {} topics, all in use", map.len()),
                ));
            }
        }
        let topic = Arc::new(Topic {
            name: Arc::from(name),
            state: Mutex::new(TopicState {
                seq: 0,
                last_time: 0,
                generation: 0,
                matching: Arc::from(Vec::new()),
                sealed: false,
                store: None,
                deferred: None,
            }),
            msgs_in: AtomicU64::new(0),
            msgs_out: AtomicU64::new(0),
            deferred_bytes: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
        });
        map.insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    /// Adds a subscription (its pattern already checked). Every message accepted on a
    /// matching topic after this returns reaches it. `added` runs while no publish can
    /// see the new subscription yet, so what it queues precedes every delivery.
    pub(crate) fn subscribe(&self, sub: Arc<Subscription>, added: impl FnOnce()) {
        if !crate::names::is_wildcard(&sub.pattern) {
            // At the topic cap the subscription still works; it just isn't listed yet.
            if let Ok(topic) = self.topic(&sub.pattern) {
                let sealed = topic.state.lock().sealed;
                self.insert(sub.clone(), added);
                if sealed {
                    sub.end(&topic.name);
                }
                return;
            }
        }
        self.insert(sub, added);
    }

    fn insert(&self, sub: Arc<Subscription>, added: impl FnOnce()) {
        if let Some(cluster) = &self.cluster {
            cluster.hold(&sub.pattern);
        }
        let mut trie = self.trie.write();
        trie.insert(&sub.pattern.clone(), sub);
        self.generation.fetch_add(1, Ordering::SeqCst);
        added();
    }

    pub(crate) fn unsubscribe(&self, sub: &Subscription) {
        let key = sub.key;
        let removed = self
            .trie
            .write()
            .remove(&sub.pattern, |s| s.key == key)
            .is_some();
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let (Some(cluster), true) = (&self.cluster, removed) {
            cluster.release(&sub.pattern);
        }
    }

    /// Runs `f` on the topic named `name` (from `cache` while current), under its
    /// lock, with its subscription list up to date; a sealed topic is refused.
    fn publishing<R>(
        &self,
        name: &str,
        cache: &mut TopicCache,
        f: impl FnOnce(&Topic, &mut TopicState) -> Result<R, BrokerError>,
    ) -> Result<R, BrokerError> {
        let mut topic = self.cached(name, cache)?;
        let mut state = topic.state.lock();
        if topic.gone.load(Ordering::Acquire) {
            // Removed since the cache was checked: look the name up afresh.
            drop(state);
            *cache = None;
            topic = self.cached(name, cache)?;
            state = topic.state.lock();
        }
        if state.sealed {
            return Err(BrokerError::new(
                ErrorCode::Sealed,
                format!("topic `{name}` is sealed"),
            ));
        }
        topic.refresh_matching(&mut state, self);
        f(topic, &mut state)
    }

    /// Accepts a message on a topic (its name already checked). `done` gets the seq
    /// once the message is delivered (for a retained topic, once it is durable).
    /// Returns how many deliveries were made at once.
    pub(crate) fn publish(
        &self,
        name: &str,
        data: &str,
        headers: Option<&Headers>,
        done: Option<Done>,
        now: u64,
        cache: &mut TopicCache,
    ) -> Result<u64, BrokerError> {
        let mut done = done;
        let (seq, delivered) = self.publishing(name, cache, |topic, state| {
            match (&state.store, &state.deferred, &self.cluster) {
                (Some(_), _, Some(cluster)) => {
                    // The cluster's stream: stored through JetStream, handed on
                    // (to this node's subscriptions too) once stored.
                    cluster.publish_retained(name, now, data, headers, done.take());
                    bump(&topic.msgs_in, 1);
                    Ok((None, 0))
                }
                (Some(store), Some(tx), None) => {
                    let (store, tx) = (store.clone(), tx.clone());
                    let (accepted, durable) =
                        self.append(topic, state, &*store, name, data, headers, now)?;
                    // Delivered later, once durable, and confirmed then.
                    let _ = tx.send(Deferred::Msg {
                        accepted,
                        durable,
                        done: done.take(),
                    });
                    Ok((None, 0))
                }
                _ => {
                    let (first, delivered) =
                        self.deliver_now(topic, state, name, &[(data, headers)], now);
                    Ok((Some(first), delivered))
                }
            }
        })?;
        if let Some(seq) = seq {
            if let Some(cluster) = &self.cluster {
                cluster.forward(name, now, &[(data, headers)]);
            }
            if let Some(done) = done {
                done(Ok(seq));
            }
        }
        Ok(delivered)
    }

    /// Accepts a run of messages on one topic (its name already checked) in one go:
    /// one lock, and one push per subscriber for all of them. Returns how many
    /// deliveries were made, or None if the topic is retained (each message then
    /// goes through [`Topics::publish`], to be stored and confirmed on its own).
    pub(crate) fn publish_many(
        &self,
        name: &str,
        msgs: &[(&str, Option<&Headers>)],
        now: u64,
        cache: &mut TopicCache,
    ) -> Result<Option<u64>, BrokerError> {
        let delivered = self.publishing(name, cache, |topic, state| {
            if state.store.is_some() {
                return Ok(None);
            }
            Ok(Some(self.deliver_now(topic, state, name, msgs, now).1))
        })?;
        if let (Some(_), Some(cluster)) = (delivered, &self.cluster) {
            cluster.forward(name, now, msgs);
        }
        Ok(delivered)
    }

    /// Takes messages on a topic that keeps none and delivers them at once, under
    /// its lock: each built once, one after another in a reused buffer, then one
    /// push per subscriber for all it passes. Returns the first seq and how many
    /// deliveries were made.
    fn deliver_now(
        &self,
        topic: &Topic,
        state: &mut TopicState,
        name: &str,
        msgs: &[(&str, Option<&Headers>)],
        now: u64,
    ) -> (u64, u64) {
        let first = state.seq + 1;
        let time = now.max(state.last_time);
        state.seq += msgs.len() as u64;
        state.last_time = time;
        bump(&topic.msgs_in, msgs.len() as u64);
        if state.matching.is_empty() {
            return (first, 0);
        }
        if let [(data, headers)] = msgs {
            // One message (a frame of one pub, as most clients send): no lists.
            return (
                first,
                topic.deliver_one(state, first, time, data, *headers, None),
            );
        }
        let mut buf = SCRATCH.take();
        buf.clear();
        let mut spans = Vec::with_capacity(msgs.len());
        for (seq, (data, headers)) in (first..).zip(msgs) {
            let start = buf.len();
            let data_at = event::msg_body(&mut buf, name, seq, time, data, *headers);
            spans.push((start..buf.len(), data_at));
        }
        let deliveries: Vec<Delivery> = (first..)
            .zip(spans)
            .zip(msgs)
            .map(|((seq, (body, data)), (_, headers))| Delivery {
                topic: name,
                seq,
                time,
                body: &buf[body],
                data: &buf[data],
                headers: *headers,
            })
            .collect();
        // Parsed at most once per message, and only if a filter looks into `data`.
        let views: Vec<MessageView> = deliveries
            .iter()
            .map(|d| MessageView::new(name, d.headers, d.data))
            .collect();
        let delivered: u64 = state
            .matching
            .iter()
            .filter(|s| !s.hides(name))
            .map(|s| {
                s.deliver_all(&deliveries, |i| {
                    s.filter.as_ref().is_none_or(|f| f.matches(&views[i]))
                })
            })
            .sum();
        topic.msgs_out.fetch_add(delivered, Ordering::Relaxed);
        drop(views);
        drop(deliveries);
        SCRATCH.set(buf);
        (first, delivered)
    }

    /// Delivers a message another node published (it came in on this node's NATS
    /// subscription of `pattern`) to the subscriptions here whose pattern is
    /// `pattern`: NATS sends a message once per subscription, so each local
    /// subscription gets it once. It takes the next seq of this node's topic.
    /// Returns how many deliveries were made.
    pub(crate) fn deliver_remote(
        &self,
        name: &str,
        pattern: &str,
        time: u64,
        data: &str,
        headers: Option<&Headers>,
    ) -> u64 {
        // At the topic cap with every topic in use: dropped, as a `pub` here
        // would be refused.
        let Ok(topic) = self.topic(name) else {
            return 0;
        };
        let mut state = topic.state.lock();
        if state.sealed || state.store.is_some() {
            return 0;
        }
        topic.refresh_matching(&mut state, self);
        if !state.matching.iter().any(|s| s.pattern == pattern) {
            return 0;
        }
        state.seq += 1;
        let seq = state.seq;
        let time = time.max(state.last_time);
        state.last_time = time;
        topic.deliver_one(&state, seq, time, data, headers, Some(pattern))
    }

    /// Hands message `seq` of a retained topic of the cluster (its stream
    /// republished it) to this node's subscriptions of the topic: each seq once,
    /// in order; one after a gap only with `force` (the gap read or gone).
    pub(crate) fn deliver_retained(
        &self,
        name: &str,
        seq: u64,
        msg: &crate::cluster::subject::Remote,
        force: bool,
    ) -> (Heard, u64) {
        let Some(topic) = self.get(name) else {
            return (Heard::Unknown, 0);
        };
        let mut state = topic.state.lock();
        if state.store.is_none() {
            return (Heard::Unknown, 0);
        }
        if seq <= state.seq {
            return (Heard::Delivered, 0);
        }
        if seq > state.seq + 1 && !force {
            return (Heard::Gap(state.seq), 0);
        }
        state.seq = seq;
        state.last_time = state.last_time.max(msg.time);
        topic.refresh_matching(&mut state, self);
        if state.matching.is_empty() {
            return (Heard::Delivered, 0);
        }
        let headers = msg.headers.as_ref();
        let delivered = topic.deliver_one(&state, seq, msg.time, &msg.data, headers, None);
        (Heard::Delivered, delivered)
    }

    /// The last seq of a retained topic handed on here; None if not retained.
    pub(crate) fn heard(&self, name: &str) -> Option<u64> {
        let topic = self.get(name)?;
        let state = topic.state.lock();
        state.store.as_ref().map(|_| state.seq)
    }

    /// Sets the last seq handed on of a retained topic (learnt from a message).
    pub(crate) fn set_heard(&self, name: &str, seq: u64) {
        if let Some(topic) = self.get(name) {
            topic.state.lock().seq = seq;
        }
    }

    /// Seals a topic: later publishes fail; subscribers get `end` after every message
    /// accepted before. `done` is called once the seal holds (durably, if retained).
    pub(crate) fn seal(&self, name: &str, done: Done) -> Result<(), BrokerError> {
        let topic = self.topic(name)?;
        let mut state = topic.state.lock();
        if state.sealed {
            drop(state);
            done(Ok(0));
            return Ok(());
        }
        let durable = match &state.store {
            Some(store) => Some(store.seal()?),
            None => None,
        };
        state.sealed = true;
        match (durable, &state.deferred) {
            (Some(durable), Some(tx)) => {
                let _ = tx.send(Deferred::Seal {
                    durable,
                    done: Some(done),
                });
            }
            _ => {
                drop(state);
                topic.end_all(self);
                done(Ok(0));
            }
        }
        Ok(())
    }

    /// Removes a topic; subscribers get `end`. Returns its store to delete, if retained.
    pub(crate) fn delete(&self, name: &str) -> Result<Option<Arc<dyn TopicStore>>, BrokerError> {
        let Some(topic) = self.by_name.write().remove(name) else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no topic `{name}`"),
            ));
        };
        topic.gone.store(true, Ordering::Release);
        topic.end_all(self);
        let mut state = topic.state.lock();
        state.deferred = None;
        state.sealed = true;
        Ok(state.store.take())
    }

    /// One topic's row.
    fn stats_of(&self, t: &Topic) -> TopicStats {
        let mut state = t.state.lock();
        // The topic's cached list of matching subscriptions, rebuilt only if
        // subscriptions changed since (as the next publish would anyway):
        // no walk of the trie per topic per snapshot.
        t.refresh_matching(&mut state, self);
        let stored = state.store.as_ref().map(|s| s.stats()).unwrap_or_default();
        TopicStats {
            name: t.name.to_string(),
            subscribers: state.matching.len() as u64,
            msgs_in: t.msgs_in.load(Ordering::Relaxed),
            msgs_out: t.msgs_out.load(Ordering::Relaxed),
            retained: state.store.is_some(),
            stored: stored.messages,
            stored_bytes: stored.bytes,
            sealed: state.sealed,
        }
    }

    pub(crate) fn stats(&self) -> Vec<TopicStats> {
        let topics: Vec<Arc<Topic>> = self.by_name.read().values().cloned().collect();
        let mut out: Vec<TopicStats> = topics.iter().map(|t| self.stats_of(t)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A topic's row and the subscriptions matching it (at most
    /// [`MAX_PAGE_ROWS`], by client then sid), for `describe`.
    pub(crate) fn page(&self, name: &str) -> Result<TopicPage, BrokerError> {
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::new(ErrorCode::NotFound, format!("no topic `{name}`")))?;
        let (matching, head, retained) = {
            let mut state = topic.state.lock();
            topic.refresh_matching(&mut state, self);
            (state.matching.clone(), state.seq, state.store.is_some())
        };
        let stats = self.stats_of(&topic);
        let mut subscribers: Vec<SubscriberStats> = matching
            .iter()
            .map(|sub| {
                let replaying = sub.replaying.load(Ordering::Acquire);
                let sent = if replaying {
                    sub.replayed_to.load(Ordering::Relaxed)
                } else {
                    head
                };
                let (client, name, pending_bytes, pending_limit) = match sub.session() {
                    Some(s) => (
                        s.name_id.to_string(),
                        s.hello_name.lock().clone(),
                        s.outbound.bytes() as u64,
                        s.outbound.limit() as u64,
                    ),
                    None => ("console".to_string(), None, 0, 0),
                };
                SubscriberStats {
                    client,
                    name,
                    sid: sub.sid.clone(),
                    pattern: sub.pattern.clone(),
                    filter: sub.filter_text(),
                    pending_bytes,
                    pending_limit,
                    replaying,
                    lag: retained.then(|| head.saturating_sub(sent)),
                }
            })
            .collect();
        subscribers.sort_by(|a, b| {
            client_number(&a.client)
                .cmp(&client_number(&b.client))
                .then_with(|| a.sid.cmp(&b.sid))
        });
        subscribers.truncate(MAX_PAGE_ROWS);
        Ok(TopicPage {
            stats,
            subscribers,
            ..TopicPage::default()
        })
    }
}

/// Consumers or subscribers a page lists at most (the row's count says how many
/// there are): a page answer stays far inside any client's outbound buffer.
pub(crate) const MAX_PAGE_ROWS: usize = 1_000;

/// The number in a client id (`c42` → 42; the console's tail, 0).
fn client_number(id: &str) -> u64 {
    id.get(1..).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
