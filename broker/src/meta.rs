//! What was declared about durable queues and retained topics (queue options,
//! topic retention), kept in `<data>/switchyard.json` so that a restart brings them
//! back with their messages. Written whole to a temporary file, fsynced, then
//! renamed over the old one: a crash leaves the old file or the new one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::protocol::Retention;
use crate::queue::QueueConfig;

const FILE: &str = "switchyard.json";

/// A durable queue's declared options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueMeta {
    #[serde(default)]
    pub(crate) max_len: Option<u64>,
    pub(crate) ack_timeout_ms: u64,
    #[serde(default)]
    pub(crate) max_attempts: Option<u32>,
    #[serde(default)]
    pub(crate) dead_letter: Option<String>,
}

impl QueueMeta {
    pub(crate) fn of(config: &QueueConfig) -> QueueMeta {
        QueueMeta {
            max_len: config.max_len,
            ack_timeout_ms: config.ack_timeout.as_millis() as u64,
            max_attempts: config.max_attempts,
            dead_letter: config.dead_letter.clone(),
        }
    }

    pub(crate) fn config(&self) -> QueueConfig {
        QueueConfig {
            durable: true,
            max_len: self.max_len,
            ack_timeout: std::time::Duration::from_millis(self.ack_timeout_ms),
            max_attempts: self.max_attempts,
            dead_letter: self.dead_letter.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    queues: BTreeMap<String, QueueMeta>,
    #[serde(default)]
    topics: BTreeMap<String, Retention>,
}

/// The metadata file and its contents in memory.
pub(crate) struct MetaFile {
    path: PathBuf,
    meta: Mutex<Meta>,
}

impl MetaFile {
    /// Reads `<dir>/switchyard.json`; a missing file is an empty one.
    pub(crate) fn load(dir: &Path) -> Result<MetaFile, String> {
        let path = dir.join(FILE);
        let meta = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not valid: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(MetaFile {
            path,
            meta: Mutex::new(meta),
        })
    }

    pub(crate) fn queue(&self, name: &str) -> Option<QueueMeta> {
        self.meta.lock().queues.get(name).cloned()
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Retention> {
        self.meta.lock().topics.get(name).cloned()
    }

    pub(crate) fn set_queue(&self, name: &str, queue: Option<QueueMeta>) -> Result<(), String> {
        self.set(|m| &mut m.queues, name, queue)
    }

    pub(crate) fn set_topic(&self, name: &str, retention: Option<Retention>) -> Result<(), String> {
        self.set(|m| &mut m.topics, name, retention)
    }

    /// Sets (or with None removes) one entry of a map in the file; writes the file
    /// only if that changed it.
    fn set<V: Clone + PartialEq>(
        &self,
        map: impl FnOnce(&mut Meta) -> &mut BTreeMap<String, V>,
        name: &str,
        value: Option<V>,
    ) -> Result<(), String> {
        let mut meta = self.meta.lock();
        let entries = map(&mut meta);
        let changed = match value {
            Some(v) => entries.insert(name.to_string(), v.clone()) != Some(v),
            None => entries.remove(name).is_some(),
        };
        if changed {
            self.write(&meta)?;
        }
        Ok(())
    }

    fn write(&self, meta: &Meta) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", self.path.display());
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(meta).map_err(|e| e.to_string())?;
        let mut file = fs::File::create(&tmp).map_err(fail)?;
        file.write_all(&body).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        fs::rename(&tmp, &self.path).map_err(fail)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(fail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reload() {
        let dir = std::env::temp_dir().join(format!("switchyard-meta-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let m = MetaFile::load(&dir).unwrap();
        let q = QueueMeta {
            max_len: Some(5),
            ack_timeout_ms: 100,
            max_attempts: Some(2),
            dead_letter: Some("dl".into()),
        };
        m.set_queue("jobs", Some(q.clone())).unwrap();
        m.set_topic(
            "t",
            Some(Retention {
                max_messages: Some(9),
                ..Default::default()
            }),
        )
        .unwrap();
        let again = MetaFile::load(&dir).unwrap();
        assert_eq!(again.queue("jobs"), Some(q));
        assert_eq!(again.topic("t").unwrap().max_messages, Some(9));
        again.set_queue("jobs", None).unwrap();
        assert_eq!(MetaFile::load(&dir).unwrap().queue("jobs"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
