//! Operator calls: the broker's snapshot (once, or watched), peeking at a queue or a retained topic,
//! tailing a topic pattern, kicking a client, requeueing a job.

use std::sync::Arc;

use serde_json::json;
use switchyard_wire::page::{QueuePage, TopicPage};
use switchyard_wire::{MessageQuery, PeekTarget, PeekedMessage, Snapshot, TailMessage};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::connection::{TailRoute, WatchState};
use crate::error::ClientError;

/// The `peek` frame for one page (docs/PROTOCOL.md, `peek`): what
/// [`Client::peek_page`] sends, and a console that speaks frames itself.
pub fn peek_frame(
    target: &PeekTarget,
    n: usize,
    after: Option<u64>,
    query: &MessageQuery,
) -> serde_json::Value {
    let mut frame = match target {
        PeekTarget::Queue(queue) => json!({"op": "peek", "queue": queue, "n": n}),
        PeekTarget::Topic(topic) => json!({"op": "peek", "topic": topic, "n": n}),
    };
    if let Some(after) = after {
        frame["after"] = json!(after);
    }
    if let Some(filter) = &query.filter {
        frame["filter"] = json!(filter);
    }
    if let Some(search) = &query.search {
        frame["search"] = json!(search);
    }
    frame
}

impl Client {
    /// The broker's snapshot.
    pub async fn stats(&self) -> Result<Snapshot, ClientError> {
        let mut frame = self.call(json!({"op": "stats"})).await?;
        if let Some(map) = frame.as_object_mut() {
            map.remove("ev");
            map.remove("id");
        }
        serde_json::from_value(frame).map_err(|e| ClientError::Protocol(format!("bad stats: {e}")))
    }

    /// The next `n` ready messages of a queue, not consumed.
    pub async fn peek(&self, queue: &str, n: usize) -> Result<Vec<PeekedMessage>, ClientError> {
        let ok = self
            .call(json!({"op": "peek", "queue": queue, "n": n}))
            .await?;
        serde_json::from_value(ok["messages"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad peek answer: {e}")))
    }

    /// A retained topic's last `n` messages, oldest first.
    pub async fn peek_topic(
        &self,
        topic: &str,
        n: usize,
    ) -> Result<Vec<PeekedMessage>, ClientError> {
        let ok = self
            .call(json!({"op": "peek", "topic": topic, "n": n}))
            .await?;
        serde_json::from_value(ok["messages"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad peek answer: {e}")))
    }

    /// A queue's page: settings, consumers, dead-letter queue, last 15 minutes.
    pub async fn describe_queue(&self, queue: &str) -> Result<QueuePage, ClientError> {
        let ok = self.call(json!({"op": "describe", "queue": queue})).await?;
        serde_json::from_value(ok["queue"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad describe answer: {e}")))
    }

    /// A topic's page: subscribers and last 15 minutes.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicPage, ClientError> {
        let ok = self.call(json!({"op": "describe", "topic": topic})).await?;
        serde_json::from_value(ok["topic"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad describe answer: {e}")))
    }

    /// One page of a queue or retained topic: up to `n` messages after the
    /// cursor `after` (a `next` of the page before) that `query` selects.
    pub async fn peek_page(
        &self,
        target: &PeekTarget,
        n: usize,
        after: Option<u64>,
        query: &MessageQuery,
    ) -> Result<PeekPage, ClientError> {
        let ok = self.call(peek_frame(target, n, after, query)).await?;
        Ok(PeekPage {
            messages: serde_json::from_value(ok["messages"].clone())
                .map_err(|e| ClientError::Protocol(format!("bad peek answer: {e}")))?,
            truncated: ok["truncated"] == json!(true),
            next: ok["next"].as_u64(),
        })
    }

    /// Disconnects a client (by its id, `c42`), telling it `reason`.
    pub async fn kick(&self, client: &str, reason: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "kick", "client": client, "reason": reason}))
            .await
            .map(|_| ())
    }
}

/// One page of a [`Client::peek_page`].
#[derive(Debug, Clone, PartialEq)]
pub struct PeekPage {
    /// The messages, oldest first.
    pub messages: Vec<PeekedMessage>,
    /// Cut to fit the answer's byte bound.
    pub truncated: bool,
    /// Where the next page starts (`after`), when more may follow.
    pub next: Option<u64>,
}

/// What a [`Client::watch`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Milliseconds between two frames (the broker takes at least 100).
    pub interval_ms: u64,
    /// After the first frame, only what changed (taken in by [`Watch::next`]).
    pub changes: bool,
    /// At most this many in-flight jobs, the oldest first; all if `None`.
    pub inflight: Option<u64>,
    /// Only this client's in-flight jobs.
    pub client: Option<String>,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            interval_ms: 1000,
            changes: true,
            inflight: None,
            client: None,
        }
    }
}

/// An open `watch`: the broker's snapshot, kept up to date frame by frame by the
/// connection itself. Dropping it sends `unwatch`.
pub struct Watch {
    client: Client,
    id: u64,
    state: Arc<WatchState>,
    seen: u64,
}

impl Watch {
    /// Waits for a frame newer than the last one returned and returns the
    /// snapshot as it now is (frames that came meanwhile are in it); `None` once
    /// the watch or its connection has ended, after the error that ended it (the
    /// broker refused it: `forbidden` without an admin token).
    pub async fn next(&mut self) -> Option<Result<Snapshot, ClientError>> {
        loop {
            let changed = self.state.changed.notified();
            {
                let mut latest = self.state.latest.lock();
                if latest.frames > self.seen {
                    self.seen = latest.frames;
                    return Some(Ok(latest.snapshot.clone()));
                }
                if latest.over {
                    // The reason once, then the end.
                    return latest.ended.take().map(Err);
                }
            }
            changed.await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut routes = self.client.conn.routes.lock();
        // Only if it is still the open watch: a newer one replaced it on the broker.
        if routes.watch.as_ref().is_some_and(|(id, _)| *id == self.id) {
            routes.watch = None;
            drop(routes);
            let _ = self
                .client
                .conn
                .out
                .try_send(json!({"op": "unwatch"}).to_string());
        }
    }
}

impl Client {
    /// Starts a `watch`, replacing any this connection has open.
    pub async fn watch(&self, options: &WatchOptions) -> Result<Watch, ClientError> {
        let id = self.next_id();
        let mut frame = json!({
            "op": "watch",
            "id": id,
            "interval_ms": options.interval_ms,
            "changes": options.changes,
        });
        if let Some(n) = options.inflight {
            frame["inflight"] = json!(n);
        }
        if let Some(client) = &options.client {
            frame["client"] = json!(client);
        }
        let state = Arc::new(WatchState::default());
        {
            let mut routes = self.conn.routes.lock();
            if let Some(why) = &routes.closed {
                return Err(ClientError::Closed(why.clone()));
            }
            routes.watch = Some((id, Arc::clone(&state)));
        }
        self.send_frame(frame.to_string()).await?;
        Ok(Watch {
            client: self.clone(),
            id,
            state,
            seen: 0,
        })
    }

    /// Starts a `tail` of a topic pattern, replacing any open: every message
    /// published to a matching topic, until [`Client::untail`]. A tail is a look:
    /// the broker drops its oldest messages rather than hold a slow reader, and a
    /// reader more than [`TAIL_CHANNEL`] messages behind loses the newest.
    pub async fn tail(&self, pattern: &str) -> Result<mpsc::Receiver<TailMessage>, ClientError> {
        self.tail_matching(pattern, &MessageQuery::default()).await
    }

    /// Tails a topic pattern, only the messages `query` selects (the broker
    /// evaluates it as each is published).
    pub async fn tail_matching(
        &self,
        pattern: &str,
        query: &MessageQuery,
    ) -> Result<mpsc::Receiver<TailMessage>, ClientError> {
        let mut frame = json!({"op": "tail", "topic": pattern});
        if let Some(filter) = &query.filter {
            frame["filter"] = json!(filter);
        }
        if let Some(search) = &query.search {
            frame["search"] = json!(search);
        }
        let (tx, messages) = mpsc::channel(TAIL_CHANNEL);
        let id = self.next_id();
        self.conn.routes.lock().tail = Some(TailRoute {
            tx,
            call: id,
            armed: false,
        });
        if let Err(e) = self.call_as(id, frame).await {
            let mut routes = self.conn.routes.lock();
            if routes.tail.as_ref().is_some_and(|t| t.call == id) {
                routes.tail = None;
            }
            return Err(e);
        }
        Ok(messages)
    }

    /// Stops the open tail.
    pub async fn untail(&self) -> Result<(), ClientError> {
        self.conn.routes.lock().tail = None;
        self.call(json!({"op": "untail"})).await.map(|_| ())
    }

    /// Puts an in-flight job back in its queue now (by its message id).
    pub async fn requeue(&self, queue: &str, msg: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "requeue", "queue": queue, "msg": msg}))
            .await
            .map(|_| ())
    }
}

/// Tail messages kept for a reader that has not taken them.
pub(crate) const TAIL_CHANNEL: usize = 1024;
