//! Subscriptions: a pattern, an optional filter and where matching messages go (a
//! client's outbound buffer, or an in-process tail), with the backlog that holds
//! live messages while a replay catches up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::auth::Patterns;
use crate::command::TailMessage;
use crate::filter::Filter;
use crate::outbound::OutItem;
use crate::protocol::{event, Headers};
use crate::session::Session;

/// Messages a replaying subscription may hold back before it counts as slow.
const MAX_BACKLOG: usize = 100_000;
/// Where a subscription's deliveries go.
pub(crate) enum Target {
    /// A connected client.
    Session(Arc<Session>),
    /// An in-process tail (the dashboard's topic view).
    Tail(Arc<TailBuffer>),
}

/// One `sub`: a pattern, an optional filter, and where matches go.
pub(crate) struct Subscription {
    /// Unique across the broker, to find this subscription in the trie.
    pub(crate) key: u64,
    pub(crate) sid: String,
    pub(crate) pattern: String,
    /// `{"ev":"msg","sid":"s1",`, built once.
    pub(super) head: String,
    pub(super) filter: Option<Filter>,
    /// Topics its user may not read that its pattern matches (a `deny_subscribe`
    /// entry it overlaps): their messages skip it. None for nearly every
    /// subscription, so the check costs one branch.
    hidden: Option<Arc<Patterns>>,
    pub(super) target: Target,
    /// While a replay runs, live messages wait in `backlog`.
    pub(super) replaying: AtomicBool,
    /// Bodies of live messages held back while a replay runs.
    pub(super) backlog: Mutex<VecDeque<String>>,
    /// While a replay runs: the seq of the last stored message it was sent.
    pub(super) replayed_to: AtomicU64,
}

impl Subscription {
    pub(crate) fn new(
        key: u64,
        sid: String,
        pattern: String,
        filter: Option<Filter>,
        target: Target,
    ) -> Self {
        Subscription {
            key,
            head: event::msg_head(&sid),
            sid,
            pattern,
            filter,
            hidden: None,
            target,
            replaying: AtomicBool::new(false),
            backlog: Mutex::new(VecDeque::new()),
            replayed_to: AtomicU64::new(0),
        }
    }

    /// The same subscription, skipping messages on topics `hidden` matches.
    pub(crate) fn hiding(mut self, hidden: Option<Arc<Patterns>>) -> Self {
        self.hidden = hidden;
        self
    }

    /// Whether messages on `topic` skip this subscription (its user may not read them).
    pub(super) fn hides(&self, topic: &str) -> bool {
        self.hidden.as_ref().is_some_and(|h| h.matches(topic))
    }

    pub(crate) fn filter_text(&self) -> Option<String> {
        self.filter.as_ref().map(|f| f.source().to_string())
    }

    pub(super) fn session(&self) -> Option<&Arc<Session>> {
        match &self.target {
            Target::Session(s) => Some(s),
            Target::Tail(_) => None,
        }
    }

    /// Delivers one message; false if the client refused it.
    pub(super) fn deliver(&self, m: &Delivery<'_>) -> bool {
        match &self.target {
            Target::Session(session) => {
                if self.replaying.load(Ordering::Acquire) {
                    let mut backlog = self.backlog.lock();
                    if self.replaying.load(Ordering::Acquire) {
                        backlog.push_back(m.body.to_string());
                        if backlog.len() > MAX_BACKLOG {
                            backlog.clear();
                            session.outbound.kick("slow_consumer");
                        }
                        return true;
                    }
                }
                let item = OutItem::Msg {
                    head: &self.head,
                    body: m.body,
                };
                let ok = session.push(item).is_ok();
                crate::pacing::note(session);
                ok
            }
            Target::Tail(tail) => {
                let message = TailMessage {
                    topic: m.topic.to_string(),
                    seq: m.seq,
                    time: m.time,
                    data: serde_json::from_str(m.data).unwrap_or(serde_json::Value::Null),
                    headers: m.headers.cloned(),
                };
                tail.push(message, m.topic.len() + m.data.len());
                true
            }
        }
    }

    /// Delivers those of `ms` that `passes` (by index); how many the client took. To
    /// a connected client that is not replaying, all of them go in one push.
    pub(super) fn deliver_all(&self, ms: &[Delivery<'_>], passes: impl Fn(usize) -> bool) -> u64 {
        match &self.target {
            Target::Session(session) if !self.replaying.load(Ordering::Acquire) => {
                let items: Vec<OutItem> = (0..ms.len())
                    .filter(|&i| passes(i))
                    .map(|i| OutItem::Msg {
                        head: &self.head,
                        body: ms[i].body,
                    })
                    .collect();
                if items.is_empty() || session.push_all(&items).is_err() {
                    return 0;
                }
                crate::pacing::note(session);
                items.len() as u64
            }
            _ => (0..ms.len())
                .filter(|&i| passes(i) && self.deliver(&ms[i]))
                .count() as u64,
        }
    }

    /// Ends a replay: what waited in the backlog goes out, then live delivery resumes.
    pub(super) fn go_live(&self) {
        let mut backlog = self.backlog.lock();
        if let Some(session) = self.session() {
            for body in backlog.drain(..) {
                let item = OutItem::Msg {
                    head: &self.head,
                    body: &body,
                };
                if session.push(item).is_err() {
                    break;
                }
            }
        }
        backlog.clear();
        self.replaying.store(false, Ordering::Release);
    }

    pub(super) fn end(&self, topic: &str) {
        if let Some(s) = self.session() {
            s.send_text(event::end(&self.sid, topic));
        }
    }
}

/// A bounded buffer of messages for a tail; the oldest are dropped when it holds
/// `capacity` messages or [`TAIL_BYTES`] of message text, whichever comes first:
/// a tail of large messages must not hold gigabytes for a console that looks.
pub struct TailBuffer {
    held: Mutex<Held>,
    capacity: usize,
    /// Only messages whose data or headers hold this text ([`crate::filter::holds`]).
    search: Option<Box<str>>,
}

/// The most message text (`data` and topic) a tail keeps.
pub const TAIL_BYTES: usize = 8 << 20;

#[derive(Default)]
struct Held {
    messages: VecDeque<(TailMessage, usize)>,
    bytes: usize,
}

impl TailBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        TailBuffer {
            held: Mutex::new(Held::default()),
            capacity,
            search: None,
        }
    }

    /// The same, keeping only messages whose data or headers hold `search`.
    pub(crate) fn searching(self, search: Option<&str>) -> Self {
        TailBuffer {
            search: search.map(Box::from),
            ..self
        }
    }

    /// Keeps `message`, whose text is `bytes` long, dropping the oldest as needed;
    /// passes it over if it does not hold the search text.
    pub(super) fn push(&self, message: TailMessage, bytes: usize) {
        if let Some(needle) = &self.search {
            if !crate::filter::holds(needle, &message.data, message.headers.as_ref()) {
                return;
            }
        }
        let mut held = self.held.lock();
        while !held.messages.is_empty()
            && (held.messages.len() >= self.capacity || held.bytes + bytes > TAIL_BYTES)
        {
            if let Some((_, gone)) = held.messages.pop_front() {
                held.bytes -= gone;
            }
        }
        held.bytes += bytes;
        held.messages.push_back((message, bytes));
    }

    /// Takes up to `max` messages, oldest first.
    pub fn drain(&self, max: usize) -> Vec<TailMessage> {
        let mut held = self.held.lock();
        let n = max.min(held.messages.len());
        let taken: Vec<_> = held.messages.drain(..n).collect();
        held.bytes -= taken.iter().map(|(_, b)| b).sum::<usize>();
        taken.into_iter().map(|(m, _)| m).collect()
    }
}

/// A message as its subscriptions get it.
pub(super) struct Delivery<'a> {
    pub(super) topic: &'a str,
    pub(super) seq: u64,
    pub(super) time: u64,
    /// The delivery without its head, the same for every subscriber.
    pub(super) body: &'a str,
    /// The raw JSON of `data` (inside `body`).
    pub(super) data: &'a str,
    pub(super) headers: Option<&'a Headers>,
}
