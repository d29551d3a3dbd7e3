//! A connected client as the broker tracks it: its [`Session`] (identity and
//! outbound buffer, which queues and topics deliver to) and what it holds here,
//! its subscriptions and its consumers.
//!
//! Lock order: a peer's maps are taken on their own or before a queue's or a
//! topic's lock, never while one is held. Queues and topics know only the
//! session, so they cannot reach back into these maps.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::queue::Queue;
use crate::session::Session;
use crate::stats::{ClientStats, SubscriptionStats};
use crate::topic::Subscription;

/// One connected client: its session and its holdings.
pub(crate) struct Peer {
    pub(crate) session: Arc<Session>,
    /// Its subscriptions, by sid.
    pub(super) subs: Mutex<HashMap<String, Arc<Subscription>>>,
    /// The queue each of its consumers takes jobs from, by cid.
    pub(super) consumers: Mutex<HashMap<String, Arc<Queue>>>,
    /// The user whose token it presented, once one was accepted.
    pub(crate) user: Mutex<Option<Arc<str>>>,
    /// Whether its connect and disconnect are event-log lines (an HTTP API
    /// request's are not).
    pub(super) logged: bool,
}

impl Peer {
    pub(super) fn new(session: Arc<Session>, logged: bool) -> Peer {
        Peer {
            logged,
            session,
            subs: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
            user: Mutex::new(None),
        }
    }

    /// What an operator sees of this client.
    pub(super) fn stats(&self) -> ClientStats {
        let mut subscriptions: Vec<SubscriptionStats> = self
            .subs
            .lock()
            .values()
            .map(|s| SubscriptionStats {
                sid: s.sid.clone(),
                pattern: s.pattern.clone(),
                filter: s.filter_text(),
            })
            .collect();
        subscriptions.sort_by(|a, b| a.sid.cmp(&b.sid));
        let consumers: Vec<(String, Arc<Queue>)> = self
            .consumers
            .lock()
            .iter()
            .map(|(cid, q)| (cid.clone(), q.clone()))
            .collect();
        let unacked = consumers
            .iter()
            .map(|(cid, q)| u64::from(q.unacked_of(self.session.id, cid)))
            .sum();
        let mut stats = self
            .session
            .stats(subscriptions, consumers.len() as u64, unacked);
        stats.user = self.user.lock().as_deref().map(str::to_string);
        stats
    }

    /// `c42 (name) as user`, `c42 (name)` or `c42`: who did something, for event texts.
    pub(crate) fn describe(&self) -> String {
        let session = self.session.describe();
        match &*self.user.lock() {
            Some(user) => format!("{session} as {user}"),
            None => session,
        }
    }
}
