//! Record framing, and the scanner that walks a file of records, telling a torn tail
//! from a corrupt record in the middle and resynchronising after the latter.
//!
//! A record on disk (all integers little-endian):
//!
//! ```text
//! offset  size  field
//!  0       4    len   bytes after the crc field: 17 + body length
//!  4       4    crc   CRC-32 (IEEE, crc32fast) of the len field and the len bytes after crc
//!  8       8    seq   sequence number
//! 16       8    time  unix milliseconds
//! 24       1    kind  1 message, 2 seal, 3 ack, 4 delivery attempt
//! 25       len-17   body
//! ```
//!
//! The length is covered by the checksum, so a flipped length bit is caught too.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::disk::{read_exact_at, DiskFile};
use super::error::StoreError;

/// Bytes of framing before the body.
pub(crate) const RECORD_HEADER: usize = 25;
/// The smallest `len` field: seq + time + kind.
const MIN_LEN: u32 = 17;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A message: the body is the broker's opaque bytes.
    Message = 1,
    /// The topic was sealed; no record follows.
    Seal = 2,
    /// (acks file) The message `seq` was acked; the body is the message record's CRC.
    Ack = 3,
    /// (acks file) The message `seq` started a delivery; the body is the attempt
    /// count (u32) then the message record's CRC.
    Attempt = 4,
}

impl RecordKind {
    pub(crate) fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Message),
            2 => Some(RecordKind::Seal),
            3 => Some(RecordKind::Ack),
            4 => Some(RecordKind::Attempt),
            _ => None,
        }
    }
}

/// A record read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub seq: u64,
    pub time_ms: u64,
    pub kind: u8,
    pub body: Bytes,
    /// The record's checksum: acks name the message they settle by seq and CRC.
    pub crc: u32,
}

/// The framed size of a record with a body of `body_len` bytes.
pub(crate) fn framed_len(body_len: usize) -> usize {
    RECORD_HEADER + body_len
}

/// Appends one framed record to `out` and returns its CRC.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    time_ms: u64,
    kind: RecordKind,
    body: &[u8],
) -> u32 {
    let start = out.len();
    let len = MIN_LEN + body.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(body);
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// The CRC of a framed record (its crc field is skipped).
fn checksum(framed: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&framed[..4]);
    h.update(&framed[8..]);
    h.finalize()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes one framed record that is known to be complete and valid.
fn decode(framed: &[u8], crc: u32) -> Record {
    Record {
        seq: u64_at(framed, 8),
        time_ms: u64_at(framed, 16),
        kind: framed[24],
        body: Bytes::copy_from_slice(&framed[RECORD_HEADER..]),
        crc,
    }
}

/// A read-ahead window over a file: reads in chunks so that scanning many small
/// records costs few reads, and never holds more than one chunk or one record.
#[derive(Debug)]
pub(crate) struct Window {
    buf: Vec<u8>,
    start: u64,
    chunk: usize,
}

impl Window {
    pub(crate) fn new(chunk: usize) -> Window {
        Window {
            buf: Vec::new(),
            start: 0,
            chunk: chunk.max(64),
        }
    }

    /// The bytes `[at, at + n)`, which must lie before `end`.
    fn get(&mut self, file: &dyn DiskFile, at: u64, n: usize, end: u64) -> std::io::Result<&[u8]> {
        let have = at >= self.start && at + n as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (n.max(self.chunk) as u64).min(end.saturating_sub(at)) as usize;
            if self.buf.capacity() > 4 * self.chunk && want <= self.chunk {
                // A huge record passed; give its memory back.
                self.buf = Vec::new();
            }
            self.buf.resize(want, 0);
            self.start = at;
            read_exact_at(file, at, &mut self.buf)?;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + n])
    }

    fn forget(&mut self) {
        self.buf.clear();
    }
}

/// What the scanner found at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// A valid record occupying `at`.
    Record { record: Record, at: Range<u64> },
    /// Bytes `at` hold no valid record, and a valid record starts at `at.end`.
    Corrupt {
        at: Range<u64>,
        reason: &'static str,
    },
    /// From `from` to the end of the file there is no valid record: a torn tail (or a
    /// corrupt last record).
    Torn { from: u64, reason: &'static str },
}

/// Walks the records of a file region, one at a time.
#[derive(Debug)]
pub(crate) struct Scanner {
    file: Arc<dyn DiskFile>,
    path: PathBuf,
    pos: u64,
    end: u64,
    /// Whether seqs must increase (segments) or may come in any order (acks files).
    ordered: bool,
    /// The smallest seq the next record may have, when ordered.
    next_min_seq: u64,
    max_len: u32,
    window: Window,
}

/// A resynchronised record must have a seq within this distance of the last good one.
const MAX_SEQ_JUMP: u64 = 1 << 32;

impl Scanner {
    /// A scanner over `[pos, end)` of `file`. `max_body` bounds a plausible body size.
    pub(crate) fn new(
        file: Arc<dyn DiskFile>,
        path: &Path,
        range: Range<u64>,
        ordered: bool,
        min_seq: u64,
        max_body: usize,
        chunk: usize,
    ) -> Scanner {
        Scanner {
            file,
            path: path.to_path_buf(),
            pos: range.start,
            end: range.end,
            ordered,
            next_min_seq: min_seq,
            max_len: MIN_LEN.saturating_add(u32::try_from(max_body).unwrap_or(u32::MAX)),
            window: Window::new(chunk),
        }
    }

    /// The end of the region scanned.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Moves the end of the region (the active segment grows as the writer publishes).
    pub(crate) fn set_end(&mut self, end: u64) {
        if end < self.end {
            self.window.forget();
        }
        self.end = end;
    }

    /// The file's path, for error messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, e: &std::io::Error) -> StoreError {
        StoreError::io("reading", &self.path, e)
    }

    /// Tries to read a valid record at `at`; `Ok(Err(reason))` when there is none.
    fn try_at(
        &mut self,
        at: u64,
        resync: bool,
    ) -> Result<Result<(Record, u64), &'static str>, StoreError> {
        if self.end.saturating_sub(at) < RECORD_HEADER as u64 {
            return Ok(Err("incomplete record header"));
        }
        let file = Arc::clone(&self.file);
        let head = match self.window.get(&*file, at, RECORD_HEADER, self.end) {
            Ok(h) => h,
            Err(e) => return Err(self.io_err(&e)),
        };
        let len = u32_at(head, 0);
        let stored_crc = u32_at(head, 4);
        let seq = u64_at(head, 8);
        if !(MIN_LEN..=self.max_len).contains(&len) {
            return Ok(Err("implausible record length"));
        }
        let total = 8 + len as u64;
        if at + total > self.end {
            return Ok(Err("record runs past the end of the file"));
        }
        let seq_ok =
            !self.ordered || (seq >= self.next_min_seq && seq - self.next_min_seq < MAX_SEQ_JUMP);
        if resync && !seq_ok {
            // Cheap rejection before the checksum while hunting for the next record.
            return Ok(Err("sequence number out of order"));
        }
        let framed = match self.window.get(&*file, at, total as usize, self.end) {
            Ok(f) => f,
            Err(e) => return Err(self.io_err(&e)),
        };
        if checksum(framed) != stored_crc {
            return Ok(Err("checksum mismatch"));
        }
        if !seq_ok {
            return Ok(Err("sequence number out of order"));
        }
        Ok(Ok((decode(framed, stored_crc), total)))
    }

    /// The next record, corrupt region or torn tail; `None` at the end of the region.
    /// An `Err` is an I/O error reading the file.
    pub(crate) fn next_item(&mut self) -> Option<Result<Scanned, StoreError>> {
        if self.pos >= self.end {
            return None;
        }
        let at = self.pos;
        let reason = match self.try_at(at, false) {
            Err(e) => return Some(Err(e)),
            Ok(Ok((record, total))) => {
                self.pos = at + total;
                if self.ordered {
                    self.next_min_seq = record.seq + 1;
                }
                return Some(Ok(Scanned::Record {
                    record,
                    at: at..at + total,
                }));
            }
            Ok(Err(reason)) => reason,
        };
        match self.resync(at) {
            Err(e) => Some(Err(e)),
            Ok(Some(next)) => {
                self.pos = next;
                Some(Ok(Scanned::Corrupt {
                    at: at..next,
                    reason,
                }))
            }
            Ok(None) => {
                self.pos = self.end;
                Some(Ok(Scanned::Torn { from: at, reason }))
            }
        }
    }

    /// Finds where the next valid record after a bad one at `bad` starts, if any.
    fn resync(&mut self, bad: u64) -> Result<Option<u64>, StoreError> {
        // First trust the length field: a flipped bit in the body leaves it intact.
        let file = Arc::clone(&self.file);
        if self.end.saturating_sub(bad) >= 8 {
            let len = match self.window.get(&*file, bad, 8, self.end) {
                Ok(head) => u32_at(head, 0),
                Err(e) => return Err(self.io_err(&e)),
            };
            if (MIN_LEN..=self.max_len).contains(&len) {
                let next = bad + 8 + len as u64;
                if next < self.end && self.try_at(next, true)?.is_ok() {
                    return Ok(Some(next));
                }
            }
        }
        // Otherwise hunt byte by byte for a record that checks out.
        let mut at = bad + 1;
        while self.end.saturating_sub(at) >= RECORD_HEADER as u64 {
            if self.try_at(at, true)?.is_ok() {
                return Ok(Some(at));
            }
            at += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::disk::Disk;
    use crate::store::sim_disk::SimDisk;

    pub(crate) fn file_with(
        records: &[(u64, &[u8])],
    ) -> (SimDisk, Arc<dyn DiskFile>, Vec<Range<u64>>) {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        let f = disk.open(Path::new("/d/f"), true).unwrap();
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for (seq, body) in records {
            let start = buf.len() as u64;
            encode(&mut buf, *seq, 1000 + seq, RecordKind::Message, body);
            spans.push(start..buf.len() as u64);
        }
        f.write_all_at(0, &buf).unwrap();
        (disk, f, spans)
    }

    fn scan_all(f: &Arc<dyn DiskFile>, chunk: usize) -> Vec<Scanned> {
        let end = f.size().unwrap();
        let mut s = Scanner::new(
            Arc::clone(f),
            Path::new("/d/f"),
            0..end,
            true,
            1,
            1024,
            chunk,
        );
        std::iter::from_fn(|| s.next_item())
            .map(|r| r.unwrap())
            .collect()
    }

    fn seqs(items: &[Scanned]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                Scanned::Record { record, .. } => Some(record.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn encode_then_scan() {
        let (_d, f, spans) = file_with(&[(1, b"one"), (2, b""), (3, b"three")]);
        let items = scan_all(&f, 7);
        assert_eq!(items.len(), 3);
        match &items[2] {
            Scanned::Record { record, at } => {
                assert_eq!(record.seq, 3);
                assert_eq!(record.time_ms, 1003);
                assert_eq!(record.kind, RecordKind::Message as u8);
                assert_eq!(&record.body[..], b"three");
                assert_eq!(at, &spans[2]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(spans[1].end - spans[1].start, framed_len(0) as u64);
    }

    #[test]
    fn flipped_body_bit_is_skipped_by_length() {
        let (disk, f, spans) = file_with(&[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")]);
        disk.flip_bit(Path::new("/d/f"), spans[1].start + 26, 3)
            .unwrap();
        let items = scan_all(&f, 4096);
        assert_eq!(seqs(&items), vec![1, 3]);
        assert_eq!(
            items[1],
            Scanned::Corrupt {
                at: spans[1].clone(),
                reason: "checksum mismatch"
            }
        );
    }

    #[test]
    fn flipped_length_bit_resyncs_by_hunting() {
        let (disk, f, spans) = file_with(&[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc"), (4, b"dd")]);
        // Bit 1 of the length's low byte: 21 -> 23, so the skip by length lands wrong.
        disk.flip_bit(Path::new("/d/f"), spans[1].start, 1).unwrap();
        let items = scan_all(&f, 16);
        assert_eq!(seqs(&items), vec![1, 3, 4]);
        assert!(matches!(&items[1], Scanned::Corrupt { at, .. } if *at == spans[1]));
    }

    #[test]
    fn torn_and_corrupt_last_records_are_torn() {
        let (disk, f, spans) = file_with(&[(1, b"aaaa"), (2, b"bbbb")]);
        f.set_len(spans[1].end - 3).unwrap();
        let items = scan_all(&f, 4096);
        assert_eq!(seqs(&items), vec![1]);
        assert_eq!(
            items[1],
            Scanned::Torn {
                from: spans[1].start,
                reason: "record runs past the end of the file"
            }
        );
        let (disk2, f2, spans2) = file_with(&[(1, b"aaaa"), (2, b"bbbb")]);
        disk2
            .flip_bit(Path::new("/d/f"), spans2[1].end - 1, 0)
            .unwrap();
        let items = scan_all(&f2, 4096);
        assert_eq!(seqs(&items), vec![1]);
        assert!(
            matches!(items[1], Scanned::Torn { from, reason: "checksum mismatch" } if from == spans2[1].start)
        );
        drop(disk);
    }

    #[test]
    fn seq_going_backwards_is_corrupt() {
        let (_d, f, _) = file_with(&[(5, b"a"), (3, b"b"), (6, b"c")]);
        let items = scan_all(&f, 4096);
        assert_eq!(seqs(&items), vec![5, 6]);
        assert!(matches!(
            items[1],
            Scanned::Corrupt {
                reason: "sequence number out of order",
                ..
            }
        ));
    }
}
