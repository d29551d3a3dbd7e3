//! Moving ready messages between queues (dead letters back to work) and dropping
//! one by id.
//!
//! A move takes the messages out of the source's `ready`, appends each to the
//! target held back (written, not yet deliverable), and once the target has them
//! on disk settles them in the source, then lets the target deliver them. So after
//! a crash at any point a message is in exactly one of the two queues: before the
//! source's settle is durable the source still has it, and the target's copy (which
//! names its origin) is dropped from the source at recovery (see
//! [`Queue::restore`]); after, only the target has it. No consumer of the target
//! can ack it while the source could still bring it back.

use std::sync::Arc;

use super::{Message, Outgoing, Queue, Settlement};
use crate::error::{BrokerError, ErrorCode};
use crate::filter::{Filter, MessageView};
use crate::protocol::HeaderValue;
use crate::store::Ticket;
use crate::time::now_ms;

/// A message taken out of its queue's `ready` by a move, in neither `ready` nor in
/// flight until it is settled or put back.
pub(crate) struct Taken(Message);

/// A message appended to its target queue by a move, not yet deliverable.
pub(crate) struct Held(Message);

impl Queue {
    /// Takes out up to `n` ready messages that `filter` matches (all if `None`),
    /// oldest first; only the one with id `msg` when given.
    pub(crate) fn take_ready(
        &self,
        n: usize,
        filter: Option<&Filter>,
        msg: Option<&str>,
    ) -> Vec<Taken> {
        let mut state = self.state.lock();
        let name = self.name.clone();
        let picked: Vec<usize> = state
            .ready
            .iter()
            .enumerate()
            .filter(|(_, m)| msg.is_none_or(|id| &*m.msg == id))
            .filter(|(_, m)| {
                filter.is_none_or(|f| {
                    f.matches(&MessageView::new(
                        &name,
                        m.headers.as_deref(),
                        m.data.as_json(),
                    ))
                })
            })
            .map(|(i, _)| i)
            .take(n)
            .collect();
        let mut taken = Vec::with_capacity(picked.len());
        // From the back, so that the indices before stay valid.
        for &i in picked.iter().rev() {
            if let Some(m) = Self::take_ready_at(&mut state, i) {
                taken.push(Taken(m));
            }
        }
        taken.reverse();
        taken
    }

    /// Puts back a message a move took and could not place.
    pub(crate) fn put_back_taken(&self, taken: Taken) {
        let mut state = self.state.lock();
        self.put_back(&mut state, taken.0);
    }

    /// What `taken` (of this queue) becomes in its new queue: its data, headers
    /// with `x-moved-from`, what is left of its time to live, who waits for it, and
    /// (from a durable queue) where it came from, for recovery.
    pub(crate) fn moved_copy(&self, taken: &Taken) -> Outgoing {
        let m = &taken.0;
        let mut headers = m.headers.as_deref().cloned().unwrap_or_default();
        headers.insert(
            "x-moved-from".into(),
            HeaderValue::One(self.name.to_string()),
        );
        Outgoing {
            data: m.data.clone(),
            headers: Some(headers),
            ttl_ms: m.expires.map(|at| at.saturating_sub(now_ms()).max(1)),
            waiter: m.waiter.clone(),
            reply: m.reply,
            moved_from: self.store.is_some().then(|| (self.name.to_string(), m.id)),
        }
    }

    /// Settles in this queue's store a message moved away (the target has it on
    /// disk); `None` for a queue in memory.
    pub(crate) fn settle_moved(&self, taken: Taken) -> Option<Ticket> {
        self.forget(taken.0.id)
    }

    /// Makes a held message deliverable, at its place in send order.
    pub(crate) fn release(&self, held: Held) {
        let mut state = self.state.lock();
        self.put_back(&mut state, held.0);
    }

    /// At recovery: drops the ready message `id` if this queue still has it (a move
    /// of it finished its append to the target but not its settle here).
    pub(crate) fn drop_moved_copy(&self, id: u64) -> bool {
        let mut state = self.state.lock();
        let i = state.ready.partition_point(|m| m.id < id);
        if state.ready.get(i).is_none_or(|m| m.id != id) {
            return false;
        }
        Self::take_ready_at(&mut state, i);
        drop(state);
        drop(self.forget(id));
        true
    }

    /// Removes one ready message by its id, settled as if acked; whoever waits for
    /// it is told it is dead (`dropped`).
    pub(crate) fn drop_ready(&self, msg: &str) -> Result<Option<Ticket>, BrokerError> {
        let mut state = self.state.lock();
        let Some(i) = state.ready.iter().position(|m| &*m.msg == msg) else {
            let why = if state.inflight.values().any(|f| &*f.message.msg == msg) {
                format!(
                    "message {msg} of `{}` is in flight: requeue it first",
                    self.name
                )
            } else {
                format!("no ready message {msg} in `{}`", self.name)
            };
            return Err(BrokerError::new(ErrorCode::NotFound, why));
        };
        let Some(m) = Self::take_ready_at(&mut state, i) else {
            return Err(BrokerError::new(
                ErrorCode::Internal,
                "ready changed under its lock",
            ));
        };
        drop(state);
        if let Some(w) = m.waiter {
            w.settle(&m.msg, Settlement::Dead("dropped".into()));
        }
        Ok(self.forget(m.id))
    }

    /// Appends a moved message held back from delivery (see [`Queue::release`]).
    pub(crate) fn enqueue_held(
        self: &Arc<Self>,
        message: Outgoing,
    ) -> Result<(Option<Ticket>, Held), BrokerError> {
        let (_, ticket, held) = self.append(message, true)?;
        let held =
            held.ok_or_else(|| BrokerError::new(ErrorCode::Internal, "a held append was lost"))?;
        Ok((ticket, Held(held)))
    }
}
