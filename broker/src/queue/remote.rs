//! A queue whose messages live elsewhere (`serve --nats`: a JetStream stream
//! shared by every node): the hooks through which the queue hands settlements
//! back, and what it is given to deliver.
//!
//! Such a queue keeps only what this node delivers: the jobs it pulled for its
//! own consumers (no more than they have room for) and those in flight with
//! them, with the same ack deadlines, prefetch and counters as any queue. A job
//! it cannot hand to one of its consumers at once, or that comes back from one
//! (nack with requeue, ack deadline, consumer gone), is given back to the
//! stream at once rather than kept here, so that another node's consumer gets
//! it; a job that dies (out of attempts, expired, rejected) is removed from the
//! stream once its dead letter is stored.

use std::sync::Arc;

use super::{Settlement, Waiter};
use crate::protocol::{Headers, Payload};
use crate::store::Ticket;

/// Where a queue's settlements go when its messages live elsewhere.
pub(crate) trait RemoteJobs: Send + Sync {
    /// Job `id` is done (acked or replied to): the ticket resolves once the
    /// stream confirmed it, and only then is `then`'s waiter told.
    fn ack(&self, id: u64, then: Option<(Arc<Waiter>, Arc<str>, Settlement)>) -> Ticket;
    /// Job `id` goes back to the stream at once, for any node's consumer.
    fn give_back(&self, id: u64);
    /// Job `id` is removed from the stream for good (its dead letter, if any,
    /// is stored).
    fn term(&self, id: u64);
    /// This node's consumers have more room: pull more.
    fn room(&self);
    /// Whether this node holds job `id` now (pulled and not settled: with one
    /// of its consumers, or on its way to one).
    fn holds(&self, id: u64) -> bool;
    /// The queue's depth across every node, as the stream last told it.
    fn depth(&self) -> Option<RemoteDepth>;
}

/// A queue's depth across every node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RemoteDepth {
    /// Messages no node holds (the consumer's pending count).
    pub(crate) ready: u64,
    /// Messages delivered to some node and not acked yet.
    pub(crate) unacked: u64,
    /// Messages in the stream (ready, in flight, or waiting to be redelivered).
    pub(crate) stored: u64,
    pub(crate) stored_bytes: u64,
}

/// A job pulled from the stream, for this node's consumers.
pub(crate) struct Pulled {
    /// Its stream sequence: the message id.
    pub(crate) id: u64,
    /// When the stream stored it (Unix ms).
    pub(crate) time: u64,
    /// Deliveries before this one (the stream's count, from any node).
    pub(crate) attempt: u32,
    pub(crate) data: Payload,
    pub(crate) headers: Option<Headers>,
    pub(crate) expires: Option<u64>,
    pub(crate) reply: bool,
    /// Who waits for its outcome, on the sender's node.
    pub(crate) waiter: Option<Arc<Waiter>>,
}
