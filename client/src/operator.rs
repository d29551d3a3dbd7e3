//! Operator calls: the broker's snapshot, peeking at a queue, kicking a client.

use serde_json::json;
use switchyard_wire::{PeekedMessage, Snapshot};

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

    /// Disconnects a client (by its id, `c42`), telling it `reason`.
    pub async fn kick(&self, client: &str, reason: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "kick", "client": client, "reason": reason}))
            .await
            .map(|_| ())
    }
}
