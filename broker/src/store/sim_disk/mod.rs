//! `SimDisk`: an in-memory [`Disk`] that forgets, at a simulated power cut, everything
//! not made durable by an fsync (the LazyFS idea), and that can be told to fail.
//!
//! What it models:
//! - File data: each file keeps its live bytes and its durable bytes (as of the last
//!   `sync_data`/`sync_all`). A power cut puts every file back to its durable bytes,
//!   or, with [`SimDisk::power_cut_torn`], keeps a random prefix of the bytes appended
//!   since the last fsync, as a disk that wrote some pages but not others would.
//! - Names: creating, removing or renaming a file or directory is durable only once
//!   its parent directory is synced with `sync_dir`. A file created but never dir-synced vanishes at
//!   a power cut; a file removed but not dir-synced comes back.
//! - Faults: a capacity (writes past it write what fits, then fail with `StorageFull`),
//!   paths where opening or creating is denied, a failing fsync, a cut after N
//!   mutating operations, and flipping a bit in a stored file.
//!
//! After a cut every operation fails until [`SimDisk::restart`]; handles opened before
//! the cut stay dead even after it, like a process that did not survive the reboot.
//! Clones share the same disk; [`SimDisk::fork`] makes an independent copy.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::disk::{Disk, DiskFile};

mod file;
use file::SimFile;

/// An in-memory disk with power cuts and fault injection, for tests.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
}

/// Operation counts, to check how much a lookup reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// `read_at` calls.
    pub reads: u64,
    /// Bytes returned by `read_at`.
    pub bytes_read: u64,
    /// `write_all_at` calls.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// File fsyncs (`sync_data` and `sync_all`).
    pub syncs: u64,
    /// Directory fsyncs.
    pub dir_syncs: u64,
    /// Mutating operations (what [`SimDisk::cut_power_after`] counts).
    pub mutations: u64,
    /// Files opened (`open` calls that gave a handle).
    pub opens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// The lowest offset changed since the last fsync (`usize::MAX` when clean).
    dirty_from: usize,
}

impl Inode {
    fn touch(&mut self, from: usize) {
        self.dirty_from = self.dirty_from.min(from);
    }

    fn sync(&mut self) {
        if self.dirty_from == usize::MAX {
            return;
        }
        let keep = self.dirty_from.min(self.durable.len()).min(self.data.len());
        self.durable.truncate(keep);
        self.durable.extend_from_slice(&self.data[keep..]);
        self.dirty_from = usize::MAX;
    }
}

#[derive(Debug, Clone, Default)]
struct SimState {
    inodes: HashMap<u64, Inode>,
    live: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    next_ino: u64,
    generation: u64,
    down: bool,
    cut_after: Option<u64>,
    capacity: Option<u64>,
    denied: Vec<PathBuf>,
    fail_next_sync: bool,
    /// How long each file fsync takes, as a real disk's does.
    sync_latency: std::time::Duration,
    counters: SimCounters,
    /// File handles alive: what a process would hold in descriptors.
    handles: usize,
}

fn is_root(p: &Path) -> bool {
    p.as_os_str().is_empty() || p.parent().is_none()
}

fn parent_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

fn power_off() -> io::Error {
    io::Error::other("simulated power cut: the disk is off")
}

impl SimState {
    fn alive(&self) -> io::Result<()> {
        if self.down {
            Err(power_off())
        } else {
            Ok(())
        }
    }

    /// Counts a mutating operation, cutting the power if the armed count is reached.
    fn mutate(&mut self) -> io::Result<()> {
        self.alive()?;
        if let Some(left) = self.cut_after {
            if left == 0 {
                self.cut(None);
                return Err(power_off());
            }
            self.cut_after = Some(left - 1);
        }
        self.counters.mutations += 1;
        Ok(())
    }

    fn check_allowed(&self, path: &Path) -> io::Result<()> {
        if self.denied.iter().any(|d| path.starts_with(d)) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "permission denied (simulated)",
            ));
        }
        Ok(())
    }

    fn is_dir(&self, p: &Path) -> bool {
        is_root(p) || self.live.get(p) == Some(&Node::Dir)
    }

    fn used(&self) -> u64 {
        self.live
            .values()
            .filter_map(|n| match n {
                Node::File(ino) => self.inodes.get(ino).map(|i| i.data.len() as u64),
                Node::Dir => None,
            })
            .sum()
    }

    fn cut(&mut self, torn_seed: Option<u64>) {
        self.down = true;
        self.generation += 1;
        // Only names whose every ancestor directory is itself durable survive.
        let durable = self.durable.clone();
        let reachable = |p: &Path| {
            p.ancestors()
                .skip(1)
                .all(|a| is_root(a) || durable.get(a) == Some(&Node::Dir))
        };
        self.durable.retain(|p, _| reachable(p));
        self.live = self.durable.clone();
        let mut rng = torn_seed.map(|s| s | 1);
        let mut inos: Vec<u64> = self.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let Some(inode) = self.inodes.get_mut(&ino) else {
                continue;
            };
            let mut kept = inode.durable.clone();
            if let Some(x) = rng.as_mut() {
                let appended_only = inode.dirty_from >= inode.durable.len();
                if appended_only && inode.data.len() > inode.durable.len() {
                    // xorshift64: deterministic for a given seed.
                    *x ^= *x << 13;
                    *x ^= *x >> 7;
                    *x ^= *x << 17;
                    let extra = inode.data.len() - inode.durable.len();
                    let keep = (*x % (extra as u64 + 1)) as usize;
                    kept.extend_from_slice(&inode.data[inode.durable.len()..][..keep]);
                }
            }
            inode.data = kept.clone();
            inode.durable = kept;
            inode.dirty_from = usize::MAX;
        }
    }
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Cuts the power now: every byte and every name change not yet durable is lost,
    /// and all operations fail until [`SimDisk::restart`].
    pub fn power_cut(&self) {
        self.state.lock().cut(None);
    }

    /// Cuts the power, keeping a pseudo-random prefix (chosen from `seed`) of what was
    /// appended to each file since its last fsync: torn writes.
    pub fn power_cut_torn(&self, seed: u64) {
        self.state.lock().cut(Some(seed));
    }

    /// Lets the next `ops` mutating operations (writes, truncations, fsyncs, creations,
    /// removals) succeed, then cuts the power at the one after.
    pub fn cut_power_after(&self, ops: u64) {
        self.state.lock().cut_after = Some(ops);
    }

    /// Turns the disk back on after a cut. Handles from before the cut stay dead.
    pub fn restart(&self) {
        let mut st = self.state.lock();
        st.down = false;
        st.cut_after = None;
    }

    /// Whether the power is off.
    pub fn is_down(&self) -> bool {
        self.state.lock().down
    }

    /// An independent copy of this disk's current (live) contents, power on.
    pub fn fork(&self) -> SimDisk {
        let mut copy = self.state.lock().clone();
        copy.down = false;
        copy.cut_after = None;
        copy.counters = SimCounters::default();
        copy.handles = 0;
        SimDisk {
            state: Arc::new(Mutex::new(copy)),
        }
    }

    /// Limits the total size of all files to `bytes` (`None`: no limit).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// The total size of all files.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used()
    }

    /// Denies opening, creating and removing anything under `prefix`.
    pub fn deny(&self, prefix: impl Into<PathBuf>) {
        self.state.lock().denied.push(prefix.into());
    }

    /// Lifts every [`SimDisk::deny`].
    pub fn allow_all(&self) {
        self.state.lock().denied.clear();
    }

    /// Makes the next file fsync fail with an I/O error (and not sync anything).
    pub fn fail_next_sync(&self) {
        self.state.lock().fail_next_sync = true;
    }

    /// Makes every file fsync take `latency` (outside the disk's lock), as on a real
    /// disk, where appends arriving during an fsync are what fills the next batch.
    pub fn set_sync_latency(&self, latency: std::time::Duration) {
        self.state.lock().sync_latency = latency;
    }

    /// The operation counts so far.
    pub fn counters(&self) -> SimCounters {
        self.state.lock().counters
    }

    /// File handles alive now (dropped ones do not count), as a process would count
    /// its open descriptors.
    pub fn open_handles(&self) -> usize {
        self.state.lock().handles
    }

    /// Sets every count back to zero.
    pub fn reset_counters(&self) {
        self.state.lock().counters = SimCounters::default();
    }

    fn inode_of(st: &SimState, path: &Path) -> io::Result<u64> {
        match st.live.get(path) {
            Some(Node::File(ino)) => Ok(*ino),
            Some(Node::Dir) => Err(io::Error::from(io::ErrorKind::IsADirectory)),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    /// Flips bit `bit` (0..8) of the byte at `offset` of a file, durably: bit rot.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.state.lock();
        let ino = Self::inode_of(&st, path)?;
        let inode = st.inodes.entry(ino).or_default();
        let at = offset as usize;
        if at >= inode.data.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        inode.data[at] ^= 1 << (bit % 8);
        if at < inode.durable.len() {
            inode.durable[at] ^= 1 << (bit % 8);
        }
        Ok(())
    }

    /// Truncates a file to `len` bytes, durably (as if torn there before a crash).
    pub fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        let ino = Self::inode_of(&st, path)?;
        let inode = st.inodes.entry(ino).or_default();
        inode.data.truncate(len as usize);
        inode.durable.truncate(len as usize);
        Ok(())
    }

    /// The live bytes of a file, or `None` if there is no such file.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = Self::inode_of(&st, path).ok()?;
        st.inodes.get(&ino).map(|i| i.data.clone())
    }

    /// The paths of every file, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let st = self.state.lock();
        st.live
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        st.check_allowed(dir)?;
        let mut missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|a| !is_root(a) && !st.live.contains_key(*a))
            .collect();
        missing.reverse();
        for a in missing {
            if !st.is_dir(parent_of(a)) {
                return Err(io::Error::from(io::ErrorKind::NotADirectory));
            }
            st.mutate()?;
            st.live.insert(a.to_path_buf(), Node::Dir);
        }
        if st.is_dir(dir) {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::NotADirectory))
        }
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.state.lock();
        st.alive()?;
        Ok(is_root(path) || st.live.contains_key(path))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock();
        st.alive()?;
        if !st.is_dir(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(st
            .live
            .keys()
            .filter(|p| parent_of(p) == dir)
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DiskFile>> {
        let mut st = self.state.lock();
        st.alive()?;
        st.check_allowed(path)?;
        let ino = match st.live.get(path) {
            Some(Node::File(ino)) => *ino,
            Some(Node::Dir) => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
            None if !create => return Err(io::Error::from(io::ErrorKind::NotFound)),
            None => {
                if !st.is_dir(parent_of(path)) {
                    return Err(io::Error::from(io::ErrorKind::NotFound));
                }
                st.mutate()?;
                st.next_ino += 1;
                let ino = st.next_ino;
                st.inodes.insert(
                    ino,
                    Inode {
                        dirty_from: usize::MAX,
                        ..Inode::default()
                    },
                );
                st.live.insert(path.to_path_buf(), Node::File(ino));
                ino
            }
        };
        st.counters.opens += 1;
        st.handles += 1;
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            ino,
            generation: st.generation,
            path: path.to_path_buf(),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        st.check_allowed(path)?;
        Self::inode_of(&st, path)?;
        st.mutate()?;
        st.live.remove(path);
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        st.check_allowed(dir)?;
        if st.live.get(dir) != Some(&Node::Dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        if st.live.keys().any(|p| parent_of(p) == dir) {
            return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
        }
        st.mutate()?;
        st.live.remove(dir);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        st.check_allowed(from)?;
        st.check_allowed(to)?;
        let ino = Self::inode_of(&st, from)?;
        if st.live.get(to) == Some(&Node::Dir) {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        }
        if !st.is_dir(parent_of(to)) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        st.mutate()?;
        // Both names change in the live tree now; each directory's durable entries
        // follow at its next `sync_dir`, so one sync makes a same-directory rename
        // durable in one step.
        st.live.remove(from);
        st.live.insert(to.to_path_buf(), Node::File(ino));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        if !st.is_dir(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        st.mutate()?;
        st.counters.dir_syncs += 1;
        let st = &mut *st;
        st.durable.retain(|p, _| parent_of(p) != dir);
        for (p, n) in st.live.iter().filter(|(p, _)| parent_of(p) == dir) {
            st.durable.insert(p.clone(), *n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
