//! Operator commands: what the dashboard (or an operator frame) asks the broker to do.

use serde::{Deserialize, Serialize};

use crate::Headers;

/// An action an operator takes on the broker. The dashboard sends these through its
/// `Source`; the embedded broker runs them with `Broker::execute`.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Publish to a topic, as `pub` would.
    Publish {
        /// The topic to publish to.
        topic: String,
        /// The message.
        data: serde_json::Value,
        /// Its headers, if any.
        headers: Option<Headers>,
    },
    /// Send to a queue, as `send` with `confirm: "stored"` would.
    Send {
        /// The queue to send to.
        queue: String,
        /// The message.
        data: serde_json::Value,
        /// Its headers, if any.
        headers: Option<Headers>,
    },
    /// Remove every ready message of a queue (in-flight ones stay).
    Purge {
        /// The queue to purge.
        queue: String,
    },
    /// Disconnect a client after telling it why.
    Kick {
        /// The client's id, e.g. `c42`.
        client: String,
        /// What the client is told; a default reason if `None`.
        reason: Option<String>,
    },
    /// Put an in-flight job back in its queue now, as if its ack deadline had passed.
    Requeue {
        /// The queue the job belongs to.
        queue: String,
        /// The job's message id.
        msg: String,
    },
    /// Put every in-flight job of one consumer back in its queue now.
    RequeueConsumer {
        /// The consumer's client id, e.g. `c42`.
        client: String,
        /// The consumer's cid.
        cid: String,
    },
    /// Move ready messages from one queue to another (dead letters back to
    /// work), keeping data and headers and adding `x-moved-from`.
    Move {
        /// The queue they leave.
        from: String,
        /// The queue they join.
        to: String,
        /// At most this many, oldest first; all when `None`.
        n: Option<u64>,
        /// Only those this query matches (the `sub` filter language).
        filter: Option<String>,
        /// Only the ready message with this id (`not_found` if it is not ready).
        msg: Option<String>,
    },
    /// Remove one ready message from a queue by its id, as if it had been acked.
    Drop {
        /// The queue that holds it.
        queue: String,
        /// Its message id.
        msg: String,
    },
    /// Look at the next ready messages of a queue without consuming them.
    Peek {
        /// The queue or retained topic to look at.
        target: PeekTarget,
        /// How many messages at most.
        n: usize,
        /// Start after this cursor (a queue's message id, a topic's seq): the
        /// `next` of the page before. `None`: a queue's first ready message, a
        /// topic's last `n` (or its first, with a query).
        after: Option<u64>,
        /// Only the messages this selects.
        query: MessageQuery,
    },
    /// A queue's or topic's page: its settings, consumers or subscribers, and
    /// its last 15 minutes.
    Describe {
        /// The queue or topic (any topic, retained or not).
        target: PeekTarget,
    },
}

impl Command {
    /// Whether running it changes the broker (a read-only console refuses it);
    /// a peek only looks.
    pub fn changes_broker(&self) -> bool {
        !matches!(self, Command::Peek { .. } | Command::Describe { .. })
    }
}

/// Which messages a peek or a tail shows: those the filter matches and whose
/// JSON holds the search text (each only when given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// The `sub` filter language (`headers.trace = 'abc'`, `data.total > 100`).
    pub filter: Option<String>,
    /// A substring of the message's data or headers as compact JSON.
    pub search: Option<String>,
}

impl MessageQuery {
    /// Whether it selects every message.
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.search.is_none()
    }
}

/// What a [`Command::Peek`] or a [`Command::Describe`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekTarget {
    /// A queue's next ready messages.
    Queue(String),
    /// A retained topic's last messages.
    Topic(String),
}

/// The result of a command that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    /// Published, with the message's seq in its topic.
    Published {
        /// The message's seq.
        seq: u64,
        /// Subscriptions whose pattern matched the topic when it was published
        /// (their filters may still have passed the message by): 0 says nobody
        /// was listening, which a bare success would hide.
        subscribers: u64,
    },
    /// Sent, with the message's id in its queue.
    Sent {
        /// The message id.
        msg: String,
    },
    /// Purged this many ready messages.
    Purged {
        /// How many were removed.
        count: u64,
    },
    /// The client was told and disconnected.
    Kicked,
    /// The job is back in its queue.
    Requeued,
    /// Requeued this many jobs of one consumer.
    RequeuedAll {
        /// How many went back.
        count: u64,
    },
    /// Moved this many messages.
    Moved {
        /// How many now wait in the target queue.
        count: u64,
    },
    /// The message is gone.
    Dropped,
    /// The messages looked at, oldest first.
    Peeked {
        /// The messages, oldest first.
        messages: Vec<PeekedMessage>,
        /// Whether fewer messages than asked for (and than there are) came back
        /// because the answer is bounded in bytes; on the wire, `"truncated": true`
        /// in the `ok`, absent otherwise.
        truncated: bool,
        /// The cursor to peek on from (`after`) when more messages may follow.
        next: Option<u64>,
    },
    /// A queue's page.
    QueuePage(Box<crate::page::QueuePage>),
    /// A topic's page.
    TopicPage(Box<crate::page::TopicPage>),
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
    /// Unix milliseconds after which it is not delivered (queue messages sent with
    /// a time to live only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The message.
    pub data: serde_json::Value,
    /// Its headers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A message seen by a live tail of a topic (the dashboard's topic view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailMessage {
    /// The topic it was published to.
    pub topic: String,
    /// Its seq in that topic.
    pub seq: u64,
    /// Unix milliseconds when the broker accepted it.
    pub time: u64,
    /// The message.
    pub data: serde_json::Value,
    /// Its headers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}
