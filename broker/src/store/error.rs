//! `StoreError`: what went wrong in the storage layer, worded for an operator.
//!
//! The broker maps every variant to the protocol's `internal` error and passes the
//! `Display` text along, so each message names the file and, where it matters, the
//! offset. The type is `Clone` because one failed write or fsync fails every append
//! of its batch, and each waiter gets its own copy.

use std::io;
use std::path::{Path, PathBuf};

/// An error from the storage layer. In every variant `op` says what was being done
/// (`"writing"`, `"syncing"`, `"creating"`, ...), `path` names the file or directory
/// (for a backend without files, the stream), and `detail` is the operating
/// system's (or the server's) message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The file system has no space left (ENOSPC). What was stored before stays readable.
    #[error("disk full while {op} {path}: {detail}")]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's message.
        detail: String,
    },
    /// The process may not open or create this file or directory.
    #[error("permission denied while {op} {path}: {detail}")]
    PermissionDenied {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's message.
        detail: String,
    },
    /// A record (or file header) whose checksum or framing is wrong. It is never
    /// returned as data; reading continues after it where the framing allows.
    #[error("corrupt data in {path} at offset {offset} ({skipped} bytes skipped): {reason}")]
    Corrupt {
        /// The file holding the corrupt region.
        path: PathBuf,
        /// Where the region starts.
        offset: u64,
        /// Bytes skipped.
        skipped: u64,
        /// What is wrong there.
        reason: String,
    },
    /// Any other I/O error.
    #[error("I/O error while {op} {path}: {detail}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's message.
        detail: String,
    },
    /// An earlier fsync or clean-up failed, so what is on disk is unknown; the stream
    /// takes no more writes until it is reopened (which runs recovery again).
    #[error("the log in {path} stopped after an earlier failure: {cause}")]
    Failed {
        /// The stream's directory.
        path: PathBuf,
        /// The failure that stopped it.
        cause: String,
    },
    /// The topic was sealed: it takes no more messages.
    #[error("the log in {path} is sealed")]
    Sealed {
        /// The stream's directory.
        path: PathBuf,
    },
    /// A message larger than the configured maximum record size.
    #[error("a record of {size} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The largest accepted.
        max: usize,
    },
    /// More bytes are waiting for the disk than the configured bound; the caller
    /// should retry later (the broker never waits on the disk in its publish path).
    #[error("{pending} bytes are already waiting to be written to {path} (limit {limit})")]
    Backlog {
        /// The stream's directory.
        path: PathBuf,
        /// Bytes waiting.
        pending: usize,
        /// The bound.
        limit: usize,
    },
    /// A file the store keeps whole (the catalog of declared settings) cannot be
    /// parsed; the store does not open until it is fixed or removed.
    #[error("{path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// The name cannot be used as a directory name.
    #[error("`{0}` cannot be stored: not a valid stream name")]
    BadName(String),
    /// The stream was deleted or the store shut down.
    #[error("the store for {path} is closed")]
    Closed {
        /// The stream's directory.
        path: PathBuf,
    },
}

impl StoreError {
    /// Wraps an `io::Error` from `op` (`"writing"`, `"opening"`, ...) on `path`,
    /// picking the variant from the error kind.
    pub fn io(op: &'static str, path: &Path, err: &io::Error) -> StoreError {
        let path = path.to_path_buf();
        let detail = err.to_string();
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StoreError::DiskFull { op, path, detail }
            }
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                StoreError::PermissionDenied { op, path, detail }
            }
            _ => StoreError::Io { op, path, detail },
        }
    }
}

/// For `map_err`: wraps an `io::Error` from `op` on `path` with [`StoreError::io`].
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::io(op, path, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_map_to_variants() {
        let p = Path::new("/d/1.seg");
        let full = io::Error::new(io::ErrorKind::StorageFull, "no space");
        assert!(matches!(
            StoreError::io("writing", p, &full),
            StoreError::DiskFull { op: "writing", .. }
        ));
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(
            StoreError::io("opening", p, &denied),
            StoreError::PermissionDenied { .. }
        ));
        let other = io::Error::other("boom");
        let e = StoreError::io("reading", p, &other);
        assert_eq!(e.to_string(), "I/O error while reading /d/1.seg: boom");
    }
}
