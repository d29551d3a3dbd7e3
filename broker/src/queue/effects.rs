//! What a queue operation leaves to do once the queue's lock is released: dead
//! letters to route, waiters to answer, consumers a deletion ended.

use std::sync::Arc;

use super::{Settlement, Waiter};
use crate::protocol::{HeaderValue, Headers, Payload};
use crate::session::Session;
use crate::store::{QueueStore, Ticket};

/// A message to move to a dead-letter queue.
pub(crate) struct DeadLetter {
    /// The dead-letter queue, or `None` when the message is dropped.
    pub(crate) to: Option<String>,
    pub(crate) from: Arc<str>,
    pub(crate) reason: &'static str,
    pub(crate) data: Payload,
    pub(crate) headers: Option<Arc<Headers>>,
    /// The source queue's store and the message's seq, to ack once the dead letter
    /// is durable in its new queue (durable source queues only).
    pub(crate) settle_source: Option<(Arc<dyn QueueStore>, u64)>,
    /// The same for a remote source queue (`remote.rs`): the job to remove from
    /// its stream once the dead letter is stored, or to give back if it is not.
    pub(crate) remote_source: Option<(Arc<dyn super::RemoteJobs>, u64)>,
}

/// What the broker must do once the queue's lock is released.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) dead_letters: Vec<DeadLetter>,
    /// Jobs handed to consumers.
    pub(crate) delivered: u64,
    /// Consumers that the queue's deletion ended: (their session, their cid).
    pub(crate) cancelled: Vec<(Arc<Session>, Arc<str>)>,
    pub(super) settle: Vec<(Arc<Waiter>, Arc<str>, Settlement)>,
    /// For a settle that removed its message from a durable queue's store:
    /// resolves once that is durable, which is when the settle may be answered.
    pub(crate) settled: Option<Ticket>,
}

impl Effects {
    /// Answers the waiters; dead letters are the broker's to route.
    pub(crate) fn settle_waiters(&mut self) {
        for (waiter, msg, how) in self.settle.drain(..) {
            waiter.settle(&msg, how);
        }
    }
}

/// Headers for a dead-lettered message: the original ones plus where and why it died.
pub(crate) fn dead_letter_headers(letter: &DeadLetter) -> Headers {
    let mut headers = letter.headers.as_deref().cloned().unwrap_or_default();
    headers.insert(
        "x-dead-letter-queue".into(),
        HeaderValue::One(letter.from.to_string()),
    );
    headers.insert(
        "x-dead-letter-reason".into(),
        HeaderValue::One(letter.reason.to_string()),
    );
    headers
}
