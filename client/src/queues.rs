//! Queues: declaring, sending, consuming (jobs arrive as a `Stream`), settling a job
//! with ack, nack or reply, request/reply, purge and delete.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::client::{merge, Client};
use crate::error::ClientError;
use crate::frame::Undecoded;
use switchyard_wire::Headers;

/// Jobs buffered per consumer before the socket is slowed.
pub(crate) const CONSUMER_BUFFER: usize = 4096;

/// A job delivered to a queue consumer; settle it with [`Client::ack`], [`Client::nack`]
/// or [`Client::reply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The consumer it was delivered to.
    pub cid: String,
    /// The queue it came from.
    pub queue: String,
    /// This delivery's tag, unique within the connection: what settles it.
    pub tag: u64,
    /// The message's id in its queue (the same on every redelivery).
    pub msg: String,
    /// Which delivery of the message this is, from 1.
    pub attempt: u32,
    /// Whether the sender is waiting for a `reply`.
    pub reply: bool,
    /// Its JSON data.
    pub data: Value,
    /// Its headers, if it had any.
    pub headers: Option<Headers>,
    /// What of it this client could not decode (a number beyond f64 such as
    /// `1e400`, a lone surrogate escape), kept as the broker sent it; `None` when
    /// all of it decoded. Shown raw, never dropped.
    pub undecoded: Option<Undecoded>,
}

/// A consumer's jobs. Ends when cancelled, the queue is deleted, or the connection closes.
pub struct Consumer {
    /// The consumer's id on this connection, for [`Client::cancel`].
    pub cid: String,
    pub(crate) rx: mpsc::Receiver<Job>,
}

impl Consumer {
    /// The next job, or `None` once the consumer has ended.
    pub async fn next(&mut self) -> Option<Job> {
        self.rx.recv().await
    }
}

impl Stream for Consumer {
    type Item = Job;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Job>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Declares a queue with options (`durable`, `max_len`, `ack_timeout_ms`,
    /// `max_attempts`, `dead_letter`).
    pub async fn declare_queue(&self, queue: &str, options: Value) -> Result<(), ClientError> {
        let mut frame = json!({"op": "declare", "queue": queue});
        merge(&mut frame, options);
        self.call(frame).await.map(|_| ())
    }

    /// Sends to a queue, confirmed when stored; returns the message id.
    pub async fn send(&self, queue: &str, data: Value) -> Result<String, ClientError> {
        let ok = self
            .call(json!({"op": "send", "queue": queue, "data": data}))
            .await?;
        Ok(ok["msg"].as_str().unwrap_or_default().to_string())
    }

    /// Sends to a queue and waits until a consumer acked it; returns the reply's
    /// data if the consumer answered with `reply`.
    pub async fn send_done(&self, queue: &str, data: Value) -> Result<Option<Value>, ClientError> {
        let ok = self
            .call(json!({"op": "send", "queue": queue, "data": data, "confirm": "done"}))
            .await?;
        Ok(ok.get("data").cloned())
    }

    /// Starts consuming a queue with at most `prefetch` unacked jobs at a time.
    pub async fn consume(&self, queue: &str, prefetch: u32) -> Result<Consumer, ClientError> {
        let cid = format!("w{}", self.next_id());
        let (tx, rx) = mpsc::channel(CONSUMER_BUFFER);
        self.conn.routes.lock().consumers.insert(cid.clone(), tx);
        let frame = json!({"op": "consume", "queue": queue, "cid": cid, "prefetch": prefetch});
        if let Err(e) = self.call(frame).await {
            self.conn.routes.lock().consumers.remove(&cid);
            return Err(e);
        }
        Ok(Consumer { cid, rx })
    }

    /// Stops a consumer; its unacked jobs go back to the queue.
    pub async fn cancel(&self, cid: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "cancel", "cid": cid})).await?;
        self.conn.routes.lock().consumers.remove(cid);
        Ok(())
    }

    /// Settles a job as done.
    pub async fn ack(&self, tag: u64) -> Result<(), ClientError> {
        self.call(json!({"op": "ack", "tag": tag}))
            .await
            .map(|_| ())
    }

    /// Gives a job back: to the queue for another delivery with `requeue`, else
    /// dropped (or dead-lettered) as settled.
    pub async fn nack(&self, tag: u64, requeue: bool) -> Result<(), ClientError> {
        self.call(json!({"op": "nack", "tag": tag, "requeue": requeue}))
            .await
            .map(|_| ())
    }

    /// Answers a request (and acks its job).
    pub async fn reply(&self, tag: u64, data: Value) -> Result<(), ClientError> {
        self.call(json!({"op": "reply", "tag": tag, "data": data}))
            .await
            .map(|_| ())
    }

    /// Sends a request to a queue and waits for a consumer's reply.
    pub async fn request(
        &self,
        queue: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let reply = self
            .call(json!({"op": "request", "queue": queue, "data": data,
                         "timeout_ms": timeout.as_millis() as u64}))
            .await?;
        Ok(reply.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Removes a queue's ready messages; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<u64, ClientError> {
        let ok = self.call(json!({"op": "purge", "queue": queue})).await?;
        Ok(ok["purged"].as_u64().unwrap_or(0))
    }

    /// Deletes a queue and what it holds; its consumers are cancelled.
    pub async fn delete_queue(&self, queue: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "delete", "queue": queue}))
            .await
            .map(|_| ())
    }
}
