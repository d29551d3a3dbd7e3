//! How a command's outcome comes back to the dashboard, later and from any
//! thread: the app hands the [`Source`](crate::Source) a [`Reply`] with each
//! command, the source sends the outcome through it once it has one, and the
//! app takes outcomes from its [`Replies`] between two frames. The event loop
//! is woken when one arrives (gitui's asyncgit pattern: work elsewhere, a
//! notification back), so the dashboard never waits on the broker's disk.

use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;

use switchyard_broker::{BrokerError, CommandOutcome, ErrorCode};

/// What a command came back with.
pub type CommandResult = Result<CommandOutcome, BrokerError>;

/// Called when an outcome has arrived, from the thread that sent it.
type Wake = Arc<dyn Fn() + Send + Sync>;

/// Names one command the dashboard started, so that its outcome finds the
/// action it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandId(u64);

/// A command's outcome, with the id of the command.
#[derive(Debug)]
pub struct Finished {
    /// The command it answers.
    pub id: CommandId,
    /// What it came back with.
    pub result: CommandResult,
}

/// The way back for one command's outcome: send it once with [`Reply::send`],
/// from any thread.
///
/// A reply dropped without an answer (a worker that stopped or panicked) answers
/// with an error itself, so no command shows as running forever.
pub struct Reply {
    id: CommandId,
    /// Taken by the one send, so `Drop` knows whether an answer went.
    to: Option<mpsc::Sender<Finished>>,
    wake: Option<Wake>,
}

impl Reply {
    /// The command this reply answers.
    pub fn id(&self) -> CommandId {
        self.id
    }

    /// Hand the outcome back and wake the dashboard.
    ///
    /// If the dashboard has already gone (the operator quit while the command
    /// ran), the outcome is dropped: nobody is left to show it to.
    pub fn send(mut self, result: CommandResult) {
        self.deliver(result);
    }

    fn deliver(&mut self, result: CommandResult) {
        let Some(to) = self.to.take() else {
            return;
        };
        let id = self.id;
        if to.send(Finished { id, result }).is_ok() {
            if let Some(wake) = &self.wake {
                wake();
            }
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.to.is_some() {
            self.deliver(Err(BrokerError::new(
                ErrorCode::Internal,
                "the command ended without an answer",
            )));
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("id", &self.id)
            .field("answered", &self.to.is_none())
            .finish()
    }
}

/// The dashboard's end: it makes a [`Reply`] for each command it starts and
/// takes back what they sent.
pub struct Replies {
    next_id: u64,
    // Unbounded, and bounded all the same: each reply sends at most once and one
    // is made per command started, so the channel never holds more outcomes than
    // commands the app has started and not yet heard back from.
    tx: mpsc::Sender<Finished>,
    rx: mpsc::Receiver<Finished>,
    wake: Option<Wake>,
}

impl Replies {
    /// An inbox with no replies out.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Replies {
            next_id: 0,
            tx,
            rx,
            wake: None,
        }
    }

    /// Call `wake` whenever an outcome arrives, from the thread that sent it (so
    /// it must be quick: the event loop uses it to stop waiting). Applies to the
    /// replies made from now on.
    pub fn wake_with(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        self.wake = Some(Arc::new(wake));
    }

    /// A reply for the next command, with a fresh id.
    pub fn reply(&mut self) -> Reply {
        self.next_id += 1;
        Reply {
            id: CommandId(self.next_id),
            to: Some(self.tx.clone()),
            wake: self.wake.clone(),
        }
    }

    /// The next outcome that has arrived, if any; never waits.
    pub fn try_next(&self) -> Option<Finished> {
        // The inbox holds a sender itself, so the channel never disconnects:
        // empty is the only way this is None.
        self.rx.try_recv().ok()
    }

    /// The next outcome, waiting up to `timeout` for it (for tests of a source).
    pub fn wait_next(&self, timeout: std::time::Duration) -> Option<Finished> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Default for Replies {
    fn default() -> Self {
        Replies::new()
    }
}

impl fmt::Debug for Replies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replies")
            .field("next_id", &self.next_id)
            .field("wakes", &self.wake.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_outcome_sent_from_another_thread_arrives_with_its_id_and_wakes() {
        let woken = Arc::new(AtomicUsize::new(0));
        let mut replies = Replies::new();
        let counter = Arc::clone(&woken);
        replies.wake_with(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let (first, second) = (replies.reply(), replies.reply());
        let ids = (first.id(), second.id());
        assert_ne!(ids.0, ids.1);
        assert!(replies.try_next().is_none(), "nothing sent yet");
        std::thread::spawn(move || {
            second.send(Ok(CommandOutcome::Kicked));
            first.send(Ok(CommandOutcome::Requeued));
        })
        .join()
        .unwrap();
        let got = replies.wait_next(Duration::from_secs(5)).unwrap();
        assert_eq!((got.id, got.result), (ids.1, Ok(CommandOutcome::Kicked)));
        let got = replies.try_next().unwrap();
        assert_eq!((got.id, got.result), (ids.0, Ok(CommandOutcome::Requeued)));
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_reply_dropped_unanswered_answers_with_an_error() {
        let mut replies = Replies::new();
        let reply = replies.reply();
        let id = reply.id();
        drop(reply);
        let got = replies.try_next().unwrap();
        assert_eq!(got.id, id);
        assert_eq!(got.result.unwrap_err().code, ErrorCode::Internal);
        assert!(replies.try_next().is_none(), "one answer only");
    }
}
