//! `SimDisk`: an in-memory [`Disk`] that forgets, at a simulated power cut, everything
//! not made durable by an fsync (the LazyFS idea), and that can be told to fail.
//!
//! What it models:
//! - File data: each file keeps its live bytes and its durable bytes (as of the last
//!   `sync_data`/`sync_all`). A power cut puts every file back to its durable bytes,
//!   or, with [`SimDisk::power_cut_torn`], keeps a random prefix of the bytes appended
//!   since the last fsync, as a disk that wrote some pages but not others would.
//! - Names: creating or removing a file or directory is durable only once its parent
//!   directory is synced with `sync_dir`. A file created but never dir-synced vanishes at
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
    counters: SimCounters,
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

    /// The operation counts so far.
    pub fn counters(&self) -> SimCounters {
        self.state.lock().counters
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

/// A file handle on a [`SimDisk`].
#[derive(Debug)]
struct SimFile {
    disk: SimDisk,
    ino: u64,
    generation: u64,
    path: PathBuf,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    fn read_all(f: &dyn DiskFile) -> Vec<u8> {
        let mut buf = vec![0u8; f.size().unwrap() as usize];
        assert_eq!(f.read_at(0, &mut buf).unwrap(), buf.len());
        buf
    }

    #[test]
    fn power_cut_keeps_only_what_was_synced() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/d")).unwrap();
        disk.sync_dir(p("/")).unwrap();
        let f = disk.open(p("/d/a"), true).unwrap();
        f.write_all_at(0, b"durable").unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(p("/d")).unwrap();
        f.write_all_at(7, b" lost").unwrap();
        let g = disk.open(p("/d/b"), true).unwrap();
        g.write_all_at(0, b"x").unwrap();
        g.sync_data().unwrap(); // data synced, but the name never was
        disk.power_cut();
        assert!(f.size().is_err(), "nothing works while the power is off");
        disk.restart();
        assert!(f.size().is_err(), "old handles stay dead");
        assert_eq!(disk.list_dir(p("/d")).unwrap(), vec!["a".to_string()]);
        let f = disk.open(p("/d/a"), false).unwrap();
        assert_eq!(read_all(&*f), b"durable");
    }

    #[test]
    fn removal_needs_a_dir_sync_and_truncation_a_file_sync() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/d")).unwrap();
        disk.sync_dir(p("/")).unwrap();
        let f = disk.open(p("/d/a"), true).unwrap();
        f.write_all_at(0, b"abcdef").unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(p("/d")).unwrap();
        f.set_len(2).unwrap();
        disk.remove_file(p("/d/a")).unwrap();
        assert!(!disk.exists(p("/d/a")).unwrap());
        disk.power_cut();
        disk.restart();
        let f = disk.open(p("/d/a"), false).unwrap();
        assert_eq!(read_all(&*f), b"abcdef");
    }

    #[test]
    fn directories_need_their_parent_synced() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/a/b")).unwrap();
        disk.sync_dir(p("/a")).unwrap(); // b is durable in a, but a is not in /
        let f = disk.open(p("/a/b/f"), true).unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(p("/a/b")).unwrap();
        disk.power_cut();
        disk.restart();
        assert!(!disk.exists(p("/a")).unwrap());
        assert!(!disk.exists(p("/a/b/f")).unwrap());
    }

    #[test]
    fn torn_cut_keeps_a_prefix_of_the_appended_bytes() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/d")).unwrap();
        disk.sync_dir(p("/")).unwrap();
        let f = disk.open(p("/d/a"), true).unwrap();
        f.write_all_at(0, b"0123").unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(p("/d")).unwrap();
        f.write_all_at(4, b"456789").unwrap();
        disk.power_cut_torn(7);
        disk.restart();
        let f = disk.open(p("/d/a"), false).unwrap();
        let got = read_all(&*f);
        assert!(got.len() >= 4 && got.len() <= 10);
        assert_eq!(&got[..], &b"0123456789"[..got.len()]);
    }

    #[test]
    fn faults_capacity_denial_sync_and_bit_flips() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/d")).unwrap();
        let f = disk.open(p("/d/a"), true).unwrap();
        disk.set_capacity(Some(5));
        let err = f.write_all_at(0, b"1234567").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(read_all(&*f), b"12345", "a full disk writes what fits");
        f.set_len(3).unwrap();
        f.write_all_at(3, b"xy").unwrap();
        disk.set_capacity(None);

        disk.deny("/d/secret");
        let err = disk.open(p("/d/secret/x"), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            disk.create_dir_all(p("/d/secret")).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        disk.allow_all();

        disk.fail_next_sync();
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();

        disk.flip_bit(p("/d/a"), 0, 0).unwrap();
        assert_eq!(read_all(&*f), b"023xy");
        let c = disk.counters();
        assert_eq!(c.syncs, 1);
        assert!(c.reads >= 2);
    }

    #[test]
    fn cut_after_counts_mutations() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/d")).unwrap();
        let f = disk.open(p("/d/a"), true).unwrap();
        disk.cut_power_after(2);
        f.write_all_at(0, b"a").unwrap();
        f.write_all_at(1, b"b").unwrap();
        assert!(f.write_all_at(2, b"c").is_err());
        assert!(disk.is_down());
        disk.restart();
        assert!(!disk.exists(p("/d")).unwrap(), "nothing was ever synced");
    }

    #[test]
    fn fork_is_independent() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("/d")).unwrap();
        let f = disk.open(p("/d/a"), true).unwrap();
        f.write_all_at(0, b"abc").unwrap();
        let copy = disk.fork();
        copy.truncate(p("/d/a"), 1).unwrap();
        assert_eq!(disk.file_bytes(p("/d/a")).unwrap(), b"abc");
        assert_eq!(copy.file_bytes(p("/d/a")).unwrap(), b"a");
        assert_eq!(copy.files(), vec![PathBuf::from("/d/a")]);
    }
}
