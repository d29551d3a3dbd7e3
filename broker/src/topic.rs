//! Topics: fan-out of published messages to every matching subscription.
//!
//! Subscriptions live in a subject trie. Each topic caches the list of subscriptions
//! that match it, tagged with the trie's generation; a `sub` or `unsub` bumps the
//! generation and the next publish to a topic rebuilds its list. A publish takes only
//! its topic's lock (to keep seq order and delivery order the same), serializes the
//! message once, and pushes a shared handle into each subscriber's outbound buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::command::TailMessage;
use crate::error::BrokerError;
use crate::filter::{Filter, MessageView};
use crate::names::SubjectTrie;
use crate::outbound::OutItem;
use crate::protocol::{event, ErrorCode, Headers, Payload};
use crate::session::Session;
use crate::stats::TopicStats;
use crate::time::now_ms;

/// Where a subscription's deliveries go.
pub(crate) enum Target {
    /// A connected client.
    Session(Arc<Session>),
    /// An in-process tail (the dashboard's topic view).
    Tail(Arc<TailBuffer>),
}

/// One `sub`: a pattern, an optional filter, and where matches go.
pub(crate) struct Subscription {
    /// Unique across the broker, to find this subscription in the trie.
    pub(crate) key: u64,
    pub(crate) sid: String,
    pub(crate) pattern: String,
    /// `{"ev":"msg","sid":"s1",`, built once.
    head: Arc<str>,
    filter: Option<Filter>,
    target: Target,
}

impl Subscription {
    pub(crate) fn new(
        key: u64,
        sid: String,
        pattern: String,
        filter: Option<Filter>,
        target: Target,
    ) -> Self {
        Subscription {
            key,
            head: Arc::from(event::msg_head(&sid)),
            sid,
            pattern,
            filter,
            target,
        }
    }

    pub(crate) fn filter_text(&self) -> Option<String> {
        self.filter.as_ref().map(|f| f.source().to_string())
    }
}

/// A bounded buffer of messages for an in-process tail; the oldest are dropped when full.
pub struct TailBuffer {
    messages: Mutex<VecDeque<TailMessage>>,
    capacity: usize,
}

impl TailBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        TailBuffer {
            messages: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    fn push(&self, message: TailMessage) {
        let mut messages = self.messages.lock();
        if messages.len() == self.capacity {
            messages.pop_front();
        }
        messages.push_back(message);
    }

    /// Takes up to `max` messages, oldest first.
    pub fn drain(&self, max: usize) -> Vec<TailMessage> {
        let mut messages = self.messages.lock();
        let n = max.min(messages.len());
        messages.drain(..n).collect()
    }
}

/// One topic's counters and publish state.
pub(crate) struct Topic {
    name: Arc<str>,
    state: Mutex<TopicState>,
    msgs_in: AtomicU64,
    msgs_out: AtomicU64,
}

struct TopicState {
    seq: u64,
    generation: u64,
    matching: Arc<[Arc<Subscription>]>,
}

/// Most topics the broker keeps counters for. Past it, topics that no subscription
/// matches are forgotten (their counters and seq start again if they come back), so
/// a client publishing to endless new names cannot grow the broker's memory.
pub(crate) const MAX_TOPICS: usize = 100_000;

/// Every topic and subscription of the broker.
pub(crate) struct Topics {
    trie: RwLock<SubjectTrie<Arc<Subscription>>>,
    /// Bumped on every change to the trie; topics compare it with their cached list's.
    generation: AtomicU64,
    by_name: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    next_key: AtomicU64,
    max_topics: usize,
}

/// The result of a publish.
pub(crate) struct Published {
    pub(crate) seq: u64,
    pub(crate) delivered: u64,
}

impl Topics {
    pub(crate) fn new() -> Self {
        Topics {
            trie: RwLock::new(SubjectTrie::new()),
            generation: AtomicU64::new(1),
            by_name: RwLock::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            max_topics: MAX_TOPICS,
        }
    }

    #[cfg(test)]
    fn with_max_topics(max_topics: usize) -> Self {
        Topics {
            max_topics,
            ..Topics::new()
        }
    }

    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        if let Some(t) = self.by_name.read().get(name) {
            return Ok(t.clone());
        }
        let mut map = self.by_name.write();
        if let Some(t) = map.get(name) {
            return Ok(t.clone());
        }
        if map.len() >= self.max_topics {
            let trie = self.trie.read();
            map.retain(|name, _| trie.count_matches(name) > 0);
            if map.len() >= self.max_topics {
                return Err(BrokerError::new(
                    ErrorCode::Limit,
                    format!("the broker tracks {} topics, all subscribed to", map.len()),
                ));
            }
        }
        let topic = Arc::new(Topic {
            name: Arc::from(name),
            state: Mutex::new(TopicState {
                seq: 0,
                generation: 0,
                matching: Arc::from(Vec::new()),
            }),
            msgs_in: AtomicU64::new(0),
            msgs_out: AtomicU64::new(0),
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
            let _ = self.topic(&sub.pattern);
        }
        let mut trie = self.trie.write();
        trie.insert(&sub.pattern.clone(), sub);
        self.generation.fetch_add(1, Ordering::SeqCst);
        added();
    }

    pub(crate) fn unsubscribe(&self, sub: &Subscription) {
        let key = sub.key;
        self.trie.write().remove(&sub.pattern, |s| s.key == key);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Accepts a message on a topic (its name already checked) and delivers it.
    pub(crate) fn publish(
        &self,
        name: &str,
        data: &Payload,
        headers: Option<&Headers>,
    ) -> Result<Published, BrokerError> {
        let topic = self.topic(name)?;
        let mut state = topic.state.lock();
        let generation = self.generation.load(Ordering::SeqCst);
        if state.generation != generation {
            let mut matching = Vec::new();
            self.trie.read().matches_into(name, &mut matching);
            state.matching = Arc::from(matching);
            state.generation = generation;
        }
        state.seq += 1;
        let seq = state.seq;
        let time = now_ms();
        topic.msgs_in.fetch_add(1, Ordering::Relaxed);
        let mut delivered = 0;
        if !state.matching.is_empty() {
            // Arc<String> shares the serialized body without copying it again.
            let body = Arc::new(event::msg_body(name, seq, time, data, headers));
            // Parsed at most once, and only if a filter looks into `data`.
            let view = MessageView::new(name, headers, data.as_json());
            for sub in state.matching.iter() {
                if let Some(filter) = &sub.filter {
                    if !filter.matches(&view) {
                        continue;
                    }
                }
                match &sub.target {
                    Target::Session(session) => {
                        let item = OutItem::Msg {
                            head: sub.head.clone(),
                            body: body.clone(),
                        };
                        if session.push(item).is_ok() {
                            delivered += 1;
                        }
                    }
                    Target::Tail(tail) => tail.push(TailMessage {
                        topic: name.to_string(),
                        seq,
                        time,
                        data: data.to_value(),
                        headers: headers.cloned(),
                    }),
                }
            }
        }
        drop(state);
        topic.msgs_out.fetch_add(delivered, Ordering::Relaxed);
        Ok(Published { seq, delivered })
    }

    pub(crate) fn stats(&self) -> Vec<TopicStats> {
        let topics: Vec<Arc<Topic>> = self.by_name.read().values().cloned().collect();
        let trie = self.trie.read();
        let mut out: Vec<TopicStats> = topics
            .iter()
            .map(|t| TopicStats {
                name: t.name.to_string(),
                subscribers: trie.count_matches(&t.name) as u64,
                msgs_in: t.msgs_in.load(Ordering::Relaxed),
                msgs_out: t.msgs_out.load(Ordering::Relaxed),
                retained: false,
                stored: 0,
                stored_bytes: 0,
                sealed: false,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_sub(topics: &Topics, pattern: &str) -> Arc<TailBuffer> {
        let buffer = Arc::new(TailBuffer::new(10));
        let sub = Subscription::new(
            topics.next_key(),
            "t".into(),
            pattern.into(),
            None,
            Target::Tail(buffer.clone()),
        );
        topics.subscribe(Arc::new(sub), || {});
        buffer
    }

    #[test]
    fn unsubscribed_topics_are_forgotten_at_the_cap() {
        let topics = Topics::with_max_topics(3);
        let data = Payload::from_value(&serde_json::json!(1));
        let kept = tail_sub(&topics, "kept");
        for name in ["a", "b"] {
            topics.publish(name, &data, None).unwrap();
        }
        assert_eq!(topics.stats().len(), 3);
        // A fourth topic: the two nobody listens to are dropped, `kept` stays.
        topics.publish("c", &data, None).unwrap();
        let names: Vec<String> = topics.stats().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["c", "kept"]);
        topics.publish("kept", &data, None).unwrap();
        assert_eq!(kept.drain(10).len(), 1);
        // When every tracked topic is subscribed to, a new one is refused.
        let _x = tail_sub(&topics, "c");
        let _y = tail_sub(&topics, "d");
        let err = topics.publish("e", &data, None).err().unwrap();
        assert_eq!(err.code, ErrorCode::Limit);
    }
}
