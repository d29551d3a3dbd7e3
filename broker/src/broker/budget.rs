//! The broker's side of the outbound-memory budget (`max_outbound`): when all
//! outbound buffers together pass it, the clients holding the most waiting bytes
//! are kicked, most first, until the total is down to the budget's low mark.
//!
//! The publish path only adds to the budget's counter and, past the limit, wakes
//! this task; the scan of every session happens here, off that path, and only
//! while the budget is passed.

use std::cmp::Reverse;
use std::sync::{Arc, Weak};

use super::{Broker, Inner};
use crate::refusals::Refusal;
use crate::session::Session;
use crate::stats::EventKind;

/// The reason a client kicked for the budget is given.
const REASON: &str = "outbound_budget";

/// Enforces the budget each time a push passes it, until the broker is gone.
pub(super) async fn run_outbound_budget(broker: Weak<Inner>) {
    let (budget, mut shutdown) = match broker.upgrade() {
        Some(inner) => (inner.activity.outbound.clone(), inner.shutdown.subscribe()),
        None => return,
    };
    loop {
        tokio::select! {
            _ = budget.passed() => {}
            // Err: the broker is gone. A shutdown under way still drains
            // buffers, so the budget holds until then.
            changed = shutdown.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        }
        match broker.upgrade() {
            Some(inner) => Broker { inner }.enforce_outbound_budget(),
            None => return,
        }
    }
}

impl Broker {
    /// If all outbound buffers together hold more than `max_outbound`, kicks the
    /// clients holding the most waiting bytes (pushed and not yet written), most
    /// first, until the total is at most the low mark. The client a push was for
    /// is not favoured or singled out: only what each holds counts.
    pub(super) fn enforce_outbound_budget(&self) {
        let budget = &self.inner.activity.outbound;
        if !budget.is_passed() {
            return;
        }
        let mut holders: Vec<(usize, Arc<Session>)> = self
            .inner
            .sessions
            .read()
            .values()
            .map(|p| (p.session.outbound.bytes(), p.session.clone()))
            .filter(|(held, session)| *held > 0 && !session.outbound.is_closed())
            .collect();
        holders.sort_by_key(|(held, session)| (Reverse(*held), session.id));
        for (held, session) in holders {
            if budget.used() <= budget.low_mark() {
                break;
            }
            self.kick_for_budget(&session, held);
        }
    }

    /// Kicks one client for the budget: counted, recorded, its buffer released.
    fn kick_for_budget(&self, session: &Session, held: usize) {
        let activity = &self.inner.activity;
        activity.refusals.count(Refusal::OutboundBudget);
        activity.record(
            EventKind::Kick,
            format!(
                "{} kicked: {REASON} ({held} bytes waiting for it; all clients {} of max_outbound {})",
                session.describe(),
                activity.outbound.used(),
                activity.outbound.limit(),
            ),
        );
        session.outbound.kick(REASON);
    }
}
