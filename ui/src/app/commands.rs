//! The actions that ask the broker: peek, publish or send, purge, kick, kick
//! every slow client, requeue. Each starts its commands through the [`Source`]
//! and returns at once; `outcomes.rs` shows what they come back with.

use switchyard_broker::{Command, PeekTarget};

use super::outcomes::{Bulk, Job};
use super::overlay::{Confirmation, Overlay};
use super::{App, Level};
use crate::format;
use crate::publish::DestinationKind;
use crate::source::Source;
use crate::view::View;

/// How many ready messages a page of the peek popup shows.
pub const PEEK_COUNT: usize = 10;

/// The most messages a `peek` returns (docs/PROTOCOL.md): the protocol has no
/// offset, so a page is the tail of a peek at the first `(page + 1) × PEEK_COUNT`,
/// and messages past this many cannot be reached.
pub const PEEK_MAX: usize = 1000;

/// The reason a kicked client is given.
pub const KICK_REASON: &str = "kicked by operator";

/// The reason a client kicked for being slow is given.
pub const KICK_SLOW_REASON: &str = "slow_consumer";

impl App {
    /// Peek at the selected queue's next ready messages, in a popup.
    pub(super) fn peek(&mut self, source: &mut dyn Source) {
        let Some(queue) = self
            .selected(View::Queues)
            .map(|i| self.snapshot.queues[i].name.clone())
        else {
            return self.set_status(Level::Info, "No queue selected");
        };
        self.ask_peek(source, queue, 0);
    }

    /// Peek at page `page` of `queue`: the broker is asked again, through the
    /// source like any command, so paging works against a remote broker too.
    fn ask_peek(&mut self, source: &mut dyn Source, queue: String, page: usize) {
        let peek = Command::Peek {
            target: PeekTarget::Queue(queue.clone()),
            n: (page + 1) * PEEK_COUNT,
        };
        self.start(source, Job::Peek { queue, page }, vec![peek]);
    }

    /// Show the open peek's next (`forward`) or previous page.
    pub(super) fn turn_peek_page(&mut self, source: &mut dyn Source, forward: bool) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let (queue, page) = (peek.queue.clone(), peek.page);
        if !forward {
            return match page.checked_sub(1) {
                Some(previous) => self.ask_peek(source, queue, previous),
                None => self.set_status(Level::Info, "This is the first page"),
            };
        }
        if peek.messages.len() < PEEK_COUNT {
            let last = peek.first() + peek.messages.len() - 1;
            let text = format!("No ready messages after #{last} in {queue}");
            return self.set_status(Level::Info, text);
        }
        if peek.at_broker_limit() {
            let text = format!(
                "The broker peeks at the first {} messages only",
                format::grouped(PEEK_MAX as u64)
            );
            return self.set_status(Level::Info, text);
        }
        self.ask_peek(source, queue, page + 1);
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
                };
                self.start(source, Job::MoveBack { from, to }, vec![command]);
            }
        }
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
