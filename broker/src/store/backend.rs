//! `LogBackend`: the data directory, one log per durable queue (`queues/<name>/`) and
//! per retained topic (`topics/<name>/`), and the fsync threads they share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::catalog::Catalog;
use super::commit::Committer;
use super::disk::{create_dir_durably, Disk};
use super::error::{io_err, StoreError};
use super::log::{Log, LogCore, LogMode};
use super::log_queue::LogQueueStore;
use super::log_topic::LogTopicStore;
use super::open_files::OpenFiles;
use super::recovery::Recovery;
use super::{
    Backend, FsyncPolicy, QueueSettings, QueueStore, Repair, Retention, StoreConfig, Stored,
    StoredQueue, StoredTopic, TopicStore,
};

const QUEUES: &str = "queues";
const TOPICS: &str = "topics";

/// How long opening a name waits for a deleted (or failed) log of that name to be done
/// with its files; it is woken as soon as they are, this is only the limit.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

/// Repairs kept for [`Backend::take_repairs`] at most. Past it they are only logged
/// (every repair is logged anyway): a caller that never asks costs bounded memory.
const MAX_REPAIRS: usize = 1024;

/// The log of one stream directory, if open. Its lock is held while the stream is
/// opened (recovery reads the disk) or waits for a deleted log's files to go.
type Slot = Arc<Mutex<Weak<LogCore>>>;

/// The log-backed storage of a data directory.
#[derive(Debug)]
pub struct LogBackend {
    root: PathBuf,
    disk: Arc<dyn Disk>,
    config: StoreConfig,
    committer: Arc<Committer>,
    catalog: Arc<Catalog>,
    /// Logs opened, so one directory never has two writers.
    open: Mutex<HashMap<PathBuf, Slot>>,
    /// What recovery repaired, not yet taken.
    repairs: Mutex<Vec<Repair>>,
}

/// The directory name of a stream: names are kept readable, and any byte outside
/// `A-Z a-z 0-9 _ - .` is written `%XX`, so no name can climb out of its directory.
fn dir_name(name: &str) -> Result<String, StoreError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(StoreError::BadName(name.to_string()));
    }
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The stream name of a directory made by [`dir_name`].
fn stream_name(dir: &str) -> Option<String> {
    let bytes = dir.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl LogBackend {
    /// Opens (creating if needed) the data directory `root` on `disk`. Starts the
    /// fsync threads. Blocking.
    pub fn open(
        root: impl Into<PathBuf>,
        disk: Arc<dyn Disk>,
        config: StoreConfig,
    ) -> Result<LogBackend, StoreError> {
        let root = root.into();
        let keep_unsynced = config.fsync != FsyncPolicy::Never;
        let disk: Arc<dyn Disk> =
            Arc::new(OpenFiles::new(disk, config.max_open_files, keep_unsynced));
        create_dir_durably(&*disk, &root.join(QUEUES))?;
        create_dir_durably(&*disk, &root.join(TOPICS))?;
        // The root may have been made by someone else (the dashboard makes it for
        // its log file first), so its own entry is synced here, whoever made it.
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent).map_err(io_err("syncing", parent))?;
        }
        let catalog = Arc::new(Catalog::load(Arc::clone(&disk), &root)?);
        let committer = Committer::start(config.sync_threads).map_err(|e| StoreError::Io {
            op: "starting the fsync threads for",
            path: root.clone(),
            detail: e.to_string(),
        })?;
        Ok(LogBackend {
            root,
            disk,
            config,
            committer,
            catalog,
            open: Mutex::new(HashMap::new()),
            repairs: Mutex::new(Vec::new()),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration every stream uses.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The log of a stream: the one already open (shared), or opened afresh once
    /// a deleted or failed one is done with its files.
    fn open_log(&self, kind: &str, name: &str, mode: LogMode) -> Result<Log, StoreError> {
        let dir = self.root.join(kind).join(dir_name(name)?);
        let slot = {
            let mut open = self.open.lock();
            // Forget slots nobody uses (an open in progress holds its slot).
            open.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.try_lock().is_none_or(|w| w.strong_count() > 0)
            });
            Arc::clone(open.entry(dir.clone()).or_default())
        };
        // Opens of one name queue here; other names and the table stay free.
        let mut current = slot.lock();
        if let Some(old) = current.upgrade() {
            if let Some(log) = Log::share(&old) {
                return Ok(log);
            }
            if !old.wait_retired(REOPEN_WAIT) {
                return Err(StoreError::Io {
                    op: "opening",
                    path: dir,
                    detail: "the previous handle is still writing".to_string(),
                });
            }
        }
        let log = Log::open(
            &dir,
            Arc::clone(&self.disk),
            self.config.clone(),
            mode,
            Arc::clone(&self.committer),
        )?;
        *current = log.downgrade();
        drop(current);
        self.note_repairs(name, &log.recovery());
        Ok(log)
    }

    /// Keeps what recovery of stream `name` repaired, in the operator's words.
    fn note_repairs(&self, name: &str, recovery: &Recovery) {
        let found = recovery
            .truncated
            .iter()
            .map(|t| format!("truncated a torn tail: {t:?}"))
            .chain(
                recovery
                    .corrupt
                    .iter()
                    .map(|c| format!("corrupt record skipped: {}", c.to_error())),
            );
        let mut repairs = self.repairs.lock();
        for what in found {
            if repairs.len() < MAX_REPAIRS {
                repairs.push(Repair {
                    stream: name.to_string(),
                    what,
                });
            }
        }
    }

    /// Opens (creating or recovering) a durable queue's store and records its
    /// settings. Blocking.
    pub fn open_queue_store(
        &self,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<LogQueueStore, StoreError> {
        loop {
            let log = self.open_log(QUEUES, name, LogMode::Queue)?;
            let store = LogQueueStore::new(log, name, Arc::clone(&self.catalog));
            match store.set_settings(settings) {
                // Deleted by another handle since: the name opens anew.
                Err(StoreError::Closed { .. }) => continue,
                declared => return declared.map(|()| store),
            }
        }
    }

    /// Opens (creating or recovering) a retained topic's store and records its
    /// retention. Blocking.
    pub fn open_topic_store(
        &self,
        name: &str,
        retention: Retention,
    ) -> Result<LogTopicStore, StoreError> {
        loop {
            let log = self.open_log(TOPICS, name, LogMode::Topic)?;
            let store = LogTopicStore::new(log, name, Arc::clone(&self.catalog));
            match store.set_retention(retention) {
                // Deleted by another handle since: the name opens anew.
                Err(StoreError::Closed { .. }) => continue,
                declared => return declared.map(|()| store),
            }
        }
    }

    fn names(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join(kind);
        let mut names: Vec<String> = self
            .disk
            .list_dir(&dir)
            .map_err(io_err("listing", &dir))?
            .iter()
            .filter_map(|d| stream_name(d))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes and fsyncs everything pending in every stream, then stops the fsync
    /// threads. Appends after this fail with `Closed`. Blocking.
    pub fn close(&self) {
        self.committer.shutdown();
    }
}

impl Backend for LogBackend {
    fn close(&self) {
        LogBackend::close(self);
    }

    fn open_queue(
        &self,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<Arc<dyn QueueStore>, StoreError> {
        Ok(Arc::new(self.open_queue_store(name, settings)?))
    }

    fn open_topic(
        &self,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<dyn TopicStore>, StoreError> {
        Ok(Arc::new(self.open_topic_store(name, retention)?))
    }

    fn stored(&self) -> Result<Stored, StoreError> {
        let queues = self
            .names(QUEUES)?
            .into_iter()
            .map(|name| StoredQueue {
                settings: self.catalog.queue(&name),
                name,
            })
            .collect();
        let topics = self
            .names(TOPICS)?
            .into_iter()
            .map(|name| StoredTopic {
                retention: self.catalog.topic(&name).unwrap_or_default(),
                name,
            })
            .collect();
        Ok(Stored { queues, topics })
    }

    fn take_repairs(&self) -> Vec<Repair> {
        std::mem::take(&mut *self.repairs.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OsDisk, ReadFrom, SimDisk};

    #[test]
    fn a_data_dir_someone_else_made_is_durable_once_opened() {
        let disk = Arc::new(SimDisk::new());
        // Made the way the dashboard makes it for its log file: no directory sync.
        disk.create_dir_all(Path::new("/data")).unwrap();
        let backend = LogBackend::open("/data", disk.clone(), StoreConfig::default()).unwrap();
        backend.close();
        disk.power_cut();
        disk.restart();
        let mut found = disk.list_dir(Path::new("/data")).unwrap();
        found.sort();
        assert_eq!(found, vec![QUEUES.to_string(), TOPICS.to_string()]);
    }

    fn settings(ack_timeout_ms: u64) -> QueueSettings {
        QueueSettings {
            max_len: Some(10),
            ack_timeout_ms,
            max_attempts: Some(3),
            dead_letter: Some("dead".into()),
        }
    }

    #[test]
    fn declarations_survive_a_power_cut_right_after_they_return() {
        let disk = SimDisk::new();
        let b = LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
        let q = b.open_queue("jobs", &settings(100)).unwrap();
        q.set_settings(&settings(200)).unwrap();
        let t = b.open_topic("t", Retention::default()).unwrap();
        let kept = Retention {
            max_age_s: Some(60),
            ..Retention::default()
        };
        t.set_retention(kept).unwrap();
        let gone = b.open_queue("gone", &settings(5)).unwrap();
        gone.delete().wait_blocking().unwrap();
        disk.power_cut();
        b.close();
        disk.restart();
        let b = LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
        assert_eq!(
            b.stored().unwrap(),
            Stored {
                queues: vec![StoredQueue {
                    name: "jobs".into(),
                    settings: Some(settings(200)),
                }],
                topics: vec![StoredTopic {
                    name: "t".into(),
                    retention: kept,
                }],
            }
        );
        b.close();
    }

    #[test]
    fn a_data_dir_from_before_the_seam_opens_with_its_declarations() {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/data/queues/jobs")).unwrap();
        disk.create_dir_all(Path::new("/data/queues/bare")).unwrap();
        disk.create_dir_all(Path::new("/data/topics/t")).unwrap();
        let f = disk.open(Path::new("/data/switchyard.json"), true).unwrap();
        let old = br#"{"queues": {"jobs": {"max_len": 10, "ack_timeout_ms": 200,
            "max_attempts": 3, "dead_letter": "dead"}},
            "topics": {"t": {"max_messages": 9, "max_bytes": null, "max_age_s": null}}}"#;
        f.write_all_at(0, old).unwrap();
        let b = LogBackend::open("/data", Arc::new(disk), StoreConfig::default()).unwrap();
        let stored = b.stored().unwrap();
        assert_eq!(
            stored.queues,
            vec![
                StoredQueue {
                    name: "bare".into(),
                    settings: None,
                },
                StoredQueue {
                    name: "jobs".into(),
                    settings: Some(settings(200)),
                },
            ]
        );
        assert_eq!(stored.topics[0].retention.max_messages, Some(9));
        b.close();
    }

    #[test]
    fn names_are_escaped_and_round_trip() {
        assert_eq!(dir_name("orders.eu").unwrap(), "orders.eu");
        assert_eq!(dir_name("a:b/c").unwrap(), "a%3Ab%2Fc");
        assert_eq!(stream_name("a%3Ab%2Fc").unwrap(), "a:b/c");
        assert_eq!(stream_name("bad%4"), None);
        for bad in ["", ".", ".."] {
            assert_eq!(dir_name(bad), Err(StoreError::BadName(bad.to_string())));
        }
        assert_eq!(dir_name("..x").unwrap(), "..x", "harmless: not a path step");
    }

    #[test]
    fn lists_escaped_names_and_reuses_a_log_whose_handles_were_dropped() {
        let disk = SimDisk::new();
        let b = LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
        let q = b.open_queue("jobs:eu", &QueueSettings::default()).unwrap();
        let _t = b.open_topic("orders.eu", Retention::default()).unwrap();
        let stored = b.stored().unwrap();
        assert_eq!(stored.queues[0].name, "jobs:eu");
        assert_eq!(stored.topics[0].name, "orders.eu");
        assert!(disk.exists(Path::new("/data/queues/jobs%3Aeu")).unwrap());
        let pending = q.append(1, b"x").unwrap();
        drop(q);
        // The log is still flushing: the reopen takes it up, with no recovery.
        let q = b
            .open_queue_store("jobs:eu", &QueueSettings::default())
            .unwrap();
        assert_eq!(q.recovery().segments, 1);
        pending.durable.wait_blocking().unwrap();
        assert_eq!(q.recover().unwrap().len(), 1);
        assert_eq!(b.take_repairs(), vec![]);
        b.close();
    }

    #[test]
    fn a_delete_after_close_removes_the_files_itself() {
        let disk = SimDisk::new();
        let b = LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
        let q = b.open_queue("q", &settings(7)).unwrap();
        q.append(1, b"a").unwrap().durable.wait_blocking().unwrap();
        b.close();
        assert_eq!(q.delete().wait_blocking(), Ok(()));
        assert!(!disk.exists(Path::new("/data/queues/q")).unwrap());
        assert_eq!(b.stored().unwrap(), Stored::default());
    }

    #[test]
    fn a_failed_log_is_shared_while_held_and_reopened_afresh_once_let_go() {
        let disk = SimDisk::new();
        let b = LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        q.append(1, b"a").unwrap().durable.wait_blocking().unwrap();
        disk.fail_next_sync();
        assert!(q.append(2, b"b").unwrap().durable.wait_blocking().is_err());
        let held = b.open_queue("q", &QueueSettings::default()).unwrap();
        assert!(matches!(
            held.append(3, b"c"),
            Err(StoreError::Failed { .. })
        ));
        drop(held);
        drop(q);
        // Reopening runs recovery: the log takes appends again.
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        assert_eq!(q.recover().unwrap()[0].body, &b"a"[..]);
        q.append(4, b"d").unwrap().durable.wait_blocking().unwrap();
        b.close();
    }

    #[test]
    fn permission_denied_on_open_is_an_error_naming_the_path() {
        let disk = SimDisk::new();
        let b = LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
        disk.deny("/data/queues/locked");
        let err = b
            .open_queue("locked", &QueueSettings::default())
            .err()
            .unwrap();
        match &err {
            StoreError::PermissionDenied { path, .. } => {
                assert!(path.starts_with("/data/queues/locked"), "{err}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().starts_with("permission denied while "),
            "{err}"
        );
        b.close();
    }

    #[test]
    fn dropping_everything_without_close_flushes_and_does_not_hang() {
        for _ in 0..50 {
            let disk = SimDisk::new();
            let b =
                LogBackend::open("/data", Arc::new(disk.clone()), StoreConfig::default()).unwrap();
            let t = b.open_topic("t", Retention::default()).unwrap();
            let appended = t.append(1, b"last words").unwrap();
            // The fsync thread may end up holding the last reference to everything.
            drop(b);
            drop(t);
            assert_eq!(appended.durable.wait_blocking(), Ok(()));
            let b = LogBackend::open("/data", Arc::new(disk), StoreConfig::default()).unwrap();
            let t = b.open_topic("t", Retention::default()).unwrap();
            assert_eq!(t.read(ReadFrom::First).count(), 1);
            b.close();
        }
    }

    #[test]
    fn works_on_the_real_file_system() {
        let root = std::env::temp_dir().join(format!("switchyard-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        {
            let b = LogBackend::open(&root, Arc::new(OsDisk), StoreConfig::default()).unwrap();
            let t = b.open_topic("t", Retention::default()).unwrap();
            for i in 0..100u64 {
                let _ = t.append(1000 + i, format!("m{i}").as_bytes()).unwrap();
            }
            t.sync().wait_blocking().unwrap();
            b.close();
        }
        let b = LogBackend::open(&root, Arc::new(OsDisk), StoreConfig::default()).unwrap();
        let t = b.open_topic("t", Retention::default()).unwrap();
        let got: Vec<u64> = t
            .read(ReadFrom::Time(1050))
            .map(|m| m.unwrap().seq)
            .collect();
        assert_eq!(got, (51..=100).collect::<Vec<u64>>());
        t.delete().wait_blocking().unwrap();
        assert!(b
            .stored()
            .unwrap()
            .topics
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .is_empty());
        b.close();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
