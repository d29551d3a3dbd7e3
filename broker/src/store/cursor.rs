//! `Cursor`: reads a log's records in order from the first record, a seq, a time or
//! the end, segment after segment, with one read-ahead window of memory. It finds its
//! start through the sparse index, so it reads at most about one index interval
//! before the first record it returns.

use std::sync::Arc;

use super::error::StoreError;
use super::log::LogCore;
use super::record::{Record, RecordKind, Scanned, Scanner};
use super::recovery::Corruption;
use super::segment::FILE_HEADER;
use super::ReadFrom;

/// Reads a log's records in order from a starting point, one segment at a time, with
/// one read-ahead window of memory.
pub(crate) struct Cursor {
    log: Arc<LogCore>,
    scanner: Option<Scanner>,
    /// The base of the segment being read.
    base: u64,
    min_seq: u64,
    /// Skip records until the first one at or after this time.
    min_time: Option<u64>,
    all_kinds: bool,
    /// An I/O error ended the cursor.
    broken: bool,
}

impl Cursor {
    /// A cursor over `log`'s records from `from` (messages only unless `all_kinds`).
    pub(super) fn new(log: Arc<LogCore>, from: ReadFrom, all_kinds: bool) -> Cursor {
        let sh = &log;
        let st = sh.state.lock();
        let mut min_seq = 0;
        let mut min_time = None;
        let pick = match from {
            ReadFrom::First => st.segments.first().map(|s| (s, FILE_HEADER)),
            ReadFrom::Seq(seq) => {
                min_seq = seq;
                let i = st
                    .segments
                    .partition_point(|s| s.file.base <= seq)
                    .saturating_sub(1);
                st.segments.get(i).map(|s| (s, s.index.seek_seq(seq)))
            }
            ReadFrom::Time(t) => {
                let hit = st
                    .segments
                    .iter()
                    .find(|s| s.index.summary().records > 0 && s.index.summary().max_time >= t);
                match hit {
                    Some(s) => {
                        min_time = Some(t);
                        Some((s, s.index.seek_time(t)))
                    }
                    None => st.segments.last().map(|s| (s, s.len)),
                }
            }
            ReadFrom::End => st.segments.last().map(|s| (s, s.len)),
        };
        let scanner = pick.map(|(s, offset)| sh.scanner(&s.file, offset..s.len.max(offset)));
        let base = pick.map_or(0, |(s, _)| s.file.base);
        drop(st);
        Cursor {
            log,
            scanner,
            base,
            min_seq,
            min_time,
            all_kinds,
            broken: false,
        }
    }

    /// Moves to the segment after the current one, or refreshes the end of the current
    /// one. Returns false when there is nothing more to read for now.
    fn advance(&mut self) -> bool {
        let st = self.log.state.lock();
        let end = self.scanner.as_ref().map_or(0, |s| s.end());
        if let Some(i) = st.segment_position(self.base) {
            let seg = &st.segments[i];
            if seg.len > end {
                if let Some(s) = self.scanner.as_mut() {
                    s.set_end(seg.len);
                }
                return true;
            }
            if i + 1 == st.segments.len() {
                return false;
            }
        }
        // The segment is finished (or deleted under us): go to the next one.
        match st.segments.iter().find(|s| s.file.base > self.base) {
            Some(next) => {
                self.base = next.file.base;
                self.scanner = Some(
                    self.log
                        .scanner(&next.file, FILE_HEADER..next.len.max(FILE_HEADER)),
                );
                true
            }
            None => false,
        }
    }
}

impl Iterator for Cursor {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Result<Record, StoreError>> {
        if self.broken {
            return None;
        }
        loop {
            let item = match self.scanner.as_mut() {
                Some(s) => s.next_item(),
                None => return None,
            };
            let (at, reason) = match item {
                None => {
                    if self.advance() {
                        continue;
                    }
                    return None;
                }
                Some(Err(e)) => {
                    self.broken = true;
                    return Some(Err(e));
                }
                Some(Ok(Scanned::Record { record, .. })) => {
                    if !self.all_kinds && record.kind != RecordKind::Message as u8 {
                        continue;
                    }
                    if record.seq < self.min_seq {
                        continue;
                    }
                    if let Some(t) = self.min_time {
                        if record.time_ms < t {
                            continue;
                        }
                        self.min_time = None;
                    }
                    return Some(Ok(record));
                }
                Some(Ok(Scanned::Corrupt { at, reason })) => (at, reason),
                Some(Ok(Scanned::Torn { from, reason })) => {
                    let end = self.scanner.as_ref().map_or(from, |s| s.end());
                    (from..end, reason)
                }
            };
            let path = self
                .scanner
                .as_ref()
                .map(|s| s.path().to_path_buf())
                .unwrap_or_default();
            let c = Corruption {
                path,
                offset: at.start,
                bytes: at.end - at.start,
                reason: reason.to_string(),
            };
            return Some(Err(self.log.report_corruption(self.base, &c)));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::log::tests::{config, fill, open};
    use crate::store::log::{Log, LogMode};
    use crate::store::sim_disk::SimDisk;
    use crate::store::{FsyncPolicy, ReadFrom, StoreConfig};

    #[test]
    fn a_time_lookup_reads_about_one_index_interval() {
        let disk = SimDisk::new();
        let cfg = StoreConfig {
            segment_bytes: 256 << 10,
            index_interval_bytes: 1024,
            read_chunk_bytes: 1024,
            ..config(FsyncPolicy::Batch)
        };
        let o = open(&disk, LogMode::Topic, &cfg);
        for chunk in 0..20 {
            fill(&o.log, chunk * 1000, 1000);
        }
        let total = disk.used_bytes();
        assert!(total > 1_000_000, "{total}");
        let lookup = |log: &Log, k: u64| {
            disk.reset_counters();
            let first = log
                .cursor(ReadFrom::Time(1000 + 10 * (k - 1)), false)
                .next();
            assert_eq!(first.map(|r| r.unwrap().seq), Some(k));
            let c = disk.counters();
            // At most one interval before the record, read in 1 KiB chunks.
            assert!(
                c.bytes_read <= 2 * 1024 + 57,
                "read {} bytes for seq {k}",
                c.bytes_read
            );
            assert!(c.reads <= 3, "{} reads for seq {k}", c.reads);
        };
        for k in [1, 5_000, 12_345, 19_999] {
            lookup(&o.log, k);
        }
        o.close();
        let o = open(&disk, LogMode::Topic, &cfg);
        for k in [2, 7_777, 15_000] {
            lookup(&o.log, k);
        }
        o.close();
    }
}
