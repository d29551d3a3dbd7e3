//! Operator commands: what the dashboard (or an operator frame) asks the broker to do.

use serde::{Deserialize, Serialize};

use crate::protocol::Headers;

/// An action an operator takes on the broker. The dashboard sends these through its
/// `Source`; the embedded broker runs them with [`crate::Broker::execute`].
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Publish to a topic, as `pub` would.
    Publish {
        topic: String,
        data: serde_json::Value,
        headers: Option<Headers>,
    },
    /// Send to a queue, as `send` with `confirm: "stored"` would.
    Send {
        queue: String,
        data: serde_json::Value,
        headers: Option<Headers>,
    },
    /// Remove every ready message of a queue (in-flight ones stay).
    Purge { queue: String },
    /// Disconnect a client after telling it why.
    Kick {
        client: String,
        reason: Option<String>,
    },
    /// Put an in-flight job back in its queue now, as if its ack deadline had passed.
    Requeue { queue: String, msg: String },
    /// Look at the next ready messages of a queue without consuming them.
    Peek { target: PeekTarget, n: usize },
}

/// What a [`Command::Peek`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekTarget {
    Queue(String),
    Topic(String),
}

/// The result of a command that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    Published { seq: u64 },
    Sent { msg: String },
    Purged { count: u64 },
    Kicked,
    Requeued,
    Peeked(Vec<PeekedMessage>),
}

/// A message seen by `peek`, not consumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeekedMessage {
    /// Queue message id (queues only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// Topic sequence number (topics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Unix milliseconds when the broker accepted it.
    pub time: u64,
    /// Deliveries so far (queues only; 0 for a message never delivered).
    #[serde(default)]
    pub attempt: u32,
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A message seen by a live tail of a topic (the dashboard's topic view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailMessage {
    pub topic: String,
    pub seq: u64,
    /// Unix milliseconds when the broker accepted it.
    pub time: u64,
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}
