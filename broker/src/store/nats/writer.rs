//! A stream's one writer: publishes what its stores hand over in the order they
//! handed it, and settles each append (its ticket) on its publish ack, in the
//! same order. Work that must come after every earlier append is stored (a
//! `sync`, a seal, an ack, a delete) goes through it too.

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::nats_err;
use crate::store::{StoreError, TicketSender};

/// The header that carries the time (unix ms) the broker accepted a message.
pub(crate) const TIME_HEADER: &str = "Switchyard-Time";

/// Work for a stream's writer, in order.
pub(crate) enum Op {
    /// Publish `body` on `subject`; it must be stored as `seq`.
    Publish {
        subject: String,
        seq: u64,
        time_ms: u64,
        body: Bytes,
        done: Option<TicketSender>,
    },
    /// Runs once everything handed over before it is stored (or failed).
    Then(Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>),
}

enum Pending {
    Ack {
        ack: PublishAckFuture,
        seq: u64,
        done: Option<TicketSender>,
    },
    Then(Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>),
}

/// What every handle of one stream shares with its writer: why it stopped, if it
/// did (then it takes no more appends until opened again).
#[derive(Default)]
pub(crate) struct Health {
    failed: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn failed(&self) -> Option<String> {
        self.failed.lock().clone()
    }

    fn fail(&self, why: String) {
        let mut failed = self.failed.lock();
        if failed.is_none() {
            tracing::warn!("{why}");
            *failed = Some(why);
        }
    }
}

/// Starts the writer of `stream` on the current runtime; returns where to send it work.
pub(crate) fn start(
    js: jetstream::Context,
    stream: String,
    health: Arc<Health>,
) -> mpsc::UnboundedSender<Op> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    tokio::spawn(publish(js, stream.clone(), health.clone(), rx, acks_tx));
    tokio::spawn(settle(stream, health, acks_rx));
    tx
}

async fn publish(
    js: jetstream::Context,
    stream: String,
    health: Arc<Health>,
    mut rx: mpsc::UnboundedReceiver<Op>,
    acks: mpsc::UnboundedSender<Pending>,
) {
    while let Some(op) = rx.recv().await {
        let pending = match op {
            Op::Then(f) => Pending::Then(f),
            Op::Publish {
                subject,
                seq,
                time_ms,
                body,
                done,
            } => {
                if let Some(why) = health.failed() {
                    if let Some(done) = done {
                        done.resolve(Err(failed(&stream, why)));
                    }
                    continue;
                }
                let msg = PublishMessage::build()
                    .payload(body)
                    .header(TIME_HEADER, time_ms.to_string().as_str())
                    // 0 (the first message) checks nothing: the stream is new.
                    .expected_last_sequence(seq.saturating_sub(1));
                match js.send_publish(subject, msg).await {
                    Ok(ack) => Pending::Ack { ack, seq, done },
                    Err(e) => {
                        health.fail(format!("{stream}: publish of seq {seq} failed: {e}"));
                        if let Some(done) = done {
                            done.resolve(Err(nats_err("publishing to", &stream, e)));
                        }
                        continue;
                    }
                }
            }
        };
        if acks.send(pending).is_err() {
            return;
        }
    }
}

async fn settle(stream: String, health: Arc<Health>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(pending) = rx.recv().await {
        match pending {
            Pending::Then(f) => f().await,
            Pending::Ack { ack, seq, done } => {
                let result = match ack.await {
                    Ok(ack) if ack.sequence == seq => Ok(()),
                    Ok(ack) => {
                        let why = format!(
                            "{stream}: another writer: stored as seq {} what was counted as {seq}",
                            ack.sequence
                        );
                        health.fail(why.clone());
                        Err(failed(&stream, why))
                    }
                    Err(e) => {
                        health.fail(format!("{stream}: seq {seq} not stored: {e}"));
                        Err(nats_err("publishing to", &stream, e))
                    }
                };
                if let Some(done) = done {
                    done.resolve(result);
                }
            }
        }
    }
}

/// The error of a stream whose writer stopped.
pub(crate) fn failed(stream: &str, why: String) -> StoreError {
    StoreError::Failed {
        path: super::stream_path(stream),
        cause: why,
    }
}
