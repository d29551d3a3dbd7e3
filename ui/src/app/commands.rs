//! The actions that ask the broker: peek, publish or send, purge, kick, kick
//! every slow client, requeue. Each starts its commands through the [`Source`]
//! and returns at once; `outcomes.rs` shows what they come back with.

use switchyard_broker::{Command, PeekTarget};

use super::outcomes::Job;
use super::overlay::{Confirmation, Overlay};
use super::{App, Level};
use crate::publish::DestinationKind;
use crate::source::Source;
use crate::view::View;

/// How many ready messages a peek asks for.
pub const PEEK_COUNT: usize = 10;

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
        let peek = Command::Peek {
            target: PeekTarget::Queue(queue.clone()),
            n: PEEK_COUNT,
        };
        self.start(source, Job::Peek { queue }, vec![peek]);
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
            Confirmation::KickSlow { clients } => {
                let kicks = clients
                    .iter()
                    .map(|client| kick(client, KICK_SLOW_REASON))
                    .collect();
                self.start(source, Job::KickSlow { clients }, kicks);
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
