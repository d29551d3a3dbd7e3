//! Someone waiting for a message's outcome (a `send` with `confirm: "done"`, or a
//! `request`), answered once when the message is acked, replied to, dead or timed out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::error::{BrokerError, ErrorCode};
use crate::protocol::{event, Payload, RequestId};
use crate::session::Session;

/// Someone waiting for a message's outcome: a `send` with `confirm: "done"` or a `request`.
pub(crate) struct Waiter {
    session: Weak<Session>,
    id: RequestId,
    request: bool,
    settled: AtomicBool,
    /// A request's queue's count of timeouts: bumped by whichever timeout
    /// settles it (the requester's timer or the queue's expiry), once.
    timeouts: Option<Arc<AtomicU64>>,
    /// A waiter on another node: the outcome is sent there (`serve --nats`).
    remote: Option<Box<dyn RemoteAnswer>>,
}

/// `0` is a request id; this is never called.
#[cold]
fn unreachable_id() -> RequestId {
    unreachable!("0 is a valid request id")
}

/// Carries a message's outcome to a waiter on another node.
pub(crate) trait RemoteAnswer: Send + Sync {
    fn answer(&self, msg: &str, how: Settlement);
}

/// How a waited-for message ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settlement {
    Acked,
    Replied(Payload),
    Dead(String),
    Timeout,
}

impl Waiter {
    pub(crate) fn new(session: &Arc<Session>, id: RequestId, request: bool) -> Arc<Waiter> {
        Arc::new(Waiter {
            session: Arc::downgrade(session),
            id,
            request,
            settled: AtomicBool::new(false),
            timeouts: None,
            remote: None,
        })
    }

    /// A waiter on another node, told through `answer`.
    pub(crate) fn remote(answer: Box<dyn RemoteAnswer>) -> Arc<Waiter> {
        Arc::new(Waiter {
            session: Weak::new(),
            // Never answered here: the remote answer carries the outcome.
            id: RequestId::from_number_text("0").unwrap_or_else(unreachable_id),
            request: false,
            settled: AtomicBool::new(false),
            timeouts: None,
            remote: Some(answer),
        })
    }

    /// A request's waiter, counting its timeout in `timeouts`.
    pub(crate) fn request(
        session: &Arc<Session>,
        id: RequestId,
        timeouts: Arc<AtomicU64>,
    ) -> Arc<Waiter> {
        Arc::new(Waiter {
            session: Arc::downgrade(session),
            id,
            request: true,
            settled: AtomicBool::new(false),
            timeouts: Some(timeouts),
            remote: None,
        })
    }

    /// Whether nobody is left to answer: answered already, or its client gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.is_settled() || (self.remote.is_none() && self.session.strong_count() == 0)
    }

    /// Answers the waiter with an error (its message was never stored), once.
    pub(crate) fn fail(&self, error: &BrokerError) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(session) = self.session.upgrade() {
            session.send_error(Some(&self.id), error);
        }
    }

    /// Whether it has been answered.
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Answers the waiter once; later settlements are ignored. True if this one
    /// settled it.
    pub(crate) fn settle(&self, msg: &str, how: Settlement) -> bool {
        if self.settled.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Counted before the requester is told, so its next `stats` shows it.
        if let (Settlement::Timeout, Some(timeouts)) = (&how, &self.timeouts) {
            timeouts.fetch_add(1, Ordering::Relaxed);
        }
        self.answer(msg, how);
        true
    }

    fn answer(&self, msg: &str, how: Settlement) {
        if let Some(remote) = &self.remote {
            return remote.answer(msg, how);
        }
        let Some(session) = self.session.upgrade() else {
            return;
        };
        let mut msg_json = String::new();
        crate::protocol::push_json_str(&mut msg_json, msg);
        let error = match (how, self.request) {
            (Settlement::Acked, false) => {
                return session.send_text(event::ok(&self.id, &[("msg", &msg_json)]))
            }
            (Settlement::Replied(data), false) => {
                return session.send_text(event::ok(
                    &self.id,
                    &[("msg", &msg_json), ("data", data.as_json())],
                ))
            }
            (Settlement::Acked, true) => {
                return session.send_text(event::reply(
                    &self.id,
                    &Payload::from_value(&serde_json::Value::Null),
                ))
            }
            (Settlement::Replied(data), true) => {
                return session.send_text(event::reply(&self.id, &data))
            }
            (Settlement::Dead(why), _) => {
                BrokerError::new(ErrorCode::Dead, format!("message {msg} is dead: {why}"))
            }
            (Settlement::Timeout, _) => {
                BrokerError::new(ErrorCode::Timeout, format!("no reply to {msg} in time"))
            }
        };
        session.send_error(Some(&self.id), &error);
    }
}
