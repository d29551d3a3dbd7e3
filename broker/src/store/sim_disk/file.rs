//! `SimFile`: a handle on a [`SimDisk`] file. It dies with a power cut, as the open
//! files of a process that did not survive the reboot.

use std::io;
use std::path::PathBuf;

use super::super::disk::DiskFile;
use super::{SimDisk, SimState};

/// A file handle on a [`SimDisk`].
#[derive(Debug)]
pub(super) struct SimFile {
    pub(super) disk: SimDisk,
    pub(super) ino: u64,
    /// The power cuts the disk had seen when this handle was opened.
    pub(super) generation: u64,
    pub(super) path: PathBuf,
}

impl SimFile {
    fn with<T>(
        &self,
        mutating: bool,
        f: impl FnOnce(&mut SimState, u64) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut st = self.disk.state.lock();
        st.alive()?;
        if st.generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: handle opened before a power cut",
                self.path.display()
            )));
        }
        if mutating {
            st.mutate()?;
        }
        f(&mut st, self.ino)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = self.disk.state.lock();
        st.handles = st.handles.saturating_sub(1);
    }
}

impl DiskFile for SimFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with(false, |st, ino| {
            let data = st.inodes.get(&ino).map(|i| &i.data[..]).unwrap_or(&[]);
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            st.counters.reads += 1;
            st.counters.bytes_read += n as u64;
            Ok(n)
        })
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(true, |st, ino| {
            let used = st.used();
            let capacity = st.capacity;
            let inode = st.inodes.entry(ino).or_default();
            let cur = inode.data.len() as u64;
            let mut end = offset + data.len() as u64;
            let mut full = false;
            if let Some(cap) = capacity {
                let limit = cur + cap.saturating_sub(used);
                if end > limit {
                    end = limit;
                    full = true;
                }
            }
            let n = end.saturating_sub(offset) as usize;
            if n > 0 {
                let (at, stop) = (offset as usize, offset as usize + n);
                if inode.data.len() < stop {
                    inode.data.resize(stop, 0);
                }
                inode.data[at..stop].copy_from_slice(&data[..n]);
                inode.touch(at.min(cur as usize));
            }
            st.counters.writes += 1;
            st.counters.bytes_written += n as u64;
            if full {
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device (simulated)",
                ))
            } else {
                Ok(())
            }
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with(false, |st, ino| {
            Ok(st.inodes.get(&ino).map_or(0, |i| i.data.len() as u64))
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(true, |st, ino| {
            let inode = st.inodes.entry(ino).or_default();
            let cur = inode.data.len();
            inode.data.resize(len as usize, 0);
            inode.touch(cur.min(len as usize));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        let latency = self.disk.state.lock().sync_latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        self.with(true, |st, ino| {
            if std::mem::take(&mut st.fail_next_sync) {
                return Err(io::Error::other("fsync failed: EIO (simulated)"));
            }
            st.counters.syncs += 1;
            st.inodes.entry(ino).or_default().sync();
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}
