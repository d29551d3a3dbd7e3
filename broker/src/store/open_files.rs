//! `OpenFiles`: a [`Disk`] that keeps at most [`StoreConfig::max_open_files`] of its
//! files open at once, so thousands of durable queues and retained topics do not
//! hold thousands of descriptors for good.
//!
//! Every file it opens is a [`PooledFile`]: a handle that outlives its descriptor.
//! To open one more past the cap, the least recently used idle one is closed; a
//! closed one reopens by its path the next time it is read, written or synced.
//! Callers (the log, its readers, recovery) never see the difference.
//!
//! What keeps it correct:
//! - A file with writes not yet fsynced is never closed (unless the fsync policy is
//!   `never`): group commit fsyncs the descriptor it wrote through, and an fsync on
//!   a reopened descriptor could miss a write-back error the old one would report.
//! - A file whose name was removed (retention deleting a segment a reader is in) or
//!   replaced by a rename cannot be reopened by name: it stays open until its last
//!   handle goes, as `unlink` promises.
//! - The cap is soft: files that may not be closed, and descriptors still in use by
//!   a read or write in progress, can take it over for a moment.
//!
//! The hot path (reading or writing an open file) takes only that file's own lock,
//! for a pointer copy, and stamps it with a shared counter; no broker-wide lock is
//! held across I/O, and closing a descriptor happens outside every lock.
//!
//! [`StoreConfig::max_open_files`]: super::StoreConfig::max_open_files

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::disk::{Disk, DiskFile};

/// A [`Disk`] that caps how many of its files hold a descriptor at once.
#[derive(Debug, Clone)]
pub(crate) struct OpenFiles {
    pool: Arc<Pool>,
}

struct Pool {
    inner: Arc<dyn Disk>,
    max_open: usize,
    /// Whether a file with unsynced writes must stay open (false under `never`,
    /// which promises nothing about fsync).
    keep_unsynced: bool,
    /// Stamps of use: the smallest stamp among open files is the least recently used.
    clock: AtomicU64,
    files: Mutex<Registry>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFiles")
            .field("inner", &self.inner)
            .field("max_open", &self.max_open)
            .finish()
    }
}

/// Every pooled file alive, and which of them hold a descriptor. Held only for
/// bookkeeping, never across I/O.
#[derive(Default)]
struct Registry {
    next_id: u64,
    live: HashMap<u64, Arc<Entry>>,
    open: HashMap<u64, Arc<Entry>>,
}

/// What the registry and the handle share about one file.
struct Entry {
    id: u64,
    last_used: AtomicU64,
    slot: Mutex<Slot>,
}

struct Slot {
    path: PathBuf,
    /// The descriptor, while open.
    file: Option<Arc<dyn DiskFile>>,
    /// Writes (and length changes) started, counted before they run, so that
    /// eviction never sees a file as clean while a write to it is under way.
    writes: u64,
    /// `writes` as of the start of the last fsync that succeeded.
    synced: u64,
    /// Its name was removed or replaced: it cannot be reopened, so it stays open.
    unlinked: bool,
}

impl Slot {
    fn is_clean(&self) -> bool {
        self.writes == self.synced
    }
}

impl OpenFiles {
    /// Wraps `inner`, keeping at most `max_open` files open (at least 1).
    /// `keep_unsynced`: never close a file with writes not yet fsynced.
    pub(crate) fn new(inner: Arc<dyn Disk>, max_open: usize, keep_unsynced: bool) -> OpenFiles {
        OpenFiles {
            pool: Arc::new(Pool {
                inner,
                max_open: max_open.max(1),
                keep_unsynced,
                clock: AtomicU64::new(1),
                files: Mutex::new(Registry::default()),
            }),
        }
    }

    /// How many of its files hold a descriptor now.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.pool.files.lock().open.len()
    }
}

/// Whether an error means the process (or system) is out of descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|code| {
        code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    })
}

impl Pool {
    fn stamp(&self, entry: &Entry) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        entry.last_used.store(now, Ordering::Relaxed);
    }

    /// Closes least recently used idle files until one more fits under the cap
    /// (or, with `force`, closes one more whatever the count: the system is out of
    /// descriptors). `except` is the file about to be opened. Returns whether it
    /// closed any.
    fn make_room(&self, except: Option<u64>, force: bool) -> bool {
        let mut closing: Vec<Arc<dyn DiskFile>> = Vec::new();
        {
            let mut reg = self.files.lock();
            let mut skipped: Vec<u64> = Vec::new();
            while force && closing.is_empty() || !force && reg.open.len() >= self.max_open {
                let victim = reg
                    .open
                    .values()
                    .filter(|e| Some(e.id) != except && !skipped.contains(&e.id))
                    .min_by_key(|e| e.last_used.load(Ordering::Relaxed))
                    .map(Arc::clone);
                let Some(victim) = victim else { break };
                // `try_lock`: a file in use is not idle, and the lock order elsewhere
                // is file first, registry second.
                let taken = victim.slot.try_lock().and_then(|mut s| {
                    let closable = !s.unlinked && (s.is_clean() || !self.keep_unsynced);
                    closable.then(|| s.file.take()).flatten()
                });
                match taken {
                    Some(file) => {
                        reg.open.remove(&victim.id);
                        closing.push(file);
                    }
                    None => skipped.push(victim.id),
                }
            }
        }
        let closed = !closing.is_empty();
        if closed {
            tracing::trace!(closed = closing.len(), "closed idle log files");
        }
        // Dropped here, outside the locks: the `close` calls.
        drop(closing);
        closed
    }

    /// Opens `path` on the inner disk after making room; retried once after
    /// closing another file if the system is out of descriptors anyway.
    fn open_inner(
        &self,
        path: &Path,
        create: bool,
        except: Option<u64>,
    ) -> io::Result<Arc<dyn DiskFile>> {
        self.make_room(except, false);
        match self.inner.open(path, create) {
            Err(e) if out_of_descriptors(&e) && self.make_room(except, true) => {
                self.inner.open(path, create)
            }
            other => other,
        }
    }

    /// Runs a call that needs a descriptor of its own for a moment (listing or
    /// syncing a directory), closing an idle file first if there is none left.
    fn with_descriptor<T>(&self, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e) if out_of_descriptors(&e) && self.make_room(None, true) => op(),
            other => other,
        }
    }

    /// Registers a descriptor just put in `entry`'s slot (whose lock the caller holds).
    fn note_open(&self, entry: &Arc<Entry>) {
        self.files.lock().open.insert(entry.id, Arc::clone(entry));
    }

    /// Every live file whose path is one of `paths`, in id order (the order their
    /// locks are taken in).
    fn named(&self, paths: &[&Path]) -> Vec<Arc<Entry>> {
        let all: Vec<Arc<Entry>> = self.files.lock().live.values().map(Arc::clone).collect();
        let mut named: Vec<Arc<Entry>> = all
            .into_iter()
            .filter(|e| paths.contains(&e.slot.lock().path.as_path()))
            .collect();
        named.sort_by_key(|e| e.id);
        named
    }

    /// Reopens a closed file, under its lock, so its name can go away.
    fn keep_open(&self, entry: &Arc<Entry>, slot: &mut Slot) -> io::Result<()> {
        if slot.file.is_none() {
            let file = self.open_inner(&slot.path, false, Some(entry.id))?;
            slot.file = Some(file);
            self.note_open(entry);
        }
        Ok(())
    }
}

impl Disk for OpenFiles {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.pool.inner.create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.pool.inner.exists(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.pool.with_descriptor(|| self.pool.inner.list_dir(dir))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DiskFile>> {
        let pool = &self.pool;
        let file = pool.open_inner(path, create, None)?;
        let entry = {
            let mut reg = pool.files.lock();
            reg.next_id += 1;
            let entry = Arc::new(Entry {
                id: reg.next_id,
                last_used: AtomicU64::new(0),
                slot: Mutex::new(Slot {
                    path: path.to_path_buf(),
                    file: Some(file),
                    writes: 0,
                    synced: 0,
                    unlinked: false,
                }),
            });
            reg.live.insert(entry.id, Arc::clone(&entry));
            reg.open.insert(entry.id, Arc::clone(&entry));
            entry
        };
        pool.stamp(&entry);
        Ok(Arc::new(PooledFile {
            pool: Arc::clone(pool),
            entry,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let pool = &self.pool;
        let named = pool.named(&[path]);
        let mut slots: Vec<_> = named.iter().map(|e| e.slot.lock()).collect();
        for (entry, slot) in named.iter().zip(slots.iter_mut()) {
            pool.keep_open(entry, slot)?;
        }
        pool.inner.remove_file(path)?;
        for slot in &mut slots {
            slot.unlinked = true;
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.pool.inner.remove_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let pool = &self.pool;
        let named = pool.named(&[from, to]);
        let mut slots: Vec<_> = named.iter().map(|e| e.slot.lock()).collect();
        for (entry, slot) in named.iter().zip(slots.iter_mut()) {
            if slot.path == to {
                pool.keep_open(entry, slot)?;
            }
        }
        pool.inner.rename(from, to)?;
        for slot in &mut slots {
            if slot.path == to {
                slot.unlinked = true;
            } else {
                slot.path = to.to_path_buf();
            }
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.pool.with_descriptor(|| self.pool.inner.sync_dir(dir))
    }
}

/// A file of an [`OpenFiles`] disk: open or closed, it reads and writes the same.
struct PooledFile {
    pool: Arc<Pool>,
    entry: Arc<Entry>,
}

impl fmt::Debug for PooledFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledFile")
            .field("path", &self.entry.slot.lock().path)
            .finish()
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        let id = self.entry.id;
        let gone = {
            let mut reg = self.pool.files.lock();
            (reg.live.remove(&id), reg.open.remove(&id))
        };
        // The descriptor closes here, outside the registry lock.
        drop(gone);
    }
}

impl PooledFile {
    /// The descriptor, reopened if it was closed, and the write count as of now;
    /// `write` counts a write about to be made through it.
    fn descriptor(&self, write: bool) -> io::Result<(Arc<dyn DiskFile>, u64)> {
        let entry = &self.entry;
        loop {
            let path = {
                let mut slot = entry.slot.lock();
                if let Some(file) = &slot.file {
                    let file = Arc::clone(file);
                    if write {
                        slot.writes += 1;
                    }
                    let writes = slot.writes;
                    drop(slot);
                    self.pool.stamp(entry);
                    return Ok((file, writes));
                }
                slot.path.clone()
            };
            let file = self.pool.open_inner(&path, false, Some(entry.id))?;
            let mut slot = entry.slot.lock();
            // Another call may have reopened it, or a rename moved it, meanwhile:
            // then this descriptor is dropped and the loop looks again.
            if slot.file.is_none() && slot.path == path {
                slot.file = Some(file);
                self.pool.note_open(entry);
            }
        }
    }

    fn sync(&self, op: impl FnOnce(&dyn DiskFile) -> io::Result<()>) -> io::Result<()> {
        {
            let slot = self.entry.slot.lock();
            if slot.file.is_none() && slot.is_clean() {
                // Closed only once clean: nothing to sync, and no descriptor to spend.
                return Ok(());
            }
        }
        let (file, writes) = self.descriptor(false)?;
        op(&*file)?;
        let mut slot = self.entry.slot.lock();
        slot.synced = slot.synced.max(writes);
        Ok(())
    }
}

impl DiskFile for PooledFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.descriptor(false)?.0.read_at(offset, buf)
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.descriptor(true)?.0.write_all_at(offset, data)
    }

    fn size(&self) -> io::Result<u64> {
        self.descriptor(false)?.0.size()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.descriptor(true)?.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(|f| f.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(|f| f.sync_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::read_exact_at;
    use crate::store::sim_disk::SimDisk;

    fn disk(max_open: usize) -> (SimDisk, OpenFiles) {
        let sim = SimDisk::new();
        sim.create_dir_all(Path::new("/d")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let files = OpenFiles::new(Arc::new(sim.clone()), max_open, true);
        (sim, files)
    }

    fn path(i: usize) -> PathBuf {
        PathBuf::from(format!("/d/f{i}"))
    }

    fn read_all(f: &dyn DiskFile) -> Vec<u8> {
        let mut buf = vec![0; f.size().unwrap() as usize];
        read_exact_at(f, 0, &mut buf).unwrap();
        buf
    }

    #[test]
    fn past_the_cap_the_least_recently_used_clean_file_closes_and_reopens_on_use() {
        let (sim, files) = disk(3);
        let handles: Vec<_> = (0..5)
            .map(|i| files.open(&path(i), true).unwrap())
            .collect();
        for (i, h) in handles.iter().enumerate() {
            h.write_all_at(0, format!("file {i}").as_bytes()).unwrap();
            h.sync_data().unwrap();
        }
        assert_eq!(files.open_count(), 3);
        assert_eq!(sim.open_handles(), 3);
        // Every file reads back what was written through it, open or reopened.
        for round in 0..3 {
            for (i, h) in handles.iter().enumerate() {
                assert_eq!(read_all(&**h), format!("file {i}").into_bytes(), "{round}");
                assert!(sim.open_handles() <= 3);
            }
        }
        // The most recently used stay open: reading 4, 3, 2 again opens nothing.
        let opens = sim.counters().opens;
        for i in [4, 3, 2] {
            read_all(&*handles[i]);
        }
        assert_eq!(sim.counters().opens, opens);
        read_all(&*handles[0]);
        assert_eq!(sim.counters().opens, opens + 1);
        drop(handles);
        assert_eq!((files.open_count(), sim.open_handles()), (0, 0));
    }

    #[test]
    fn a_file_with_unsynced_writes_stays_open_until_it_is_synced() {
        let (sim, files) = disk(1);
        let dirty = files.open(&path(0), true).unwrap();
        dirty.write_all_at(0, b"not yet durable").unwrap();
        files.sync_dir(Path::new("/d")).unwrap();
        let others: Vec<_> = (1..4)
            .map(|i| files.open(&path(i), true).unwrap())
            .collect();
        // Over the cap rather than close it: the fsync must go through its descriptor.
        assert_eq!(files.open_count(), 2);
        let syncs = sim.counters().syncs;
        dirty.sync_data().unwrap();
        assert_eq!(sim.counters().syncs, syncs + 1);
        others[0].size().unwrap();
        assert_eq!(
            files.open_count(),
            1,
            "synced, it was closed for the next open"
        );
        // A sync of a closed clean file has nothing to do and opens nothing.
        let opens = sim.counters().opens;
        dirty.sync_data().unwrap();
        assert_eq!(
            (sim.counters().opens, sim.counters().syncs),
            (opens, syncs + 1)
        );
        sim.power_cut();
        sim.restart();
        let back = sim.open(&path(0), false).unwrap();
        assert_eq!(read_all(&*back), b"not yet durable");
    }

    #[test]
    fn a_removed_or_replaced_file_stays_readable_through_its_handle() {
        let (sim, files) = disk(1);
        let a = files.open(&path(0), true).unwrap();
        a.write_all_at(0, b"old").unwrap();
        a.sync_data().unwrap();
        let b = files.open(&path(1), true).unwrap();
        b.write_all_at(0, b"new").unwrap();
        b.sync_data().unwrap();
        // `a` was closed to open `b`; removing its name reopens it first.
        files.remove_file(&path(0)).unwrap();
        let c = files.open(&path(2), true).unwrap();
        assert_eq!(read_all(&*a), b"old");
        // Renaming over `c` keeps `c` readable; `b` follows its new name.
        c.write_all_at(0, b"replaced").unwrap();
        c.sync_data().unwrap();
        files.rename(&path(1), &path(2)).unwrap();
        let d = files.open(&path(3), true).unwrap();
        d.sync_data().unwrap();
        assert_eq!(read_all(&*c), b"replaced");
        assert_eq!(read_all(&*b), b"new");
        assert_eq!(read_all(&*files.open(&path(2), false).unwrap()), b"new");
        drop((a, c));
        assert!(sim.open_handles() <= 2, "{}", sim.open_handles());
    }

    #[test]
    fn threads_reading_and_writing_many_files_under_a_small_cap_see_their_own_bytes() {
        let (sim, files) = disk(4);
        let handles: Vec<Arc<dyn DiskFile>> = (0..16)
            .map(|i| files.open(&path(i), true).unwrap())
            .collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let handles = handles.clone();
                std::thread::spawn(move || {
                    for round in 0..50u64 {
                        for (i, h) in handles.iter().enumerate().filter(|(i, _)| i % 4 == t) {
                            h.write_all_at(round * 8, &round.to_le_bytes()).unwrap();
                            h.sync_data().unwrap();
                            let mut buf = [0u8; 8];
                            read_exact_at(&**h, round * 8, &mut buf).unwrap();
                            assert_eq!(u64::from_le_bytes(buf), round, "file {i}");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The cap is soft while files are busy (a file in use is not closed, so
        // the threads may take it over for a moment); once all are idle, reopening
        // brings the count back under it. Every file kept its last round.
        for (i, h) in handles.iter().enumerate() {
            let mut buf = [0u8; 8];
            read_exact_at(&**h, 49 * 8, &mut buf).unwrap();
            assert_eq!(u64::from_le_bytes(buf), 49, "file {i}");
        }
        assert!(files.open_count() <= 4, "{}", files.open_count());
        assert!(sim.open_handles() <= 4, "{}", sim.open_handles());
    }
}
