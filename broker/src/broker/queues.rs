//! Queue ops on the broker handle: send, request, consume, settle (ack, nack,
//! reply), declare, purge, delete, peek and requeue, and the routing of what a
//! queue left to do outside its lock (dead letters, answers to waiting senders).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;

use super::{run_ack_timer, Broker, Creator, Inner, Peer, Stream};
use crate::cluster::queue::QueueSink;
use crate::cluster::Cluster;
use crate::command::PeekedMessage;
use crate::error::{BrokerError, ErrorCode};
use crate::names;
use crate::protocol::{event, Headers, Payload, QueueOptions};
use crate::queue::{
    dead_letter_headers, Effects, Outgoing, Queue, QueueConfig, Settle, Settlement, Waiter,
};
use crate::session::Session;
use crate::stats::EventKind;
use crate::store::Ticket;

/// Queues that have gained messages or room and will be dispatched together: a
/// frame of sends or acks then hands out jobs once, not after every one.
#[derive(Default)]
pub(crate) struct ToDispatch {
    queues: Vec<Arc<Queue>>,
}

impl ToDispatch {
    fn add(&mut self, queue: Arc<Queue>) {
        if !self.queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
            self.queues.push(queue);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

impl Broker {
    /// The queue of that name, created (durable, default settings) if it does not
    /// exist, as `creator`'s (see [`Broker::take_place`]).
    pub(crate) fn queue(
        &self,
        name: &str,
        creator: Option<&Creator>,
    ) -> Result<Arc<Queue>, BrokerError> {
        self.queue_with(name, true, creator)
    }

    fn queue_with(
        &self,
        name: &str,
        durable: bool,
        creator: Option<&Creator>,
    ) -> Result<Arc<Queue>, BrokerError> {
        if let Some(q) = self.inner.queues.read().get(name) {
            return Ok(q.clone());
        }
        names::check_queue(name)?;
        // Creating a durable queue's log and recording its options are file
        // operations with fsyncs: only callers wanting this same name wait.
        let create = || {
            self.one_at_a_time(Stream::Queue, name, || {
                self.create_queue(name, durable, creator)
            })
        };
        match self.inner.cluster {
            // Waiting for JetStream (or for another caller that does, at the
            // name's gate): the runtime thread is given up meanwhile, so that
            // the NATS connection's tasks never wait behind it.
            Some(_) => in_place(create),
            None => create(),
        }
    }

    /// Creates a queue unless it exists by now; its caller holds the name's gate.
    fn create_queue(
        &self,
        name: &str,
        durable: bool,
        creator: Option<&Creator>,
    ) -> Result<Arc<Queue>, BrokerError> {
        if let Some(q) = self.inner.queues.read().get(name) {
            return Ok(q.clone());
        }
        self.take_place(Stream::Queue, name, creator)?;
        let made = match self.inner.cluster.clone() {
            // With --nats every queue is a JetStream stream shared by all nodes
            // (cluster/queue.rs); this node keeps its own consumers' share.
            Some(cluster) => {
                wait(&self.inner.runtime, cluster.open_queue(name, None)).map(|config| {
                    let link = cluster.queue_link(name, self.inner.runtime.clone());
                    let queue = Queue::new_remote(name, config, link.clone());
                    (queue, Some((cluster, link)))
                })
            }
            None => {
                let config = QueueConfig {
                    durable,
                    ..QueueConfig::default()
                };
                let store = match durable {
                    true => self
                        .inner
                        .backend
                        .open_queue(name, &config.settings())
                        .map(Some)
                        .map_err(BrokerError::from),
                    false => Ok(None),
                };
                store.map(|store| (Queue::new(name, config, store), None))
            }
        };
        let (queue, pulled) = match made {
            Ok(made) => made,
            Err(e) => {
                if creator.is_some() {
                    self.inner.creators.give_back(Stream::Queue, name);
                }
                return Err(e);
            }
        };
        self.inner
            .queues
            .write()
            .insert(queue.name.clone(), queue.clone());
        self.inner
            .runtime
            .spawn(run_ack_timer(Arc::downgrade(&self.inner), queue.clone()));
        if let Some((cluster, link)) = pulled {
            let sink: Arc<dyn QueueSink> = Arc::new(Sink(Arc::downgrade(&self.inner)));
            self.inner.runtime.spawn(crate::cluster::queue::pull(
                cluster,
                link,
                queue.clone(),
                sink,
            ));
        }
        Ok(queue)
    }

    pub(crate) fn existing_queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
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
        creator: Option<&Creator>,
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
        if let Some(cluster) = self.inner.cluster.clone() {
            if options.durable == Some(false) {
                return Err(BrokerError::new(
                    ErrorCode::BadFrame,
                    "with --nats every queue is a JetStream stream: `durable` cannot be false",
                ));
            }
            let queue = self.queue_with(name, true, creator)?;
            let config = wait(&self.inner.runtime, cluster.open_queue(name, Some(options)))?;
            queue.set_config(config);
            return Ok(());
        }
        let queue = self.queue_with(name, options.durable.unwrap_or(true), creator)?;
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
            store.set_settings(&config.settings())?;
        }
        Ok(())
    }

    /// Appends a message to a queue; returns its message id. `stored` runs once the
    /// message is in the queue and before it is delivered (to answer the sender first),
    /// with, for a durable queue, the ticket that resolves when it is on disk.
    pub(crate) fn send(
        &self,
        session: Option<&Session>,
        creator: Option<&Creator>,
        queue: &str,
        message: Outgoing,
        stored: impl FnOnce(&str, Option<Ticket>),
    ) -> Result<Arc<str>, BrokerError> {
        let mut to_dispatch = ToDispatch::default();
        let sent = self.send_later(session, creator, queue, message, stored, &mut to_dispatch);
        self.dispatch(&mut to_dispatch);
        sent
    }

    /// [`Broker::send`], leaving the delivery to [`Broker::dispatch`] with `to_dispatch`.
    pub(crate) fn send_later(
        &self,
        session: Option<&Session>,
        creator: Option<&Creator>,
        queue: &str,
        message: Outgoing,
        stored: impl FnOnce(&str, Option<Ticket>),
        to_dispatch: &mut ToDispatch,
    ) -> Result<Arc<str>, BrokerError> {
        if let Some(cluster) = self.inner.cluster.clone() {
            // Stored in JetStream before `stored` runs: a sync caller (an
            // operator's send, a dead letter) waits for it.
            self.queue(queue, creator)?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            cluster.publish(
                queue,
                message,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            let seq = wait(&self.inner.runtime, async {
                rx.await.unwrap_or_else(|_| Err(Cluster::gone_error()))
            })?;
            self.count_sent(session);
            let msg: Arc<str> = Arc::from(seq.to_string());
            stored(&msg, None);
            return Ok(msg);
        }
        let queue = self.queue(queue, creator)?;
        let (msg, ticket) = queue.enqueue(message)?;
        self.inner.activity.msgs_in.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = session {
            s.msgs_in.fetch_add(1, Ordering::Relaxed);
        }
        stored(&msg, ticket);
        to_dispatch.add(queue);
        Ok(msg)
    }

    /// With --nats: hands a message to JetStream without waiting; `done` gets its
    /// message id (the stream sequence) once stored, or why it was not.
    pub(crate) fn send_remote(
        &self,
        session: Option<&Session>,
        creator: Option<&Creator>,
        queue: &str,
        message: Outgoing,
        done: impl FnOnce(Result<Arc<str>, BrokerError>) + Send + 'static,
    ) -> Result<(), BrokerError> {
        let Some(cluster) = self.inner.cluster.clone() else {
            return Err(BrokerError::new(ErrorCode::Internal, "not a cluster node"));
        };
        self.queue(queue, creator)?;
        self.count_sent(session);
        cluster.publish(
            queue,
            message,
            Box::new(move |r| done(r.map(|seq| Arc::from(seq.to_string())))),
        );
        Ok(())
    }

    /// Whether queues live in JetStream (`serve --nats`).
    pub(crate) fn clustered(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// The error to answer for a settlement that was not made durable: with
    /// --nats, JetStream did not confirm it (`unavailable`).
    pub(crate) fn settle_error(&self, e: crate::store::StoreError) -> BrokerError {
        match self.inner.cluster {
            Some(_) => BrokerError::new(ErrorCode::Unavailable, e.to_string()),
            None => e.into(),
        }
    }

    fn count_sent(&self, session: Option<&Session>) {
        self.inner.activity.msgs_in.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = session {
            s.msgs_in.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Delivers what the queues in `to_dispatch` have ready, and empties it.
    pub(crate) fn dispatch(&self, to_dispatch: &mut ToDispatch) {
        for queue in to_dispatch.queues.drain(..) {
            self.apply(queue.dispatch_ready());
        }
    }

    /// Sends a request and answers the requester when it is replied to or times out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request(
        &self,
        session: &Arc<Session>,
        creator: &Creator,
        queue: &str,
        data: Payload,
        headers: Option<Headers>,
        id: crate::protocol::RequestId,
        timeout: Duration,
    ) -> Result<(), BrokerError> {
        // The queue first (as `send` finds it): its timeouts are the waiter's to count.
        let target = self.queue(queue, Some(creator))?;
        let waiter = Waiter::request(session, id, target.request_timeouts.clone());
        if let Some(cluster) = self.inner.cluster.clone() {
            // The job names this node's reply subject: the node whose consumer
            // replies sends the reply there (cluster/queue.rs).
            let message = Outgoing {
                ttl_ms: u64::try_from(timeout.as_millis()).ok(),
                waiter: Some(waiter.clone()),
                reply: true,
                ..Outgoing::new(data, headers)
            };
            let msg = Arc::new(parking_lot::Mutex::new(String::from("the request")));
            let (failed, named) = (waiter.clone(), msg.clone());
            self.count_sent(Some(session));
            cluster.publish(
                queue,
                message,
                Box::new(move |r| match r {
                    Ok(seq) => *named.lock() = seq.to_string(),
                    Err(e) => failed.fail(&e),
                }),
            );
            target.count_request();
            self.inner.runtime.spawn(async move {
                tokio::time::sleep(timeout).await;
                let msg = msg.lock().clone();
                waiter.settle(&msg, Settlement::Timeout);
            });
            return Ok(());
        }
        // A request whose requester gave up is not worth delivering: its job lives
        // as long as the requester waits.
        let message = Outgoing {
            ttl_ms: u64::try_from(timeout.as_millis()).ok(),
            waiter: Some(waiter.clone()),
            reply: true,
            ..Outgoing::new(data, headers)
        };
        let msg = self.send(Some(session), Some(creator), queue, message, |_, _| {})?;
        target.count_request();
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            waiter.settle(&msg, Settlement::Timeout);
        });
        Ok(())
    }

    /// Adds a consumer; `added` runs before it is given any job (to answer first).
    pub(crate) fn consume(
        &self,
        peer: &Peer,
        creator: &Creator,
        queue: &str,
        cid: &str,
        prefetch: u32,
        added: impl FnOnce(),
    ) -> Result<(), BrokerError> {
        if !crate::protocol::PREFETCH.contains(&u64::from(prefetch)) {
            return Err(crate::protocol::out_of_range(
                "prefetch",
                &crate::protocol::PREFETCH,
            ));
        }
        let queue = self.queue(queue, Some(creator))?;
        {
            let mut consumers = peer.consumers.lock();
            if consumers.contains_key(cid) {
                return Err(BrokerError::new(
                    ErrorCode::AlreadySubscribed,
                    format!("cid `{cid}` is already consuming"),
                ));
            }
            consumers.insert(cid.to_string(), queue.clone());
        }
        match queue.add_consumer(&peer.session, cid, prefetch) {
            Ok(()) => {
                added();
                self.apply(queue.dispatch_ready());
                Ok(())
            }
            Err(e) => {
                peer.consumers.lock().remove(cid);
                Err(e)
            }
        }
    }

    pub(crate) fn cancel(&self, peer: &Peer, cid: &str) -> Result<(), BrokerError> {
        let Some(queue) = peer.consumers.lock().remove(cid) else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no consumer `{cid}`"),
            ));
        };
        let effects = queue.remove_consumer(&peer.session, cid);
        self.apply(effects);
        Ok(())
    }

    /// Settles a job this client holds; `settled` gets, for a durable queue, the
    /// ticket that resolves once the settlement is on disk. The job is looked for in the queues its
    /// consumers take from (almost always one): a tag is the session's, and a
    /// queue knows which of its jobs are in flight with whom.
    pub(crate) fn settle(
        &self,
        peer: &Peer,
        tag: u64,
        how: Settle,
        settled: impl FnOnce(Option<Ticket>),
        to_dispatch: &mut ToDispatch,
    ) -> Result<(), BrokerError> {
        // Looked for under the peer's lock, then the queue's (the written order),
        // with nothing collected: this runs once per ack.
        let settled_in = peer.consumers.lock().values().find_map(|queue| {
            let effects = queue.settle(&peer.session, tag, how.clone())?;
            Some((queue.clone(), effects))
        });
        if let Some((queue, mut effects)) = settled_in {
            let durable = effects.settled.take();
            self.apply(effects);
            settled(durable);
            // The room this frees is filled by `dispatch`, after the answer.
            to_dispatch.add(queue);
            return Ok(());
        }
        Err(BrokerError::new(
            ErrorCode::UnknownTag,
            format!("tag {tag} is unknown or already settled"),
        ))
    }

    /// Removes a queue's ready messages; returns how many.
    pub fn purge(&self, queue: &str, actor: &str) -> Result<u64, BrokerError> {
        let n = match self.inner.cluster.clone() {
            // The stream's, whichever node holds its consumers.
            Some(cluster) => wait(&self.inner.runtime, cluster.purge_queue(queue))?,
            None => {
                let q = self.existing_queue(queue)?;
                let (n, effects) = q.purge();
                self.apply(effects);
                n
            }
        };
        self.inner.activity.record(
            EventKind::Purge,
            format!("{actor} purged {n} ready messages from {queue}"),
        );
        Ok(n)
    }

    pub(crate) fn delete_queue(&self, queue: &str, actor: &str) -> Result<(), BrokerError> {
        if let Some(cluster) = self.inner.cluster.clone() {
            // The stream first: the other nodes' pullers see it gone and
            // delete their own share of the queue (cancelling its consumers).
            let existed = wait(&self.inner.runtime, cluster.delete_queue(queue))?;
            return match self.delete_local(queue, actor) {
                Err(_) if existed => {
                    self.inner
                        .activity
                        .record(EventKind::Delete, format!("{actor} deleted queue {queue}"));
                    Ok(())
                }
                other => other,
            };
        }
        self.delete_local(queue, actor)
    }

    /// Deletes this node's queue of that name (and, on one node, its messages).
    fn delete_local(&self, queue: &str, actor: &str) -> Result<(), BrokerError> {
        // Under the name's gate, so a queue created again at once by someone else
        // is theirs, not given back with this one.
        let removed = self.one_at_a_time(Stream::Queue, queue, || {
            let removed = self.inner.queues.write().remove(queue);
            if removed.is_some() {
                self.inner.creators.give_back(Stream::Queue, queue);
            }
            removed
        });
        let Some(q) = removed else {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no queue `{queue}`"),
            ));
        };
        let mut effects = q.delete();
        for (session, cid) in std::mem::take(&mut effects.cancelled) {
            let peer = self.inner.sessions.read().get(&session.id).cloned();
            if let Some(peer) = peer {
                let mut consumers = peer.consumers.lock();
                // Only if the cid still consumes from this queue, not a new one.
                if consumers.get(&*cid).is_some_and(|c| Arc::ptr_eq(c, &q)) {
                    consumers.remove(&*cid);
                }
            }
            session.send_text(event::cancelled(&cid));
        }
        self.apply(effects);
        let store = q.store().cloned();
        self.finish_delete(Stream::Queue, queue, actor, store.map(|s| s.delete()));
        Ok(())
    }

    /// The next ready messages of a queue, not consumed.
    pub fn peek_queue(&self, queue: &str, n: usize) -> Result<Vec<PeekedMessage>, BrokerError> {
        let everything = crate::filter::Query::default();
        Ok(self.existing_queue(queue)?.peek(n, None, &everything).0)
    }

    /// Starts moving up to `n` ready messages of `from` that `filter` matches to
    /// `to` (see `queue/moving.rs` for why in that order); the future finishes the
    /// move once it is durable and answers how many moved.
    pub(crate) fn start_move(
        &self,
        from: &str,
        to: &str,
        n: Option<u64>,
        filter: Option<&str>,
        msg: Option<&str>,
        actor: &str,
    ) -> Result<
        impl std::future::Future<Output = Result<u64, BrokerError>> + Send + 'static,
        BrokerError,
    > {
        if from == to {
            return Err(BrokerError::new(
                ErrorCode::BadFrame,
                format!("`{from}` cannot move to itself"),
            ));
        }
        let n = n.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        if self.clustered() {
            names::check_queue(to)?;
            let query = crate::filter::Query::compile(&crate::command::MessageQuery {
                filter: filter.map(str::to_string),
                search: None,
            })?;
            // Moved before the answer's future is made: it waits for NATS on
            // the broker's runtime, which the caller's waiting might otherwise
            // hold up.
            let moved = self.move_in_streams(from, to, n, &query, msg, actor);
            return Ok(Either::Left(std::future::ready(moved)));
        }
        let source = self.existing_queue(from)?;
        let filter = filter.map(crate::filter::Filter::parse).transpose()?;
        let target = self.queue(to, None)?;
        let mut appended = Vec::new();
        let mut refused = None;
        let taken = source.take_ready(n, filter.as_ref(), msg);
        if let (Some(id), true) = (msg, taken.is_empty()) {
            return Err(BrokerError::new(
                ErrorCode::NotFound,
                format!("no ready message `{id}` in `{from}` (in flight, gone, or not matching)"),
            ));
        }
        for taken in taken {
            if refused.is_some() {
                source.put_back_taken(taken);
                continue;
            }
            match target.enqueue_held(source.moved_copy(&taken)) {
                Ok((ticket, held)) => appended.push((taken, ticket, held)),
                Err(e) => {
                    source.put_back_taken(taken);
                    refused = Some(e);
                }
            }
        }
        if appended.is_empty() {
            if let Some(e) = refused {
                self.apply(source.dispatch_ready());
                return Err(e);
            }
        }
        let broker = self.clone();
        let (from, to, actor) = (from.to_string(), to.to_string(), actor.to_string());
        Ok(Either::Right(async move {
            let mut settled = Vec::new();
            for (taken, ticket, held) in appended {
                let durable = match ticket {
                    Some(t) => t.await,
                    None => Ok(()),
                };
                match durable {
                    Ok(()) => settled.push((source.settle_moved(taken), held)),
                    // Not on the target's disk: it stays where it was.
                    Err(e) => {
                        source.put_back_taken(taken);
                        refused.get_or_insert(e.into());
                    }
                }
            }
            let moved = settled.len() as u64;
            for (ack, held) in settled {
                if let Some(Err(e)) = match ack {
                    Some(t) => Some(t.await),
                    None => None,
                } {
                    // The source keeps a copy on disk; recovery drops it (the target's
                    // record names it), so the move still ends in one queue.
                    tracing::warn!("queue {from}: settling a moved message: {e}");
                }
                target.release(held);
            }
            broker.apply(target.dispatch_ready());
            broker.apply(source.dispatch_ready());
            broker.inner.activity.record(
                EventKind::Other,
                format!("{actor} moved {moved} messages from {from} to {to}"),
            );
            match refused {
                Some(e) if moved == 0 => Err(e),
                _ => Ok(moved),
            }
        }))
    }

    /// Removes one ready message by id, as if acked; returns once that is durable.
    pub(crate) fn drop_message(
        &self,
        queue: &str,
        msg: &str,
        actor: &str,
    ) -> Result<(), BrokerError> {
        if let Some(cluster) = self.inner.cluster.clone() {
            self.drop_from_stream(&cluster, queue, msg)?;
            self.inner.activity.record(
                EventKind::Other,
                format!("{actor} dropped message {msg} of {queue}"),
            );
            return Ok(());
        }
        let ticket = self.existing_queue(queue)?.drop_ready(msg)?;
        if let Some(ticket) = ticket {
            block_on(async { ticket.await.map_err(BrokerError::from) })?;
        }
        self.inner.activity.record(
            EventKind::Other,
            format!("{actor} dropped message {msg} of {queue}"),
        );
        Ok(())
    }

    /// Puts every job of one consumer (`client`'s `cid`) back in its queue now.
    pub(crate) fn requeue_consumer(
        &self,
        client: &str,
        cid: &str,
        actor: &str,
    ) -> Result<u64, BrokerError> {
        let peer = self
            .inner
            .sessions
            .read()
            .values()
            .find(|p| &*p.session.name_id == client)
            .cloned()
            .ok_or_else(|| {
                BrokerError::new(ErrorCode::NotFound, format!("no client `{client}`"))
            })?;
        let queue = peer.consumers.lock().get(cid).cloned().ok_or_else(|| {
            BrokerError::new(
                ErrorCode::NotFound,
                format!("client `{client}` has no consumer `{cid}`"),
            )
        })?;
        let (count, effects) = queue.requeue_consumer(&peer.session, cid);
        self.apply(effects);
        self.inner.activity.record(
            EventKind::Requeue,
            format!(
                "{actor} requeued the {count} jobs of {}/{cid} on {}",
                peer.session.describe(),
                queue.name
            ),
        );
        Ok(count)
    }

    /// Puts an in-flight job back in its queue now; with --nats, on whichever
    /// node holds it.
    pub fn requeue(&self, queue: &str, msg: &str, actor: &str) -> Result<(), BrokerError> {
        match self.inner.cluster.clone() {
            Some(cluster) => self.requeue_anywhere(&cluster, queue, msg, actor),
            None => self.requeue_here(queue, msg, actor),
        }
    }

    /// Puts an in-flight job of this node back in its queue now.
    pub(crate) fn requeue_here(
        &self,
        queue: &str,
        msg: &str,
        actor: &str,
    ) -> Result<(), BrokerError> {
        let effects = self.existing_queue(queue)?.requeue_msg(msg)?;
        self.apply(effects);
        self.inner.activity.record(
            EventKind::Requeue,
            format!("{actor} requeued message {msg} of {queue}"),
        );
        Ok(())
    }

    /// Carries out what a queue operation left to do outside the queue's lock.
    pub(super) fn apply(&self, mut effects: Effects) {
        self.inner.activity.add_out(effects.delivered);
        effects.settle_waiters();
        for letter in effects.dead_letters {
            self.inner.activity.dead.fetch_add(1, Ordering::Relaxed);
            let Some(to) = letter.to.clone() else {
                self.inner.activity.record(
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
            let message = Outgoing::new(letter.data, Some(headers));
            if let Some(cluster) = self.inner.cluster.clone() {
                self.dead_letter_remote(
                    cluster,
                    letter.from.to_string(),
                    to,
                    message,
                    letter.reason,
                    letter.remote_source.clone(),
                );
                continue;
            }
            let outcome = self.send(None, None, &to, message, moved);
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
            self.inner.activity.record(EventKind::DeadLetter, text);
        }
    }
}

impl Broker {
    /// With --nats: appends a dead letter to its queue's stream without
    /// blocking (this runs where a job died: a connection's nack, a puller);
    /// the source job leaves its stream once that is stored, or goes back.
    fn dead_letter_remote(
        &self,
        cluster: Arc<Cluster>,
        from: String,
        to: String,
        message: Outgoing,
        reason: &'static str,
        source: Option<(Arc<dyn crate::queue::RemoteJobs>, u64)>,
    ) {
        let activity = self.inner.activity.clone();
        self.inner.runtime.spawn(async move {
            let stored = match cluster.open_queue(&to, None).await {
                Ok(_) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    cluster.publish(
                        &to,
                        message,
                        Box::new(move |r| {
                            let _ = tx.send(r);
                        }),
                    );
                    rx.await.unwrap_or_else(|_| Err(Cluster::gone_error()))
                }
                Err(e) => Err(e),
            };
            let text = match &stored {
                Ok(seq) => {
                    format!("a message of {from} was dead-lettered to {to} as {seq}: {reason}")
                }
                Err(e) => format!("a message of {from} did not reach dead-letter queue {to}: {e}"),
            };
            if let Some((source, id)) = source {
                match stored {
                    Ok(_) => source.term(id),
                    Err(_) => source.give_back(id),
                }
            }
            activity.record(EventKind::DeadLetter, text);
        });
    }
}

/// What a remote queue's puller (cluster/queue.rs) reaches of the broker.
struct Sink(std::sync::Weak<Inner>);

impl QueueSink for Sink {
    fn apply(&self, effects: Effects) {
        if let Some(inner) = self.0.upgrade() {
            Broker { inner }.apply(effects);
        }
    }

    fn gone(&self, queue: &str) {
        if let Some(inner) = self.0.upgrade() {
            let _ = Broker { inner }.delete_local(queue, "another node");
        }
    }
}

/// Runs blocking `f` on a runtime thread given up to the runtime's other work
/// meanwhile (a multi-threaded runtime's), or as it is elsewhere.
fn in_place<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Waits for `future` (JetStream's answer) from sync code: on a runtime
/// thread, one given up to the runtime's other work meanwhile, so that the
/// NATS connection's own tasks keep running.
pub(super) fn wait<T: Send>(
    runtime: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = T> + Send,
) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| runtime.block_on(future))
        }
        Ok(_) => std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
        Err(_) => runtime.block_on(future),
    }
}

/// Waits for `future` from sync code that may run on one of the runtime's threads
/// (a connection's operator frame) or on none (the dashboard's command thread):
/// on a thread of its own, which is in no runtime. What it waits for (store
/// tickets) resolves on the committer's threads, so no runtime need poll it.
pub(crate) fn block_on<T: Send>(
    future: impl std::future::Future<Output = Result<T, BrokerError>> + Send,
) -> Result<T, BrokerError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| BrokerError::new(ErrorCode::Internal, format!("waiting: {e}")))?;
            runtime.block_on(future)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use parking_lot::{Condvar, Mutex};

    use super::*;
    use crate::broker::Config;
    use crate::store::{
        Backend, LogBackend, QueueSettings, QueueStore, Retention, SimDisk, StoreConfig,
        StoreError, Stored, TopicStore,
    };

    /// A backend whose creation of the queue `held` stops until the test lets it
    /// go: a disk that takes its time over a few fsyncs.
    struct HeldBackend {
        inner: LogBackend,
        held: &'static str,
        entered: Mutex<Option<mpsc::Sender<()>>>,
        released: Mutex<bool>,
        release: Condvar,
    }

    impl HeldBackend {
        fn let_go(&self) {
            *self.released.lock() = true;
            self.release.notify_all();
        }
    }

    impl Backend for HeldBackend {
        fn open_queue(
            &self,
            name: &str,
            settings: &QueueSettings,
        ) -> Result<Arc<dyn QueueStore>, StoreError> {
            if name == self.held {
                if let Some(entered) = self.entered.lock().take() {
                    let _ = entered.send(());
                }
                let mut released = self.released.lock();
                while !*released {
                    self.release.wait(&mut released);
                }
            }
            self.inner.open_queue(name, settings)
        }
        fn open_topic(
            &self,
            name: &str,
            retention: Retention,
        ) -> Result<Arc<dyn TopicStore>, StoreError> {
            self.inner.open_topic(name, retention)
        }
        fn stored(&self) -> Result<Stored, StoreError> {
            self.inner.stored()
        }
        fn close(&self) {
            self.inner.close()
        }
    }

    /// While one durable queue is being created, sends to other queues, new or
    /// not, and snapshots go on: no broker-wide lock is held across its disk I/O.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creating_a_queue_holds_up_no_other_op() {
        let disk = Arc::new(SimDisk::new());
        let (entered, inside) = mpsc::channel();
        let backend = Arc::new(HeldBackend {
            inner: LogBackend::open("/data", disk, StoreConfig::default()).unwrap(),
            held: "slow",
            entered: Mutex::new(Some(entered)),
            released: Mutex::new(false),
            release: Condvar::new(),
        });
        let broker = Broker::open_on(Config::default(), backend.clone()).unwrap();
        broker.queue("fast", None).unwrap();
        let creator = {
            let broker = broker.clone();
            std::thread::spawn(move || broker.queue("slow", None).map(|q| q.name.to_string()))
        };
        inside.recv_timeout(Duration::from_secs(5)).unwrap();
        let (done, finished) = mpsc::channel();
        {
            let broker = broker.clone();
            std::thread::spawn(move || {
                let existing = broker.queue("fast", None).map(|q| q.name.to_string());
                let new = broker.queue("other", None).map(|q| q.name.to_string());
                let queues = broker.snapshot().queues.len();
                let _ = done.send((existing, new, queues));
            });
        }
        let others = finished.recv_timeout(Duration::from_secs(5));
        backend.let_go();
        let slow = creator.join().unwrap();
        let (existing, new, queues) = others.expect("other ops waited for the held creation");
        assert_eq!(
            (existing.unwrap(), new.unwrap()),
            ("fast".into(), "other".into())
        );
        assert_eq!(queues, 2, "the held queue is not listed before it exists");
        assert_eq!(slow.unwrap(), "slow");
        assert_eq!(broker.snapshot().queues.len(), 3);
    }
}
