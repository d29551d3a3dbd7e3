//! Operator calls: the broker's snapshot (once, or watched), peeking at a queue or a retained topic,
//! tailing a topic pattern, kicking a client, requeueing a job.

use serde_json::json;
use switchyard_wire::{PeekedMessage, Snapshot, TailMessage};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::ClientError;

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

    /// Disconnects a client (by its id, `c42`), telling it `reason`.
    pub async fn kick(&self, client: &str, reason: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "kick", "client": client, "reason": reason}))
            .await
            .map(|_| ())
    }
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

/// An open `watch`: the broker's snapshot, kept up to date frame by frame.
pub struct Watch {
    frames: mpsc::Receiver<Result<Snapshot, ClientError>>,
    snapshot: Snapshot,
}

impl Watch {
    /// Waits for the next frame and returns the snapshot as it now is; `None`
    /// once the watch or the connection has ended. An error ends the watch (the
    /// broker refused it: `forbidden` without an admin token).
    pub async fn next(&mut self) -> Option<Result<&Snapshot, ClientError>> {
        match self.frames.recv().await? {
            Ok(frame) => {
                self.snapshot.apply(frame);
                Some(Ok(&self.snapshot))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Frames a watch or a tail keeps for a reader that has not taken them; past
/// this the connection waits for the reader, as for a subscription.
const STREAM_CHANNEL: usize = 64;

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
        let (tx, frames) = mpsc::channel(STREAM_CHANNEL);
        {
            let mut routes = self.conn.routes.lock();
            if let Some(why) = &routes.closed {
                return Err(ClientError::Closed(why.clone()));
            }
            routes.watch = Some((id, tx));
        }
        self.send_frame(frame.to_string()).await?;
        Ok(Watch {
            frames,
            snapshot: Snapshot::default(),
        })
    }

    /// Starts a `tail` of a topic pattern, replacing any open: every message
    /// published to a matching topic, until [`Client::untail`]. A tail is a look:
    /// the broker drops its oldest messages rather than hold a slow reader.
    pub async fn tail(&self, pattern: &str) -> Result<mpsc::Receiver<TailMessage>, ClientError> {
        let (tx, messages) = mpsc::channel(TAIL_CHANNEL);
        self.conn.routes.lock().tail = Some(tx);
        if let Err(e) = self.call(json!({"op": "tail", "topic": pattern})).await {
            self.conn.routes.lock().tail = None;
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
const TAIL_CHANNEL: usize = 1024;
