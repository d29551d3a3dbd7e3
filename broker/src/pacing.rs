//! Pacing publishers to slow readers: deliver to the healthy, cut only the stuck.
//!
//! A subscriber whose outbound buffer is past its slow mark (half of
//! `max_pending`) that is still draining it (see [`reading_ms`]) is slow, not
//! stuck: the publisher whose frame took it there handles no more of what it
//! read and waits until the buffer is back under the mark, for at most
//! `max_pause` (default 10 ms), then goes on with its next frame: at most one
//! pause per frame. Its frames are not refused or dropped, only spaced out,
//! so a steady reader slower than a burst gets all of it, and a healthy
//! reader of the same topic sees the publisher pause at most `max_pause` at a
//! time.
//!
//! A subscriber that drains nothing is not waited for once [`reading_ms`] has
//! passed: once it has drained nothing for `slow_timeout` (default 2 s) while
//! past the mark it is kicked
//! (`slow_consumer`) by the broker's check ([`kick_stuck`], every 250 ms), and
//! one that fills its buffer is kicked at once, as before. A publisher is
//! never paused for its own subscriptions (its writer runs in its own task),
//! for queue jobs (bounded by prefetch), or for the broker's own publishers
//! (HTTP, NATS, webhooks), which handle no socket reads.
//!
//! Where the wait happens: a connection handles what a read brought under a
//! [`listing`] on its thread, [`note`] (from a subscription's delivery) adds a
//! buffer that wants pacing, and [`pause`] waits for what was listed.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::activity::Activity;
use crate::session::Session;

/// How long a reader past its slow mark may drain nothing and still count as
/// reading, given `slow_timeout` in ms: half of it (1 s by default), from
/// 200 ms to 1 s. Past that it is not waited for: it may be stuck, and no publisher
/// waits for a stuck reader. Not shorter, because a socket drains in steps:
/// the reader's kernel opens its window when half its receive buffer is free
/// and the broker's kernel wakes the writer when a third of its send buffer
/// is, so a steady reader of 3 MB/s on loopback (megabytes of socket buffers)
/// is seen draining only every 400 ms or so. So a reader that stops slows its
/// publishers (to one frame per `max_pause`) for this long at most, after
/// which its buffer fills and it is kicked, or `slow_timeout` kicks it.
pub(crate) fn reading_ms(slow_timeout_ms: u64) -> u64 {
    (slow_timeout_ms / 2).clamp(200, 1000)
}

/// How often the broker looks for stuck readers to kick.
pub(crate) const STUCK_CHECK: Duration = Duration::from_millis(250);

/// Milliseconds on a monotonic clock of the process's own (not wall time).
pub(crate) fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

thread_local! {
    /// Whether a [`listing`] runs on this thread, and how many buffers it has
    /// listed: plain cells, so that the listing of every read (nearly always
    /// empty) costs no more than setting and reading them.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    /// The buffers the running listing listed, to wait for after it.
    static LISTED: RefCell<Vec<Arc<Session>>> = const { RefCell::new(Vec::new()) };
}

/// Starts listing, on this thread, the subscribers whose buffers want their
/// publisher paced, until [`Listing::take`] (or the guard's drop). Not `Send`:
/// it cannot cross an `.await`, so what it lists is this thread's.
pub(crate) fn listing() -> Listing {
    Listing {
        outer: !ACTIVE.replace(true),
        _not_send: std::marker::PhantomData,
    }
}

/// See [`listing`].
pub(crate) struct Listing {
    outer: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Listing {
    /// Ends the listing: the subscribers listed (none from a nested one).
    pub(crate) fn take(mut self) -> Vec<Arc<Session>> {
        if !std::mem::take(&mut self.outer) {
            return Vec::new();
        }
        ACTIVE.set(false);
        if COUNT.replace(0) == 0 {
            return Vec::new();
        }
        LISTED.with_borrow_mut(std::mem::take)
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        if self.outer {
            ACTIVE.set(false);
            if COUNT.replace(0) > 0 {
                LISTED.with_borrow_mut(Vec::clear);
            }
        }
    }
}

/// A delivery went into `session`'s buffer: if that buffer wants pacing and a
/// [`listing`] runs on this thread, lists it (once).
pub(crate) fn note(session: &Arc<Session>) {
    if !ACTIVE.get()
        || session.outbound.bytes() <= session.outbound.limit() / 2
        || !session.wants_pacing()
    {
        return;
    }
    LISTED.with_borrow_mut(|l| {
        if !l.iter().any(|s| Arc::ptr_eq(s, session)) {
            l.push(session.clone());
            COUNT.set(l.len());
        }
    });
}

/// Whether the [`listing`] running on this thread has listed a buffer: the
/// connection then handles no more of the frames it read before it pauses, so
/// the pause comes after the frame that filled the buffer, not after 64 more.
pub(crate) fn listed_any() -> bool {
    COUNT.get() > 0
}

/// Waits until each of `listed` is under its slow mark, stops draining or goes,
/// for at most `max` in all; `publisher`'s own buffer is never waited for.
/// Counts the pause (in `activity` and on each buffer waited for) when there
/// was one.
pub(crate) async fn pause(
    publisher: &Session,
    listed: Vec<Arc<Session>>,
    max: Duration,
    activity: &Activity,
) {
    if max.is_zero() {
        return;
    }
    let start = tokio::time::Instant::now();
    let deadline = start + max;
    let mut waited = false;
    'listed: for s in &listed {
        if std::ptr::eq(&**s, publisher) {
            continue;
        }
        let out = &s.outbound;
        let mut waited_here = false;
        loop {
            let drained = out.drained();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if !s.wants_pacing() {
                break;
            }
            waited_here = true;
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                out.pauses.fetch_add(1, Ordering::Relaxed);
                waited = true;
                break 'listed;
            }
        }
        if waited_here {
            out.pauses.fetch_add(1, Ordering::Relaxed);
            waited = true;
        }
    }
    if waited {
        activity.pauses.fetch_add(1, Ordering::Relaxed);
        activity
            .paused_us
            .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        publisher.paused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Kicks every client in `sessions` that has been past its slow mark with its
/// reader draining nothing for `timeout` (`slow_consumer`); how many.
pub(crate) fn kick_stuck<'a>(
    sessions: impl IntoIterator<Item = &'a Arc<Session>>,
    timeout: Duration,
) -> usize {
    let now = clock_ms();
    let timeout = timeout.as_millis() as u64;
    let mut kicked = 0;
    for s in sessions {
        if s.outbound.stuck_ms(now).is_some_and(|ms| ms >= timeout) {
            s.kick_stuck(timeout);
            kicked += 1;
        }
    }
    kicked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_lists_each_buffer_past_its_mark_once_and_only_while_it_runs() {
        let activity = Arc::new(Activity::new(1 << 30));
        let session = Arc::new(Session::new(
            1,
            "127.0.0.1:9".parse().unwrap(),
            100,
            activity,
        ));
        session.send_text("x".repeat(60));
        // Outside a listing a delivery lists nothing.
        note(&session);
        assert!(!listed_any());
        assert!(listing().take().is_empty());

        let outer = listing();
        note(&session);
        note(&session);
        assert!(listed_any());
        // A nested listing hands back nothing; the outer one keeps what it has.
        assert!(listing().take().is_empty());
        let listed = outer.take();
        assert_eq!(listed.len(), 1);
        assert!(Arc::ptr_eq(&listed[0], &session));
        assert!(!listed_any());

        // A listing dropped without take leaves nothing behind.
        let dropped = listing();
        note(&session);
        drop(dropped);
        assert!(!listed_any());
        assert!(listing().take().is_empty());
    }

    #[test]
    fn a_reader_counts_as_reading_for_half_slow_timeout_within_bounds() {
        assert_eq!(reading_ms(2_000), 1_000);
        assert_eq!(reading_ms(1_000), 500);
        assert_eq!(reading_ms(100), 200);
        // A long slow_timeout (kick late) never makes a stopped reader hold
        // its publishers longer.
        assert_eq!(reading_ms(3_600_000), 1_000);
    }
}
