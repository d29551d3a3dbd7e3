//! The actions that ask the broker: peek (paging and searching), publish or
//! send, purge, kick, kick every slow client, requeue, move back, drop. Each starts its commands through the [`Source`]
//! and returns at once; `outcomes.rs` shows what they come back with.

use switchyard_broker::{Command, MessageQuery, PeekTarget};

use super::outcomes::{Bulk, Job};
use super::overlay::{describe_query, Confirmation, LiveTail, Overlay};
use super::{App, Level};
use crate::publish::DestinationKind;
use crate::source::Source;
use crate::view::View;

/// How many ready messages a page of the peek popup shows.
pub const PEEK_COUNT: usize = 10;

/// The reason a kicked client is given.
pub const KICK_REASON: &str = "kicked by operator";

/// The reason a client kicked for being slow is given.
pub const KICK_SLOW_REASON: &str = "slow_consumer";

/// Where a page of a peek starts and what it selects: the popup's next page, its
/// previous one, or its first with a new query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PeekPage {
    pub(super) page: usize,
    pub(super) after: Option<u64>,
    pub(super) back: Vec<Option<u64>>,
    pub(super) query: MessageQuery,
}

impl App {
    /// Open the peek popup on `queue`'s first page (it opens when the broker
    /// answers): what a queue's page, or any view that shows one queue, calls.
    pub fn open_peek(&mut self, source: &mut dyn Source, queue: String) {
        self.ask_peek(source, queue, PeekPage::default());
    }

    /// Open a live tail of `topic` (a pattern), in a popup.
    pub(super) fn tail(&mut self, source: &mut dyn Source, topic: String) {
        match source.open_tail(&topic, &MessageQuery::default()) {
            Ok(()) => self.overlay = Some(Overlay::Tail(LiveTail::new(topic, &self.snapshot))),
            Err(e) => self.set_status(Level::Error, format!("Tail of {topic} failed: {e}")),
        }
    }

    /// Peek at one page of `queue`: the broker is asked again, through the
    /// source like any command, so paging works against a remote broker too.
    pub(super) fn ask_peek(&mut self, source: &mut dyn Source, queue: String, page: PeekPage) {
        let peek = Command::Peek {
            target: PeekTarget::Queue(queue.clone()),
            n: PEEK_COUNT,
            after: page.after,
            query: page.query.clone(),
        };
        self.start(source, Job::Peek { queue, page }, vec![peek]);
    }

    /// Show the open peek's next (`forward`) or previous page: the broker's
    /// cursor goes through the whole queue, one page at a time.
    pub(super) fn turn_peek_page(&mut self, source: &mut dyn Source, forward: bool) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let queue = peek.queue.clone();
        let query = peek.query.clone();
        if !forward {
            let mut back = peek.back.clone();
            return match back.pop() {
                Some(after) => {
                    let page = PeekPage {
                        page: peek.page.saturating_sub(1),
                        after,
                        back,
                        query,
                    };
                    self.ask_peek(source, queue, page)
                }
                None => self.set_status(Level::Info, "This is the first page"),
            };
        }
        let Some(next) = peek.next else {
            let text = match describe_query(&query) {
                Some(q) => format!("No more ready messages in {queue} ({q})"),
                None => format!("No more ready messages in {queue}"),
            };
            return self.set_status(Level::Info, text);
        };
        let mut back = peek.back.clone();
        back.push(peek.after);
        let page = PeekPage {
            page: peek.page + 1,
            after: Some(next),
            back,
            query,
        };
        self.ask_peek(source, queue, page);
    }

    /// Peek again from the first page of the open peek's queue, with `query`.
    pub(super) fn search_peek(&mut self, source: &mut dyn Source, query: MessageQuery) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let queue = peek.queue.clone();
        let page = PeekPage {
            query,
            ..PeekPage::default()
        };
        self.ask_peek(source, queue, page);
    }

    /// Peek at the open peek's page again (after a drop or a move changed it).
    pub(super) fn reload_peek(&mut self, source: &mut dyn Source) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let queue = peek.queue.clone();
        let page = PeekPage {
            page: peek.page,
            after: peek.after,
            back: peek.back.clone(),
            query: peek.query.clone(),
        };
        self.ask_peek(source, queue, page);
    }

    pub(super) fn requeue(&mut self, source: &mut dyn Source) {
        if self.view != View::InFlight {
            return;
        }
        let Some(i) = self.selected(View::InFlight) else {
            return self.set_status(Level::Info, "No job selected");
        };
        let job = &self.snapshot.inflight[i];
        let (queue, msg) = (job.queue.clone(), job.msg.clone());
        let holder = format!("{}/{}", job.client, job.cid);
        let requeue = Command::Requeue {
            queue: queue.clone(),
            msg: msg.clone(),
        };
        self.start(source, Job::Requeue { queue, msg, holder }, vec![requeue]);
    }

    pub(super) fn confirm(&mut self, source: &mut dyn Source) {
        let Some(Overlay::Confirm(confirmation)) = self.overlay.take() else {
            return;
        };
        match confirmation {
            Confirmation::Purge { queue, .. } => {
                let purge = Command::Purge {
                    queue: queue.clone(),
                };
                self.start(source, Job::Purge { queue }, vec![purge]);
            }
            Confirmation::Kick { client, name, .. } => {
                let who = match name {
                    Some(name) => format!("{client} ({name})"),
                    None => client.clone(),
                };
                let kick = kick(&client, KICK_REASON);
                self.start(source, Job::Kick { who }, vec![kick]);
            }
            Confirmation::KickSlow { clients, .. } => {
                let kicks = clients
                    .iter()
                    .map(|client| kick(client, KICK_SLOW_REASON))
                    .collect();
                self.start(source, Job::KickSlow { clients }, kicks);
            }
            Confirmation::RequeueConsumer { client, cid, .. } => {
                let command = Command::RequeueConsumer {
                    client: client.clone(),
                    cid: cid.clone(),
                };
                let holder = format!("{client}/{cid}");
                self.start(source, Job::RequeueConsumer { holder }, vec![command]);
            }
            Confirmation::Move { from, to, .. } => {
                let command = Command::Move {
                    from: from.clone(),
                    to: to.clone(),
                    n: None,
                    filter: None,
                    msg: None,
                };
                self.start(source, Job::Move { from, to }, vec![command]);
            }
            Confirmation::PurgeListed { queues, .. } => {
                let purges = (queues.iter())
                    .map(|queue| Command::Purge {
                        queue: queue.clone(),
                    })
                    .collect();
                self.start(source, Job::bulk(Bulk::Purge, queues), purges);
            }
            Confirmation::RequeueListed { jobs, .. } => {
                let requeues = (jobs.iter())
                    .map(|(queue, msg)| Command::Requeue {
                        queue: queue.clone(),
                        msg: msg.clone(),
                    })
                    .collect();
                let items = jobs.into_iter().map(|(q, m)| format!("{q}/{m}")).collect();
                self.start(source, Job::bulk(Bulk::Requeue, items), requeues);
            }
            Confirmation::KickListed { clients, .. } => {
                let kicks = clients.iter().map(|c| kick(c, KICK_REASON)).collect();
                self.start(source, Job::bulk(Bulk::Kick, clients), kicks);
            }
            Confirmation::MoveBack { from, to, .. } => {
                // Queue names hold no quote: the filter needs no escaping.
                let filter = format!("x-dead-letter-queue = '{to}'");
                let command = Command::Move {
                    from: from.clone(),
                    to: to.clone(),
                    n: None,
                    filter: Some(filter),
                    msg: None,
                };
                self.start(source, Job::MoveBack { from, to }, vec![command]);
            }
            Confirmation::MoveOne { from, to, msg } => {
                let command = Command::Move {
                    from: from.clone(),
                    to: to.clone(),
                    n: None,
                    filter: None,
                    msg: Some(msg),
                };
                self.start(source, Job::MoveBack { from, to }, vec![command]);
            }
            Confirmation::Drop { queue, msg } => {
                let command = Command::Drop {
                    queue: queue.clone(),
                    msg: msg.clone(),
                };
                self.start(source, Job::Drop { queue, msg }, vec![command]);
            }
        }
        // Back to the popup the question was asked from (its outcome reloads it).
        self.overlay = self.behind.take();
    }

    pub(super) fn submit(&mut self, source: &mut dyn Source) {
        let Some(Overlay::Publish { form, sending, .. }) = &mut self.overlay else {
            return;
        };
        // One message per Enter: a second Enter while the first is on its way
        // would send it twice.
        if sending.is_some() {
            return;
        }
        let command = match form.command() {
            Ok(command) => command,
            Err(why) => {
                form.error = Some(why);
                return;
            }
        };
        let (destination, kind) = match &command {
            Command::Send { queue, .. } => (queue.clone(), DestinationKind::Queue),
            Command::Publish { topic, .. } => (topic.clone(), DestinationKind::Topic),
            _ => (String::new(), form.kind),
        };
        let ids = self.start(source, Job::Publish { destination, kind }, vec![command]);
        // The form waits for this command's answer; any other publish that comes
        // back meanwhile (from a form closed earlier) leaves it alone.
        if let Some(Overlay::Publish { sending, .. }) = &mut self.overlay {
            *sending = ids.first().copied();
        }
    }
}

fn kick(client: &str, reason: &str) -> Command {
    Command::Kick {
        client: client.to_string(),
        reason: Some(reason.to_string()),
    }
}
