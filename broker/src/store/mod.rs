//! The storage seam: where durable queues and retained topics keep their messages,
//! and what was declared about them.
//!
//! The broker talks to storage through three traits, in its own terms: [`Backend`]
//! opens (declares) the store of a queue or a topic and hands back, at start-up,
//! every stored one with its declared settings; [`QueueStore`] appends, acks,
//! records attempts and recovers; [`TopicStore`] appends, reads from a seq or a
//! time, seals and keeps its retention. Both delete. What is durable is said by a
//! [`Ticket`], which any backend makes with [`Ticket::pending`].
//!
//! Two backends implement the traits and pass the same suite, `conformance.rs`
//! (feature `testing`): [`LogBackend`], an append-only segmented log per stream on
//! a [`Disk`] (the real file system, or `SimDisk` in tests, which loses power on
//! demand), the broker's; and [`NatsBackend`] (`nats/`), a JetStream stream per
//! queue and retained topic on a NATS cluster, whose suite runs against three real
//! servers (tests/store_nats.rs).
//!
//! Messages are opaque bytes here: the broker stores its own encoding of headers and
//! data. The store assigns each stream's `seq` (1, 2, 3, ...); the caller gives the
//! time (unix ms) at which it accepted the message.
//!
//! Layout under the data directory:
//!
//! ```text
//! <data>/switchyard.json                           declared settings (catalog.rs)
//! <data>/queues/<name>/00000000000000000001.seg    records (see record.rs, segment.rs)
//! <data>/queues/<name>/00000000000000000001.acks   acks and delivery attempts
//! <data>/topics/<name>/00000000000000000001.seg
//! <data>/topics/<name>/00000000000000000001.idx    sparse index of a closed segment
//! ```
//!
//! Durability follows [`FsyncPolicy`]; see `commit.rs` for group commit and `log.rs`
//! for recovery.

// Held by the compiler, not by hand: no panicking shortcut on anything from disk,
// and every public item says what it is for.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

mod backend;
mod catalog;
mod commit;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod cursor;
mod disk;
mod error;
mod index;
mod log;
mod log_queue;
mod log_topic;
pub(crate) mod nats;
mod open_files;
mod record;
mod recovery;
mod segment;
#[cfg(any(test, feature = "testing"))]
mod sim_disk;
mod ticket;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use backend::LogBackend;
pub use disk::{Disk, DiskFile, OsDisk};
pub use error::StoreError;
pub use log_queue::LogQueueStore;
pub use log_topic::LogTopicStore;
pub use nats::{
    NatsBackend, NatsQueueStore, NatsStoreConfig, NatsTopicStore, STORE_QUEUE_STREAM_PREFIX,
};
pub use recovery::{Corruption, Recovery, Truncation};
#[cfg(any(test, feature = "testing"))]
pub use sim_disk::{SimCounters, SimDisk};
pub use ticket::{Ticket, TicketSender};

/// When appended records are fsynced, and so when their [`Ticket`] resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Group commit: an append to an idle stream is written and fsynced at once;
    /// appends that arrive during a flush wait for the next, which starts at least
    /// [`StoreConfig::batch_interval`] after the one before, so under load one fsync
    /// per stream per interval covers all of them. A ticket resolves after the
    /// fsync that covers its record. Nothing confirmed is lost on power loss.
    #[default]
    Batch,
    /// Every batch is fsynced as soon as it is written, with no waiting for more
    /// appends (appends that arrive during an fsync share the next one). Nothing
    /// confirmed is lost; one fsync per append when the stream is quiet.
    Always,
    /// Never fsync; a ticket resolves once the record is handed to the OS. Survives a
    /// killed process, but a power loss or kernel crash loses recent confirmed records.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<FsyncPolicy, String> {
        match s.to_ascii_lowercase().as_str() {
            "batch" => Ok(FsyncPolicy::Batch),
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => Err(format!("`{s}`: expected batch, always or never")),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Batch => "batch",
            FsyncPolicy::Always => "always",
            FsyncPolicy::Never => "never",
        })
    }
}

/// Tuning of the log store. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// When records are fsynced.
    pub fsync: FsyncPolicy,
    /// The shortest time between two fsyncs of one stream under [`FsyncPolicy::Batch`]
    /// while appends keep arriving (an append to an idle stream does not wait).
    pub batch_interval: Duration,
    /// A segment rolls when the next record would take it past this size.
    pub segment_bytes: u64,
    /// Distance between two sparse index entries: a seek reads at most about this much.
    pub index_interval_bytes: u64,
    /// The largest message body accepted.
    pub max_record_bytes: usize,
    /// Bytes appended but not yet written, per stream, past which appends fail with
    /// [`StoreError::Backlog`] instead of queueing without bound.
    pub max_pending_bytes: usize,
    /// How much a reader reads at a time (its memory, apart from one large record).
    pub read_chunk_bytes: usize,
    /// Threads that write and fsync, shared by all streams.
    pub sync_threads: usize,
    /// Files (segments, acks files) the backend keeps open at most: past it, the
    /// least recently used idle one is closed and reopened when next used, so
    /// thousands of streams do not take thousands of descriptors. A soft cap: a
    /// file with writes not yet fsynced stays open until the fsync.
    pub max_open_files: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            fsync: FsyncPolicy::Batch,
            batch_interval: Duration::from_millis(2),
            segment_bytes: 64 << 20,
            index_interval_bytes: 4 << 10,
            max_record_bytes: 16 << 20,
            max_pending_bytes: 64 << 20,
            read_chunk_bytes: 64 << 10,
            sync_threads: 4,
            max_open_files: 256,
        }
    }
}

/// The default of [`StoreConfig::max_open_files`] for a broker: half the process's
/// soft limit on open files as it is now (so call it after raising the limit), the
/// other half left for connections; from 16 to 65,536.
pub fn default_max_open_files() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let half = soft.map_or(u64::MAX, |s| s / 2);
    half.clamp(16, 65_536) as usize
}

/// How long a retained topic keeps its messages, as declared; kept by the backend
/// and handed back at start-up. The log applies limits by deleting whole segments,
/// oldest first, never the one being written: a topic keeps at least what the limits
/// allow and at most about one segment more. `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Messages to keep at least (older whole segments beyond that go).
    #[serde(default)]
    pub max_messages: Option<u64>,
    /// Bytes of segments to keep at least.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// A segment goes once its newest message is older than this many seconds.
    #[serde(default)]
    pub max_age_s: Option<u64>,
}

/// What was declared about a durable queue, kept by the backend and handed back at
/// start-up with the queue's messages. The store only keeps it; the broker gives it
/// meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// Most messages the queue holds (`None`: no limit).
    #[serde(default)]
    pub max_len: Option<u64>,
    /// How long a delivery may go unacked before the message is redelivered, in ms.
    pub ack_timeout_ms: u64,
    /// Deliveries after which a message is dead-lettered or dropped (`None`: no limit).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The queue that takes messages out of attempts or nacked without requeue.
    #[serde(default)]
    pub dead_letter: Option<String>,
}

/// What a backend holds, found at start-up: every stored queue and retained topic,
/// with what was declared about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The durable queues, by name.
    pub queues: Vec<StoredQueue>,
    /// The retained topics, by name.
    pub topics: Vec<StoredTopic>,
}

/// A durable queue found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQueue {
    /// Its name.
    pub name: String,
    /// Its declared settings (`None` if none were recorded: the broker's defaults).
    pub settings: Option<QueueSettings>,
}

/// A retained topic found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTopic {
    /// Its name.
    pub name: String,
    /// Its declared retention (no limits if none was recorded).
    pub retention: Retention,
}

/// Where a topic reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The oldest message still stored.
    First,
    /// The first message with this seq or a later one.
    Seq(u64),
    /// The first message (in log order) whose time is at or after this unix ms.
    Time(u64),
    /// After the last message stored: only what is appended from now on.
    End,
}

/// Replays a retained topic (from [`TopicStore::read`]): durable messages in seq
/// order, an `Err(StoreError::Corrupt)` for each corrupt region skipped (keep calling
/// `next` to go on), and `None` when it has caught up; called again later, it returns
/// what became durable since. Its reads block: use it off the async runtime.
pub type TopicReader = Box<dyn Iterator<Item = Result<StoredMessage, StoreError>> + Send>;

/// A message just appended.
#[derive(Debug)]
pub struct Appended {
    /// Its seq in the stream (a queue message's id).
    pub seq: u64,
    /// Resolves when it is durable.
    pub durable: Ticket,
}

/// A topic message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its seq in the topic.
    pub seq: u64,
    /// Unix ms when the broker accepted it.
    pub time_ms: u64,
    /// The bytes the broker appended.
    pub body: Bytes,
}

/// A queue message not yet acked, as recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Its seq (the message id).
    pub seq: u64,
    /// Unix ms when the broker accepted it.
    pub time_ms: u64,
    /// Deliveries started so far (0: never delivered). A message in flight at a crash
    /// comes back ready with its count kept.
    pub attempts: u32,
    /// The bytes the broker appended.
    pub body: Bytes,
}

/// What a stream holds, for `stats` and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Messages stored: for a queue those not acked, for a topic those retained.
    pub messages: u64,
    /// Bytes on disk (segments and their side files).
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Corrupt records or regions detected so far (at recovery or by readers).
    pub corrupt: u64,
    /// The seq the next message will get.
    pub next_seq: u64,
}

/// Damage a backend found in what it stored and what it did about it, worded for an
/// operator (see [`Backend::take_repairs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The queue or topic.
    pub stream: String,
    /// What was found and done (`truncated a torn tail: ...`).
    pub what: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stream, self.what)
    }
}

/// What retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segment files deleted.
    pub segments: u64,
    /// Messages they held.
    pub messages: u64,
    /// Bytes they took.
    pub bytes: u64,
}

/// Storage for one durable queue.
///
/// Order of calls the broker makes: at start-up [`QueueStore::recover`] (the messages
/// to put back in the queue), then `append` for each `send`, `record_attempt` when a
/// delivery starts, `ack` when the message is settled (acked, answered, dead-lettered,
/// dropped or purged), `set_settings` when the queue is declared again, `delete`.
pub trait QueueStore: Send + Sync {
    /// Appends a message; `time_ms` is when the broker accepted it. Fast and never
    /// blocks on the disk: the returned ticket resolves once it is durable.
    fn append(&self, time_ms: u64, body: &[u8]) -> Result<Appended, StoreError>;
    /// Records that message `seq` is settled: it will not be recovered again. Unknown
    /// or already settled seqs are ignored. Durable with the next group commit, no
    /// fsync of its own: the ticket resolves then, so a caller that answers only
    /// after it never sees a settled message come back.
    fn ack(&self, seq: u64) -> Result<Ticket, StoreError>;
    /// Records that delivery number `attempts` of message `seq` started, so a restart
    /// keeps the count. Durable with the next group commit.
    fn record_attempt(&self, seq: u64, attempts: u32) -> Result<(), StoreError>;
    /// Every stored message not acked, in seq order, with its attempt count. Reads the
    /// disk: call it once at start-up, off the async runtime (`spawn_blocking`).
    fn recover(&self) -> Result<Vec<QueuedMessage>, StoreError>;
    /// A ticket that resolves when everything appended or acked so far is durable.
    fn sync(&self) -> Ticket;
    /// Replaces the queue's declared settings, to be handed back by
    /// [`Backend::stored`] at start-up. Blocking (it is written before it returns).
    fn set_settings(&self, settings: &QueueSettings) -> Result<(), StoreError>;
    /// Stored messages and bytes.
    fn stats(&self) -> StoreStats;
    /// Deletes the queue, its messages and its declared settings. From the call on,
    /// every handle to it refuses appends, and its name opens again at once as a
    /// new, empty queue. Does not wait for the disk (the log removes its files on a
    /// committer thread, or here once the backend is closed); the ticket resolves
    /// once the stored data is gone.
    fn delete(&self) -> Ticket;
}

/// Storage for one retained topic.
pub trait TopicStore: Send + Sync {
    /// Appends a message; see [`QueueStore::append`]. Fails with
    /// [`StoreError::Sealed`] once the topic is sealed.
    fn append(&self, time_ms: u64, body: &[u8]) -> Result<Appended, StoreError>;
    /// A reader from `from`; see [`TopicReader`].
    fn read(&self, from: ReadFrom) -> TopicReader;
    /// Replaces the retention limits (applied by [`TopicStore::apply_retention`] and
    /// after each segment roll) and records them, to be handed back by
    /// [`Backend::stored`] at start-up. Blocking (they are written before it returns).
    fn set_retention(&self, retention: Retention) -> Result<(), StoreError>;
    /// Deletes the segments that the limits no longer need, given the time now.
    /// Blocking.
    fn apply_retention(&self, now_ms: u64) -> Result<RetentionOutcome, StoreError>;
    /// Seals the topic: a seal record is appended, later appends fail. The ticket
    /// resolves when the seal is durable.
    fn seal(&self) -> Result<Ticket, StoreError>;
    /// Whether the topic is sealed.
    fn is_sealed(&self) -> bool;
    /// A ticket that resolves when everything appended so far is durable.
    fn sync(&self) -> Ticket;
    /// Stored messages and bytes.
    fn stats(&self) -> StoreStats;
    /// Deletes the topic, its messages and its declared retention; see
    /// [`QueueStore::delete`].
    fn delete(&self) -> Ticket;
}

/// Opens the stores of queues and topics: the storage backend.
pub trait Backend: Send + Sync {
    /// Opens (creating or recovering) the store of a durable queue and records its
    /// declared settings. Blocking. Opening a name already open gives another handle
    /// to the same stream; opening it right after a delete gives a new, empty one.
    fn open_queue(
        &self,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<Arc<dyn QueueStore>, StoreError>;
    /// Opens (creating or recovering) the store of a retained topic and records its
    /// declared retention. Blocking; shared and reopened as [`Backend::open_queue`].
    fn open_topic(
        &self,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<dyn TopicStore>, StoreError>;
    /// Every queue and topic that has a store, with what was declared about it, to
    /// reopen at start-up. Blocking.
    fn stored(&self) -> Result<Stored, StoreError>;
    /// Damage found in what was stored, and repaired or skipped, by the opens since
    /// the last call (each reported once), for the operator's event log. The log
    /// reports torn tails it cut and corrupt records it will skip; a backend that
    /// never finds any (a replicated one) keeps the default and reports nothing.
    fn take_repairs(&self) -> Vec<Repair> {
        Vec::new()
    }
    /// Writes and makes durable everything pending (acks included), then refuses
    /// further appends: the last step of a graceful shutdown. Blocking.
    fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_and_prints() {
        for p in [FsyncPolicy::Batch, FsyncPolicy::Always, FsyncPolicy::Never] {
            assert_eq!(p.to_string().parse::<FsyncPolicy>(), Ok(p));
        }
        assert_eq!("ALWAYS".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::Batch);
    }
}
