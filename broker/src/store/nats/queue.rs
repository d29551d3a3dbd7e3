//! One node's durable queue in a JetStream stream, through the seam: messages on
//! one subject, delivery attempts as records on a subject per message (the
//! highest wins at recovery), an ack as the message's deletion and its
//! attempts' purge.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::topic::{fetch, find_or_create, update};
use super::writer::{self, Health, Op};
use super::{nats_err, stream_path, ticket_path, Description, Jet, STORE_QUEUE_STREAM_PREFIX};
use crate::store::{
    Appended, QueueSettings, QueueStore, QueuedMessage, StoreError, StoreStats, Ticket,
};

/// One durable queue's stream, shared by every handle opened on it.
pub struct NatsQueueStore {
    jet: Arc<Jet>,
    stream: String,
    /// Where its messages are published.
    subject: String,
    /// Its attempts: `<attempts>.<seq>`.
    attempts: String,
    name: String,
    path: Arc<Path>,
    next: Mutex<u64>,
    /// Seqs with attempts recorded (since this open, or found by `recover`),
    /// whose records an ack purges.
    attempted: Arc<Mutex<HashSet<u64>>>,
    deleted: AtomicBool,
    settings: Mutex<Option<QueueSettings>>,
    health: Arc<Health>,
    writer: mpsc::UnboundedSender<Op>,
    /// The backend's opens, held while the stream is deleted (see the topic's).
    opens: Arc<Mutex<()>>,
}

fn description(name: &str, settings: &QueueSettings) -> Option<String> {
    serde_json::to_string(&Description {
        switchyard: "queue".into(),
        name: name.into(),
        settings: Some(settings.clone()),
    })
    .ok()
}

impl NatsQueueStore {
    /// Opens (creating if needed) the stream of durable queue `name`.
    pub(crate) fn open(
        jet: &Arc<Jet>,
        opens: &Arc<Mutex<()>>,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<Arc<NatsQueueStore>, StoreError> {
        let stream = jet.stream(STORE_QUEUE_STREAM_PREFIX, name);
        let subject = jet.subject(&format!("store.queue.{name}"));
        let attempts = jet.subject(&format!("store.attempt.{name}"));
        let config = Config {
            name: stream.clone(),
            subjects: vec![subject.clone(), format!("{attempts}.*")],
            storage: StorageType::File,
            num_replicas: jet.replicas,
            discard: DiscardPolicy::Old,
            description: description(name, settings),
            ..Config::default()
        };
        let found = jet
            .wait(find_or_create(jet.js.clone(), config))?
            .map_err(|e| nats_err("opening", &stream, e))?;
        let kept = found
            .description
            .as_deref()
            .and_then(|d| serde_json::from_str::<Description>(d).ok())
            .and_then(|d| d.settings);
        let health = Arc::new(Health::default());
        let writer = {
            let _in = jet.handle.enter();
            writer::start(jet.js.clone(), stream.clone(), health.clone())
        };
        let store = Arc::new(NatsQueueStore {
            jet: jet.clone(),
            path: ticket_path(&stream),
            stream,
            subject,
            attempts,
            name: name.to_string(),
            next: Mutex::new(found.last_seq + 1),
            attempted: Arc::new(Mutex::new(HashSet::new())),
            deleted: AtomicBool::new(false),
            settings: Mutex::new(kept),
            health,
            writer,
            opens: opens.clone(),
        });
        store.set_settings(settings)?;
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

    fn publish(&self, subject: String, time_ms: u64, body: Bytes) -> Result<Appended, StoreError> {
        let mut next = self.next.lock();
        if self.deleted.load(Ordering::Acquire) || self.jet.closed.load(Ordering::Acquire) {
            return Err(self.closed());
        }
        if let Some(why) = self.health.failed() {
            return Err(writer::failed(&self.stream, why));
        }
        let seq = *next;
        let (done, durable) = Ticket::pending(self.path.clone());
        self.writer
            .send(Op::Publish {
                subject,
                seq,
                time_ms,
                body,
                done: Some(done),
            })
            .map_err(|_| self.closed())?;
        *next += 1;
        Ok(Appended { seq, durable })
    }

    /// Runs `f` once the writer has done everything handed to it so far.
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

fn not_found(e: &dyn std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("not found") || text.contains("no message")
}

impl QueueStore for NatsQueueStore {
    fn append(&self, time_ms: u64, body: &[u8]) -> Result<Appended, StoreError> {
        self.publish(self.subject.clone(), time_ms, Bytes::copy_from_slice(body))
    }

    fn ack(&self, seq: u64) -> Result<Ticket, StoreError> {
        if seq == 0 || seq >= *self.next.lock() {
            // Never appended: nothing to settle.
            return Ok(Ticket::ready(Ok(())));
        }
        let (done, ticket) = Ticket::pending(self.path.clone());
        let attempts = format!("{}.{seq}", self.attempts);
        let attempted = self.attempted.clone();
        let path = self.stream.clone();
        let acked = self.after_writes(move |js, stream| {
            Box::pin(async move {
                let s = js
                    .get_stream_no_info(&stream)
                    .await
                    .map_err(|e| e.to_string())?;
                // nats-server 2.9 clustered never answers the deletion of a seq it
                // does not hold (the request times out): look first.
                match s.get_raw_message(seq).await {
                    Ok(_) => match s.delete_message(seq).await {
                        Ok(_) => {}
                        Err(e) if not_found(&e) => {}
                        Err(e) => return Err(e.to_string()),
                    },
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(e.to_string()),
                }
                if !attempted.lock().remove(&seq) {
                    return Ok(());
                }
                match s.purge().filter(attempts).await {
                    Ok(_) => Ok(()),
                    Err(e) if not_found(&e) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            })
        })?;
        self.jet.handle.spawn(async move {
            done.resolve(match acked.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(nats_err("acking in", &path, e)),
                Err(_) => Err(StoreError::Closed {
                    path: stream_path(&path),
                }),
            });
        });
        Ok(ticket)
    }

    fn record_attempt(&self, seq: u64, attempts: u32) -> Result<(), StoreError> {
        let subject = format!("{}.{seq}", self.attempts);
        let appended = self.publish(subject, 0, Bytes::from(attempts.to_string()))?;
        self.attempted.lock().insert(seq);
        drop(appended.durable);
        Ok(())
    }

    fn recover(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut consumer = None;
        let mut messages: Vec<QueuedMessage> = Vec::new();
        let mut attempts: HashMap<u64, u32> = HashMap::new();
        let prefix = format!("{}.", self.attempts);
        loop {
            let (js, stream) = (self.jet.js.clone(), self.stream.clone());
            let (c, batch) = self
                .jet
                .wait(fetch(js, stream, consumer.take(), DeliverPolicy::All))?
                .map_err(|e| nats_err("recovering", &self.stream, e))?;
            if batch.is_empty() {
                break;
            }
            consumer = Some(c);
            for f in batch {
                if f.subject == self.subject {
                    messages.push(QueuedMessage {
                        seq: f.msg.seq,
                        time_ms: f.msg.time_ms,
                        attempts: 0,
                        body: f.msg.body,
                    });
                } else if let Some(seq) = f.subject.strip_prefix(&prefix) {
                    let (Ok(seq), Ok(n)) = (
                        seq.parse::<u64>(),
                        std::str::from_utf8(&f.msg.body)
                            .unwrap_or("")
                            .parse::<u32>(),
                    ) else {
                        continue;
                    };
                    let a = attempts.entry(seq).or_insert(0);
                    *a = (*a).max(n);
                }
            }
        }
        if let Some(c) = consumer {
            let (js, stream) = (self.jet.js.clone(), self.stream.clone());
            let name = c.cached_info().name.clone();
            self.jet.handle.spawn(async move {
                let _ = js.delete_consumer_from_stream(&name, &stream).await;
            });
        }
        for m in &mut messages {
            m.attempts = attempts.get(&m.seq).copied().unwrap_or(0);
        }
        self.attempted.lock().extend(attempts.keys());
        Ok(messages)
    }

    fn sync(&self) -> Ticket {
        let (done, ticket) = Ticket::pending(self.path.clone());
        let _ = self.writer.send(Op::Then(Box::new(move || {
            Box::pin(async move { done.resolve(Ok(())) })
        })));
        ticket
    }

    fn set_settings(&self, settings: &QueueSettings) -> Result<(), StoreError> {
        let mut kept = self.settings.lock();
        if kept.as_ref() == Some(settings) {
            return Ok(());
        }
        let text = description(&self.name, settings);
        self.jet
            .wait(update(self.jet.js.clone(), self.stream.clone(), move |c| {
                c.description = text
            }))?
            .map_err(|e| nats_err("declaring", &self.stream, e))?;
        *kept = Some(settings.clone());
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let next_seq = *self.next.lock();
        let subject = self.subject.clone();
        let counted = self
            .after_writes(move |js, stream| {
                Box::pin(async move {
                    let s = js.get_stream_no_info(&stream).await.ok()?;
                    let mut subjects = s.info_with_subjects(&subject).await.ok()?;
                    let state = subjects.info.state.clone();
                    let mut messages = 0u64;
                    while let Some(Ok((name, n))) = subjects.next().await {
                        if name == subject {
                            messages = n as u64;
                        }
                    }
                    Some((messages, state.bytes, state.last_sequence))
                })
            })
            .ok()
            .and_then(|rx| self.jet.wait(rx).ok())
            .and_then(|r| r.ok())
            .flatten();
        let (messages, bytes, last) = counted.unwrap_or((0, 0, 0));
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
                        Err(e) if not_found(&e) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
        };
        let result = match deleted.map(|rx| self.jet.wait(rx)) {
            Ok(Ok(Ok(Ok(())))) => Ok(()),
            Ok(Ok(Ok(Err(e)))) => Err(nats_err("deleting", &self.stream, e)),
            _ => Err(self.closed()),
        };
        Ticket::ready(result)
    }
}
