//! Recovery when a log is opened: find the segments, check them, cut a torn tail,
//! report corruption, and rebuild what the log keeps in memory.
//!
//! - every `N.seg` is found by name; `N.idx`/`N.acks` without their segment are removed;
//! - a closed topic segment is known from its `N.idx` when that matches the segment's
//!   length, else it is scanned and the index rebuilt; the last segment (and, for a
//!   queue, every segment and acks file) is scanned;
//! - a record that fails its checksum or framing with valid records after it is
//!   *corrupt*: reported (in [`Recovery::corrupt`] and with `tracing::error!`), never
//!   returned as data, and skipped; when nothing valid follows it is a *torn tail*: the
//!   last segment (or an acks file) is truncated there and the truncation reported
//!   (in [`Recovery::truncated`] and with `tracing::warn!`);
//! - a queue rebuilds exactly its unacked messages: every message record, minus those
//!   with an ack record carrying the same seq and the message record's CRC, with the
//!   highest delivery attempt recorded.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::{read_exact_at, Disk, DiskFile};
use super::error::{io_err, StoreError};
use super::index::SegmentIndex;
use super::log::{AcksFile, LogMode, SegmentState, Unsettled, FIRST_SEQ};
use super::record::{Record, RecordKind, Scanned, Scanner};
use super::segment::{
    check_header, file_path, header, parse_file_name, FileKind, SegmentFile, FILE_HEADER,
};
use super::{FsyncPolicy, StoreConfig};

/// What opening a log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The stream's directory.
    pub dir: PathBuf,
    /// Segment files found (or created).
    pub segments: u64,
    /// Valid records read while scanning (segments known from their index are not
    /// scanned and not counted).
    pub scanned_records: u64,
    /// Segments scanned because their index was missing or stale.
    pub rebuilt_indexes: u64,
    /// The seq the next message gets.
    pub next_seq: u64,
    /// Torn tails cut off.
    pub truncated: Vec<Truncation>,
    /// Corrupt records or regions found (kept on disk, never served).
    pub corrupt: Vec<Corruption>,
    /// Leftover side files removed (their segment was already deleted).
    pub removed: Vec<PathBuf>,
    /// (queues) Unacked messages found.
    pub unacked: u64,
}

impl Recovery {
    /// Whether recovery found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.truncated.is_empty() && self.corrupt.is_empty()
    }
}

/// A torn tail cut off a file at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The file cut.
    pub path: PathBuf,
    /// The new length of the file.
    pub offset: u64,
    /// Bytes cut off.
    pub bytes: u64,
    /// Why the bytes there were not a valid record.
    pub reason: String,
}

/// A corrupt region detected in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The file holding the region.
    pub path: PathBuf,
    /// Where the region starts.
    pub offset: u64,
    /// Bytes skipped.
    pub bytes: u64,
    /// What is wrong there (checksum mismatch, implausible length, ...).
    pub reason: String,
}

impl Corruption {
    /// The error a reader gets for this region.
    pub fn to_error(&self) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            skipped: self.bytes,
            reason: self.reason.clone(),
        }
    }
}

/// What recovery rebuilt, for the log to start from.
pub(super) struct Recovered {
    /// The segments, oldest first; the last one is the active segment.
    pub segments: Vec<SegmentState>,
    /// (queues) The unacked messages.
    pub unsettled: BTreeMap<u64, Unsettled>,
    /// Corrupt regions found, by (segment base, offset), so readers report them once.
    pub corrupt_seen: HashSet<(u64, u64)>,
    /// What was found and repaired.
    pub report: Recovery,
}

/// Recovers the log in `dir` (which exists), creating its first segment if it has none.
pub(super) fn recover(
    dir: &Path,
    disk: &dyn Disk,
    config: &StoreConfig,
    mode: LogMode,
) -> Result<Recovered, StoreError> {
    let mut opener = Opener {
        dir,
        disk,
        config,
        mode,
        recovery: Recovery {
            dir: dir.to_path_buf(),
            ..Recovery::default()
        },
        unsettled: BTreeMap::new(),
        corrupt_seen: HashSet::new(),
    };
    let segments = opener.open_segments()?;
    Ok(Recovered {
        segments,
        unsettled: opener.unsettled,
        corrupt_seen: opener.corrupt_seen,
        report: opener.recovery,
    })
}

/// Recovery of the segments of one directory.
struct Opener<'a> {
    dir: &'a Path,
    disk: &'a dyn Disk,
    config: &'a StoreConfig,
    mode: LogMode,
    recovery: Recovery,
    unsettled: BTreeMap<u64, Unsettled>,
    corrupt_seen: HashSet<(u64, u64)>,
}

impl Opener<'_> {
    fn open_segments(&mut self) -> Result<Vec<SegmentState>, StoreError> {
        let names = self
            .disk
            .list_dir(self.dir)
            .map_err(io_err("listing", self.dir))?;
        let mut bases = Vec::new();
        let mut sides = Vec::new();
        for name in &names {
            match parse_file_name(name) {
                Some((base, FileKind::Segment)) => bases.push(base),
                Some((base, kind)) => sides.push((base, kind)),
                None => {
                    tracing::warn!(dir = %self.dir.display(), file = %name, "unknown file ignored")
                }
            }
        }
        bases.sort_unstable();
        let mut removed_any = false;
        for (base, kind) in &sides {
            if bases.binary_search(base).is_err() {
                let path = file_path(self.dir, *base, *kind);
                self.disk
                    .remove_file(&path)
                    .map_err(io_err("removing", &path))?;
                self.recovery.removed.push(path);
                removed_any = true;
            }
        }
        if removed_any && self.config.fsync != FsyncPolicy::Never {
            self.disk
                .sync_dir(self.dir)
                .map_err(io_err("syncing", self.dir))?;
        }
        let mut segments = Vec::with_capacity(bases.len().max(1));
        if bases.is_empty() {
            segments.push(self.create_first()?);
            return Ok(segments);
        }
        let mut progress = super::log_queue::Every::second(std::time::Instant::now());
        for (i, base) in bases.iter().enumerate() {
            if progress.due(std::time::Instant::now()) {
                tracing::info!(
                    "opening {}: segment {} of {}",
                    self.dir.display(),
                    i + 1,
                    bases.len()
                );
            }
            let is_last = i + 1 == bases.len();
            let has_idx = sides.contains(&(*base, FileKind::Index));
            let has_acks = sides.contains(&(*base, FileKind::Acks));
            let mut seg = self.open_segment(*base, is_last, has_idx)?;
            if self.mode == LogMode::Queue {
                seg.unsettled = seg.index.summary().messages;
                if has_acks {
                    seg.acks = Some(self.replay_acks(&mut seg)?);
                }
            }
            segments.push(seg);
        }
        Ok(segments)
    }

    fn create_first(&mut self) -> Result<SegmentState, StoreError> {
        let path = file_path(self.dir, FIRST_SEQ, FileKind::Segment);
        let file = self
            .disk
            .open(&path, true)
            .map_err(io_err("creating", &path))?;
        file.write_all_at(0, &header(FileKind::Segment, FIRST_SEQ))
            .map_err(io_err("writing", &path))?;
        if self.config.fsync != FsyncPolicy::Never {
            file.sync_data().map_err(io_err("syncing", &path))?;
            self.disk
                .sync_dir(self.dir)
                .map_err(io_err("syncing", self.dir))?;
        }
        Ok(SegmentState {
            file: Arc::new(SegmentFile {
                base: FIRST_SEQ,
                path,
                file,
            }),
            len: FILE_HEADER,
            index: SegmentIndex::default(),
            acks: None,
            unsettled: 0,
        })
    }

    fn corrupt(&mut self, base: u64, path: &Path, at: Range<u64>, reason: &str) {
        tracing::error!(path = %path.display(), offset = at.start, bytes = at.end - at.start, reason, "corrupt data found at recovery");
        self.corrupt_seen.insert((base, at.start));
        self.recovery.corrupt.push(Corruption {
            path: path.to_path_buf(),
            offset: at.start,
            bytes: at.end - at.start,
            reason: reason.to_string(),
        });
    }

    fn truncate(
        &mut self,
        file: &dyn DiskFile,
        path: &Path,
        at: Range<u64>,
        reason: &str,
    ) -> Result<(), StoreError> {
        tracing::warn!(path = %path.display(), offset = at.start, bytes = at.end - at.start, reason, "torn tail truncated");
        file.set_len(at.start).map_err(io_err("truncating", path))?;
        file.sync_data().map_err(io_err("syncing", path))?;
        self.recovery.truncated.push(Truncation {
            path: path.to_path_buf(),
            offset: at.start,
            bytes: at.end - at.start,
            reason: reason.to_string(),
        });
        Ok(())
    }

    /// Checks a file's header; a torn header of a file that may be cut is rewritten.
    /// Returns the file's length afterwards.
    fn check_file_header(
        &mut self,
        file: &dyn DiskFile,
        path: &Path,
        kind: FileKind,
        base: u64,
        may_cut: bool,
    ) -> Result<u64, StoreError> {
        let size = file.size().map_err(io_err("reading", path))?;
        if size < FILE_HEADER {
            if may_cut {
                self.truncate(file, path, 0..size, "file header is incomplete")?;
                file.write_all_at(0, &header(kind, base))
                    .map_err(io_err("writing", path))?;
                file.sync_data().map_err(io_err("syncing", path))?;
                return Ok(FILE_HEADER);
            }
            self.corrupt(base, path, 0..size, "file header is incomplete");
            return Ok(size);
        }
        let mut h = [0u8; FILE_HEADER as usize];
        read_exact_at(file, 0, &mut h).map_err(io_err("reading", path))?;
        if let Err(reason) = check_header(&h, kind, base) {
            // The records may still be fine: report, and scan them anyway.
            self.corrupt(base, path, 0..FILE_HEADER, reason);
        }
        Ok(size)
    }

    fn open_segment(
        &mut self,
        base: u64,
        is_last: bool,
        has_idx: bool,
    ) -> Result<SegmentState, StoreError> {
        let path = file_path(self.dir, base, FileKind::Segment);
        let file = self
            .disk
            .open(&path, false)
            .map_err(io_err("opening", &path))?;
        let size = self.check_file_header(&*file, &path, FileKind::Segment, base, is_last)?;
        let seg_file = Arc::new(SegmentFile { base, path, file });
        if self.mode == LogMode::Topic && !is_last && has_idx {
            if let Some(index) = self.load_index(base, size) {
                return Ok(SegmentState {
                    file: seg_file,
                    len: size,
                    index,
                    acks: None,
                    unsettled: 0,
                });
            }
        }
        let (index, len) = self.scan_segment(&seg_file, size, is_last)?;
        if self.mode == LogMode::Topic && !is_last {
            self.recovery.rebuilt_indexes += 1;
            let path = file_path(self.dir, base, FileKind::Index);
            let saved = self.disk.open(&path, true).and_then(|f| {
                let bytes = index.encode(base, len);
                f.set_len(0).and_then(|()| f.write_all_at(0, &bytes))
            });
            if let Err(e) = saved {
                tracing::warn!(path = %path.display(), error = %e, "cannot save a rebuilt index");
            }
        }
        if is_last && self.config.fsync != FsyncPolicy::Never {
            // After `kill -9` the tail may sit in the page cache only; it counts as
            // durable from now on, so make it so.
            seg_file
                .file
                .sync_data()
                .map_err(io_err("syncing", &seg_file.path))?;
        }
        Ok(SegmentState {
            file: seg_file,
            len,
            index,
            acks: None,
            unsettled: 0,
        })
    }

    fn load_index(&mut self, base: u64, seg_len: u64) -> Option<SegmentIndex> {
        let path = file_path(self.dir, base, FileKind::Index);
        let file = self.disk.open(&path, false).ok()?;
        let size = file.size().ok()?;
        // An entry (24 bytes) per record at most, and a record is at least 25 bytes:
        // a larger file is damaged, and must not make us allocate its size.
        if size > 256 + seg_len {
            return None;
        }
        let mut bytes = vec![0u8; usize::try_from(size).ok()?];
        read_exact_at(&*file, 0, &mut bytes).ok()?;
        SegmentIndex::decode(&bytes, base, seg_len)
    }

    /// Scans a segment: builds its index, collects queue messages, reports corruption,
    /// and cuts a torn tail off the last segment. Returns the index and the length.
    fn scan_segment(
        &mut self,
        seg: &SegmentFile,
        size: u64,
        is_last: bool,
    ) -> Result<(SegmentIndex, u64), StoreError> {
        let interval = self.config.index_interval_bytes.max(1);
        let mut index = SegmentIndex::default();
        let mut scanner = Scanner::new(
            Arc::clone(&seg.file),
            &seg.path,
            FILE_HEADER.min(size)..size,
            true,
            seg.base,
            self.config.max_record_bytes,
            self.config.read_chunk_bytes,
        );
        let mut len = size;
        while let Some(item) = scanner.next_item() {
            match item? {
                Scanned::Record { record, at } => {
                    self.recovery.scanned_records += 1;
                    index.observe(record.seq, at.start, record.time_ms, record.kind, interval);
                    if self.mode == LogMode::Queue && record.kind == RecordKind::Message as u8 {
                        self.unsettled.insert(
                            record.seq,
                            Unsettled {
                                crc: record.crc,
                                attempts: 0,
                                segment: Some(seg.base),
                            },
                        );
                    }
                }
                Scanned::Corrupt { at, reason } => self.corrupt(seg.base, &seg.path, at, reason),
                Scanned::Torn { from, reason } if is_last => {
                    self.truncate(&*seg.file, &seg.path, from..size, reason)?;
                    len = from;
                }
                Scanned::Torn { from, reason } => {
                    self.corrupt(seg.base, &seg.path, from..size, reason)
                }
            }
        }
        Ok((index, len))
    }

    /// Applies a segment's acks file to the unacked set; cuts a torn tail off it.
    fn replay_acks(&mut self, seg: &mut SegmentState) -> Result<AcksFile, StoreError> {
        let base = seg.file.base;
        let path = file_path(self.dir, base, FileKind::Acks);
        let file = self
            .disk
            .open(&path, false)
            .map_err(io_err("opening", &path))?;
        let size = self.check_file_header(&*file, &path, FileKind::Acks, base, true)?;
        let mut scanner = Scanner::new(
            Arc::clone(&file),
            &path,
            FILE_HEADER.min(size)..size,
            false,
            0,
            64,
            self.config.read_chunk_bytes,
        );
        let mut len = size;
        while let Some(item) = scanner.next_item() {
            match item? {
                Scanned::Record { record, .. } => {
                    if self.apply_side(&record) {
                        seg.unsettled = seg.unsettled.saturating_sub(1);
                    }
                }
                Scanned::Corrupt { at, reason } => self.corrupt(base, &path, at, reason),
                Scanned::Torn { from, reason } => {
                    self.truncate(&*file, &path, from..size, reason)?;
                    len = from;
                }
            }
        }
        Ok(AcksFile { file, len })
    }

    /// Applies one ack or attempt record; true if it settled a message.
    fn apply_side(&mut self, r: &Record) -> bool {
        let crc_at = |at: usize| -> Option<u32> {
            let b = r.body.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match RecordKind::from_u8(r.kind) {
            Some(RecordKind::Ack) => {
                if let (Some(crc), Some(u)) = (crc_at(0), self.unsettled.get(&r.seq)) {
                    if u.crc == crc {
                        self.unsettled.remove(&r.seq);
                        return true;
                    }
                }
            }
            Some(RecordKind::Attempt) => {
                if let (Some(n), Some(crc)) = (crc_at(0), crc_at(4)) {
                    if let Some(u) = self.unsettled.get_mut(&r.seq).filter(|u| u.crc == crc) {
                        u.attempts = u.attempts.max(n);
                    }
                }
            }
            _ => tracing::warn!(
                kind = r.kind,
                seq = r.seq,
                "unknown record kind in an acks file"
            ),
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::log::tests::{
        body, config, fill, framed, open, per_segment, range, read, seg_path, DIR,
    };
    use crate::store::record::framed_len;
    use crate::store::sim_disk::SimDisk;
    use crate::store::ReadFrom;

    #[test]
    fn a_missing_or_stale_index_is_rebuilt() {
        let disk = SimDisk::new();
        let o = open(&disk, LogMode::Topic, &config(FsyncPolicy::Batch));
        fill(&o.log, 0, 60);
        o.close();
        disk.remove_file(&file_path(Path::new(DIR), 1, FileKind::Index))
            .unwrap();
        disk.truncate(&file_path(Path::new(DIR), 19, FileKind::Index), 30)
            .unwrap();
        let o = open(&disk, LogMode::Topic, &config(FsyncPolicy::Batch));
        assert_eq!(o.log.recovery().rebuilt_indexes, 2);
        assert_eq!(
            read(&o.log, ReadFrom::Time(1000 + 10 * 20)).0,
            range(21, 60)
        );
        o.close();
        let o = open(&disk, LogMode::Topic, &config(FsyncPolicy::Batch));
        assert_eq!(
            o.log.recovery().rebuilt_indexes,
            0,
            "rebuilt indexes were saved"
        );
        o.close();
    }

    #[test]
    fn a_torn_last_record_is_cut_at_every_byte_offset() {
        let disk = SimDisk::new();
        let o = open(&disk, LogMode::Topic, &config(FsyncPolicy::Always));
        fill(&o.log, 0, 5);
        o.close();
        let path = seg_path(1);
        let full = disk.file_bytes(&path).unwrap().len() as u64;
        let last_start = full - framed_len(body(4).len()) as u64;
        for cut in last_start..full {
            let d = disk.fork();
            d.truncate(&path, cut).unwrap();
            let o = open(&d, LogMode::Topic, &config(FsyncPolicy::Always));
            let rec = o.log.recovery();
            assert_eq!(rec.corrupt, vec![], "cut at {cut}");
            if cut == last_start {
                assert_eq!(rec.truncated, vec![]);
            } else {
                assert_eq!(rec.truncated.len(), 1, "cut at {cut}");
                let t = &rec.truncated[0];
                assert_eq!(
                    (t.offset, t.bytes),
                    (last_start, cut - last_start),
                    "cut at {cut}"
                );
                assert_eq!(t.path, path);
            }
            assert_eq!(rec.next_seq, 5);
            assert_eq!(
                read(&o.log, ReadFrom::First),
                (range(1, 4), vec![]),
                "cut at {cut}"
            );
            // The log goes on from there.
            fill(&o.log, 4, 2);
            assert_eq!(read(&o.log, ReadFrom::First).0, range(1, 6));
            o.close();
        }
        // A corrupt (not short) last record is cut too.
        let d = disk.fork();
        d.flip_bit(&path, full - 1, 2).unwrap();
        let o = open(&d, LogMode::Topic, &config(FsyncPolicy::Always));
        let rec = o.log.recovery();
        assert_eq!(rec.truncated.len(), 1);
        assert_eq!(rec.truncated[0].reason, "checksum mismatch");
        assert_eq!(read(&o.log, ReadFrom::First).0, range(1, 4));
        o.close();
    }

    #[test]
    fn a_flipped_bit_in_the_middle_is_reported_and_the_rest_served() {
        let disk = SimDisk::new();
        let o = open(&disk, LogMode::Topic, &config(FsyncPolicy::Batch));
        fill(&o.log, 0, 60);
        o.close();
        let framed = framed();
        // seq 5 in the first (closed) segment, and seq 57 in the last (active) one.
        let rec5 = FILE_HEADER + 4 * framed;
        disk.flip_bit(&seg_path(1), rec5 + 30, 6).unwrap();
        let last = o_base_of_last(&disk);
        assert_eq!(last, 1 + 3 * per_segment());
        let rec57 = FILE_HEADER + (57 - last) * framed;
        disk.flip_bit(&seg_path(last), rec57 + 3, 0).unwrap(); // in the length field

        let o = open(&disk, LogMode::Topic, &config(FsyncPolicy::Batch));
        let rec = o.log.recovery();
        // The active segment is scanned at open; the closed one is known by its index.
        assert_eq!(rec.truncated, vec![]);
        assert_eq!(rec.corrupt.len(), 1);
        assert_eq!(rec.corrupt[0].path, seg_path(last));
        assert_eq!(
            (rec.corrupt[0].offset, rec.corrupt[0].bytes),
            (rec57, framed)
        );
        let (seqs, errors) = read(&o.log, ReadFrom::First);
        let mut expected = range(1, 60);
        expected.retain(|s| *s != 5 && *s != 57);
        assert_eq!(seqs, expected);
        assert_eq!(
            errors,
            vec![
                StoreError::Corrupt {
                    path: seg_path(1),
                    offset: rec5,
                    skipped: framed,
                    reason: "checksum mismatch".into()
                },
                StoreError::Corrupt {
                    path: seg_path(last),
                    offset: rec57,
                    skipped: framed,
                    reason: "implausible record length".into()
                },
            ]
        );
        assert_eq!(o.log.stats().corrupt, 2);
        // Reading again reports again (each reader must know), and counts once.
        assert_eq!(read(&o.log, ReadFrom::Seq(3)).1.len(), 2);
        assert_eq!(o.log.stats().corrupt, 2);
        // Appending goes on after a corrupt record in the active segment.
        fill(&o.log, 60, 1);
        assert_eq!(read(&o.log, ReadFrom::Seq(60)).0, vec![60, 61]);
        o.close();
    }

    fn o_base_of_last(disk: &SimDisk) -> u64 {
        disk.files()
            .iter()
            .filter_map(|p| parse_file_name(p.file_name()?.to_str()?))
            .filter(|(_, k)| *k == FileKind::Segment)
            .map(|(b, _)| b)
            .max()
            .unwrap()
    }
}
