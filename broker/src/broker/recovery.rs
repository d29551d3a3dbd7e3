//! Reopening what the data directory holds at start: every retained topic and
//! every durable queue with its unacked messages, with progress in the log, since
//! a large directory takes seconds (781 MB took 3 s, in silence, before it was
//! told).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::timers::{run_ack_timer, run_history, run_memory_trim, run_retention};
use super::Broker;
use crate::error::{BrokerError, ErrorCode};
use crate::queue::{Queue, QueueConfig};
use crate::stats::EventKind;

/// How often a recovery under way says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Broker {
    /// Reopens every stored queue with its unacked messages, and every retained topic.
    pub(super) fn recover(&self) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let stored = inner.backend.stored()?;
        let mut progress = Progress::new(stored.queues.len(), stored.topics.len(), Instant::now());
        if let Some(line) = progress.start_line() {
            tracing::info!("{line} from {}", inner.config.data_dir.display());
        }
        for topic in stored.topics {
            let name = topic.name;
            if inner.cluster.is_some() {
                // With --nats retained topics are JetStream's (as queues are).
                inner.activity.record(
                    EventKind::Storage,
                    format!("topic {name} in the data directory is not served with --nats"),
                );
                continue;
            }
            let store = inner.backend.open_topic(&name, topic.retention)?;
            self.report_repairs();
            let stats = store.stats();
            inner.topics.retain(&name, store)?;
            inner.activity.record(
                EventKind::Storage,
                format!("recovered topic {name}: {} stored messages", stats.messages),
            );
            progress.log(stats.bytes);
        }
        inner.runtime.spawn(run_retention(Arc::downgrade(inner)));
        inner.runtime.spawn(run_memory_trim(Arc::downgrade(inner)));
        inner.runtime.spawn(run_history(Arc::downgrade(inner)));
        let mut moved = Vec::new();
        for queue in stored.queues {
            let name = queue.name;
            if inner.cluster.is_some() {
                // With --nats queues are JetStream's: one kept here from a run
                // without it stays on disk, unserved, rather than served by
                // this node alone under a name the cluster shares.
                inner.activity.record(
                    EventKind::Storage,
                    format!("queue {name} in the data directory is not served with --nats"),
                );
                continue;
            }
            let config = queue
                .settings
                .as_ref()
                .map(QueueConfig::durable_from)
                .unwrap_or_default();
            let store = inner.backend.open_queue(&name, &config.settings())?;
            let messages = store.recover()?;
            let count = messages.len();
            let bytes = store.stats().bytes;
            let queue = Queue::new(&name, config, Some(store.clone()));
            moved.extend(
                queue
                    .restore(messages)
                    .map_err(|e| BrokerError::new(ErrorCode::Internal, e))?,
            );
            self.report_repairs();
            inner.activity.record(
                EventKind::Storage,
                format!("recovered queue {name}: {count} unacked messages"),
            );
            inner
                .queues
                .write()
                .insert(queue.name.clone(), queue.clone());
            progress.log(bytes);
        }
        // A move cut short after its append to the target and before its settle in
        // the source: the source's copy goes, so that the message is in one queue.
        for (source, id) in moved {
            let queue = inner.queues.read().get(source.as_str()).cloned();
            if queue.is_some_and(|q| q.drop_moved_copy(id)) {
                inner.activity.record(
                    EventKind::Storage,
                    format!("recovered a move cut short: message {id} of {source} stays only in its new queue"),
                );
            }
        }
        // The timers start once every queue is back: a message whose time to live
        // ran out while the broker was down is dead-lettered at the first tick, into
        // its dead-letter queue as recovered, not into a second one opened meanwhile.
        let queues: Vec<Arc<Queue>> = inner.queues.read().values().cloned().collect();
        for queue in queues {
            inner
                .runtime
                .spawn(run_ack_timer(Arc::downgrade(inner), queue));
        }
        if let Some(line) = progress.end_line(Instant::now()) {
            tracing::info!("{line}");
        }
        Ok(())
    }
}

/// How far a recovery got: topics are reopened first, then queues.
struct Progress {
    queues: usize,
    topics: usize,
    done: usize,
    bytes: u64,
    started: Instant,
    last_told: Instant,
}

impl Progress {
    fn new(queues: usize, topics: usize, now: Instant) -> Self {
        Progress {
            queues,
            topics,
            done: 0,
            bytes: 0,
            started: now,
            last_told: now,
        }
    }

    /// `recovering 200 queues and 3 topics`, or nothing for an empty directory.
    fn start_line(&self) -> Option<String> {
        (self.queues + self.topics > 0)
            .then(|| format!("recovering {}", self.streams(self.queues, self.topics)))
    }

    /// One more stream reopened, holding `bytes`, at `now`: the line to log if one
    /// is due.
    fn stream_done(&mut self, bytes: u64, now: Instant) -> Option<String> {
        self.done += 1;
        self.bytes += bytes;
        let total = self.queues + self.topics;
        if self.done == total || now.saturating_duration_since(self.last_told) < PROGRESS_EVERY {
            return None;
        }
        self.last_told = now;
        let topics_done = self.done.min(self.topics);
        let queues_done = self.done - topics_done;
        Some(format!(
            "recovering: {topics_done} of {} topics, {queues_done} of {} queues, {} so far",
            self.topics,
            self.queues,
            size(self.bytes)
        ))
    }

    /// [`Progress::stream_done`], logged.
    fn log(&mut self, bytes: u64) {
        if let Some(line) = self.stream_done(bytes, Instant::now()) {
            tracing::info!("{line}");
        }
    }

    /// `recovered 200 queues and 3 topics (781.0 MiB) in 3.1 s`, or nothing for
    /// an empty directory.
    fn end_line(&self, now: Instant) -> Option<String> {
        (self.queues + self.topics > 0).then(|| {
            format!(
                "recovered {} ({}) in {}",
                self.streams(self.queues, self.topics),
                size(self.bytes),
                took(now.saturating_duration_since(self.started))
            )
        })
    }

    fn streams(&self, queues: usize, topics: usize) -> String {
        let plural = |n: usize, one: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {one}s"),
        };
        format!(
            "{} and {}",
            plural(queues, "queue"),
            plural(topics, "topic")
        )
    }
}

/// `512 bytes`, `3.5 KiB`, `781.0 MiB`, `2.3 GiB`.
fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", b / KIB),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / (KIB * KIB)),
        _ => format!("{:.1} GiB", b / (KIB * KIB * KIB)),
    }
}

/// `40 ms`, `3.1 s`.
fn took(time: Duration) -> String {
    if time < Duration::from_secs(1) {
        format!("{} ms", time.as_millis())
    } else {
        format!("{:.1} s", time.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_told_at_most_once_a_second_and_summed_up_at_the_end() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = Progress::new(3, 1, t0);
        assert_eq!(
            p.start_line().as_deref(),
            Some("recovering 3 queues and 1 topic")
        );
        // The topic, at once: too soon to tell.
        assert_eq!(p.stream_done(1024 * 1024, ms(10)), None);
        assert_eq!(
            p.stream_done(300 * 1024 * 1024, ms(1200)).as_deref(),
            Some("recovering: 1 of 1 topics, 1 of 3 queues, 301.0 MiB so far")
        );
        assert_eq!(p.stream_done(0, ms(1300)), None);
        // The last is not told: the summary follows it.
        assert_eq!(p.stream_done(512 * 1024, ms(2600)), None);
        assert_eq!(
            p.end_line(ms(3100)).as_deref(),
            Some("recovered 3 queues and 1 topic (301.5 MiB) in 3.1 s")
        );
    }

    #[test]
    fn sizes_and_times_read_at_a_glance() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(3584), "3.5 KiB");
        assert_eq!(size(781 * 1024 * 1024), "781.0 MiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
        assert_eq!(took(Duration::from_millis(40)), "40 ms");
        assert_eq!(took(Duration::from_millis(3140)), "3.1 s");
    }

    #[test]
    fn an_empty_directory_says_nothing() {
        let t0 = Instant::now();
        let p = Progress::new(0, 0, t0);
        assert_eq!(p.start_line(), None);
        assert_eq!(p.end_line(t0), None);
    }
}
