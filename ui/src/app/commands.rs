//! The actions that ask the broker: peek, publish or send, purge, kick, kick
//! every slow client, requeue; each sends its command through the [`Source`] and
//! shows the outcome.

use switchyard_broker::{BrokerError, Command, CommandOutcome, PeekTarget};

use super::overlay::{Confirmation, Overlay, Peek};
use super::{App, Level};
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
        match source.execute(peek) {
            Ok(CommandOutcome::Peeked(messages)) => {
                self.overlay = Some(Overlay::Peek(Peek {
                    queue,
                    messages,
                    scroll: 0,
                }));
            }
            Ok(other) => self.set_status(
                Level::Error,
                format!("Peek of {queue}: unexpected answer {other:?}"),
            ),
            Err(e) => self.set_status(Level::Error, format!("Peek of {queue} failed: {e}")),
        }
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
        let result = source.execute(Command::Requeue {
            queue: queue.clone(),
            msg: msg.clone(),
        });
        match result {
            Ok(_) => self.set_status(
                Level::Done,
                format!("Requeued {msg} to {queue} (taken from {holder})"),
            ),
            Err(e) => self.set_status(Level::Error, format!("Requeue of {msg} failed: {e}")),
        }
        self.refetch(source);
    }

    pub(super) fn confirm(&mut self, source: &mut dyn Source) {
        let Some(Overlay::Confirm(confirmation)) = self.overlay.take() else {
            return;
        };
        match confirmation {
            Confirmation::Purge { queue, .. } => {
                match source.execute(Command::Purge {
                    queue: queue.clone(),
                }) {
                    Ok(CommandOutcome::Purged { count }) => {
                        let s = if count == 1 { "" } else { "s" };
                        self.set_status(
                            Level::Done,
                            format!("Purged {count} ready message{s} from {queue}"),
                        );
                    }
                    Ok(_) => self.set_status(Level::Done, format!("Purged {queue}")),
                    Err(e) => {
                        self.set_status(Level::Error, format!("Purge of {queue} failed: {e}"))
                    }
                }
            }
            Confirmation::Kick { client, name, .. } => {
                let who = match name {
                    Some(name) => format!("{client} ({name})"),
                    None => client.clone(),
                };
                match kick(source, &client, KICK_REASON) {
                    Ok(()) => self.set_status(Level::Done, format!("Kicked {who}")),
                    Err(e) => self.set_status(Level::Error, format!("Kick of {who} failed: {e}")),
                }
            }
            Confirmation::KickSlow { clients } => {
                let mut failed = Vec::new();
                for client in &clients {
                    if let Err(e) = kick(source, client, KICK_SLOW_REASON) {
                        failed.push(format!("{client}: {e}"));
                    }
                }
                let kicked = clients.len() - failed.len();
                let s = if clients.len() == 1 { "" } else { "s" };
                if failed.is_empty() {
                    self.set_status(Level::Done, format!("Kicked {kicked} slow client{s}"));
                } else {
                    self.set_status(
                        Level::Error,
                        format!(
                            "Kicked {kicked} of {} slow client{s}; {}",
                            clients.len(),
                            failed.join("; ")
                        ),
                    );
                }
            }
        }
        self.refetch(source);
    }

    pub(super) fn submit(&mut self, source: &mut dyn Source) {
        let Some(Overlay::Publish { form, tail }) = &mut self.overlay else {
            return;
        };
        let cmd = match form.command() {
            Ok(cmd) => cmd,
            Err(why) => {
                form.error = Some(why);
                return;
            }
        };
        let destination = match &cmd {
            Command::Publish { topic, .. } => topic.clone(),
            Command::Send { queue, .. } => queue.clone(),
            _ => String::new(),
        };
        match source.execute(cmd) {
            Ok(outcome) => {
                let text = match outcome {
                    CommandOutcome::Published { seq } => {
                        format!("Published to {destination} (seq {seq})")
                    }
                    CommandOutcome::Sent { msg } => format!("Sent {msg} to {destination}"),
                    other => format!("Sent to {destination}: {other:?}"),
                };
                // Back to the tail the form came from, if any, where the message
                // shows with its deliveries as soon as it arrives.
                self.overlay = tail.take().map(|tail| Overlay::Tail(*tail));
                self.set_status(Level::Done, text);
                self.refetch(source);
            }
            // The form stays open with what was typed, so the mistake can be fixed.
            Err(e) => form.error = Some(e.to_string()),
        }
    }
}

fn kick(source: &mut dyn Source, client: &str, reason: &str) -> Result<(), BrokerError> {
    source
        .execute(Command::Kick {
            client: client.to_string(),
            reason: Some(reason.to_string()),
        })
        .map(|_| ())
}
