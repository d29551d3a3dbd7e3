//! The bounded outbound buffer of one connection: what the broker has decided to send
//! and the connection's writer has not yet written.
//!
//! It is text, ready for the wire: each pushed frame is copied in as one line, so a
//! delivery costs a copy into each subscriber's buffer and no allocation, and the
//! writer swaps the whole buffer out and writes it as it is. Publishers push without
//! waiting. It counts bytes: past half of its limit the client is marked slow; a
//! push that would pass the limit kicks the client (`slow_consumer`), drops what was
//! buffered and refuses everything after, so one client can never make the broker
//! hold more than `limit` bytes for it.
//!
//! Every change to its byte count is also reported to the broker-wide
//! [`OutboundBudget`], which bounds all buffers together.
//!
//! The slow mark comes and goes with every batch of a client that keeps up only
//! just (the writer takes the whole buffer, so it empties at each write): a push
//! reports the client slow only when it had been out of the mark for
//! [`SLOW_QUIET`], so the log says once that it fell behind, not at every batch.
//!
//! Past the slow mark, it tells a reader that drains (slow: its publishers are
//! paced, `pacing.rs`) from one that does not (stuck: kicked once it has drained
//! nothing for `slow_timeout`): the writer reports each write's progress, and
//! releases each frame's bytes as it goes out, so that a publisher waiting for
//! room sees it come 64 KiB at a time rather than at the end of a long batch.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::outbound_budget::OutboundBudget;

/// One frame to queue, copied into the buffer as one line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OutItem<'a> {
    /// A whole compact JSON object.
    Text(&'a str),
    /// A `msg` delivery: the subscription's head and the message's activity body.
    Msg { head: &'a str, body: &'a str },
    /// A `job` delivery to a queue consumer: counted in the client's `msgs_out`
    /// as a `msg` is.
    Job(&'a str),
}

impl OutItem<'_> {
    fn len(&self) -> usize {
        match self {
            OutItem::Text(t) | OutItem::Job(t) => t.len(),
            OutItem::Msg { head, body } => head.len() + body.len(),
        }
    }

    fn is_delivery(&self) -> bool {
        matches!(self, OutItem::Msg { .. } | OutItem::Job(_))
    }

    fn write_to(&self, out: &mut String) {
        match self {
            OutItem::Text(t) | OutItem::Job(t) => out.push_str(t),
            OutItem::Msg { head, body } => {
                out.push_str(head);
                out.push_str(body);
            }
        }
    }
}

/// Most buffer capacity a connection keeps between batches.
const KEEP_BYTES: usize = 256 * 1024;

/// How long a client must have been out of the slow mark for its next entry into
/// it to be reported. A subscriber flooded at about its reading speed went in and
/// out 69 times in 20 ms, one log line each, burying every other line.
pub(crate) const SLOW_QUIET: Duration = Duration::from_secs(10);

/// What the writer took from the buffer: newline-separated frames, and their counts.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) text: String,
    frames: usize,
    deliveries: usize,
    /// Of its bytes, those already released by [`Outbound::wrote_frame`].
    released: usize,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// `bytes` of it were released as they went out ([`Outbound::wrote_frame`]):
    /// [`Outbound::written`] releases only the rest.
    pub(crate) fn note_released(&mut self, bytes: usize) {
        self.released += bytes;
    }

    /// Empties the batch, keeping its allocation for the next unless a burst made
    /// it larger than [`KEEP_BYTES`]: an idle connection holds little memory.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        if self.text.capacity() > KEEP_BYTES {
            self.text = String::new();
        }
        self.frames = 0;
        self.deliveries = 0;
        self.released = 0;
    }
}

thread_local! {
    /// While [`holding_wakes`] runs on this thread: the writers to wake when it ends.
    static HELD_WAKES: RefCell<Option<Vec<Arc<Notify>>>> = const { RefCell::new(None) };
}

/// Runs `f` (a connection handling one frame) with writer wake-ups held until it
/// returns: a frame of a hundred messages wakes each subscriber's writer once, and
/// that writer then finds the whole batch waiting, instead of being woken (on
/// another core, with a system call) for each message.
pub(crate) fn holding_wakes<R>(f: impl FnOnce() -> R) -> R {
    let _held = hold_wakes();
    f()
}

/// Holds writer wake-ups on this thread until the guard drops (also on a panic:
/// wake-ups are never lost, and never held forever). Nested holds release at
/// the outermost. The guard cannot cross an `.await` (it is not `Send`), so the
/// wake-ups it holds are this thread's.
pub(crate) fn hold_wakes() -> WakesHeld {
    let outer = HELD_WAKES.with_borrow_mut(|held| match held {
        Some(_) => false,
        None => {
            *held = Some(Vec::new());
            true
        }
    });
    WakesHeld {
        outer,
        _not_send: std::marker::PhantomData,
    }
}

/// See [`hold_wakes`].
pub(crate) struct WakesHeld {
    outer: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for WakesHeld {
    fn drop(&mut self) {
        if self.outer {
            let held = HELD_WAKES.with_borrow_mut(Option::take);
            for notify in held.into_iter().flatten() {
                notify.notify_one();
            }
        }
    }
}

/// Wakes a writer now, or when the [`holding_wakes`] running on this thread ends.
fn wake(notify: &Arc<Notify>) {
    let now = HELD_WAKES.with_borrow_mut(|held| match held {
        Some(held) => {
            held.push(notify.clone());
            false
        }
        None => true,
    });
    if now {
        notify.notify_one();
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The buffer is full: the client has just been kicked as a slow consumer.
    Full,
    /// The client is gone or being kicked.
    Closed,
}

/// What changed when a push succeeded, for the broker's event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// This push took the buffer past half, and the client had not been slow for
    /// [`SLOW_QUIET`] (or ever): it is now slow, and `unreported` times it had
    /// gone slow since it was last reported.
    BecameSlow {
        unreported: u64,
    },
}

/// The slow mark's comings and goings, changed only when it comes or goes.
#[derive(Default)]
struct SlowSpells {
    /// When the mark last went.
    cleared: Option<Instant>,
    /// Entries into the mark not reported (within [`SLOW_QUIET`] of a clear).
    unreported: u64,
}

impl SlowSpells {
    /// The client has just entered the slow mark at `now`: what the push reports.
    fn entered(&mut self, now: Instant) -> Pushed {
        match self.cleared {
            Some(at) if now.saturating_duration_since(at) < SLOW_QUIET => {
                self.unreported += 1;
                Pushed::Queued
            }
            _ => Pushed::BecameSlow {
                unreported: std::mem::take(&mut self.unreported),
            },
        }
    }
}

#[derive(Default)]
struct Buffered {
    /// Frames waiting, one per line.
    text: String,
    deliveries: usize,
    /// The true counts (including a batch being written), changed only under the
    /// lock; `Outbound::bytes` and `Outbound::frames` publish them with plain
    /// stores for lock-free readers.
    bytes: usize,
    frames: usize,
    /// Frames in `text`.
    waiting: usize,
}

/// The buffer itself. Shared by every task that delivers to the connection.
pub(crate) struct Outbound {
    pending: Mutex<Buffered>,
    /// Bytes pushed and not yet written (including a batch being written).
    bytes: AtomicUsize,
    /// Where every change of `Buffered::bytes` is reported, under the lock.
    budget: Arc<OutboundBudget>,
    frames: AtomicUsize,
    limit: usize,
    slow: AtomicBool,
    spells: Mutex<SlowSpells>,
    closed: AtomicBool,
    kick_reason: Mutex<Option<String>>,
    /// Deliveries (msg + job) written to the socket.
    pub(crate) delivered: AtomicU64,
    wake: Arc<Notify>,
    /// Wakes a writer blocked on a full socket when the client is kicked.
    kicked: Notify,
    /// Wakes whoever waits for room (a replay, a paced publisher) when a batch
    /// (or, past the slow mark, a frame of it) is written or the client goes away.
    drained: Notify,
    /// When (`pacing::clock_ms`) a write last made progress, or the buffer last
    /// went past the slow mark, whichever is later: a reader is stuck when this
    /// is old while it is past the mark.
    moved_ms: AtomicU64,
    /// Bytes written to the socket, ever (its drain rate, sampled).
    drained_bytes: AtomicU64,
    /// Pauses of publishers this client's buffer caused (`pacing.rs`).
    pub(crate) pauses: AtomicU64,
}

impl Outbound {
    pub(crate) fn new(limit: usize, budget: Arc<OutboundBudget>) -> Self {
        Outbound {
            pending: Mutex::new(Buffered::default()),
            bytes: AtomicUsize::new(0),
            budget,
            frames: AtomicUsize::new(0),
            limit,
            slow: AtomicBool::new(false),
            spells: Mutex::default(),
            closed: AtomicBool::new(false),
            kick_reason: Mutex::new(None),
            delivered: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            kicked: Notify::new(),
            drained: Notify::new(),
            moved_ms: AtomicU64::new(0),
            drained_bytes: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    /// Queues a frame without waiting. Refuses it when the client is closed or the
    /// buffer is full (which kicks the client).
    #[cfg(test)]
    pub(crate) fn push(&self, item: OutItem) -> Result<Pushed, Refused> {
        self.push_all(std::slice::from_ref(&item))
    }

    /// Queues frames in order, under one lock. A frame that does not fit kicks the
    /// client and refuses the rest, as [`Outbound::push`] does.
    pub(crate) fn push_all(&self, items: &[OutItem]) -> Result<Pushed, Refused> {
        let mut pending = self.pending.lock();
        if self.closed.load(Ordering::Relaxed) {
            return Err(Refused::Closed);
        }
        let was_empty = pending.text.is_empty();
        let start = pending.bytes;
        for item in items {
            let len = item.len();
            if pending.bytes + len > self.limit {
                // This batch's frames so far were never reported: count them back out.
                pending.bytes = start;
                drop(pending);
                self.kick("slow_consumer");
                return Err(Refused::Full);
            }
            if !pending.text.is_empty() {
                pending.text.push('\n');
            }
            item.write_to(&mut pending.text);
            pending.waiting += 1;
            pending.deliveries += usize::from(item.is_delivery());
            pending.bytes += len;
            pending.frames += 1;
        }
        let now = pending.bytes;
        self.bytes.store(now, Ordering::Relaxed);
        self.frames.store(pending.frames, Ordering::Relaxed);
        // Under the lock, so the budget never sees this buffer's bytes released
        // before they were added.
        self.budget.add(now - start);
        drop(pending);
        // The writer takes everything waiting at once: only the push that finds the
        // buffer empty needs to wake it.
        if was_empty && now > start {
            wake(&self.wake);
        }
        if now > self.limit / 2 && !self.slow.swap(true, Ordering::Relaxed) {
            // Its stuck clock starts now, not at its last write, which may be long ago.
            self.moved_ms
                .fetch_max(crate::pacing::clock_ms(), Ordering::Relaxed);
            return Ok(self.spells.lock().entered(Instant::now()));
        }
        Ok(Pushed::Queued)
    }

    /// Moves every waiting frame into an empty `batch` (for the writer), giving the
    /// buffer the batch's old allocation. Their bytes stay counted until
    /// [`Outbound::written`].
    pub(crate) fn take(&self, batch: &mut Batch) {
        let mut pending = self.pending.lock();
        std::mem::swap(&mut pending.text, &mut batch.text);
        batch.frames = std::mem::take(&mut pending.waiting);
        batch.deliveries = std::mem::take(&mut pending.deliveries);
    }

    /// A write to the socket took `bytes`: the reader is reading.
    pub(crate) fn moved(&self, bytes: usize) {
        self.drained_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.moved_ms
            .fetch_max(crate::pacing::clock_ms(), Ordering::Relaxed);
    }

    /// The writer sent a WebSocket frame of `batch` spanning `payload`, and more
    /// of the batch is to go: past the slow mark, its lines' bytes are released
    /// now (and whoever waits for room woken), not when the whole batch is out.
    /// Returns the bytes released, for [`Batch::note_released`].
    pub(crate) fn wrote_frame(&self, payload: &[u8]) -> usize {
        if !self.is_slow() {
            return 0;
        }
        let lines = memchr::memchr_iter(b'\n', payload).count();
        let bytes = payload.len() - lines;
        {
            let mut pending = self.pending.lock();
            let before = pending.bytes;
            pending.bytes = before.saturating_sub(bytes);
            self.budget.release(before - pending.bytes);
            self.bytes.store(pending.bytes, Ordering::Relaxed);
        }
        self.drained.notify_waiters();
        bytes
    }

    /// Resolves at the next write (of a batch, or past the slow mark of a frame)
    /// or when the client goes; `enable` it before checking, as
    /// [`Outbound::wait_for_room`] does.
    pub(crate) fn drained(&self) -> tokio::sync::futures::Notified<'_> {
        self.drained.notified()
    }

    /// Bytes written to this client's socket, ever.
    pub(crate) fn drained_bytes(&self) -> u64 {
        self.drained_bytes.load(Ordering::Relaxed)
    }

    /// Whether a publisher should wait for this buffer at `now_ms`
    /// (`pacing::clock_ms`): it is past the slow mark and its reader drained
    /// some of it (or passed the mark) within the last `reading_ms`. A closed
    /// client, one under the mark, or one that drains nothing is not waited for.
    pub(crate) fn wants_pacing(&self, now_ms: u64, reading_ms: u64) -> bool {
        self.bytes() > self.limit / 2
            && !self.is_closed()
            && now_ms.saturating_sub(self.moved_ms.load(Ordering::Relaxed)) < reading_ms
    }

    /// How long, at `now_ms`, this buffer has been past the slow mark with its
    /// reader draining nothing; None while under the mark.
    pub(crate) fn stuck_ms(&self, now_ms: u64) -> Option<u64> {
        (self.bytes() > self.limit / 2 && !self.is_closed())
            .then(|| now_ms.saturating_sub(self.moved_ms.load(Ordering::Relaxed)))
    }

    /// The writer wrote this batch: release its bytes.
    pub(crate) fn written(&self, batch: &Batch) {
        // What was counted for it: each frame's length, not the newlines between,
        // less what went out frame by frame.
        let bytes =
            (batch.text.len() - batch.frames.saturating_sub(1)).saturating_sub(batch.released);
        let deliveries = batch.deliveries;
        let mut pending = self.pending.lock();
        // A kick may have released them already: release only what is still counted.
        let before = pending.bytes;
        pending.bytes = before.saturating_sub(bytes);
        self.budget.release(before - pending.bytes);
        pending.frames = pending.frames.saturating_sub(batch.frames);
        self.bytes.store(pending.bytes, Ordering::Relaxed);
        self.frames.store(pending.frames, Ordering::Relaxed);
        let low = pending.bytes <= self.limit / 4;
        drop(pending);
        self.delivered
            .fetch_add(deliveries as u64, Ordering::Relaxed);
        if low && self.slow.swap(false, Ordering::Relaxed) {
            self.spells.lock().cleared = Some(Instant::now());
        }
        self.drained.notify_waiters();
    }

    /// Waits until at most `mark` bytes are waiting (true) or the client is gone
    /// (false). Woken by the writer as it writes, never by polling.
    pub(crate) async fn wait_for_room(&self, mark: usize) -> bool {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a write between the two still wakes it.
            drained.as_mut().enable();
            if self.is_closed() {
                return false;
            }
            if self.bytes() <= mark {
                return true;
            }
            drained.await;
        }
    }

    /// Marks the client for disconnection; the first reason given wins. What was
    /// waiting is dropped (a kicked client is sent only its `kicked` frame), and its
    /// bytes leave the budget at once, so kicking for the budget frees room now.
    pub(crate) fn kick(&self, reason: &str) {
        {
            let mut r = self.kick_reason.lock();
            if r.is_none() {
                *r = Some(reason.to_string());
            }
        }
        self.closed.store(true, Ordering::Relaxed);
        self.drop_waiting();
        // notify_one stores a permit, so the writer sees the kick even if it is busy.
        self.wake.notify_one();
        self.kicked.notify_one();
        self.drained.notify_waiters();
    }

    /// Resolves once the client has been kicked.
    pub(crate) async fn wait_kicked(&self) {
        while self.kick_reason.lock().is_none() {
            self.kicked.notified().await;
        }
    }

    /// Refuses every later push (the connection is ending).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.drop_waiting();
        self.drained.notify_waiters();
    }

    /// Drops every waiting frame and releases every counted byte (a batch being
    /// written included: the writer of a closed client sends at most the frame it
    /// had begun).
    fn drop_waiting(&self) {
        let mut pending = self.pending.lock();
        pending.text = String::new();
        pending.waiting = 0;
        pending.deliveries = 0;
        pending.frames = 0;
        self.budget.release(std::mem::take(&mut pending.bytes));
        self.bytes.store(0, Ordering::Relaxed);
        self.frames.store(0, Ordering::Relaxed);
    }

    pub(crate) fn kick_reason(&self) -> Option<String> {
        self.kick_reason.lock().clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub(crate) async fn wait(&self) {
        self.wake.notified().await
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }
}

impl Drop for Outbound {
    /// A buffer dropped without a close (a session that never served a socket)
    /// still gives its bytes back to the budget.
    fn drop(&mut self) {
        self.budget.release(self.pending.get_mut().bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> String {
        "x".repeat(n)
    }

    /// A waiter for room is woken by the write that makes it, not by a clock: with
    /// time paused and never advanced, only `written` or a close can wake it.
    #[tokio::test(start_paused = true)]
    async fn room_is_waited_for_without_polling() {
        let out = Arc::new(Outbound::new(100, Default::default()));
        out.push(OutItem::Text(&text(80))).unwrap();
        let waiter = tokio::spawn({
            let out = out.clone();
            async move { out.wait_for_room(50).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiter.is_finished(),
            "80 bytes waiting is over the mark of 50"
        );
        let mut batch = Batch::default();
        out.take(&mut batch);
        out.written(&batch);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), waiter).await;
        assert!(
            woken.expect("woken by the write").unwrap(),
            "the write made room"
        );

        out.push(OutItem::Text(&text(80))).unwrap();
        let gone = tokio::spawn({
            let out = out.clone();
            async move { out.wait_for_room(50).await }
        });
        tokio::task::yield_now().await;
        out.close();
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), gone).await;
        assert!(
            !woken.expect("woken by the close").unwrap(),
            "a closed client has no room"
        );
    }

    #[test]
    fn a_client_in_and_out_of_the_slow_mark_is_reported_slow_once() {
        let out = Outbound::new(100, Default::default());
        let mut reported = Vec::new();
        for _ in 0..69 {
            // Past half, then written out: in and out of the mark.
            match out.push(OutItem::Text(&text(60))) {
                Ok(Pushed::BecameSlow { unreported }) => reported.push(unreported),
                Ok(Pushed::Queued) => {}
                Err(e) => panic!("{e:?}"),
            }
            let mut batch = Batch::default();
            out.take(&mut batch);
            out.written(&batch);
            assert!(!out.is_slow());
        }
        assert_eq!(reported, [0]);
        assert_eq!(out.spells.lock().unreported, 68);
    }

    #[test]
    fn slow_again_after_a_quiet_spell_is_reported_with_what_was_not() {
        let start = Instant::now();
        let mut spells = SlowSpells::default();
        assert_eq!(spells.entered(start), Pushed::BecameSlow { unreported: 0 });
        spells.cleared = Some(start);
        assert_eq!(spells.entered(start + SLOW_QUIET / 2), Pushed::Queued);
        spells.cleared = Some(start + SLOW_QUIET / 2);
        assert_eq!(spells.entered(start + SLOW_QUIET), Pushed::Queued);
        spells.cleared = Some(start + SLOW_QUIET);
        assert_eq!(
            spells.entered(start + SLOW_QUIET * 2),
            Pushed::BecameSlow { unreported: 2 }
        );
        assert_eq!(spells.unreported, 0);
    }

    #[test]
    fn past_the_slow_mark_a_batch_is_released_frame_by_frame_and_counted_once() {
        let out = Outbound::new(100, Default::default());
        out.push(OutItem::Text(&text(30))).unwrap();
        out.push(OutItem::Text(&text(30))).unwrap();
        assert!(out.is_slow());
        let mut batch = Batch::default();
        out.take(&mut batch);
        // The first frame (30 bytes) goes out while more of the batch waits.
        let released = out.wrote_frame(&batch.text.as_bytes()[..30]);
        batch.note_released(released);
        assert_eq!((released, out.bytes()), (30, 30));
        out.push(OutItem::Text(&text(5))).unwrap();
        out.written(&batch);
        // What was pushed since stays counted; the batch's bytes went once.
        assert_eq!(out.bytes(), 5);
        // Under the mark, frames are not released one by one.
        let mut batch = Batch::default();
        out.take(&mut batch);
        assert_eq!(out.wrote_frame(batch.text.as_bytes()), 0);
        out.written(&batch);
        assert_eq!(out.bytes(), 0);
    }

    #[test]
    fn a_buffer_past_the_mark_wants_pacing_while_its_reader_drains() {
        let out = Outbound::new(100, Default::default());
        out.push(OutItem::Text(&text(60))).unwrap();
        let now = crate::pacing::clock_ms();
        // Passing the mark starts its clock: reading until shown otherwise.
        assert!(out.wants_pacing(now, 1_000));
        assert_eq!(out.stuck_ms(now + 700), Some(700));
        assert!(!out.wants_pacing(now + 1_000, 1_000));
        out.moved(10);
        let later = crate::pacing::clock_ms();
        assert!(out.wants_pacing(later, 1_000));
        assert_eq!(out.drained_bytes(), 10);
        out.close();
        assert!(!out.wants_pacing(later, 1_000));
        assert_eq!(out.stuck_ms(later), None);
    }

    #[test]
    fn marks_slow_at_half_and_kicks_when_full() {
        let out = Outbound::new(100, Default::default());
        assert_eq!(out.push(OutItem::Text(&text(40))), Ok(Pushed::Queued));
        assert_eq!(
            out.push(OutItem::Text(&text(20))),
            Ok(Pushed::BecameSlow { unreported: 0 })
        );
        assert!(out.is_slow());
        assert_eq!(out.push(OutItem::Text(&text(20))), Ok(Pushed::Queued));
        assert_eq!(out.bytes(), 80);
        assert_eq!(out.push(OutItem::Text(&text(21))), Err(Refused::Full));
        assert_eq!(out.kick_reason().as_deref(), Some("slow_consumer"));
        assert_eq!(out.push(OutItem::Text(&text(1))), Err(Refused::Closed));
        let mut taken = Batch::default();
        out.take(&mut taken);
        assert!(taken.is_empty(), "a kick drops what was buffered");
    }

    #[test]
    fn frames_are_lines_and_written_releases_them() {
        let out = Outbound::new(100, Default::default());
        out.push(OutItem::Text("{\"a\":1}")).unwrap();
        out.push(OutItem::Msg {
            head: "{\"h\":",
            body: "2}",
        })
        .unwrap();
        let mut taken = Batch::default();
        out.take(&mut taken);
        assert_eq!(taken.text, "{\"a\":1}\n{\"h\":2}");
        assert_eq!((out.bytes(), out.frames()), (14, 2));
        // Pushed while the batch is being written: counted, waiting apart.
        out.push(OutItem::Text("{}")).unwrap();
        assert_eq!((out.bytes(), out.frames()), (16, 3));
        out.written(&taken);
        assert_eq!((out.bytes(), out.frames()), (2, 1));
        assert_eq!(out.delivered.load(Ordering::Relaxed), 1);
        assert!(!out.is_slow());
        taken.clear();
        out.take(&mut taken);
        assert_eq!(taken.text, "{}");
        out.written(&taken);
        assert_eq!((out.bytes(), out.frames()), (0, 0));
    }

    #[test]
    fn push_all_queues_in_order_and_kicks_at_the_limit() {
        let out = Outbound::new(20, Default::default());
        let items = [
            OutItem::Text("aaaa"),
            OutItem::Msg {
                head: "h",
                body: "bbb",
            },
        ];
        assert_eq!(out.push_all(&items), Ok(Pushed::Queued));
        assert_eq!(
            out.push_all(&items),
            Ok(Pushed::BecameSlow { unreported: 0 })
        );
        assert_eq!((out.bytes(), out.frames()), (16, 4));
        let mut batch = Batch::default();
        out.take(&mut batch);
        assert_eq!(batch.text, "aaaa\nhbbb\naaaa\nhbbb");
        out.written(&batch);
        assert_eq!(out.delivered.load(Ordering::Relaxed), 2);
        // The third of these does not fit: the client is kicked, nothing stays.
        let big = [
            OutItem::Text("0123456789"),
            OutItem::Text("x"),
            OutItem::Text("0123456789"),
        ];
        assert_eq!(out.push_all(&big), Err(Refused::Full));
        assert_eq!(out.kick_reason().as_deref(), Some("slow_consumer"));
        batch.clear();
        out.take(&mut batch);
        assert!(batch.is_empty());
    }

    /// The budget's total follows every buffer's count: pushes add, writes release,
    /// and a kick or a close releases what was left, a batch being written included,
    /// so a later `written` of that batch does not release it twice.
    #[test]
    fn the_budget_counts_every_buffer_and_a_kick_releases_its_bytes() {
        let budget = Arc::new(OutboundBudget::new(1000));
        let a = Outbound::new(100, budget.clone());
        let b = Outbound::new(100, budget.clone());
        a.push_all(&[OutItem::Text(&text(30)), OutItem::Text(&text(20))])
            .unwrap();
        b.push(OutItem::Text(&text(40))).unwrap();
        assert_eq!(budget.used(), 90);
        let mut batch = Batch::default();
        a.take(&mut batch);
        a.push(OutItem::Text(&text(5))).unwrap();
        assert_eq!(budget.used(), 95);
        a.kick("outbound_budget");
        assert_eq!((a.bytes(), budget.used()), (0, 40));
        a.written(&batch);
        assert_eq!(budget.used(), 40, "released once, by the kick");
        // A push that does not fit kicks and counts nothing of its batch.
        let big = [OutItem::Text(&text(50)), OutItem::Text(&text(20))];
        assert_eq!(b.push_all(&big), Err(Refused::Full));
        assert_eq!(budget.used(), 0);
        let c = Outbound::new(100, budget.clone());
        c.push(OutItem::Text(&text(7))).unwrap();
        c.close();
        assert_eq!(budget.used(), 0);
        let d = Outbound::new(100, budget.clone());
        d.push(OutItem::Text(&text(9))).unwrap();
        drop(d);
        assert_eq!(budget.used(), 0, "a dropped buffer gives its bytes back");
    }

    #[test]
    fn a_burst_does_not_leave_its_memory_behind() {
        let out = Outbound::new(8 << 20, Default::default());
        let big = "x".repeat(1 << 20);
        let mut batch = Batch::default();
        // Two rounds: the buffer and the batch trade allocations at each take.
        for _ in 0..2 {
            for _ in 0..2 {
                out.push(OutItem::Text(&big)).unwrap();
            }
            out.take(&mut batch);
            out.written(&batch);
            batch.clear();
            assert!(batch.text.capacity() <= KEEP_BYTES);
        }
        out.push(OutItem::Text("small")).unwrap();
        out.take(&mut batch);
        assert!(
            batch.text.capacity() <= KEEP_BYTES,
            "{}",
            batch.text.capacity()
        );
    }

    #[test]
    fn held_wake_ups_are_given_when_the_frame_ends() {
        use futures_util::FutureExt;
        let out = Outbound::new(100, Default::default());
        holding_wakes(|| {
            out.push(OutItem::Text("a")).unwrap();
            out.push(OutItem::Text("b")).unwrap();
            assert_eq!(out.wait().now_or_never(), None, "held while the frame runs");
        });
        assert_eq!(out.wait().now_or_never(), Some(()), "given when it ends");
        // Without a frame running, a push wakes at once.
        out.take(&mut Batch::default());
        out.push(OutItem::Text("c")).unwrap();
        assert_eq!(out.wait().now_or_never(), Some(()));
    }
}
