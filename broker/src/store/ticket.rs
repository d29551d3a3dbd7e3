//! `Ticket`: what a caller awaits to learn that what it appended is durable, and
//! `TicketSender`, the half a backend keeps to resolve it.
//!
//! Any backend makes the pair with [`Ticket::pending`] and resolves it once: the log
//! from its group commit, a replicated backend when its quorum acknowledges. The pair
//! shares one small slot (the only allocation it costs). A waiter either awaits the
//! ticket or hands it what to do with the outcome ([`Ticket::then`]): that runs
//! where the ticket is resolved (for the log, on its fsync thread, for a whole
//! batch in a row), with no task to spawn and wake per record.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use super::error::StoreError;

/// Resolves when an appended record is durable under the backend's terms (for the
/// log: fsynced under `Batch` and `Always`, written under `Never`), or with the error
/// that stopped it.
///
/// Await it from async code, call [`Ticket::wait_blocking`] from a plain thread, or
/// give it what to run with the outcome ([`Ticket::then`]). Dropping it is fine: the
/// record is written anyway (fire and forget).
#[derive(Debug)]
#[must_use = "a ticket says when the record is durable; drop it explicitly to not wait"]
pub struct Ticket {
    inner: TicketInner,
}

#[derive(Debug)]
enum TicketInner {
    Done(Option<Result<(), StoreError>>),
    Waiting(Arc<Slot>),
}

/// What runs with a ticket's outcome, where it is resolved.
type Then = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The state a ticket and its sender share.
struct Slot {
    state: Mutex<SlotState>,
    /// Names the stream in the `Closed` error of a sender dropped unresolved; shared,
    /// so naming costs no allocation per ticket.
    stream: Arc<Path>,
}

enum SlotState {
    /// Not resolved yet: who to tell when it is.
    Waiting {
        waker: Option<Waker>,
        then: Option<Then>,
    },
    /// Resolved, the outcome not yet taken.
    Resolved(Result<(), StoreError>),
    /// Resolved and taken (or handed to `then`).
    Taken,
}

impl SlotState {
    /// The outcome of a slot its caller just matched as `Resolved`; the slot is
    /// `Taken` from then on.
    fn take_resolved(&mut self) -> Result<(), StoreError> {
        match std::mem::replace(self, SlotState::Taken) {
            SlotState::Resolved(r) => r,
            _ => unreachable!("called only on a slot matched as resolved"),
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("stream", &self.stream)
            .finish()
    }
}

/// The resolving half of a [`Ticket`], kept by the backend with what it is writing.
/// Dropped without [`TicketSender::resolve`], its ticket resolves with
/// [`StoreError::Closed`] naming the stream.
#[derive(Debug)]
pub struct TicketSender(Option<Arc<Slot>>);

impl TicketSender {
    /// Resolves the ticket: `Ok(())` once durable, or the error that prevented it.
    /// A ticket nobody waits for any more is resolved all the same (nothing happens);
    /// one given a [`Ticket::then`] runs it here, on the resolving thread.
    pub fn resolve(mut self, result: Result<(), StoreError>) {
        if let Some(slot) = self.0.take() {
            slot.resolve(result);
        }
    }
}

impl Drop for TicketSender {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            let closed = closed(&slot.stream);
            slot.resolve(Err(closed));
        }
    }
}

impl Slot {
    fn resolve(&self, result: Result<(), StoreError>) {
        let mut state = self.state.lock();
        match std::mem::replace(&mut *state, SlotState::Taken) {
            SlotState::Waiting {
                then: Some(then), ..
            } => {
                drop(state);
                then(result);
            }
            SlotState::Waiting { waker, then: None } => {
                *state = SlotState::Resolved(result);
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            // Resolved once already (cannot happen: the sender is taken).
            done => *state = done,
        }
    }
}

impl Ticket {
    /// A ticket that is already resolved (nothing to wait for).
    pub fn ready(result: Result<(), StoreError>) -> Ticket {
        Ticket {
            inner: TicketInner::Done(Some(result)),
        }
    }

    /// A ticket and the sender that resolves it. `stream` names the stream (the
    /// log's directory) in the `Closed` error its waiter gets if the sender is
    /// dropped unresolved.
    pub fn pending(stream: Arc<Path>) -> (TicketSender, Ticket) {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Waiting {
                waker: None,
                then: None,
            }),
            stream,
        });
        (
            TicketSender(Some(Arc::clone(&slot))),
            Ticket {
                inner: TicketInner::Waiting(slot),
            },
        )
    }

    /// Runs `then` with the outcome: at once if the ticket has resolved, else on
    /// the thread that resolves it (for the log, its fsync thread, one ticket of the
    /// batch after another with writer wake-ups held, so a connection's confirms of
    /// one batch leave together). `then` must be quick and must not block.
    pub fn then(self, then: impl FnOnce(Result<(), StoreError>) + Send + 'static) {
        match self.inner {
            TicketInner::Done(r) => then(r.unwrap_or(Ok(()))),
            TicketInner::Waiting(slot) => {
                let mut state = slot.state.lock();
                match &mut *state {
                    SlotState::Waiting {
                        then: slot_then, ..
                    } => {
                        *slot_then = Some(Box::new(then));
                    }
                    SlotState::Resolved(_) => {
                        let r = state.take_resolved();
                        drop(state);
                        then(r);
                    }
                    SlotState::Taken => {
                        drop(state);
                        then(Ok(()));
                    }
                }
            }
        }
    }

    /// Blocks the current thread until the ticket resolves. Must not be called from
    /// inside an async runtime's worker (await the ticket there instead).
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        match self.inner {
            TicketInner::Done(r) => r.unwrap_or(Ok(())),
            TicketInner::Waiting(slot) => {
                let stream = Arc::clone(&slot.stream);
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                Ticket {
                    inner: TicketInner::Waiting(slot),
                }
                .then(move |r| {
                    let _ = tx.send(r);
                });
                rx.recv().unwrap_or_else(|_| Err(closed(&stream)))
            }
        }
    }

    /// The outcome if the ticket has resolved, without waiting.
    pub fn try_result(&mut self) -> Option<Result<(), StoreError>> {
        match &mut self.inner {
            TicketInner::Done(r) => r.clone(),
            TicketInner::Waiting(slot) => {
                let r = match &*slot.state.lock() {
                    SlotState::Resolved(r) => r.clone(),
                    SlotState::Waiting { .. } => return None,
                    SlotState::Taken => Ok(()),
                };
                self.inner = TicketInner::Done(Some(r.clone()));
                Some(r)
            }
        }
    }
}

fn closed(stream: &Path) -> StoreError {
    StoreError::Closed {
        path: stream.to_path_buf(),
    }
}

impl Future for Ticket {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            TicketInner::Done(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
            TicketInner::Waiting(slot) => {
                let mut state = slot.state.lock();
                match &mut *state {
                    SlotState::Waiting { waker, .. } => {
                        match waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => *waker = Some(cx.waker().clone()),
                        }
                        Poll::Pending
                    }
                    SlotState::Resolved(_) => {
                        let r = state.take_resolved();
                        drop(state);
                        self.inner = TicketInner::Done(None);
                        Poll::Ready(r)
                    }
                    SlotState::Taken => Poll::Ready(Ok(())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Arc<Path> {
        Arc::from(Path::new("/d"))
    }

    #[tokio::test]
    async fn a_ticket_resolves_with_what_its_sender_sends() {
        let (tx, t) = Ticket::pending(stream());
        tx.resolve(Ok(()));
        assert_eq!(t.await, Ok(()));
        let (tx, t) = Ticket::pending(stream());
        tx.resolve(Err(StoreError::Sealed { path: "/d".into() }));
        assert_eq!(t.await, Err(StoreError::Sealed { path: "/d".into() }));
        assert_eq!(Ticket::ready(Ok(())).await, Ok(()));
    }

    #[tokio::test]
    async fn a_dropped_sender_resolves_its_ticket_as_closed() {
        let (tx, t) = Ticket::pending(stream());
        drop(tx);
        assert_eq!(t.await, Err(StoreError::Closed { path: "/d".into() }));
    }

    #[test]
    fn a_dropped_sender_ends_a_blocking_wait_as_closed() {
        let (tx, t) = Ticket::pending(stream());
        drop(tx);
        assert_eq!(
            t.wait_blocking(),
            Err(StoreError::Closed { path: "/d".into() })
        );
    }

    #[test]
    fn then_runs_where_the_ticket_resolves_or_at_once_if_it_has() {
        use std::sync::mpsc;
        let (seen_tx, seen) = mpsc::channel();
        let (tx, t) = Ticket::pending(stream());
        let s = seen_tx.clone();
        t.then(move |r| s.send((std::thread::current().id(), r)).unwrap());
        assert!(seen.try_recv().is_err(), "nothing runs before the resolve");
        let resolver = std::thread::spawn(move || {
            tx.resolve(Ok(()));
            std::thread::current().id()
        })
        .join()
        .unwrap();
        assert_eq!(seen.try_recv().unwrap(), (resolver, Ok(())));
        // Resolved first, then given a `then`: it runs at once, here.
        let (tx, t) = Ticket::pending(stream());
        tx.resolve(Err(StoreError::Sealed { path: "/d".into() }));
        let s = seen_tx.clone();
        t.then(move |r| s.send((std::thread::current().id(), r)).unwrap());
        assert_eq!(
            seen.try_recv().unwrap(),
            (
                std::thread::current().id(),
                Err(StoreError::Sealed { path: "/d".into() })
            )
        );
        // A dropped sender tells `then` the stream closed.
        let (tx, t) = Ticket::pending(stream());
        t.then(move |r| seen_tx.send((std::thread::current().id(), r)).unwrap());
        drop(tx);
        assert_eq!(
            seen.try_recv().unwrap().1,
            Err(StoreError::Closed { path: "/d".into() })
        );
    }

    #[tokio::test]
    async fn a_ticket_resolved_from_another_thread_wakes_its_waiter() {
        let (tx, t) = Ticket::pending(stream());
        let resolver = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.resolve(Ok(()));
        });
        assert_eq!(t.await, Ok(()));
        resolver.join().unwrap();
    }

    #[test]
    fn try_result_says_nothing_until_resolved_then_keeps_the_outcome() {
        let (tx, mut t) = Ticket::pending(stream());
        assert_eq!(t.try_result(), None);
        tx.resolve(Ok(()));
        assert_eq!(t.try_result(), Some(Ok(())));
        assert_eq!(t.try_result(), Some(Ok(())));
        assert_eq!(t.wait_blocking(), Ok(()));
    }
}
