//! Segment files: their names, their 16-byte header, and the handle shared by the
//! writer and readers.
//!
//! A stream directory holds, per segment whose first seq is `N` (20 digits, so names
//! sort by seq):
//! - `N.seg`: header `SWYLOG` + version (u16) + first seq (u64), then records;
//! - `N.idx` (topics): the sparse index and summary of a closed segment, see `index.rs`;
//! - `N.acks` (queues): header `SWYACK` + version + first seq, then ack and delivery
//!   attempt records for the messages of `N.seg`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::DiskFile;

/// Bytes of the file header of a segment or acks file.
pub(crate) const FILE_HEADER: u64 = 16;
/// The on-disk format version written in every header.
pub(crate) const FORMAT_VERSION: u16 = 1;

/// The kinds of file in a stream directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment,
    Index,
    Acks,
}

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            FileKind::Segment => "seg",
            FileKind::Index => "idx",
            FileKind::Acks => "acks",
        }
    }

    /// The header magic of the kinds that have a record header.
    pub(crate) fn magic(self) -> &'static [u8; 6] {
        match self {
            FileKind::Segment => b"SWYLOG",
            FileKind::Index => b"SWYIDX",
            FileKind::Acks => b"SWYACK",
        }
    }
}

/// The file name of a segment's file of `kind`.
pub(crate) fn file_name(base: u64, kind: FileKind) -> String {
    format!("{base:020}.{}", kind.extension())
}

/// The path of a segment's file of `kind` in `dir`.
pub(crate) fn file_path(dir: &Path, base: u64, kind: FileKind) -> PathBuf {
    dir.join(file_name(base, kind))
}

/// Parses a file name made by [`file_name`].
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match ext {
        "seg" => FileKind::Segment,
        "idx" => FileKind::Index,
        "acks" => FileKind::Acks,
        _ => return None,
    };
    Some((stem.parse().ok()?, kind))
}

/// The 16-byte header of a segment or acks file.
pub(crate) fn header(kind: FileKind, base: u64) -> [u8; FILE_HEADER as usize] {
    let mut h = [0u8; FILE_HEADER as usize];
    h[..6].copy_from_slice(kind.magic());
    h[6..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base.to_le_bytes());
    h
}

/// Checks a header read from disk; `Err` says what is wrong with it.
pub(crate) fn check_header(bytes: &[u8], kind: FileKind, base: u64) -> Result<(), &'static str> {
    if bytes.len() < FILE_HEADER as usize {
        return Err("file header is incomplete");
    }
    if &bytes[..6] != kind.magic() {
        return Err("file header has the wrong magic");
    }
    if bytes[6..8] != FORMAT_VERSION.to_le_bytes() {
        return Err("file header has an unknown format version");
    }
    if bytes[8..16] != base.to_le_bytes() {
        return Err("file header's first seq does not match the file name");
    }
    Ok(())
}

/// One open segment file: shared by the writer and every reader, so a reader keeps
/// reading a segment that retention deleted under it.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    /// The seq of the segment's first record (its file name).
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<dyn DiskFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_seq() {
        assert_eq!(file_name(42, FileKind::Segment), "00000000000000000042.seg");
        assert_eq!(
            parse_file_name("00000000000000000042.acks"),
            Some((42, FileKind::Acks))
        );
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_file_name("00000000000000000042.tmp"), None);
        assert!(file_name(9, FileKind::Segment) < file_name(10, FileKind::Segment));
    }

    #[test]
    fn headers_check() {
        let h = header(FileKind::Segment, 7);
        assert_eq!(check_header(&h, FileKind::Segment, 7), Ok(()));
        assert!(check_header(&h, FileKind::Acks, 7).is_err());
        assert!(check_header(&h, FileKind::Segment, 8).is_err());
        assert!(check_header(&h[..10], FileKind::Segment, 7).is_err());
    }
}
