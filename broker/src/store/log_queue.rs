//! `LogQueueStore`: a durable queue kept in a log with its acks. (A queue declared
//! `durable: false` has no store at all: the broker keeps it in memory.)
//!
//! Acks and delivery attempts go to a per-segment `N.acks` file rather than into the
//! segment itself: a segment whose messages are all acked is deleted together with its
//! acks file, and no ack for a still-live message is ever lost with it.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::Catalog;
use super::error::StoreError;
use super::log::Log;
use super::record::RecordKind;
use super::recovery::Recovery;
use super::ticket::Ticket;
use super::{Appended, QueueSettings, QueueStore, QueuedMessage, ReadFrom, StoreStats};

/// Says when a second has passed since it last said so.
pub(super) struct Every {
    period: std::time::Duration,
    last: std::time::Instant,
}

impl Every {
    pub(super) fn second(now: std::time::Instant) -> Every {
        Every {
            period: std::time::Duration::from_secs(1),
            last: now,
        }
    }

    /// Whether a period has passed at `now` since the start or the last `true`.
    pub(super) fn due(&mut self, now: std::time::Instant) -> bool {
        if now.saturating_duration_since(self.last) < self.period {
            return false;
        }
        self.last = now;
        true
    }
}

/// A durable queue stored in a segmented log, its settings in the catalog.
#[derive(Debug)]
pub struct LogQueueStore {
    log: Log,
    name: String,
    catalog: Arc<Catalog>,
}

impl LogQueueStore {
    pub(crate) fn new(log: Log, name: &str, catalog: Arc<Catalog>) -> LogQueueStore {
        LogQueueStore {
            log,
            name: name.to_string(),
            catalog,
        }
    }

    /// What opening the log found and repaired (torn tails, corrupt records).
    pub fn recovery(&self) -> Recovery {
        self.log.recovery()
    }
}

impl Drop for LogQueueStore {
    fn drop(&mut self) {
        self.log.release();
    }
}

impl QueueStore for LogQueueStore {
    fn append(&self, time_ms: u64, body: &[u8]) -> Result<Appended, StoreError> {
        let (seq, durable) = self.log.append(RecordKind::Message, time_ms, body)?;
        Ok(Appended { seq, durable })
    }

    fn ack(&self, seq: u64) -> Result<Ticket, StoreError> {
        self.log.settle(seq)
    }

    fn record_attempt(&self, seq: u64, attempts: u32) -> Result<(), StoreError> {
        self.log.note_attempt(seq, attempts).map(|_| ())
    }

    fn recover(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        let wanted: HashMap<u64, u32> = self
            .log
            .unsettled()
            .into_iter()
            .filter(|(_, _, written)| *written)
            .map(|(seq, attempts, _)| (seq, attempts))
            .collect();
        let (Some(first), Some(last)) = (wanted.keys().min(), wanted.keys().max()) else {
            return Ok(Vec::new());
        };
        let (first, last) = (*first, *last);
        let mut out = Vec::with_capacity(wanted.len());
        // A large queue takes seconds to read back: say how far it got, once a second.
        let mut progress = Every::second(std::time::Instant::now());
        for item in self.log.cursor(ReadFrom::Seq(first), false) {
            match item {
                Ok(r) => {
                    if progress.due(std::time::Instant::now()) {
                        tracing::info!(
                            "recovering queue {}: {} of {} unacked messages read",
                            self.name,
                            out.len(),
                            wanted.len()
                        );
                    }
                    if let Some(attempts) = wanted.get(&r.seq) {
                        out.push(QueuedMessage {
                            seq: r.seq,
                            time_ms: r.time_ms,
                            attempts: *attempts,
                            body: r.body,
                        });
                    }
                    if r.seq >= last {
                        break;
                    }
                }
                // Found (and reported) at open: a corrupt record never became a
                // message, so there is nothing to return for it.
                Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn sync(&self) -> Ticket {
        self.log.sync()
    }

    fn set_settings(&self, settings: &QueueSettings) -> Result<(), StoreError> {
        self.log.check_open()?;
        self.catalog.set_queue(&self.name, Some(settings))
    }

    fn stats(&self) -> StoreStats {
        self.log.stats()
    }

    fn delete(&self) -> Ticket {
        let (catalog, name) = (Arc::clone(&self.catalog), self.name.clone());
        self.log
            .delete(Box::new(move || catalog.set_queue(&name, None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_due_once_a_second_at_most() {
        let t0 = std::time::Instant::now();
        let mut every = Every::second(t0);
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let due: Vec<u64> = [10, 999, 1_000, 1_500, 1_999, 2_000, 5_000, 5_001]
            .into_iter()
            .filter(|&ms| every.due(at(ms)))
            .collect();
        assert_eq!(due, vec![1_000, 2_000, 5_000]);
    }
    use crate::store::{Backend, FsyncPolicy, LogBackend, SimDisk, StoreConfig};
    use std::collections::{HashMap, HashSet};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    fn config(fsync: FsyncPolicy) -> StoreConfig {
        StoreConfig {
            fsync,
            batch_interval: Duration::from_micros(300),
            segment_bytes: 1024,
            index_interval_bytes: 256,
            read_chunk_bytes: 256,
            sync_threads: 2,
            ..StoreConfig::default()
        }
    }

    fn backend(disk: &SimDisk, fsync: FsyncPolicy) -> LogBackend {
        LogBackend::open("/data", Arc::new(disk.clone()), config(fsync)).unwrap()
    }

    fn body(i: u64) -> Vec<u8> {
        format!("{{\"data\":{i:08}}}").into_bytes()
    }

    fn append_n(q: &dyn QueueStore, n: u64) -> Vec<u64> {
        let appended: Vec<Appended> = (0..n)
            .map(|i| q.append(100 + i, &body(i)).unwrap())
            .collect();
        appended
            .into_iter()
            .map(|a| {
                a.durable.wait_blocking().unwrap();
                a.seq
            })
            .collect()
    }

    fn segments(disk: &SimDisk, ext: &str) -> Vec<String> {
        disk.files()
            .into_iter()
            .filter(|p| p.starts_with("/data/queues/q") && p.extension() == Some(ext.as_ref()))
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
            .collect()
    }

    #[test]
    fn acked_messages_are_not_recovered_and_unacked_ones_are_with_attempts() {
        let disk = SimDisk::new();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        assert_eq!(append_n(&*q, 10), (1..=10).collect::<Vec<u64>>());
        for seq in [1, 3, 5] {
            drop(q.ack(seq).unwrap());
        }
        drop(q.ack(3).unwrap()); // settled twice: ignored
        drop(q.ack(99).unwrap()); // unknown: ignored
        q.record_attempt(2, 1).unwrap();
        q.record_attempt(4, 1).unwrap();
        q.record_attempt(4, 2).unwrap();
        q.sync().wait_blocking().unwrap();
        assert_eq!(q.stats().messages, 7);
        b.close();
        drop(q);

        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue_store("q", &QueueSettings::default()).unwrap();
        let rec = q.recovery();
        assert!(rec.is_clean());
        assert_eq!(b.take_repairs(), vec![]);
        assert_eq!(rec.unacked, 7);
        let got: Vec<(u64, u32, u64)> = q
            .recover()
            .unwrap()
            .into_iter()
            .map(|m| {
                assert_eq!(m.body, body(m.seq - 1));
                (m.seq, m.attempts, m.time_ms)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, 1, 101),
                (4, 2, 103),
                (6, 0, 105),
                (7, 0, 106),
                (8, 0, 107),
                (9, 0, 108),
                (10, 0, 109)
            ]
        );
        assert_eq!(q.stats().next_seq, 11);
        assert_eq!(q.append(1, b"x").unwrap().seq, 11);
        b.close();
    }

    #[test]
    fn a_message_in_flight_at_a_power_cut_comes_back_with_its_attempts() {
        let disk = SimDisk::new();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        append_n(&*q, 3);
        q.record_attempt(1, 1).unwrap();
        q.record_attempt(2, 3).unwrap();
        drop(q.ack(3).unwrap());
        q.sync().wait_blocking().unwrap();
        disk.power_cut();
        b.close();
        disk.restart();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        let got: Vec<(u64, u32)> = q
            .recover()
            .unwrap()
            .iter()
            .map(|m| (m.seq, m.attempts))
            .collect();
        assert_eq!(got, vec![(1, 1), (2, 3)]);
        b.close();
    }

    #[test]
    fn a_segment_is_deleted_once_all_its_messages_are_acked() {
        let disk = SimDisk::new();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        // 42-byte records: 24 per 1024-byte segment; 60 messages fill 3 segments.
        append_n(&*q, 60);
        let names = segments(&disk, "seg");
        assert_eq!(
            names,
            vec![
                "00000000000000000001.seg",
                "00000000000000000025.seg",
                "00000000000000000049.seg"
            ]
        );
        for seq in 1..=24 {
            drop(q.ack(seq).unwrap());
        }
        for seq in 25..=47 {
            drop(q.ack(seq).unwrap()); // seq 48 stays unacked: segment 25 stays
        }
        q.sync().wait_blocking().unwrap();
        assert_eq!(
            segments(&disk, "seg"),
            vec!["00000000000000000025.seg", "00000000000000000049.seg"]
        );
        assert_eq!(segments(&disk, "acks"), vec!["00000000000000000025.acks"]);
        assert_eq!(q.stats().segments, 2);
        assert_eq!(q.stats().messages, 13);
        // Acking everything deletes every closed segment, never the active one.
        for seq in 48..=60 {
            drop(q.ack(seq).unwrap());
        }
        q.sync().wait_blocking().unwrap();
        assert_eq!(segments(&disk, "seg"), vec!["00000000000000000049.seg"]);
        assert_eq!(q.stats().messages, 0);
        b.close();
        drop(q);
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        assert_eq!(q.recover().unwrap(), vec![]);
        assert_eq!(q.append(1, b"x").unwrap().seq, 61);
        b.close();
    }

    #[test]
    fn acks_that_cannot_be_written_never_hold_back_messages_and_are_retried() {
        let disk = SimDisk::new();
        let b = backend(&disk, FsyncPolicy::Always);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        append_n(&*q, 2);
        disk.deny("/data/queues/q/00000000000000000001.acks");
        drop(q.ack(1).unwrap());
        // The ack is refused with the next batch, whose message is confirmed anyway.
        let a = q.append(9, b"still stored").unwrap();
        assert_eq!(a.durable.wait_blocking(), Ok(()));
        assert_eq!(segments(&disk, "acks"), Vec::<String>::new());
        assert_eq!(q.stats().messages, 2);
        disk.allow_all();
        q.sync().wait_blocking().unwrap();
        assert_eq!(segments(&disk, "acks"), vec!["00000000000000000001.acks"]);
        b.close();
        drop(q);
        let b = backend(&disk, FsyncPolicy::Always);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        let seqs: Vec<u64> = q.recover().unwrap().iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        b.close();
    }

    #[test]
    fn a_torn_acks_file_brings_a_message_back_but_loses_none() {
        let disk = SimDisk::new();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        append_n(&*q, 4);
        drop(q.ack(1).unwrap());
        drop(q.ack(2).unwrap());
        q.sync().wait_blocking().unwrap();
        b.close();
        drop(q);
        let acks = PathBuf::from("/data/queues/q/00000000000000000001.acks");
        let len = disk.file_bytes(&acks).unwrap().len() as u64;
        disk.truncate(&acks, len - 5).unwrap();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue_store("q", &QueueSettings::default()).unwrap();
        let rec = q.recovery();
        assert_eq!(rec.truncated.len(), 1);
        assert_eq!(rec.truncated[0].path, acks);
        // The backend reports the repair once, in the operator's words.
        let repairs = b.take_repairs();
        assert_eq!(repairs.len(), 1, "{repairs:?}");
        assert_eq!(repairs[0].stream, "q");
        assert!(
            repairs[0]
                .to_string()
                .starts_with("q: truncated a torn tail: "),
            "{}",
            repairs[0]
        );
        assert_eq!(b.take_repairs(), vec![]);
        let seqs: Vec<u64> = q.recover().unwrap().iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        b.close();
    }

    #[test]
    fn a_stale_ack_never_settles_a_reused_seq() {
        let disk = SimDisk::new();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        append_n(&*q, 1);
        drop(q.ack(1).unwrap());
        q.sync().wait_blocking().unwrap();
        b.close();
        drop(q);
        // The message vanished but its ack survived (a disk that reordered writes).
        disk.truncate(Path::new("/data/queues/q/00000000000000000001.seg"), 16)
            .unwrap();
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        let a = q.append(5, b"a new message").unwrap();
        assert_eq!(a.seq, 1, "the seq is reused");
        a.durable.wait_blocking().unwrap();
        b.close();
        drop(q);
        let b = backend(&disk, FsyncPolicy::Batch);
        let q = b.open_queue("q", &QueueSettings::default()).unwrap();
        let got = q.recover().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].body[..], b"a new message");
        b.close();
    }

    /// Whether the test's consumer takes and acks message `i` of a sender: every third.
    fn consumed(i: u64) -> bool {
        matches!(i % 3, 0)
    }

    /// Jepsen-style: senders, a consumer acking as it goes, a power cut. Lost
    /// (confirmed, not acked, not recovered) and unexpected must be 0.
    #[test]
    fn power_cuts_lose_no_confirmed_message_and_invent_none() {
        for policy in [FsyncPolicy::Batch, FsyncPolicy::Always] {
            let mut cut_mid_run = 0;
            for cut_at in [10u64, 25, 40, 60, 90, 130] {
                let disk = SimDisk::new();
                let b = backend(&disk, policy);
                let q: Arc<dyn QueueStore> = b.open_queue("q", &QueueSettings::default()).unwrap();
                disk.cut_power_after(cut_at);
                let senders: Vec<_> = (0..3u64)
                    .map(|w| {
                        let q = Arc::clone(&q);
                        std::thread::spawn(move || {
                            let mut confirmed = Vec::new();
                            let mut acked = Vec::new();
                            for i in 0..40u64 {
                                let body = format!("s{w}-{i}").into_bytes();
                                let Ok(a) = q.append(i, &body) else { break };
                                if a.durable.wait_blocking().is_ok() {
                                    confirmed.push((a.seq, body));
                                    // The consumer acks only what was confirmed; an ack
                                    // that failed leaves the message owed.
                                    if consumed(i) && q.ack(a.seq).is_ok() {
                                        acked.push(a.seq);
                                    }
                                }
                            }
                            (confirmed, acked)
                        })
                    })
                    .collect();
                let mut confirmed: Vec<(u64, Vec<u8>)> = Vec::new();
                let mut acked: HashSet<u64> = HashSet::new();
                for s in senders {
                    let (c, a) = s.join().unwrap();
                    confirmed.extend(c);
                    acked.extend(a);
                }
                disk.power_cut();
                b.close();
                drop(q);
                disk.restart();
                let b = backend(&disk, policy);
                let q = b.open_queue("q", &QueueSettings::default()).unwrap();
                let recovered: HashMap<u64, Vec<u8>> = q
                    .recover()
                    .unwrap()
                    .into_iter()
                    .map(|m| (m.seq, m.body.to_vec()))
                    .collect();
                let lost = confirmed
                    .iter()
                    .filter(|(s, b)| !acked.contains(s) && recovered.get(s) != Some(b))
                    .count();
                let sent: HashSet<Vec<u8>> = (0..3u64)
                    .flat_map(|w| (0..40u64).map(move |i| format!("s{w}-{i}").into_bytes()))
                    .collect();
                let unexpected = recovered.values().filter(|b| !sent.contains(*b)).count();
                assert_eq!((lost, unexpected), (0, 0), "{policy:?} cut at {cut_at}");
                cut_mid_run += usize::from(confirmed.len() < 120);
                b.close();
            }
            assert!(
                cut_mid_run >= 3,
                "{policy:?}: the cuts came after the senders"
            );
        }
    }
}
