//! The storage seam: where durable queues and retained topics keep their messages.
//!
//! An append-only segmented log per stream on a [`Disk`], with group commit
//! (`commit.rs`), recovery (`recovery.rs`) and cursors (`cursor.rs`). Durability
//! follows [`FsyncPolicy`].

mod commit;
mod cursor;
mod disk;
mod error;
mod index;
mod log;
mod record;
mod recovery;
mod segment;
mod sim_disk;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use commit::Ticket;
pub use disk::{Disk, DiskFile, OsDisk};
pub use error::StoreError;
pub use recovery::{Corruption, Recovery, Truncation};
pub use sim_disk::{SimCounters, SimDisk};

/// When appended records are fsynced, and so when their [`Ticket`] resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Group commit: records are written as they come and one fsync at most every
    /// [`StoreConfig::batch_interval`] per stream covers all of them; a ticket resolves
    /// after the fsync that covers its record. Nothing confirmed is lost on power loss.
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
    /// The shortest time between two fsyncs of one stream under [`FsyncPolicy::Batch`].
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
        }
    }
}

/// How long a retained topic keeps its messages. Limits are applied by deleting whole
/// segments, oldest first, never the one being written: a topic keeps at least what
/// the limits allow and at most about one segment more. `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Messages to keep at least (older whole segments beyond that go).
    pub max_messages: Option<u64>,
    /// Bytes of segments to keep at least.
    pub max_bytes: Option<u64>,
    /// A segment goes once its newest message is older than this many seconds.
    pub max_age_s: Option<u64>,
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
