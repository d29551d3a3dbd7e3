//! `Ticket`: what a caller awaits to learn that what it appended is durable, and
//! `TicketSender`, the half a backend keeps to resolve it.
//!
//! Any backend makes the pair with [`Ticket::pending`] and resolves it once: the log
//! from its group commit (one oneshot per append, the only allocation the pair costs),
//! a replicated backend when its quorum acknowledges.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::error::StoreError;

/// Resolves when an appended record is durable under the backend's terms (for the
/// log: fsynced under `Batch` and `Always`, written under `Never`), or with the error
/// that stopped it.
///
/// Await it from async code, or call [`Ticket::wait_blocking`] from a plain thread.
/// Dropping it is fine: the record is written anyway (fire and forget).
#[derive(Debug)]
#[must_use = "a ticket says when the record is durable; drop it explicitly to not wait"]
pub struct Ticket {
    inner: TicketInner,
}

#[derive(Debug)]
enum TicketInner {
    Done(Option<Result<(), StoreError>>),
    Waiting {
        rx: oneshot::Receiver<Result<(), StoreError>>,
        stream: Arc<Path>,
    },
}

/// The resolving half of a [`Ticket`], kept by the backend with what it is writing.
/// Dropped without [`TicketSender::resolve`], its ticket resolves with
/// [`StoreError::Closed`] naming the stream.
#[derive(Debug)]
pub struct TicketSender(oneshot::Sender<Result<(), StoreError>>);

impl TicketSender {
    /// Resolves the ticket: `Ok(())` once durable, or the error that prevented it.
    /// A ticket nobody waits for any more is resolved all the same (nothing happens).
    pub fn resolve(self, result: Result<(), StoreError>) {
        let _ = self.0.send(result);
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
    /// dropped unresolved; it is shared, so naming costs no allocation per ticket.
    pub fn pending(stream: Arc<Path>) -> (TicketSender, Ticket) {
        let (tx, rx) = oneshot::channel();
        (
            TicketSender(tx),
            Ticket {
                inner: TicketInner::Waiting { rx, stream },
            },
        )
    }

    /// Blocks the current thread until the ticket resolves. Must not be called from
    /// inside an async runtime's worker (await the ticket there instead).
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        match self.inner {
            TicketInner::Done(r) => r.unwrap_or(Ok(())),
            TicketInner::Waiting { rx, stream } => {
                rx.blocking_recv().unwrap_or_else(|_| Err(closed(&stream)))
            }
        }
    }

    /// The outcome if the ticket has resolved, without waiting.
    pub fn try_result(&mut self) -> Option<Result<(), StoreError>> {
        match &mut self.inner {
            TicketInner::Done(r) => r.clone(),
            TicketInner::Waiting { rx, stream } => {
                let r = match rx.try_recv() {
                    Ok(r) => r,
                    Err(oneshot::error::TryRecvError::Empty) => return None,
                    Err(oneshot::error::TryRecvError::Closed) => Err(closed(stream)),
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
            TicketInner::Waiting { rx, stream } => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(closed(stream)))),
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
    fn try_result_says_nothing_until_resolved_then_keeps_the_outcome() {
        let (tx, mut t) = Ticket::pending(stream());
        assert_eq!(t.try_result(), None);
        tx.resolve(Ok(()));
        assert_eq!(t.try_result(), Some(Ok(())));
        assert_eq!(t.try_result(), Some(Ok(())));
        assert_eq!(t.wait_blocking(), Ok(()));
    }
}
