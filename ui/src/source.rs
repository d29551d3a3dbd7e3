//! Where the dashboard gets broker state and sends operator commands.
//!
//! The embedded broker implements [`Source`] directly; a remote broker is reached
//! through a WebSocket client speaking the operator frames, behind the same trait,
//! so no view knows which one it is drawing.

use switchyard_broker::{BrokerError, Command, CommandOutcome, Snapshot, TailMessage};

/// A broker the dashboard can watch and act on.
///
/// Every method is called from the dashboard's event loop, between two frames, so
/// each must return quickly: a snapshot is a copy of counters and short lists, a
/// command is one round trip, and tail messages are buffered by the implementation
/// and handed over by [`Source::poll_tail`] without waiting.
pub trait Source {
    /// The latest broker state.
    fn snapshot(&mut self) -> Snapshot;

    /// Run an operator command.
    ///
    /// The implementation names the actor in the broker's event log: the embedded
    /// broker records `dashboard`, a remote connection records its client.
    fn execute(&mut self, cmd: Command) -> Result<CommandOutcome, BrokerError>;

    /// Start a live tail of a topic pattern; messages arrive through [`Source::poll_tail`].
    ///
    /// Opening a tail closes any tail already open.
    fn open_tail(&mut self, pattern: &str) -> Result<(), BrokerError>;

    /// Messages that arrived on the open tail since the last call (at most `max`),
    /// oldest first. Empty when no tail is open.
    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage>;

    /// Stop the open tail, if any.
    fn close_tail(&mut self);

    /// Whether the broker is going away (stopped by a signal, or a remote connection
    /// lost): the dashboard then quits and restores the terminal.
    fn stopped(&self) -> bool {
        false
    }
}

impl<S: Source + ?Sized> Source for &mut S {
    fn snapshot(&mut self) -> Snapshot {
        (**self).snapshot()
    }

    fn execute(&mut self, cmd: Command) -> Result<CommandOutcome, BrokerError> {
        (**self).execute(cmd)
    }

    fn open_tail(&mut self, pattern: &str) -> Result<(), BrokerError> {
        (**self).open_tail(pattern)
    }

    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage> {
        (**self).poll_tail(max)
    }

    fn close_tail(&mut self) {
        (**self).close_tail()
    }

    fn stopped(&self) -> bool {
        (**self).stopped()
    }
}
