//! `LogTopicStore`: a retained topic kept in a log, and the reader that replays it
//! from the first message, a seq or a time.

use std::sync::Arc;

use super::catalog::Catalog;
use super::cursor::Cursor;
use super::error::StoreError;
use super::log::Log;
use super::record::RecordKind;
use super::recovery::Recovery;
use super::ticket::Ticket;
use super::{
    Appended, ReadFrom, Retention, RetentionOutcome, StoreStats, StoredMessage, TopicReader,
    TopicStore,
};

/// A retained topic stored in a segmented log, its retention in the catalog.
#[derive(Debug)]
pub struct LogTopicStore {
    log: Log,
    name: String,
    catalog: Arc<Catalog>,
}

impl LogTopicStore {
    pub(crate) fn new(log: Log, name: &str, catalog: Arc<Catalog>) -> LogTopicStore {
        LogTopicStore {
            log,
            name: name.to_string(),
            catalog,
        }
    }

    /// The seq the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.log.next_seq()
    }

    /// What opening the log found and repaired (torn tails, corrupt records).
    pub fn recovery(&self) -> Recovery {
        self.log.recovery()
    }
}

impl Drop for LogTopicStore {
    fn drop(&mut self) {
        self.log.release();
    }
}

impl TopicStore for LogTopicStore {
    fn append(&self, time_ms: u64, body: &[u8]) -> Result<Appended, StoreError> {
        let (seq, durable) = self.log.append(RecordKind::Message, time_ms, body)?;
        Ok(Appended { seq, durable })
    }

    fn read(&self, from: ReadFrom) -> TopicReader {
        Box::new(LogTopicReader {
            cursor: self.log.cursor(from, false),
        })
    }

    fn set_retention(&self, retention: Retention) -> Result<(), StoreError> {
        self.log.check_open()?;
        self.log.set_retention(retention);
        self.catalog.set_topic(&self.name, Some(retention))
    }

    fn apply_retention(&self, now_ms: u64) -> Result<RetentionOutcome, StoreError> {
        self.log.apply_retention(now_ms)
    }

    fn seal(&self) -> Result<Ticket, StoreError> {
        let (_, ticket) = self
            .log
            .append(RecordKind::Seal, crate::time::now_ms(), &[])?;
        Ok(ticket)
    }

    fn is_sealed(&self) -> bool {
        self.log.is_sealed()
    }

    fn sync(&self) -> Ticket {
        self.log.sync()
    }

    fn stats(&self) -> StoreStats {
        self.log.stats()
    }

    fn delete(&self) -> Ticket {
        let (catalog, name) = (Arc::clone(&self.catalog), self.name.clone());
        self.log
            .delete(Box::new(move || catalog.set_topic(&name, None)))
    }
}

/// Replays a topic's log: see [`TopicReader`]. Holds one read-ahead window of memory,
/// whatever the size of the topic.
struct LogTopicReader {
    cursor: Cursor,
}

impl Iterator for LogTopicReader {
    type Item = Result<StoredMessage, StoreError>;

    fn next(&mut self) -> Option<Result<StoredMessage, StoreError>> {
        self.cursor.next().map(|r| {
            r.map(|rec| StoredMessage {
                seq: rec.seq,
                time_ms: rec.time_ms,
                body: rec.body,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Backend, Disk, FsyncPolicy, LogBackend, SimDisk, StoreConfig};
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    fn backend(disk: &SimDisk) -> LogBackend {
        let config = StoreConfig {
            fsync: FsyncPolicy::Batch,
            batch_interval: Duration::from_micros(300),
            segment_bytes: 1024,
            index_interval_bytes: 256,
            read_chunk_bytes: 256,
            sync_threads: 2,
            ..StoreConfig::default()
        };
        LogBackend::open("/data", Arc::new(disk.clone()), config).unwrap()
    }

    /// 30-byte bodies: 55-byte records, 18 per 1024-byte segment.
    fn body(i: u64) -> Vec<u8> {
        format!("{{\"n\":{i:06},\"pad\":\".........\"}}").into_bytes()
    }

    /// Appends seqs 1..=n with time 1000 * seq and waits until they are durable.
    fn fill(t: &LogTopicStore, n: u64) {
        let tickets: Vec<Ticket> = (1..=n)
            .map(|seq| {
                let a = t.append(1000 * seq, &body(seq - 1)).unwrap();
                assert_eq!(a.seq, seq);
                a.durable
            })
            .collect();
        for tk in tickets {
            tk.wait_blocking().unwrap();
        }
    }

    fn seqs(t: &LogTopicStore, from: ReadFrom) -> Vec<u64> {
        t.read(from).map(|m| m.unwrap().seq).collect()
    }

    fn files(disk: &SimDisk, ext: &str) -> usize {
        disk.files()
            .iter()
            .filter(|p| p.starts_with("/data/topics/t") && p.extension() == Some(ext.as_ref()))
            .count()
    }

    #[test]
    fn retention_by_count_keeps_at_least_the_limit_in_whole_segments() {
        let disk = SimDisk::new();
        let b = backend(&disk);
        let t = b.open_topic_store("t", Retention::default()).unwrap();
        assert_eq!(body(0).len(), 30);
        fill(&t, 100); // segments start at 1, 19, 37, 55, 73, 91
        assert_eq!(t.stats().segments, 6);
        t.set_retention(Retention {
            max_messages: Some(40),
            ..Retention::default()
        })
        .unwrap();
        // 100 - 18 - 18 - 18 = 46 >= 40; one more segment would leave 28.
        let out = t.apply_retention(0).unwrap();
        assert_eq!(
            out,
            RetentionOutcome {
                segments: 3,
                messages: 54,
                bytes: 3 * 1006,
            }
        );
        assert_eq!(seqs(&t, ReadFrom::First), (55..=100).collect::<Vec<u64>>());
        assert_eq!(seqs(&t, ReadFrom::Seq(3)).first(), Some(&55));
        assert_eq!(seqs(&t, ReadFrom::Time(0)).first(), Some(&55));
        assert_eq!(t.stats().messages, 46);
        assert_eq!(files(&disk, "seg"), 3);
        assert_eq!(files(&disk, "idx"), 2, "indexes go with their segments");
        // Zero keeps nothing but the active segment.
        t.set_retention(Retention {
            max_messages: Some(0),
            ..Retention::default()
        })
        .unwrap();
        assert_eq!(t.apply_retention(0).unwrap().segments, 2);
        assert_eq!(seqs(&t, ReadFrom::First), (91..=100).collect::<Vec<u64>>());
        b.close();
    }

    #[test]
    fn retention_by_bytes_and_by_age() {
        let disk = SimDisk::new();
        let b = backend(&disk);
        let t = b.open_topic_store("t", Retention::default()).unwrap();
        fill(&t, 100);
        // Segments hold 1006 bytes (the last 566); 5596 in all.
        assert_eq!(t.stats().bytes, 5 * 1006 + 16 + 10 * 55);
        t.set_retention(Retention {
            max_bytes: Some(3000),
            ..Retention::default()
        })
        .unwrap();
        assert_eq!(t.apply_retention(0).unwrap().segments, 2);
        assert_eq!(seqs(&t, ReadFrom::First).first(), Some(&37));
        // Age: a segment goes once its newest message (seq 54: time 54 s) is older.
        t.set_retention(Retention {
            max_age_s: Some(10),
            ..Retention::default()
        })
        .unwrap();
        assert_eq!(
            t.apply_retention(64_000).unwrap().segments,
            0,
            "seq 54 is 10 s old"
        );
        assert_eq!(t.apply_retention(64_001).unwrap().segments, 1);
        assert_eq!(seqs(&t, ReadFrom::First).first(), Some(&55));
        assert_eq!(
            t.apply_retention(u64::MAX).unwrap().segments,
            2,
            "never the active one"
        );
        assert_eq!(seqs(&t, ReadFrom::First).first(), Some(&91));
        b.close();
    }

    #[test]
    fn retention_runs_by_itself_when_a_segment_rolls() {
        let disk = SimDisk::new();
        let b = backend(&disk);
        let t = b
            .open_topic_store(
                "t",
                Retention {
                    max_messages: Some(20),
                    ..Retention::default()
                },
            )
            .unwrap();
        fill(&t, 100);
        assert_eq!(seqs(&t, ReadFrom::First).first(), Some(&73));
        assert_eq!(files(&disk, "seg"), 2);
        b.close();
    }

    #[test]
    fn a_sealed_topic_refuses_appends_and_stays_sealed_after_a_restart() {
        let disk = SimDisk::new();
        let b = backend(&disk);
        let t = b.open_topic_store("t", Retention::default()).unwrap();
        fill(&t, 3);
        assert!(!t.is_sealed());
        t.seal().unwrap().wait_blocking().unwrap();
        assert!(t.is_sealed());
        assert!(matches!(
            t.append(1, b"late"),
            Err(StoreError::Sealed { .. })
        ));
        assert!(matches!(t.seal(), Err(StoreError::Sealed { .. })));
        assert_eq!(
            seqs(&t, ReadFrom::First),
            vec![1, 2, 3],
            "the seal is not a message"
        );
        b.close();
        drop(t);
        let b = backend(&disk);
        let t = b.open_topic_store("t", Retention::default()).unwrap();
        assert!(t.is_sealed());
        assert!(matches!(
            t.append(1, b"late"),
            Err(StoreError::Sealed { .. })
        ));
        assert_eq!(seqs(&t, ReadFrom::First), vec![1, 2, 3]);
        assert_eq!(t.stats().messages, 3);
        b.close();
    }

    #[test]
    fn delete_removes_every_file_and_closes_the_store() {
        let disk = SimDisk::new();
        let b = backend(&disk);
        let t = b.open_topic_store("t", Retention::default()).unwrap();
        fill(&t, 50);
        t.delete().wait_blocking().unwrap();
        assert!(disk
            .files()
            .iter()
            .all(|p| !p.starts_with("/data/topics/t")));
        assert!(!disk.exists(&PathBuf::from("/data/topics/t")).unwrap());
        assert!(matches!(t.append(1, b"x"), Err(StoreError::Closed { .. })));
        assert!(t.sync().wait_blocking().is_err());
        // The name can be declared again, empty.
        drop(t);
        let t = b.open_topic_store("t", Retention::default()).unwrap();
        assert_eq!(seqs(&t, ReadFrom::First), Vec::<u64>::new());
        assert_eq!(t.next_seq(), 1);
        b.close();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tickets_are_awaited_from_async_code() {
        let disk = SimDisk::new();
        let b = backend(&disk);
        let t: Arc<dyn TopicStore> = b.open_topic("t", Retention::default()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let t = Arc::clone(&t);
            tasks.push(tokio::spawn(async move {
                let a = t.append(i, &body(i)).unwrap();
                a.durable.await.map(|()| a.seq)
            }));
        }
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(task.await.unwrap().unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=16).collect::<Vec<u64>>());
        let read = tokio::task::spawn_blocking(move || t.read(ReadFrom::First).count())
            .await
            .unwrap();
        assert_eq!(read, 16);
        tokio::task::spawn_blocking(move || b.close())
            .await
            .unwrap();
    }
}
