//! Where the dashboard gets broker state and sends operator commands.
//!
//! The embedded broker implements [`Source`] directly; a remote broker is reached
//! through a WebSocket client speaking the operator frames, behind the same trait,
//! so no view knows which one it is drawing.

use std::time::Instant;

use switchyard_broker::{BrokerError, Command, MessageQuery, Snapshot, TailMessage};

use crate::reply::Reply;

/// How the dashboard's link to its broker stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Link {
    /// Connected: the snapshot is live.
    #[default]
    Up,
    /// Not connected: the snapshot is the last one received, kept on screen
    /// greyed; `why` the link went, and when the next try is.
    Down {
        /// Why (the connection error, or the broker's close reason).
        why: String,
        /// When the source tries again.
        retry_at: Instant,
    },
}

/// What the dashboard shows now, so that a source whose snapshots cost bytes
/// (a remote broker) asks only for that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    /// In-flight jobs shown, the oldest first; 0 when no view lists them.
    pub inflight: usize,
    /// Only this client's jobs (its detail popup is open).
    pub client: Option<String>,
}

/// A broker the dashboard can watch and act on.
///
/// Every method is called from the dashboard's event loop, between two frames, so
/// each must return quickly and none may wait on the broker: a snapshot is a copy
/// of counters and short lists (a remote source returns the latest it received),
/// a command is started and answered later through its [`Reply`], and tail
/// messages are buffered by the implementation and handed over by
/// [`Source::poll_tail`] without waiting.
pub trait Source {
    /// The latest broker state.
    fn snapshot(&mut self) -> Snapshot;

    /// Start an operator command and return at once; send its outcome through
    /// `reply` when it is known (right away, or later from another thread: a
    /// publish to a retained topic waits for an fsync, a remote command for its
    /// answer). Commands run in the order they are started.
    ///
    /// The implementation names the actor in the broker's event log: the embedded
    /// broker records `dashboard`, a remote connection records its client.
    fn execute(&mut self, command: Command, reply: Reply);

    /// Start a live tail of a topic pattern, of the messages `query` selects
    /// (the broker evaluates it); messages arrive through [`Source::poll_tail`].
    ///
    /// Opening a tail closes any tail already open.
    fn open_tail(&mut self, pattern: &str, query: &MessageQuery) -> Result<(), BrokerError>;

    /// Messages that arrived on the open tail since the last call (at most `max`),
    /// oldest first. Empty when no tail is open.
    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage>;

    /// Stop the open tail, if any.
    fn close_tail(&mut self);

    /// Whether leaving the dashboard stops the broker. It does for the broker in
    /// this process (its console is its foreground), so `q` and Ctrl-C first ask
    /// when clients or in-memory messages would be lost; a console watching a
    /// broker elsewhere says no, and leaves at once. Yes unless told: asking
    /// once too often is cheap, a broker stopped by accident is not.
    fn quitting_stops_broker(&self) -> bool {
        true
    }

    /// Whether the link to the broker is up. The broker in this process is
    /// always there; a remote one may be down, between retries.
    fn link(&self) -> Link {
        Link::Up
    }

    /// Whether the console may only look: then every action that changes the
    /// broker (publish, purge, kick, requeue) is hidden and refused.
    fn read_only(&self) -> bool {
        false
    }

    /// What the dashboard shows now, told before each snapshot. A source that
    /// copies its snapshot for free ignores it.
    fn want(&mut self, wants: &Wants) {
        let _ = wants;
    }

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

    fn execute(&mut self, command: Command, reply: Reply) {
        (**self).execute(command, reply)
    }

    fn open_tail(&mut self, pattern: &str, query: &MessageQuery) -> Result<(), BrokerError> {
        (**self).open_tail(pattern, query)
    }

    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage> {
        (**self).poll_tail(max)
    }

    fn close_tail(&mut self) {
        (**self).close_tail()
    }

    fn quitting_stops_broker(&self) -> bool {
        (**self).quitting_stops_broker()
    }

    fn link(&self) -> Link {
        (**self).link()
    }

    fn read_only(&self) -> bool {
        (**self).read_only()
    }

    fn want(&mut self, wants: &Wants) {
        (**self).want(wants)
    }

    fn stopped(&self) -> bool {
        (**self).stopped()
    }
}
