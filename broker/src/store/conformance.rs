//! The seam's contract, written once: what every [`Backend`] must do, checked in
//! the broker's terms (append, recover, ack, attempts, read from a seq or a time,
//! seal, delete, declare, tickets, close). A backend's tests run the whole suite
//! with [`backend_conformance!`](crate::backend_conformance), given a [`Storage`]
//! to open the backend on; at the bottom of this file it runs against the log, on
//! `SimDisk` and on the real file system.
//!
//! Only what the broker relies on is checked here; how a backend keeps its data
//! (segments, torn tails, fsync counts) is for its own tests.

// Test code: a failed step is a failed check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Backend, QueueSettings, QueueStore, ReadFrom, Retention, StoreError, Stored, StoredQueue,
    StoredTopic, Ticket, TopicStore,
};

/// Where the backend under test keeps its data. Each test gets storage of its own,
/// empty at first; opening it again after a close is a restart.
pub trait Storage {
    /// Opens the backend on this storage.
    fn open(&self) -> Arc<dyn Backend>;
    /// Loses everything not yet durable, as a power cut (or the loss of every
    /// server) would, and returns true; or returns false if this storage cannot.
    /// The test then closes the backend and opens it again.
    fn cut_power(&self) -> bool {
        false
    }
}

/// Runs every check of the suite as its own `#[test]`, each on fresh storage from
/// `$storage` (an expression giving an `impl Storage`). (`@checks @list` gives
/// them as [`checks`] does, for a backend whose tests share one server and run
/// them one after another.)
#[macro_export]
macro_rules! backend_conformance {
    ($storage:expr) => {
        $crate::backend_conformance!(@checks @each $storage);
    };
    (@checks @$then:ident $($args:tt)*) => {
        $crate::backend_conformance! { @$then $($args)*;
            appended_messages_come_back_unacked_in_seq_order_with_their_attempts,
            an_acked_message_never_comes_back,
            attempt_counts_survive_a_reopen,
            a_topic_reads_from_the_first_a_seq_a_time_or_the_end,
            a_sealed_topic_refuses_appends_and_stays_sealed_after_a_reopen,
            a_deleted_queue_declared_again_starts_empty,
            a_deleted_topic_declared_again_starts_empty,
            declared_settings_and_retention_come_back_at_reopen,
            a_resolved_ticket_means_the_message_is_kept,
            a_resolved_ack_ticket_means_the_message_never_comes_back,
            appends_fail_once_the_backend_is_closed,
            two_opens_of_a_name_share_one_stream,
            a_name_opens_again_right_after_its_delete_every_time,
            threads_opening_and_deleting_one_name_always_get_a_store,
        }
    };
    (@each $storage:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let storage = $storage;
                $crate::store::conformance::$check(&storage);
            }
        )*
    };
    (@list; $($check:ident),* $(,)?) => {
        vec![$((
            stringify!($check),
            $crate::store::conformance::$check as fn(&dyn $crate::store::conformance::Storage),
        )),*]
    };
}

/// One check of the suite, run on a storage.
pub type Check = fn(&dyn Storage);

/// Every check of the suite with its name, in the order [`backend_conformance!`]
/// lists them.
pub fn checks() -> Vec<(&'static str, Check)> {
    crate::backend_conformance!(@checks @list)
}

fn settings(ack_timeout_ms: u64) -> QueueSettings {
    QueueSettings {
        max_len: Some(100),
        ack_timeout_ms,
        max_attempts: Some(5),
        dead_letter: Some("dead".into()),
    }
}

fn queue(b: &dyn Backend, name: &str) -> Arc<dyn QueueStore> {
    b.open_queue(name, &settings(1000)).unwrap()
}

fn topic(b: &dyn Backend, name: &str) -> Arc<dyn TopicStore> {
    b.open_topic(name, Retention::default()).unwrap()
}

/// Appends `bodies` with times 1000, 2000, ... and waits until they are durable;
/// returns their seqs.
fn append_all(
    append: impl Fn(u64, &[u8]) -> Result<super::Appended, StoreError>,
    bodies: &[&str],
) -> Vec<u64> {
    let appended: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| append(1000 * (i as u64 + 1), b.as_bytes()).unwrap())
        .collect();
    appended
        .into_iter()
        .map(|a| {
            a.durable.wait_blocking().unwrap();
            a.seq
        })
        .collect()
}

fn read(t: &dyn TopicStore, from: ReadFrom) -> Vec<(u64, String)> {
    t.read(from)
        .map(|m| {
            let m = m.unwrap();
            (m.seq, String::from_utf8(m.body.to_vec()).unwrap())
        })
        .collect()
}

fn recovered(q: &dyn QueueStore) -> Vec<(u64, u32, String)> {
    q.recover()
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.seq,
                m.attempts,
                String::from_utf8(m.body.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn restart(storage: &dyn Storage, b: Arc<dyn Backend>) -> Arc<dyn Backend> {
    b.close();
    drop(b);
    storage.open()
}

/// A queue's messages come back at start-up, unacked, in seq order, with their
/// times and bodies; seqs go on from where they were.
pub fn appended_messages_come_back_unacked_in_seq_order_with_their_attempts(storage: &dyn Storage) {
    let b = storage.open();
    let q = queue(&*b, "jobs");
    let seqs = append_all(|t, body| q.append(t, body), &["a", "b", "c"]);
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(q.stats().messages, 3);
    drop(q);
    let b = restart(storage, b);
    let q = queue(&*b, "jobs");
    let back = q.recover().unwrap();
    let times: Vec<u64> = back.iter().map(|m| m.time_ms).collect();
    assert_eq!(times, vec![1000, 2000, 3000]);
    assert_eq!(
        recovered(&*q),
        vec![(1, 0, "a".into()), (2, 0, "b".into()), (3, 0, "c".into())]
    );
    assert_eq!(q.append(4000, b"d").unwrap().seq, 4);
    b.close();
}

/// An acked message is not recovered; acking twice or an unknown seq is harmless.
pub fn an_acked_message_never_comes_back(storage: &dyn Storage) {
    let b = storage.open();
    let q = queue(&*b, "jobs");
    append_all(|t, body| q.append(t, body), &["a", "b", "c", "d"]);
    drop(q.ack(1).unwrap());
    drop(q.ack(3).unwrap());
    drop(q.ack(3).unwrap());
    drop(q.ack(99).unwrap());
    q.sync().wait_blocking().unwrap();
    assert_eq!(q.stats().messages, 2);
    assert_eq!(
        recovered(&*q),
        vec![(2, 0, "b".into()), (4, 0, "d".into())],
        "recover reads what is stored now"
    );
    drop(q);
    let b = restart(storage, b);
    let q = queue(&*b, "jobs");
    assert_eq!(recovered(&*q), vec![(2, 0, "b".into()), (4, 0, "d".into())]);
    b.close();
}

/// The highest delivery attempt recorded for a message comes back with it.
pub fn attempt_counts_survive_a_reopen(storage: &dyn Storage) {
    let b = storage.open();
    let q = queue(&*b, "jobs");
    append_all(|t, body| q.append(t, body), &["a", "b", "c"]);
    q.record_attempt(1, 1).unwrap();
    q.record_attempt(2, 1).unwrap();
    q.record_attempt(2, 3).unwrap();
    q.record_attempt(2, 2).unwrap();
    q.record_attempt(3, 1).unwrap();
    drop(q.ack(3).unwrap());
    q.sync().wait_blocking().unwrap();
    drop(q);
    let b = restart(storage, b);
    let q = queue(&*b, "jobs");
    assert_eq!(recovered(&*q), vec![(1, 1, "a".into()), (2, 3, "b".into())]);
    b.close();
}

/// A topic reads from the first message, from a seq, from a time, or from the end;
/// a reader that caught up returns what is appended later.
pub fn a_topic_reads_from_the_first_a_seq_a_time_or_the_end(storage: &dyn Storage) {
    let b = storage.open();
    let t = topic(&*b, "events");
    let bodies = ["m1", "m2", "m3", "m4", "m5"];
    assert_eq!(
        append_all(|at, body| t.append(at, body), &bodies),
        vec![1, 2, 3, 4, 5]
    );
    let all: Vec<(u64, String)> = (1..=5).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(read(&*t, ReadFrom::First), all);
    assert_eq!(read(&*t, ReadFrom::Seq(3)), all[2..]);
    assert_eq!(read(&*t, ReadFrom::Seq(0)), all);
    assert_eq!(read(&*t, ReadFrom::Seq(6)), vec![]);
    assert_eq!(read(&*t, ReadFrom::Time(2000)), all[1..], "at the time");
    assert_eq!(read(&*t, ReadFrom::Time(2500)), all[2..], "after the time");
    assert_eq!(read(&*t, ReadFrom::Time(9000)), vec![]);
    assert_eq!(read(&*t, ReadFrom::End), vec![]);
    let mut tail = t.read(ReadFrom::End);
    assert!(tail.next().is_none());
    let mut from_first = t.read(ReadFrom::First);
    assert_eq!(from_first.by_ref().count(), 5);
    t.append(6000, b"m6")
        .unwrap()
        .durable
        .wait_blocking()
        .unwrap();
    assert_eq!(tail.next().map(|m| m.unwrap().seq), Some(6));
    assert_eq!(from_first.next().map(|m| m.unwrap().seq), Some(6));
    assert_eq!(t.stats().messages, 6);
    drop((tail, from_first, t));
    let b = restart(storage, b);
    let t = topic(&*b, "events");
    assert_eq!(read(&*t, ReadFrom::Seq(5)).len(), 2);
    assert_eq!(t.stats().next_seq, 7);
    b.close();
}

/// A sealed topic refuses appends, before and after a reopen, and keeps what it had.
pub fn a_sealed_topic_refuses_appends_and_stays_sealed_after_a_reopen(storage: &dyn Storage) {
    let b = storage.open();
    let t = topic(&*b, "events");
    append_all(|at, body| t.append(at, body), &["m1", "m2"]);
    assert!(!t.is_sealed());
    t.seal().unwrap().wait_blocking().unwrap();
    assert!(t.is_sealed());
    assert!(matches!(
        t.append(1, b"late"),
        Err(StoreError::Sealed { .. })
    ));
    drop(t);
    let b = restart(storage, b);
    let t = topic(&*b, "events");
    assert!(t.is_sealed());
    assert!(matches!(
        t.append(1, b"late"),
        Err(StoreError::Sealed { .. })
    ));
    assert_eq!(read(&*t, ReadFrom::First).len(), 2);
    b.close();
}

/// A queue deleted and declared again under the same name is new and empty, at
/// once and after a restart, and only the new one's settings are kept.
pub fn a_deleted_queue_declared_again_starts_empty(storage: &dyn Storage) {
    let b = storage.open();
    let q = queue(&*b, "jobs");
    append_all(|t, body| q.append(t, body), &["old1", "old2"]);
    let deleted = q.delete();
    assert!(matches!(
        q.append(1, b"late"),
        Err(StoreError::Closed { .. })
    ));
    let again = b.open_queue("jobs", &settings(7)).unwrap();
    assert_eq!(recovered(&*again), vec![]);
    assert_eq!(again.append(5, b"new").unwrap().seq, 1);
    deleted.wait_blocking().unwrap();
    again.sync().wait_blocking().unwrap();
    drop((q, again));
    let b = restart(storage, b);
    assert_eq!(
        b.stored().unwrap().queues,
        vec![StoredQueue {
            name: "jobs".into(),
            settings: Some(settings(7)),
        }]
    );
    let q = b.open_queue("jobs", &settings(7)).unwrap();
    assert_eq!(recovered(&*q), vec![(1, 0, "new".into())]);
    q.delete().wait_blocking().unwrap();
    assert_eq!(b.stored().unwrap(), Stored::default());
    b.close();
}

/// A topic deleted and declared again under the same name is new and empty.
pub fn a_deleted_topic_declared_again_starts_empty(storage: &dyn Storage) {
    let b = storage.open();
    let t = topic(&*b, "events");
    append_all(|at, body| t.append(at, body), &["old"]);
    t.seal().unwrap().wait_blocking().unwrap();
    let deleted = t.delete();
    let again = topic(&*b, "events");
    assert!(!again.is_sealed());
    assert_eq!(read(&*again, ReadFrom::First), vec![]);
    assert_eq!(again.append(5, b"new").unwrap().seq, 1);
    deleted.wait_blocking().unwrap();
    again.sync().wait_blocking().unwrap();
    drop((t, again));
    let b = restart(storage, b);
    let t = topic(&*b, "events");
    assert_eq!(read(&*t, ReadFrom::First), vec![(1, "new".into())]);
    b.close();
}

/// What was declared (a queue's settings, a topic's retention, and their updates)
/// comes back at start-up with the names; a deleted stream's is forgotten.
pub fn declared_settings_and_retention_come_back_at_reopen(storage: &dyn Storage) {
    let b = storage.open();
    let jobs = b.open_queue("jobs", &settings(100)).unwrap();
    jobs.set_settings(&settings(200)).unwrap();
    let _plain = b
        .open_queue(
            "plain",
            &QueueSettings {
                ack_timeout_ms: 30_000,
                ..QueueSettings::default()
            },
        )
        .unwrap();
    let day = Retention {
        max_age_s: Some(86_400),
        ..Retention::default()
    };
    let limited = Retention {
        max_messages: Some(10),
        max_bytes: Some(1 << 20),
        max_age_s: None,
    };
    let t = b.open_topic("events", day).unwrap();
    t.set_retention(limited).unwrap();
    let gone = b.open_queue("gone", &settings(5)).unwrap();
    gone.delete().wait_blocking().unwrap();
    drop((jobs, _plain, t, gone));
    let b = restart(storage, b);
    assert_eq!(
        b.stored().unwrap(),
        Stored {
            queues: vec![
                StoredQueue {
                    name: "jobs".into(),
                    settings: Some(settings(200)),
                },
                StoredQueue {
                    name: "plain".into(),
                    settings: Some(QueueSettings {
                        ack_timeout_ms: 30_000,
                        ..QueueSettings::default()
                    }),
                },
            ],
            topics: vec![StoredTopic {
                name: "events".into(),
                retention: limited,
            }],
        }
    );
    b.close();
}

/// Once an append's ticket (or a later `sync`) resolves, the message is kept: readers
/// see it, and it survives a power cut where the storage can simulate one.
pub fn a_resolved_ticket_means_the_message_is_kept(storage: &dyn Storage) {
    let b = storage.open();
    let t = topic(&*b, "events");
    let q = queue(&*b, "jobs");
    let tickets: Vec<Ticket> = (0..20u64)
        .map(|i| t.append(i, format!("t{i}").as_bytes()).unwrap().durable)
        .collect();
    for ticket in tickets {
        ticket.wait_blocking().unwrap();
    }
    assert_eq!(
        read(&*t, ReadFrom::First).len(),
        20,
        "durable means readable"
    );
    for i in 0..10u64 {
        let _ = q.append(i, format!("q{i}").as_bytes()).unwrap();
    }
    q.sync().wait_blocking().unwrap();
    drop(q.ack(1).unwrap());
    q.sync().wait_blocking().unwrap();
    let cut = storage.cut_power();
    drop((t, q));
    let b = restart(storage, b);
    let t = topic(&*b, "events");
    let q = queue(&*b, "jobs");
    assert_eq!(read(&*t, ReadFrom::First).len(), 20, "power cut: {cut}");
    let seqs: Vec<u64> = recovered(&*q).iter().map(|m| m.0).collect();
    assert_eq!(seqs, (2..=10).collect::<Vec<u64>>(), "power cut: {cut}");
    b.close();
}

/// Once an ack's ticket resolves, the message never comes back, even after a power
/// cut: whether its message was durable long before, or appended in the same
/// unflushed batch as the ack.
pub fn a_resolved_ack_ticket_means_the_message_never_comes_back(storage: &dyn Storage) {
    let b = storage.open();
    let q = queue(&*b, "jobs");
    for i in 0..4u64 {
        q.append(i, format!("q{i}").as_bytes())
            .unwrap()
            .durable
            .wait_blocking()
            .unwrap();
    }
    q.ack(1).unwrap().wait_blocking().unwrap();
    q.ack(3).unwrap().wait_blocking().unwrap();
    // Appended and acked at once: the ack waits for its message to be durable.
    let fresh = q.append(9, b"q9").unwrap();
    let acked = q.ack(fresh.seq).unwrap();
    acked.wait_blocking().unwrap();
    // An unknown seq has nothing to wait for.
    q.ack(99).unwrap().wait_blocking().unwrap();
    let cut = storage.cut_power();
    drop(q);
    let b = restart(storage, b);
    let q = queue(&*b, "jobs");
    let seqs: Vec<u64> = recovered(&*q).iter().map(|m| m.0).collect();
    assert_eq!(seqs, vec![2, 4], "power cut: {cut}");
    b.close();
}

/// After `close` (the last step of a graceful shutdown) appends fail, and what was
/// appended before it is kept.
pub fn appends_fail_once_the_backend_is_closed(storage: &dyn Storage) {
    let b = storage.open();
    let t = topic(&*b, "events");
    let q = queue(&*b, "jobs");
    let before = q.append(1, b"before").unwrap();
    b.close();
    assert_eq!(before.durable.wait_blocking(), Ok(()));
    assert!(t.append(2, b"after").is_err());
    assert!(q.append(2, b"after").is_err());
    drop((t, q));
    let b = storage.open();
    assert_eq!(
        recovered(&*queue(&*b, "jobs")),
        vec![(1, 0, "before".into())]
    );
    b.close();
}

/// Two opens of one name are two handles on one stream, not two writers: their
/// appends share one seq order, and dropping one leaves the other working.
pub fn two_opens_of_a_name_share_one_stream(storage: &dyn Storage) {
    let b = storage.open();
    let one = topic(&*b, "events");
    let two = topic(&*b, "events");
    assert_eq!(one.append(1, b"a").unwrap().seq, 1);
    assert_eq!(two.append(2, b"b").unwrap().seq, 2);
    drop(two);
    one.append(3, b"c")
        .unwrap()
        .durable
        .wait_blocking()
        .unwrap();
    assert_eq!(read(&*one, ReadFrom::First).len(), 3);
    let q1 = queue(&*b, "jobs");
    let q2 = queue(&*b, "jobs");
    append_all(|t, body| q1.append(t, body), &["x"]);
    drop(q2.ack(1).unwrap());
    assert_eq!(q1.stats().messages, 0);
    b.close();
}

/// Deleting a name and declaring it again at once (the broker's `delete` then
/// `send` in one frame) works every round, without waiting on a timeout.
pub fn a_name_opens_again_right_after_its_delete_every_time(storage: &dyn Storage) {
    let b = storage.open();
    let mut deletions = Vec::new();
    for round in 0..50u64 {
        let asked = Instant::now();
        let q = b
            .open_queue("jobs", &settings(round + 1))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let waited = asked.elapsed();
        assert!(waited < Duration::from_secs(3), "round {round}: {waited:?}");
        assert_eq!(q.recover().unwrap(), vec![], "round {round} starts empty");
        let first = q.append(round, b"x").unwrap();
        assert_eq!(first.seq, 1, "round {round}");
        if round % 2 == 0 {
            first.durable.wait_blocking().unwrap();
        }
        deletions.push(q.delete());
    }
    for d in deletions {
        d.wait_blocking().unwrap();
    }
    // No deletion removed anything of a newer stream of the same name.
    let q = b.open_queue("jobs", &settings(9)).unwrap();
    q.append(1, b"kept")
        .unwrap()
        .durable
        .wait_blocking()
        .unwrap();
    drop(q);
    let b = restart(storage, b);
    assert_eq!(b.stored().unwrap().queues[0].settings, Some(settings(9)));
    assert_eq!(recovered(&*queue(&*b, "jobs")).len(), 1);
    b.close();
}

/// Threads opening, appending to and deleting one name at once always get a store
/// from `open` (a handle another thread deleted refuses appends with `Closed`).
pub fn threads_opening_and_deleting_one_name_always_get_a_store(storage: &dyn Storage) {
    let b = storage.open();
    let threads: Vec<_> = (0..6u64)
        .map(|w| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let t = b
                        .open_topic("events", Retention::default())
                        .unwrap_or_else(|e| panic!("thread {w} round {i}: {e}"));
                    match t.append(i, b"x") {
                        Ok(_) | Err(StoreError::Closed { .. }) => {}
                        Err(e) => panic!("thread {w} round {i}: {e}"),
                    }
                    if i % 6 == w {
                        drop(t.delete());
                    }
                    let _ = t.read(ReadFrom::First).count();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let t = topic(&*b, "events");
    t.append(1, b"last")
        .unwrap()
        .durable
        .wait_blocking()
        .unwrap();
    b.close();
}

/// The suite on the log backend.
#[cfg(test)]
mod log_backend {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::Storage;
    use crate::store::{Backend, LogBackend, OsDisk, SimDisk, StoreConfig};

    /// Small segments and a short batch interval, so rolls and group commits happen.
    fn config() -> StoreConfig {
        StoreConfig {
            batch_interval: Duration::from_micros(300),
            segment_bytes: 512,
            index_interval_bytes: 128,
            read_chunk_bytes: 256,
            sync_threads: 2,
            ..StoreConfig::default()
        }
    }

    /// The same, with two open files at most: every stream's files are closed and
    /// reopened all the time, under every check of the suite.
    fn two_open_files() -> StoreConfig {
        StoreConfig {
            max_open_files: 2,
            ..config()
        }
    }

    struct Sim(SimDisk, StoreConfig);

    impl Storage for Sim {
        fn open(&self) -> Arc<dyn Backend> {
            if self.0.is_down() {
                self.0.restart();
            }
            Arc::new(LogBackend::open("/data", Arc::new(self.0.clone()), self.1.clone()).unwrap())
        }

        fn cut_power(&self) -> bool {
            self.0.power_cut();
            true
        }
    }

    /// A fresh directory under the system's temp dir, removed afterwards.
    struct TempDir(PathBuf, StoreConfig);

    impl TempDir {
        fn new(config: StoreConfig) -> TempDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("switchyard-conformance-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir, config)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl Storage for TempDir {
        fn open(&self) -> Arc<dyn Backend> {
            Arc::new(LogBackend::open(&self.0, Arc::new(OsDisk), self.1.clone()).unwrap())
        }
    }

    mod on_sim_disk {
        crate::backend_conformance!(super::Sim(crate::store::SimDisk::new(), super::config()));
    }

    mod on_the_file_system {
        crate::backend_conformance!(super::TempDir::new(super::config()));
    }

    mod on_sim_disk_with_two_open_files {
        crate::backend_conformance!(super::Sim(
            crate::store::SimDisk::new(),
            super::two_open_files()
        ));
    }

    mod on_the_file_system_with_two_open_files {
        crate::backend_conformance!(super::TempDir::new(super::two_open_files()));
    }
}
