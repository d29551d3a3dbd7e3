//! The `Disk` seam: every file operation the log performs, so the same log code runs
//! on the real file system ([`OsDisk`]) and on a simulated disk that can lose power
//! (`SimDisk`, built for tests only).
//!
//! Files are accessed with positional reads and writes (`pread`/`pwrite`), so one
//! open handle is shared by the writer and any number of readers without a cursor.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::error::{io_err, StoreError};

/// The file-system operations the log needs. Paths are full paths.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Creates `dir` and any missing parents (not durable until the parent is synced).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The names (not paths) of the entries in `dir`, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens a file for reading and writing; creates it (empty) if `create` and missing.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DiskFile>>;
    /// Removes a file (open handles keep working, as with `unlink`).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames the file `from` to `to`, replacing any file there in one step, as
    /// `rename(2)` does; durable once the directory is synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (files created, removed or renamed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file.
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: makes the data and the length durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: makes the data and all metadata durable.
    fn sync_all(&self) -> io::Result<()>;
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub fn read_exact_at(file: &dyn DiskFile, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(offset, buf) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `dir` and makes every directory it had to create durable.
pub(crate) fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> Result<(), StoreError> {
    let mut created = Vec::new();
    for a in dir.ancestors() {
        if a.as_os_str().is_empty() || disk.exists(a).map_err(io_err("checking", a))? {
            break;
        }
        created.push(a);
    }
    if created.is_empty() {
        return Ok(());
    }
    disk.create_dir_all(dir).map_err(io_err("creating", dir))?;
    for a in created {
        if let Some(parent) = a.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent).map_err(io_err("syncing", parent))?;
        }
    }
    Ok(())
}

/// The real file system through `std::fs`, with real `fsync`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsDisk;

impl Disk for OsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DiskFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(OsFile(file)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // On Unix a directory's entries are made durable by fsync on the directory
        // itself; Windows has no such call and commits metadata on its own.
        #[cfg(unix)]
        File::open(dir)?.sync_all()?;
        #[cfg(not(unix))]
        let _ = dir;
        Ok(())
    }
}

/// A file opened by [`OsDisk`].
#[derive(Debug)]
struct OsFile(File);

impl DiskFile for OsFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&self.0, buf, offset)
        }
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_all_at(&self.0, data, offset)
        }
        #[cfg(windows)]
        {
            let (mut offset, mut data) = (offset, data);
            while !data.is_empty() {
                let n = std::os::windows::fs::FileExt::seek_write(&self.0, data, offset)?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                offset += n as u64;
                data = &data[n..];
            }
            Ok(())
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_disk_round_trip() {
        let dir = std::env::temp_dir().join(format!("switchyard-osdisk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let disk = OsDisk;
        disk.create_dir_all(&dir.join("a")).unwrap();
        disk.sync_dir(&dir).unwrap();
        let path = dir.join("a").join("f");
        assert!(!disk.exists(&path).unwrap());
        assert!(disk.open(&path, false).is_err());
        let f = disk.open(&path, true).unwrap();
        f.write_all_at(0, b"hello").unwrap();
        f.write_all_at(5, b" world").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 11);
        let mut buf = [0u8; 5];
        read_exact_at(&*f, 6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert!(read_exact_at(&*f, 8, &mut buf).is_err());
        f.set_len(3).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.size().unwrap(), 3);
        assert_eq!(
            disk.list_dir(&dir.join("a")).unwrap(),
            vec!["f".to_string()]
        );
        let moved = dir.join("a").join("g");
        disk.rename(&path, &moved).unwrap();
        assert!(!disk.exists(&path).unwrap());
        disk.rename(&moved, &path).unwrap();
        disk.remove_file(&path).unwrap();
        // An unlinked file stays readable through its handle, which the log relies on
        // when retention deletes a segment a reader is still in.
        assert_eq!(f.read_at(0, &mut buf).unwrap(), 3);
        disk.remove_dir(&dir.join("a")).unwrap();
        disk.remove_dir(&dir).unwrap();
    }
}
