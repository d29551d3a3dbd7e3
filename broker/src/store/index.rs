//! The sparse index of a segment: one entry every `index_interval_bytes`, so finding
//! the first record at or after a seq or a time reads at most one interval of the
//! segment, plus the summary (counts, seqs, newest time) that retention and lookups use.
//!
//! Times need not increase (the wall clock can step back), so each entry keeps the
//! largest time of the records *before* it in the segment: the entries whose value is
//! below a time `T` are exactly those at or before the first record with time >= `T`,
//! which makes a binary search valid.
//!
//! A closed topic segment's index is saved as `N.idx`:
//!
//! ```text
//! header   "SWYIDX", version u16, first seq u64            16 bytes
//! summary  segment length, records, messages, first seq (0: none), last seq
//!          (0: none), newest time, offset of the last entry (0: none)   7 x u64
//! count    u32, then count x (seq u64, offset u64, newest time before u64)
//! crc      u32: CRC-32 of everything before it
//! ```
//!
//! It is derived data: written without fsync, and rebuilt by scanning the segment when
//! missing, torn, or not matching the segment's length.

use super::record::RecordKind;
use super::segment::{check_header, header, FileKind, FILE_HEADER};

/// One index entry: a record boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub seq: u64,
    pub offset: u64,
    /// The newest time of the records before `offset` in this segment (0: none).
    pub max_time_before: u64,
}

/// What a segment holds, kept up to date as records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Valid records of any kind.
    pub records: u64,
    /// Message records.
    pub messages: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The newest record time (0: no records).
    pub max_time: u64,
    /// The kind of the last record, to find a seal after recovery.
    pub last_kind: Option<u8>,
}

/// The cheap-to-copy running state that extends an index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IndexTail {
    pub summary: Summary,
    last_entry_offset: Option<u64>,
}

impl IndexTail {
    /// Accounts for a record at `offset`; returns an entry if one is due there.
    pub(crate) fn observe(
        &mut self,
        seq: u64,
        offset: u64,
        time_ms: u64,
        kind: u8,
        interval: u64,
    ) -> Option<IndexEntry> {
        let due = match self.last_entry_offset {
            None => true,
            Some(last) => offset.saturating_sub(last) >= interval,
        };
        let entry = due.then_some(IndexEntry {
            seq,
            offset,
            max_time_before: self.summary.max_time,
        });
        if due {
            self.last_entry_offset = Some(offset);
        }
        let s = &mut self.summary;
        s.records += 1;
        if kind == RecordKind::Message as u8 {
            s.messages += 1;
        }
        s.first_seq.get_or_insert(seq);
        s.last_seq = Some(seq);
        s.max_time = s.max_time.max(time_ms);
        s.last_kind = Some(kind);
        entry
    }
}

/// A segment's sparse index and summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    entries: Vec<IndexEntry>,
    tail: IndexTail,
}

impl SegmentIndex {
    /// Accounts for the next record of the segment.
    pub(crate) fn observe(&mut self, seq: u64, offset: u64, time_ms: u64, kind: u8, interval: u64) {
        if let Some(e) = self.tail.observe(seq, offset, time_ms, kind, interval) {
            self.entries.push(e);
        }
    }

    /// The running state, to extend the index away from the lock (see `extend`).
    pub(crate) fn tail(&self) -> IndexTail {
        self.tail
    }

    /// Adds entries computed from [`SegmentIndex::tail`] and the resulting state.
    pub(crate) fn extend(&mut self, entries: &[IndexEntry], tail: IndexTail) {
        self.entries.extend_from_slice(entries);
        self.tail = tail;
    }

    pub(crate) fn summary(&self) -> &Summary {
        &self.tail.summary
    }

    /// Number of entries (for tests and sizing).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.entries.len()
    }

    /// An offset at or before the first record with seq >= `seq`, at most one interval
    /// before it.
    pub(crate) fn seek_seq(&self, seq: u64) -> u64 {
        let i = self.entries.partition_point(|e| e.seq <= seq);
        if i == 0 {
            FILE_HEADER
        } else {
            self.entries[i - 1].offset
        }
    }

    /// An offset at or before the first record with time >= `time_ms`, at most one
    /// interval before it.
    pub(crate) fn seek_time(&self, time_ms: u64) -> u64 {
        let i = self
            .entries
            .partition_point(|e| e.max_time_before < time_ms);
        if i == 0 {
            FILE_HEADER
        } else {
            self.entries[i - 1].offset
        }
    }

    /// The `N.idx` bytes for a closed segment of `seg_len` bytes.
    pub(crate) fn encode(&self, base: u64, seg_len: u64) -> Vec<u8> {
        let s = &self.tail.summary;
        let mut out = Vec::with_capacity(80 + self.entries.len() * 24);
        out.extend_from_slice(&header(FileKind::Index, base));
        for v in [
            seg_len,
            s.records,
            s.messages,
            s.first_seq.unwrap_or(0),
            s.last_seq.unwrap_or(0),
            s.max_time,
            self.tail.last_entry_offset.unwrap_or(0),
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(s.last_kind.unwrap_or(0));
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.seq.to_le_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.max_time_before.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses `N.idx` bytes; `None` if they are torn, corrupt, or for a segment of
    /// another length than `seg_len`.
    pub(crate) fn decode(bytes: &[u8], base: u64, seg_len: u64) -> Option<SegmentIndex> {
        const FIXED: usize = FILE_HEADER as usize + 7 * 8 + 1 + 4;
        if bytes.len() < FIXED + 4 {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        check_header(body, FileKind::Index, base).ok()?;
        let u64_at = |at: usize| -> u64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let f = FILE_HEADER as usize;
        let v: Vec<u64> = (0..7).map(|i| u64_at(f + i * 8)).collect();
        if v[0] != seg_len {
            return None;
        }
        let last_kind = body[f + 56];
        let mut count = [0u8; 4];
        count.copy_from_slice(&body[f + 57..f + 61]);
        let count = u32::from_le_bytes(count) as usize;
        if body.len() != FIXED + count * 24 {
            return None;
        }
        let entries = (0..count)
            .map(|i| {
                let at = FIXED + i * 24;
                IndexEntry {
                    seq: u64_at(at),
                    offset: u64_at(at + 8),
                    max_time_before: u64_at(at + 16),
                }
            })
            .collect();
        let some = |x: u64| (x != 0).then_some(x);
        Some(SegmentIndex {
            entries,
            tail: IndexTail {
                summary: Summary {
                    records: v[1],
                    messages: v[2],
                    first_seq: some(v[3]),
                    last_seq: some(v[4]),
                    max_time: v[5],
                    last_kind: (last_kind != 0).then_some(last_kind),
                },
                last_entry_offset: some(v[6]),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u8 = RecordKind::Message as u8;

    fn build(times: &[u64]) -> SegmentIndex {
        // Records of 100 bytes each from offset 16, an entry every 250 bytes.
        let mut idx = SegmentIndex::default();
        for (i, t) in times.iter().enumerate() {
            idx.observe(10 + i as u64, 16 + 100 * i as u64, *t, M, 250);
        }
        idx
    }

    #[test]
    fn seeks_land_at_most_one_interval_early() {
        let idx = build(&[100, 200, 300, 400, 500, 600, 700, 800]);
        // Entries at records 0, 3, 6 (offsets 16, 316, 616).
        assert_eq!(idx.entries(), 3);
        assert_eq!(idx.seek_seq(9), 16);
        assert_eq!(idx.seek_seq(12), 16);
        assert_eq!(idx.seek_seq(13), 316);
        assert_eq!(idx.seek_seq(17), 616);
        assert_eq!(idx.seek_time(100), 16);
        assert_eq!(idx.seek_time(300), 16);
        assert_eq!(
            idx.seek_time(400),
            316,
            "record 3 (time 400) has 300 before it"
        );
        assert_eq!(idx.seek_time(401), 316);
        assert_eq!(idx.seek_time(10_000), 616);
        assert_eq!(idx.summary().messages, 8);
        assert_eq!(idx.summary().max_time, 800);
    }

    #[test]
    fn time_seek_is_safe_when_the_clock_steps_back() {
        // A late record at index 1 makes every later entry's prefix max 900.
        let idx = build(&[100, 900, 200, 300, 400, 500, 600]);
        assert_eq!(idx.seek_time(350), 16);
        assert_eq!(idx.seek_time(950), 616);
    }

    #[test]
    fn idx_file_round_trip_and_rejects_damage() {
        let idx = build(&[1, 2, 3, 4, 5, 6, 7]);
        let bytes = idx.encode(10, 716);
        assert_eq!(SegmentIndex::decode(&bytes, 10, 716), Some(idx.clone()));
        assert_eq!(
            SegmentIndex::decode(&bytes, 10, 717),
            None,
            "segment length changed"
        );
        assert_eq!(SegmentIndex::decode(&bytes, 11, 716), None, "wrong segment");
        assert_eq!(
            SegmentIndex::decode(&bytes[..bytes.len() - 1], 10, 716),
            None
        );
        let mut flipped = bytes.clone();
        flipped[40] ^= 4;
        assert_eq!(SegmentIndex::decode(&flipped, 10, 716), None);
        assert_eq!(SegmentIndex::decode(&[], 10, 716), None);
    }
}
