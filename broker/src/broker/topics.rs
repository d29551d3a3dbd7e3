//! Topic ops on the broker handle: publish (one message or a frame's run), subscribe
//! (live or replaying), declare, seal, delete, peek, and the in-process tail.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::{store_retention, Broker, Creator, Inner, Peer, Stream};
use crate::auth::Patterns;
use crate::command::{MessageQuery, PeekedMessage};
use crate::error::{BrokerError, ErrorCode};
use crate::filter::Filter;
use crate::names;
use crate::protocol::{Headers, ReplayFrom, Retention};
use crate::session::Session;
use crate::store::ReadFrom;

use crate::time::now_ms;
use crate::topic::{Done, Subscription, TailBuffer, Target, TopicCache};

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
        let cluster = self.inner.cluster.as_deref();
        if let Some(cluster) = cluster {
            cluster.ready(data.len())?;
        }
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
        let cluster = self.inner.cluster.as_deref();
        let batch = names::check_topic(topic)
            .and_then(|()| match cluster {
                Some(c) => c.ready(msgs.iter().map(|(d, _)| d.len()).sum()),
                None => Ok(()),
            })
            .and_then(|()| {
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
        let activity = &self.inner.activity;
        if publisher.msgs_in > 0 {
            activity
                .msgs_in
                .fetch_add(publisher.msgs_in, Ordering::Relaxed);
            if let Some(s) = session {
                s.msgs_in.fetch_add(publisher.msgs_in, Ordering::Relaxed);
            }
        }
        activity.add_out(publisher.msgs_out);
        publisher.msgs_in = 0;
        publisher.msgs_out = 0;
    }

    /// Declares a topic; with `retain`, its messages are kept on disk (and the
    /// retention limits replaced if it already was retained). A topic that becomes
    /// retained is `creator`'s (see [`Broker::take_place`]); one in memory only is
    /// nobody's, as topics past the topic count are forgotten anyway.
    pub(crate) fn declare_topic(
        &self,
        name: &str,
        retain: Option<&Retention>,
        creator: Option<&Creator>,
    ) -> Result<(), BrokerError> {
        names::check_topic(name)?;
        let topic = self.inner.topics.topic(name)?;
        let Some(retention) = retain else {
            return Ok(());
        };
        // Two declares of one new retained topic: one opens its log, the other
        // then finds it retained.
        self.one_at_a_time(Stream::Topic, name, || {
            match topic.store() {
                Some(store) => store.set_retention(store_retention(retention))?,
                None => {
                    self.take_place(Stream::Topic, name, creator)?;
                    let retained = self
                        .open_topic_store(name, store_retention(retention))
                        .and_then(|store| self.inner.topics.retain(name, store));
                    if retained.is_err() && creator.is_some() {
                        self.inner.creators.give_back(Stream::Topic, name);
                    }
                    retained?;
                }
            }
            Ok(())
        })
    }

    /// A retained topic's store: this node's log, or with `--nats` the
    /// cluster's stream (made, or its limits set).
    fn open_topic_store(
        &self,
        name: &str,
        retention: crate::store::Retention,
    ) -> Result<Arc<dyn crate::store::TopicStore>, BrokerError> {
        match &self.inner.cluster {
            Some(cluster) => {
                let opened = super::queues::wait(
                    &self.inner.runtime,
                    cluster.open_retained(name, Some(retention)),
                )?;
                Ok(opened)
            }
            None => Ok(self.inner.backend.open_topic(name, retention)?),
        }
    }

    /// With `--nats`, a retained topic another node declared that this one has
    /// not heard of yet (its notice on its way): looked up in JetStream.
    pub(super) fn learn_retained(&self, name: &str) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        if names::is_wildcard(name) || self.inner.topics.heard(name).is_some() {
            return;
        }
        if let Ok(store) =
            super::queues::wait(&self.inner.runtime, cluster.open_retained(name, None))
        {
            let _ = self.inner.topics.retain(name, store);
        }
    }

    /// With `--nats`, only a retained topic (the cluster's stream) is sealed or
    /// deleted: one that keeps no messages has nothing shared to end.
    fn cluster_retained_only(&self, name: &str, what: &str) -> Result<(), BrokerError> {
        let shared = self
            .inner
            .topics
            .get(name)
            .is_some_and(|t| t.store().is_some());
        if self.inner.cluster.is_some() && !shared {
            return Err(BrokerError::new(
                ErrorCode::Unavailable,
                format!(
                    "{what} a topic that keeps no messages is not served with --nats: \
                     declare `{name}` retained (see docs/OPERATIONS.md, \"Running a cluster\")"
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn seal(&self, name: &str, done: Done) -> Result<(), BrokerError> {
        names::check_topic(name)?;
        self.cluster_retained_only(name, "sealing")?;
        self.inner.topics.seal(name, done)
    }

    pub(crate) fn delete_topic(&self, name: &str, actor: &str) -> Result<(), BrokerError> {
        names::check_topic(name)?;
        self.cluster_retained_only(name, "deleting")?;
        if let Some(cluster) = &self.inner.cluster {
            cluster.forget_retained(name);
        }
        // Under the name's gate, so a topic retained again at once by someone else
        // is theirs, not given back with this one.
        let store = self.one_at_a_time(Stream::Topic, name, || {
            let store = self.inner.topics.delete(name)?;
            self.inner.creators.give_back(Stream::Topic, name);
            Ok::<_, BrokerError>(store)
        })?;
        self.finish_delete(Stream::Topic, name, actor, store.map(|s| s.delete()));
        Ok(())
    }

    /// The last `n` messages of a retained topic.
    pub fn peek_topic(&self, name: &str, n: usize) -> Result<Vec<PeekedMessage>, BrokerError> {
        self.learn_retained(name);
        self.inner.topics.peek(name, n)
    }

    /// Adds a subscription; `added` runs before any message can reach it (to answer
    /// first). Messages on topics `hidden` matches (denied to its user) skip it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn subscribe(
        &self,
        peer: &Peer,
        sid: String,
        pattern: String,
        filter: Option<String>,
        from: Option<ReplayFrom>,
        hidden: Option<Arc<Patterns>>,
        added: impl FnOnce(),
    ) -> Result<(), BrokerError> {
        names::check_pattern(&pattern)?;
        let filter = filter.as_deref().map(Filter::parse).transpose()?;
        let mut subs = peer.subs.lock();
        if subs.contains_key(&sid) {
            return Err(BrokerError::new(
                ErrorCode::AlreadySubscribed,
                format!("sid `{sid}` is already subscribed"),
            ));
        }
        let sub = Arc::new(
            Subscription::new(
                self.inner.topics.next_key(),
                sid.clone(),
                pattern,
                filter,
                Target::Session(peer.session.clone()),
            )
            .hiding(hidden),
        );
        subs.insert(sid.clone(), sub.clone());
        drop(subs);
        let read_from = match from {
            None | Some(ReplayFrom::New) => None,
            Some(ReplayFrom::First) => Some(ReadFrom::First),
            Some(ReplayFrom::Seq(n)) => Some(ReadFrom::Seq(n)),
            Some(ReplayFrom::Time(t)) => Some(ReadFrom::Time(t)),
        };
        match read_from {
            None => self.inner.topics.subscribe(sub, added),
            Some(from) => {
                self.learn_retained(&sub.pattern);
                if let Err(e) = self.inner.topics.subscribe_from(sub, from, added) {
                    peer.subs.lock().remove(&sid);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&self, peer: &Peer, sid: &str) -> Result<(), BrokerError> {
        let Some(sub) = peer.subs.lock().remove(sid) else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no subscription `{sid}`"),
            ));
        };
        self.inner.topics.unsubscribe(&sub);
        Ok(())
    }

    /// Starts an in-process tail of a topic pattern, of the messages `query`
    /// selects (its filter and search evaluated as each is published), keeping the
    /// latest `capacity` messages.
    pub fn tail(
        &self,
        pattern: &str,
        query: &MessageQuery,
        capacity: usize,
    ) -> Result<Tail, BrokerError> {
        names::check_pattern(pattern)?;
        let filter = query.filter.as_deref().map(Filter::parse).transpose()?;
        let buffer = Arc::new(TailBuffer::new(capacity.max(1)).searching(query.search.as_deref()));
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
}

/// Messages other nodes published, as they come in from NATS.
impl crate::cluster::RemoteSink for Inner {
    fn deliver(
        &self,
        topic: &str,
        pattern: &str,
        time: u64,
        data: &str,
        headers: Option<&Headers>,
    ) {
        let delivered = self
            .topics
            .deliver_remote(topic, pattern, time, data, headers);
        self.activity.add_out(delivered);
    }

    fn event(&self, text: String) {
        self.activity.record(crate::stats::EventKind::Storage, text);
    }

    fn deliver_retained(
        &self,
        topic: &str,
        seq: u64,
        msg: &crate::cluster::subject::Remote,
        force: bool,
    ) -> crate::cluster::retained::Heard {
        let (heard, delivered) = self.topics.deliver_retained(topic, seq, msg, force);
        self.activity.add_out(delivered);
        heard
    }

    fn retain_shared(
        &self,
        topic: &str,
        store: Arc<crate::cluster::retained::SharedTopic>,
        heard: Option<u64>,
    ) {
        match self.topics.retain(topic, store) {
            Ok(()) => {
                if let Some(seq) = heard {
                    self.topics.set_heard(topic, seq);
                }
            }
            Err(e) => tracing::warn!("retained topic {topic}: {e}"),
        }
    }

    fn heard(&self, topic: &str) -> Option<u64> {
        self.topics.heard(topic)
    }

    fn seal_shared(&self, topic: &str) {
        let _ = self.topics.seal(topic, Box::new(|_| {}));
    }

    fn delete_shared(&self, topic: &str) {
        if self.topics.delete(topic).is_ok() {
            self.activity.record(
                crate::stats::EventKind::Storage,
                format!("retained topic {topic} deleted on another node"),
            );
        }
    }
}
