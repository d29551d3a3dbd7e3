//! Group commit: a few dedicated threads that write and fsync what callers appended,
//! and resolve the [`super::Ticket`] each caller awaits to learn that its record is
//! durable.
//!
//! Appending never touches the disk: it encodes the record into the log's pending
//! buffer and, if the log is not already waiting, schedules it here with a due time.
//! A worker thread takes the log's whole pending batch, writes it with one write per
//! segment, fsyncs once, and resolves every ticket of the batch. Records appended while
//! a batch is being written wait for the next one, so under load one fsync covers many
//! callers and the runtime's threads never block on the disk.
//!
//! Workers are shared by all the logs of a store; a log is flushed by one worker at a
//! time. What a flush leaves to do once durable (resolving its tickets, which answers
//! clients) runs after the log is back in the queue, so another worker can start the
//! log's next write and fsync meanwhile. When the committer shuts down, workers flush
//! everything scheduled first.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Something the committer flushes: a log with pending records.
pub(crate) trait Flush: Send + Sync {
    /// Writes and syncs one batch.
    fn flush(&self) -> Flushed;
}

/// What one flush asks of the committer.
#[derive(Default)]
pub(crate) struct Flushed {
    /// When to run again, if more is pending.
    pub(crate) again: Option<Instant>,
    /// Work left once the batch is durable, run after the job is back in the queue
    /// (another worker may be flushing it again by then).
    pub(crate) then: Option<Box<dyn FnOnce() + Send>>,
}

/// The pool of threads that flush logs, shared by every log of a store.
pub(crate) struct Committer {
    shared: Arc<CommitWork>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

struct CommitWork {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Logs waiting to be flushed, by due time (the id keeps keys unique).
    due: BTreeMap<(Instant, u64), Arc<dyn Flush>>,
    next_id: u64,
    shutdown: bool,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("workers", &self.workers.lock().len())
            .finish()
    }
}

impl Committer {
    /// Starts `threads` worker threads (at least one).
    pub(crate) fn start(threads: usize) -> std::io::Result<Arc<Committer>> {
        let shared = Arc::new(CommitWork {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("switchyard-fsync-{i}"))
                .spawn(move || worker(&shared));
            match spawned {
                Ok(handle) => workers.push(handle),
                // Without a single worker nothing would ever be written.
                Err(e) if workers.is_empty() => return Err(e),
                Err(e) => tracing::warn!("started only {i} fsync threads: {e}"),
            }
        }
        Ok(Arc::new(Committer {
            shared,
            workers: Mutex::new(workers),
        }))
    }

    /// Asks for `job` to be flushed at `at`. Returns false after shutdown.
    pub(crate) fn schedule(&self, job: Arc<dyn Flush>, at: Instant) -> bool {
        let mut q = self.shared.queue.lock();
        if q.shutdown {
            return false;
        }
        let id = q.next_id;
        q.next_id += 1;
        q.due.insert((at, id), job);
        drop(q);
        self.shared.wake.notify_one();
        true
    }

    /// Stops taking work, flushes everything scheduled, and waits for the workers.
    pub(crate) fn shutdown(&self) {
        self.shared.queue.lock().shutdown = true;
        self.shared.wake.notify_all();
        let me = std::thread::current().id();
        let workers = std::mem::take(&mut *self.workers.lock());
        for w in workers {
            // The last handle may be dropped by a worker itself (it held the last log).
            if w.thread().id() != me {
                let _ = w.join();
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(shared: &CommitWork) {
    let mut q = shared.queue.lock();
    loop {
        let now = Instant::now();
        let next = q.due.first_key_value().map(|(k, _)| k.0);
        match next {
            Some(at) if at <= now || q.shutdown => {
                let Some(((_, id), job)) = q.due.pop_first() else {
                    continue;
                };
                let Flushed { again, then } = parking_lot::MutexGuard::unlocked(&mut q, || {
                    catch_unwind(AssertUnwindSafe(|| job.flush())).unwrap_or_else(|_| {
                        tracing::error!("a storage flush panicked; its waiters get `closed`");
                        Flushed::default()
                    })
                });
                // Back in the queue before `then` runs, so that another worker can
                // start the next batch while this one answers for the last.
                let job = match again {
                    Some(at) => {
                        q.due.insert((at, id), job);
                        shared.wake.notify_one();
                        None
                    }
                    None => Some(job),
                };
                // The job may hold the last handle to the committer, whose drop
                // takes this lock: let go of it first.
                parking_lot::MutexGuard::unlocked(&mut q, move || {
                    if let Some(then) = then {
                        if catch_unwind(AssertUnwindSafe(then)).is_err() {
                            tracing::error!("resolving a storage flush panicked");
                        }
                    }
                    drop(job);
                });
            }
            Some(at) => {
                shared.wake.wait_until(&mut q, at);
            }
            None if q.shutdown => return,
            None => shared.wake.wait(&mut q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    struct Counter {
        runs: AtomicU32,
        more: u32,
    }

    impl Flush for Counter {
        fn flush(&self) -> Flushed {
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            Flushed {
                again: (n < self.more).then(|| Instant::now() + Duration::from_millis(1)),
                then: None,
            }
        }
    }

    #[test]
    fn runs_jobs_when_due_and_again_when_asked() {
        let c = Committer::start(2).unwrap();
        let job = Arc::new(Counter {
            runs: AtomicU32::new(0),
            more: 3,
        });
        assert!(c.schedule(job.clone(), Instant::now() + Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(job.runs.load(Ordering::SeqCst), 3);
        c.shutdown();
        assert!(!c.schedule(job.clone(), Instant::now()));
    }

    #[test]
    fn shutdown_flushes_what_is_scheduled_even_if_not_due() {
        let c = Committer::start(1).unwrap();
        let job = Arc::new(Counter {
            runs: AtomicU32::new(0),
            more: 1,
        });
        assert!(c.schedule(job.clone(), Instant::now() + Duration::from_secs(3600)));
        c.shutdown();
        assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    }

    /// A job whose first flush's `then` waits until its second flush has run.
    struct Overlapping {
        runs: AtomicU32,
        second: Arc<(Mutex<bool>, Condvar)>,
        overlapped: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Flush for Overlapping {
        fn flush(&self) -> Flushed {
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 2 {
                *self.second.0.lock() = true;
                self.second.1.notify_all();
                return Flushed::default();
            }
            let (second, overlapped) = (Arc::clone(&self.second), Arc::clone(&self.overlapped));
            Flushed {
                again: Some(Instant::now()),
                then: Some(Box::new(move || {
                    let mut ran = second.0.lock();
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while !*ran && !second.1.wait_until(&mut ran, deadline).timed_out() {}
                    overlapped.store(*ran, Ordering::SeqCst);
                })),
            }
        }
    }

    #[test]
    fn a_flush_left_to_finish_does_not_hold_back_the_next() {
        let c = Committer::start(2).unwrap();
        let overlapped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job = Arc::new(Overlapping {
            runs: AtomicU32::new(0),
            second: Arc::new((Mutex::new(false), Condvar::new())),
            overlapped: Arc::clone(&overlapped),
        });
        assert!(c.schedule(job.clone(), Instant::now()));
        c.shutdown();
        assert_eq!(job.runs.load(Ordering::SeqCst), 2);
        assert!(
            overlapped.load(Ordering::SeqCst),
            "the second flush ran while the first's `then` waited"
        );
    }

    /// A job that owns the last handle to its committer, as a log does.
    struct Owner {
        committer: Mutex<Option<Arc<Committer>>>,
        dropped: std::sync::mpsc::Sender<()>,
    }

    impl Flush for Owner {
        fn flush(&self) -> Flushed {
            Flushed::default()
        }
    }

    impl Drop for Owner {
        fn drop(&mut self) {
            drop(self.committer.lock().take());
            let _ = self.dropped.send(());
        }
    }

    #[test]
    fn a_worker_dropping_the_last_handle_does_not_deadlock() {
        let c = Committer::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let job = Arc::new(Owner {
            committer: Mutex::new(Some(Arc::clone(&c))),
            dropped: tx,
        });
        assert!(c.schedule(job, Instant::now() + Duration::from_millis(20)));
        drop(c);
        // The worker flushes the job, drops it, and with it the committer.
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the committer's drop finished on its own worker");
    }
}
