//! `Catalog`: what was declared about each stored queue (its [`QueueSettings`]) and
//! retained topic (its [`Retention`]), kept in `<data>/switchyard.json` through the
//! backend's [`Disk`], so that a restart brings them back with the messages.
//!
//! The file is small and changes once per `declare`, not per message, so it is
//! rewritten whole: to `switchyard.json.tmp`, fsynced, renamed over the old file,
//! and the directory fsynced, whatever the fsync policy. A crash or a power cut
//! leaves the old file or the new one, never a mix. The format is the broker's
//! original one, so an existing data directory opens as before.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::disk::{read_exact_at, Disk};
use super::error::{io_err, StoreError};
use super::{QueueSettings, Retention};

/// The catalog's file name under the data directory.
const FILE: &str = "switchyard.json";
const TMP: &str = "switchyard.json.tmp";

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Declared {
    #[serde(default)]
    queues: BTreeMap<String, QueueSettings>,
    #[serde(default)]
    topics: BTreeMap<String, Retention>,
}

/// The declared settings of a data directory, in memory and on its disk.
#[derive(Debug)]
pub(crate) struct Catalog {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    disk: Arc<dyn Disk>,
    /// Held across the file's rewrite: writes are whole-file, one at a time.
    declared: Mutex<Declared>,
}

impl Catalog {
    /// Reads `<dir>/switchyard.json`; a missing file is an empty catalog. Blocking.
    pub(crate) fn load(disk: Arc<dyn Disk>, dir: &Path) -> Result<Catalog, StoreError> {
        let path = dir.join(FILE);
        let declared = match disk.open(&path, false) {
            Ok(file) => {
                let size = file.size().map_err(io_err("reading", &path))?;
                let mut bytes = vec![0u8; size as usize];
                read_exact_at(&*file, 0, &mut bytes).map_err(io_err("reading", &path))?;
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Declared::default(),
            Err(e) => return Err(StoreError::io("reading", &path, &e)),
        };
        Ok(Catalog {
            dir: dir.to_path_buf(),
            tmp: dir.join(TMP),
            path,
            disk,
            declared: Mutex::new(declared),
        })
    }

    /// The declared settings of queue `name`, if any were recorded.
    pub(crate) fn queue(&self, name: &str) -> Option<QueueSettings> {
        self.declared.lock().queues.get(name).cloned()
    }

    /// The declared retention of topic `name`, if any was recorded.
    pub(crate) fn topic(&self, name: &str) -> Option<Retention> {
        self.declared.lock().topics.get(name).copied()
    }

    /// Records (or with `None` forgets) queue `name`'s settings. Blocking.
    pub(crate) fn set_queue(
        &self,
        name: &str,
        settings: Option<&QueueSettings>,
    ) -> Result<(), StoreError> {
        self.set(|d| &mut d.queues, name, settings.cloned())
    }

    /// Records (or with `None` forgets) topic `name`'s retention. Blocking.
    pub(crate) fn set_topic(
        &self,
        name: &str,
        retention: Option<Retention>,
    ) -> Result<(), StoreError> {
        self.set(|d| &mut d.topics, name, retention)
    }

    /// Sets (or with `None` removes) one entry; rewrites the file only if that
    /// changed it.
    fn set<V: Clone + PartialEq>(
        &self,
        map: impl FnOnce(&mut Declared) -> &mut BTreeMap<String, V>,
        name: &str,
        value: Option<V>,
    ) -> Result<(), StoreError> {
        let mut declared = self.declared.lock();
        let entries = map(&mut declared);
        let changed = match value {
            Some(v) => entries.insert(name.to_string(), v.clone()) != Some(v),
            None => entries.remove(name).is_some(),
        };
        if changed {
            self.write(&declared)?;
        }
        Ok(())
    }

    fn write(&self, declared: &Declared) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(declared).map_err(|e| StoreError::Io {
            op: "encoding",
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let tmp = &self.tmp;
        let file = self.disk.open(tmp, true).map_err(io_err("creating", tmp))?;
        file.set_len(0).map_err(io_err("writing", tmp))?;
        file.write_all_at(0, &body)
            .map_err(io_err("writing", tmp))?;
        file.sync_all().map_err(io_err("syncing", tmp))?;
        self.disk
            .rename(tmp, &self.path)
            .map_err(io_err("renaming", tmp))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(io_err("syncing", &self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OsDisk, SimDisk};

    /// What the broker's own `meta.rs` wrote before the catalog moved behind the
    /// seam, byte for byte.
    const WRITTEN_BEFORE: &str = r#"{
  "queues": {
    "jobs": {
      "max_len": 5,
      "ack_timeout_ms": 100,
      "max_attempts": 2,
      "dead_letter": "dl"
    },
    "plain": {
      "max_len": null,
      "ack_timeout_ms": 30000,
      "max_attempts": null,
      "dead_letter": null
    }
  },
  "topics": {
    "t": {
      "max_messages": 9,
      "max_bytes": null,
      "max_age_s": null
    },
    "u": {
      "max_messages": null,
      "max_bytes": null,
      "max_age_s": null
    }
  }
}"#;

    fn jobs() -> QueueSettings {
        QueueSettings {
            max_len: Some(5),
            ack_timeout_ms: 100,
            max_attempts: Some(2),
            dead_letter: Some("dl".into()),
        }
    }

    fn plain() -> QueueSettings {
        QueueSettings {
            ack_timeout_ms: 30_000,
            ..QueueSettings::default()
        }
    }

    fn nine() -> Retention {
        Retention {
            max_messages: Some(9),
            ..Retention::default()
        }
    }

    fn disk_with_dir() -> SimDisk {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/data")).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        disk
    }

    #[test]
    fn writes_the_format_the_broker_always_wrote_and_reads_it_back() {
        let disk = disk_with_dir();
        let c = Catalog::load(Arc::new(disk.clone()), Path::new("/data")).unwrap();
        c.set_queue("jobs", Some(&jobs())).unwrap();
        c.set_queue("plain", Some(&plain())).unwrap();
        c.set_topic("t", Some(nine())).unwrap();
        c.set_topic("u", Some(Retention::default())).unwrap();
        let bytes = disk.file_bytes(Path::new("/data/switchyard.json")).unwrap();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), WRITTEN_BEFORE);
    }

    #[test]
    fn a_file_written_before_opens_with_every_entry() {
        let dir = std::env::temp_dir().join(format!("switchyard-catalog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE), WRITTEN_BEFORE).unwrap();
        let c = Catalog::load(Arc::new(OsDisk), &dir).unwrap();
        assert_eq!(c.queue("jobs"), Some(jobs()));
        assert_eq!(c.queue("plain"), Some(plain()));
        assert_eq!(c.topic("t"), Some(nine()));
        assert_eq!(c.topic("u"), Some(Retention::default()));
        assert_eq!(c.queue("nope"), None);
        c.set_queue("jobs", None).unwrap();
        assert_eq!(
            Catalog::load(Arc::new(OsDisk), &dir).unwrap().queue("jobs"),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unchanged_declaration_writes_nothing() {
        let disk = disk_with_dir();
        let c = Catalog::load(Arc::new(disk.clone()), Path::new("/data")).unwrap();
        c.set_queue("jobs", Some(&jobs())).unwrap();
        disk.reset_counters();
        c.set_queue("jobs", Some(&jobs())).unwrap();
        c.set_topic("never", None).unwrap();
        assert_eq!(disk.counters().mutations, 0);
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let disk = disk_with_dir();
        let f = disk.open(Path::new("/data/switchyard.json"), true).unwrap();
        f.write_all_at(0, b"{\"queues\": [").unwrap();
        let err = Catalog::load(Arc::new(disk), Path::new("/data")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/data/switchyard.json is not valid: "),
            "{err}"
        );
    }

    /// Power cuts at every step of a rewrite leave the old declarations or the new
    /// ones, and a declaration that returned is never lost.
    #[test]
    fn a_power_cut_during_a_rewrite_keeps_the_old_file_or_the_new_one() {
        let steps = {
            let disk = disk_with_dir();
            let c = Catalog::load(Arc::new(disk.clone()), Path::new("/data")).unwrap();
            c.set_queue("jobs", Some(&plain())).unwrap();
            disk.reset_counters();
            c.set_queue("jobs", Some(&jobs())).unwrap();
            disk.counters().mutations
        };
        assert!(steps >= 5, "{steps}");
        for cut_after in 0..=steps {
            for torn in [false, true] {
                let disk = disk_with_dir();
                let c = Catalog::load(Arc::new(disk.clone()), Path::new("/data")).unwrap();
                c.set_queue("jobs", Some(&plain())).unwrap();
                disk.cut_power_after(cut_after);
                let returned = c.set_queue("jobs", Some(&jobs())).is_ok();
                if torn {
                    disk.power_cut_torn(cut_after);
                } else {
                    disk.power_cut();
                }
                disk.restart();
                let found = Catalog::load(Arc::new(disk.clone()), Path::new("/data"))
                    .unwrap_or_else(|e| panic!("cut after {cut_after}: {e}"))
                    .queue("jobs");
                if returned {
                    assert_eq!(found, Some(jobs()), "cut after {cut_after}");
                } else {
                    assert!(
                        found == Some(plain()) || found == Some(jobs()),
                        "cut after {cut_after}: {found:?}"
                    );
                }
            }
        }
    }
}
