//! The broker's background timers: ack deadlines per queue, retention by age,
//! memory given back after connections close.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Broker, Inner};
use crate::queue::Queue;

/// Calls `tick` every `period` until the broker is gone or shutting down; the
/// blocking work it returns, if any, runs on the blocking pool before the next
/// tick (no lock of the broker's is held meanwhile).
async fn every<W>(broker: Weak<Inner>, period: Duration, mut tick: impl FnMut(&Inner) -> Option<W>)
where
    W: FnOnce() + Send + 'static,
{
    let mut ticks = tokio::time::interval(period);
    // After a stall, the next tick a period on, not a burst of the missed ones
    // (the history's samples are to be a second apart).
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = broker.upgrade() else {
            return;
        };
        if *inner.shutdown.borrow() {
            return;
        }
        let work = tick(&inner);
        drop(inner);
        if let Some(work) = work {
            let _ = tokio::task::spawn_blocking(work).await;
        }
    }
}

/// Kicks readers stuck past their slow mark for `slow_timeout` (`pacing.rs`).
pub(super) async fn run_stuck_readers(broker: Weak<Inner>) {
    every(broker, crate::pacing::STUCK_CHECK, |inner| {
        let sessions: Vec<_> = inner
            .sessions
            .read()
            .values()
            .map(|p| p.session.clone())
            .collect();
        crate::pacing::kick_stuck(&sessions, inner.config.slow_timeout);
        None::<fn()>
    })
    .await
}

/// Applies retained topics' limits (by age, which no append triggers) every few seconds.
pub(super) async fn run_retention(broker: Weak<Inner>) {
    every(broker, Duration::from_secs(5), |inner| {
        let stores = inner.topics.stores();
        Some(move || {
            let now = crate::time::now_ms();
            for (name, store) in stores {
                if let Err(e) = store.apply_retention(now) {
                    tracing::warn!("retention of topic {name}: {e}");
                }
            }
        })
    })
    .await
}

/// Samples every queue, topic and client into the history once a second
/// (`history.rs`), and turns the queues' minute of reply times every 60.
pub(super) async fn run_history(broker: Weak<Inner>) {
    let mut ticks = 0u64;
    every(
        broker,
        Duration::from_millis(crate::history::INTERVAL_MS),
        |inner| {
            ticks += 1;
            let queues: Vec<Arc<Queue>> = inner.queues.read().values().cloned().collect();
            if ticks.is_multiple_of(60) {
                queues.iter().for_each(|q| q.turn_latency());
            }
            let queue_stats: Vec<_> = queues.iter().map(|q| q.stats()).collect();
            let clients: Vec<_> = inner
                .sessions
                .read()
                .values()
                .map(|p| p.session.fill())
                .collect();
            inner.history.sample(
                crate::time::now_ms(),
                &queue_stats,
                &inner.topics.stats(),
                &clients,
            );
            None::<fn()>
        },
    )
    .await
}

/// Gives freed memory back to the system after many connections closed: the C
/// allocator keeps what a burst of connections used, so without this a broker's
/// resident memory only ever grows. Checked every few seconds; trimmed when the
/// connections fell to half their peak since the last trim, and by at least
/// `TRIM_AFTER`.
pub(super) async fn run_memory_trim(broker: Weak<Inner>) {
    const TRIM_AFTER: usize = 256;
    every(broker, Duration::from_secs(5), |inner| {
        let now = inner.sessions.read().len();
        let peak = inner.peak_sessions.load(Ordering::Relaxed).max(now);
        (now <= peak / 2 && peak - now >= TRIM_AFTER).then(|| {
            inner.peak_sessions.store(now, Ordering::Relaxed);
            crate::memory::give_back
        })
    })
    .await
}

/// Requeues a queue's jobs whose ack deadline passed and expires its messages whose
/// time to live ran out, sleeping until the next of either.
pub(super) async fn run_ack_timer(broker: Weak<Inner>, queue: Arc<Queue>) {
    let mut shutdown = match broker.upgrade() {
        Some(inner) => inner.shutdown.subscribe(),
        None => return,
    };
    loop {
        let (effects, next) = queue.expire(Instant::now(), crate::time::now_ms());
        match broker.upgrade() {
            Some(inner) => Broker { inner }.apply(effects),
            None => return,
        }
        if queue.is_deleted() {
            return;
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = queue.timer.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}
