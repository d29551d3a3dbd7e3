//! What `describe` answers of one queue or topic: the page the console opens on
//! it. Its settings, who consumes or subscribes, and the last 15 minutes of its
//! figures, sampled once a second by the broker, so a console attached later sees
//! them too.

use serde::{Deserialize, Serialize};

use crate::stats::{QueueStats, TopicStats};

/// Samples a page's history holds at most: 15 minutes, one a second.
pub const HISTORY_SAMPLES: usize = 900;

/// One queue's page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuePage {
    /// The queue's row, as the snapshot has it.
    pub stats: QueueStats,
    /// Time a consumer has to ack a job, in milliseconds.
    pub ack_timeout_ms: u64,
    /// Deliveries a message gets before it is dead; none: no limit.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Where dead messages go; none: they are dropped.
    #[serde(default)]
    pub dead_letter: Option<String>,
    /// Most ready messages it holds; none: no limit.
    #[serde(default)]
    pub max_len: Option<u64>,
    /// Its consumers, by client then cid.
    #[serde(default)]
    pub consumers: Vec<ConsumerStats>,
    /// The row of its dead-letter queue, if it has one and that queue exists.
    #[serde(default)]
    pub dead_letter_stats: Option<QueueStats>,
    /// Its last 15 minutes.
    #[serde(default)]
    pub history: QueueHistory,
    /// Whether consumers (then the oldest samples) were left out so the answer
    /// fits its bound in bytes, as a `peek`'s is. On the wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One consumer of a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerStats {
    /// The client's id, e.g. `c42`.
    pub client: String,
    /// The name the client gave in `hello`, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// The consumer's id on its connection.
    pub cid: String,
    /// Jobs it may hold unacked at once.
    pub prefetch: u32,
    /// Jobs it holds now.
    pub unacked: u32,
    /// Jobs it acked (or replied to) since it started.
    pub acked: u64,
}

/// A queue's figures, one sample a second, oldest first; every list has the same
/// length, and the last sample was taken at `end_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueHistory {
    /// Milliseconds between two samples.
    pub interval_ms: u64,
    /// When the last sample was taken, Unix milliseconds (0 with no samples).
    pub end_ms: u64,
    /// Ready messages at each sample.
    pub ready: Vec<u64>,
    /// Unacked jobs at each sample.
    pub unacked: Vec<u64>,
    /// Messages sent to it in the second before each sample.
    #[serde(rename = "in")]
    pub msgs_in: Vec<u64>,
    /// Jobs acked in the second before each sample.
    pub acked: Vec<u64>,
    /// Redeliveries in the second before each sample.
    pub redelivered: Vec<u64>,
}

/// One topic's page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicPage {
    /// The topic's row, as the snapshot has it.
    pub stats: TopicStats,
    /// Subscriptions whose pattern matches it, by client then sid.
    #[serde(default)]
    pub subscribers: Vec<SubscriberStats>,
    /// Its last 15 minutes.
    #[serde(default)]
    pub history: TopicHistory,
    /// As [`QueuePage::truncated`], subscribers first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

/// One subscription matching a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStats {
    /// The client's id (`c42`); `console` for the broker's own console's tail.
    pub client: String,
    /// The name the client gave in `hello`, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// The subscription's id on its connection.
    pub sid: String,
    /// The pattern it subscribed with.
    pub pattern: String,
    /// Its filter's text, if it has one.
    #[serde(default)]
    pub filter: Option<String>,
    /// Bytes waiting in its client's outbound buffer (every subscription of that
    /// client shares it).
    pub pending_bytes: u64,
    /// That buffer's capacity.
    pub pending_limit: u64,
    /// Whether it is still replaying a retained topic's stored messages.
    #[serde(default)]
    pub replaying: bool,
    /// On a retained topic: the topic's last seq minus the last seq its replay
    /// sent (0 once live); none on a topic that is not retained.
    #[serde(default)]
    pub lag: Option<u64>,
}

/// A topic's figures, one sample a second, oldest first (as [`QueueHistory`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicHistory {
    /// Milliseconds between two samples.
    pub interval_ms: u64,
    /// When the last sample was taken, Unix milliseconds (0 with no samples).
    pub end_ms: u64,
    /// Messages published to it in the second before each sample.
    #[serde(rename = "in")]
    pub msgs_in: Vec<u64>,
    /// Deliveries of its messages in the second before each sample.
    #[serde(rename = "out")]
    pub msgs_out: Vec<u64>,
    /// Subscriptions matching it at each sample.
    pub subscribers: Vec<u64>,
}
