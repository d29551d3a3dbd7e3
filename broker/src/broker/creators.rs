//! Who created each queue and retained topic, and how many each user holds
//! against its cap (its own `max_streams`, else the broker's
//! `max_streams_per_user`). Durable queues and retained topics hold files and
//! in-memory queues hold memory that nothing forgets, so one client must not be
//! able to create thousands of them.
//!
//! A place is taken under the name's creation gate, before the stream's files
//! are made, and given back if making them fails, or when the stream is deleted
//! (to whoever created it, whoever deletes it). The table lives in memory only:
//! after a restart the recovered streams count against no one.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Stream;
use crate::error::{BrokerError, ErrorCode};

/// Who asks for a queue or a retained topic to be created, and its own cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Creator {
    /// The user; `None` with auth off, where all clients share one count.
    user: Option<Arc<str>>,
    /// Its `max_streams`, if its entry (or JWT) sets one; else the broker's
    /// `max_streams_per_user` applies. 0: no cap.
    own_cap: Option<usize>,
}

impl Creator {
    /// A user whose token was accepted, with its `max_streams` if it has one.
    pub(crate) fn user(user: Arc<str>, own_cap: Option<usize>) -> Creator {
        Creator {
            user: Some(user),
            own_cap,
        }
    }
}

/// Every stream's creator and every creator's count, under one short lock (taken
/// once per stream created or deleted, never on the message path).
#[derive(Debug, Default)]
pub(super) struct Creators {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Who created each stream that counts against someone.
    by_stream: HashMap<(Stream, Box<str>), Option<Arc<str>>>,
    /// How many streams each creator holds (`None`: the clients of a broker with auth off).
    held: HashMap<Option<Arc<str>>, usize>,
}

impl Table {
    fn give_back(&mut self, key: &(Stream, Box<str>)) {
        let Some(user) = self.by_stream.remove(key) else {
            return;
        };
        if let Some(n) = self.held.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(&user);
            }
        }
    }
}

impl Creators {
    /// Takes a place for the stream `name` that `creator` is about to create, or
    /// refuses with `limit` naming the cap (`default_cap` when the creator has
    /// none of its own).
    pub(super) fn take(
        &self,
        kind: Stream,
        name: &str,
        creator: &Creator,
        default_cap: usize,
    ) -> Result<(), BrokerError> {
        let cap = creator.own_cap.unwrap_or(default_cap);
        let mut table = self.table.lock();
        let key = (kind, Box::from(name));
        // A leftover entry (none is expected: deletes give theirs back) would
        // count twice.
        table.give_back(&key);
        let held = table.held.get(&creator.user).copied().unwrap_or(0);
        if cap != 0 && held >= cap {
            return Err(refusal(creator, cap));
        }
        *table.held.entry(creator.user.clone()).or_default() += 1;
        table.by_stream.insert(key, creator.user.clone());
        Ok(())
    }

    /// Gives back the place of a stream that was deleted, or was not created after
    /// all; a stream that counts against no one is ignored.
    pub(super) fn give_back(&self, kind: Stream, name: &str) {
        self.table.lock().give_back(&(kind, Box::from(name)));
    }

    /// How many streams `user` holds now (`None`: the clients of a broker with auth off).
    #[cfg(test)]
    fn held(&self, user: Option<&str>) -> usize {
        let user: Option<Arc<str>> = user.map(Arc::from);
        self.table.lock().held.get(&user).copied().unwrap_or(0)
    }
}

/// ``user `orders-service` may create at most 100 queues and topics (max_streams)``.
fn refusal(creator: &Creator, cap: usize) -> BrokerError {
    let key = match creator.own_cap {
        Some(_) => "max_streams",
        None => "max_streams_per_user",
    };
    let what = if cap == 1 {
        "queue or topic"
    } else {
        "queues and topics"
    };
    let message = match &creator.user {
        Some(user) => {
            let shown: String = user.chars().take(128).collect();
            format!("user `{shown}` may create at most {cap} {what} ({key})")
        }
        None => {
            format!("clients without a user may create at most {cap} {what} together ({key})")
        }
    };
    BrokerError::new(ErrorCode::Limit, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_counts_per_user_and_deleting_gives_the_place_back() {
        let creators = Creators::default();
        let orders = Creator::user("orders".into(), Some(2));
        let other = Creator::user("other".into(), None);
        creators.take(Stream::Queue, "a", &orders, 100).unwrap();
        creators.take(Stream::Topic, "a", &orders, 100).unwrap();
        let e = creators.take(Stream::Queue, "b", &orders, 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::Limit);
        assert_eq!(
            e.message,
            "user `orders` may create at most 2 queues and topics (max_streams)"
        );
        creators.take(Stream::Queue, "b", &other, 100).unwrap();
        // Deleted by anyone: the place goes back to its creator.
        creators.give_back(Stream::Topic, "a");
        creators.give_back(Stream::Topic, "a");
        assert_eq!(creators.held(Some("orders")), 1);
        creators.take(Stream::Queue, "c", &orders, 100).unwrap();
        assert_eq!(creators.held(Some("orders")), 2);
        assert_eq!(creators.held(Some("other")), 1);
        // A stream nobody's request created (recovered, a dead letter) is nobody's.
        creators.give_back(Stream::Queue, "recovered");
        assert_eq!(creators.held(Some("orders")), 2);
    }

    #[test]
    fn clients_without_a_user_share_the_default_and_zero_is_no_cap() {
        let creators = Creators::default();
        let anyone = Creator::default();
        creators.take(Stream::Queue, "a", &anyone, 1).unwrap();
        let e = creators.take(Stream::Queue, "b", &anyone, 1).unwrap_err();
        assert_eq!(
            e.message,
            "clients without a user may create at most 1 queue or topic together \
             (max_streams_per_user)"
        );
        let unlimited = Creator::user("root".into(), Some(0));
        for i in 0..10 {
            creators
                .take(Stream::Queue, &format!("r{i}"), &unlimited, 1)
                .unwrap();
        }
        assert_eq!(creators.held(Some("root")), 10);
    }
}
