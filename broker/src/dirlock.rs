//! One broker per data directory: an exclusive `flock` on `<data>/switchyard.lock`,
//! taken before any store file is opened and held for the broker's life. Two
//! brokers appending to the same logs would each think it owns them and corrupt
//! both; the second is refused instead, naming the process that holds the lock.
//!
//! `flock` (not a pid file alone) because the kernel drops the lock when its
//! holder dies, however it dies: a crash never leaves a stale lock to clear by hand.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use crate::error::{BrokerError, ErrorCode};

/// The lock file's name inside the data directory; it holds the holder's pid.
pub const LOCK_FILE: &str = "switchyard.lock";

/// The held lock; dropping it (closing the file) releases it.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (creating it if needed) or says who holds it. Touches no
    /// other file: the lock file is opened without truncating, and written only
    /// once the lock is ours.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, BrokerError> {
        let failed = |what: &str, e: std::io::Error| {
            BrokerError::new(
                ErrorCode::Internal,
                format!("data directory {}: {what}: {e}", dir.display()),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| failed("cannot create it", e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| failed("cannot open its lock file", e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::from("another process"),
                    pid => format!("the process with pid {pid}"),
                };
                return Err(BrokerError::new(
                    ErrorCode::Internal,
                    format!(
                        "data directory {} is in use by another broker: {holder} holds {}",
                        dir.display(),
                        path.display()
                    ),
                ));
            }
            Err(e) => return Err(failed("cannot lock it", e.into())),
        }
        let mut write_pid = || -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())
        };
        write_pid().map_err(|e| failed("cannot write its lock file", e))?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("switchyard-dirlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = DirLock::acquire(&dir).unwrap();
        let e = DirLock::acquire(&dir).unwrap_err();
        assert!(e.message.contains(&dir.display().to_string()), "{e}");
        assert!(
            e.message.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(first);
        DirLock::acquire(&dir).unwrap();
    }
}
