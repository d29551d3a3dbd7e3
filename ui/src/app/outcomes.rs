//! Actions waiting for the broker, and what they come back with: an action
//! starts one command or several (kicking every slow client), waits without
//! holding up the screen, and shows its result when the last answer arrives.

use switchyard_broker::{Command, CommandOutcome, PeekTarget};

use super::commands::PeekPage;
use super::overlay::{Overlay, Peek};
use super::{App, Level};
use crate::format;
use crate::publish::DestinationKind;
use crate::reply::{CommandId, CommandResult, Finished};
use crate::source::Source;

/// What an action was for, so that its answers land where they belong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Job {
    /// Peek at a page of a queue's ready messages, into the popup.
    Peek { queue: String, page: PeekPage },
    /// Drop one ready message.
    Drop { queue: String, msg: String },
    /// Publish to a topic or send to a queue, from the publish form.
    Publish {
        destination: String,
        kind: DestinationKind,
    },
    /// Requeue one in-flight job.
    Requeue {
        queue: String,
        msg: String,
        holder: String,
    },
    /// Purge a queue's ready messages.
    Purge { queue: String },
    /// Kick one client, `who` as the status line names it.
    Kick { who: String },
    /// Kick each of these slow clients, one command each.
    KickSlow { clients: Vec<String> },
    /// Requeue every job of one consumer, `holder` as `c7/w1`.
    RequeueConsumer { holder: String },
    /// Move dead letters of `from` back to `to`.
    MoveBack { from: String, to: String },
    /// A queue's or topic's page; `first` when it was just opened (later asks,
    /// once a second, are not shown as waiting).
    Describe { target: PeekTarget, first: bool },
    /// Move every ready message of `from` to `to`.
    Move { from: String, to: String },
    /// One action on every row a filter listed: one command per item, in order.
    Bulk { bulk: Bulk, items: Vec<String> },
}

/// Which action a [`Job::Bulk`] takes to every listed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bulk {
    /// Purge each queue.
    Purge,
    /// Requeue each job (`queue/msg`).
    Requeue,
    /// Kick each client.
    Kick,
}

impl Bulk {
    /// The noun for `n` items.
    fn noun(self, n: usize) -> &'static str {
        match (self, n == 1) {
            (Bulk::Purge, true) => "queue",
            (Bulk::Purge, false) => "queues",
            (Bulk::Requeue, true) => "job",
            (Bulk::Requeue, false) => "jobs",
            (Bulk::Kick, true) => "client",
            (Bulk::Kick, false) => "clients",
        }
    }

    /// The verb, done.
    fn done(self) -> &'static str {
        match self {
            Bulk::Purge => "Purged",
            Bulk::Requeue => "Requeued",
            Bulk::Kick => "Kicked",
        }
    }
}

impl Job {
    pub(super) fn bulk(bulk: Bulk, items: Vec<String>) -> Job {
        Job::Bulk { bulk, items }
    }
}

impl Job {
    /// What the status line says while it runs.
    fn doing(&self) -> String {
        match self {
            Job::Peek { queue, page } if page.page == 0 => format!("Peeking at {queue}…"),
            Job::Peek { queue, page } => format!("Peeking at page {} of {queue}…", page.page + 1),
            Job::Drop { queue, msg } => format!("Dropping message {msg} of {queue}…"),
            Job::Publish {
                destination,
                kind: DestinationKind::Topic,
            } => format!("Publishing to {destination}…"),
            Job::Publish {
                destination,
                kind: DestinationKind::Queue,
            } => format!("Sending to {destination}…"),
            Job::Requeue { queue, msg, .. } => format!("Requeuing message {msg} to {queue}…"),
            Job::Purge { queue } => format!("Purging {queue}…"),
            Job::Kick { who } => format!("Kicking {who}…"),
            Job::KickSlow { clients } => {
                let s = if clients.len() == 1 { "" } else { "s" };
                format!("Kicking {} slow client{s}…", clients.len())
            }
            Job::MoveBack { from, to } => format!("Moving dead letters of {from} back to {to}…"),
            Job::Move { from, to } => format!("Moving the ready messages of {from} to {to}…"),
            Job::Bulk { bulk, items } => {
                let verb = match bulk {
                    Bulk::Purge => "Purging",
                    Bulk::Requeue => "Requeuing",
                    Bulk::Kick => "Kicking",
                };
                format!("{verb} {} listed {}…", items.len(), bulk.noun(items.len()))
            }
            Job::RequeueConsumer { holder } => format!("Requeuing the jobs of {holder}…"),
            Job::Describe {
                target: PeekTarget::Queue(name) | PeekTarget::Topic(name),
                ..
            } => format!("Loading the page of {name}…"),
        }
    }
}

/// An action whose commands the source has not all answered yet.
#[derive(Debug)]
pub(super) struct Running {
    job: Job,
    /// Its commands, in the order they were started.
    ids: Vec<CommandId>,
    /// Their answers so far, by position in `ids`.
    results: Vec<Option<CommandResult>>,
}

impl App {
    /// Start `commands` for `job`: each goes to the source with a reply of its
    /// own, and the job finishes when the last has come back (taken by
    /// [`App::receive_outcomes`], which [`App::update`] calls after every action,
    /// so a source that answers at once is done before the next frame).
    pub(super) fn start(
        &mut self,
        source: &mut dyn Source,
        job: Job,
        commands: Vec<Command>,
    ) -> Vec<CommandId> {
        if commands.is_empty() {
            // Nothing to wait for: done now, or it would show as running forever.
            self.finish(job, &[], Vec::new(), source);
            return Vec::new();
        }
        let replies: Vec<_> = commands.iter().map(|_| self.replies.reply()).collect();
        let ids: Vec<CommandId> = replies.iter().map(|r| r.id()).collect();
        // Registered before the source sees a command: it may answer at once.
        self.running.push(Running {
            job,
            ids: ids.clone(),
            results: vec![None; ids.len()],
        });
        for (command, reply) in commands.into_iter().zip(replies) {
            source.execute(command, reply);
        }
        ids
    }

    /// Take every outcome that has arrived and finish the actions it completes.
    /// Returns whether anything arrived (and so the screen needs drawing).
    pub fn receive_outcomes(&mut self, source: &mut dyn Source) -> bool {
        let mut arrived = false;
        while let Some(Finished { id, result }) = self.replies.try_next() {
            arrived = true;
            // Every reply is made by `start` for a job it registered, and answers
            // once, so the job is there.
            let Some(at) = self.running.iter().position(|r| r.ids.contains(&id)) else {
                continue;
            };
            let running = &mut self.running[at];
            if let Some(slot) = running.ids.iter().position(|&i| i == id) {
                running.results[slot] = Some(result);
            }
            if running.results.iter().all(Option::is_some) {
                let done = self.running.remove(at);
                let results = done.results.into_iter().flatten().collect();
                self.finish(done.job, &done.ids, results, source);
            }
        }
        arrived
    }

    /// What the newest action still waiting for the broker is doing, for the
    /// status line: `Publishing to orders.eu…`.
    pub fn in_progress(&self) -> Option<String> {
        let shown: Vec<&Running> = self
            .running
            .iter()
            .filter(|r| !matches!(r.job, Job::Describe { first: false, .. }))
            .collect();
        let newest = shown.last()?;
        Some(match shown.len() {
            1 => newest.job.doing(),
            n => format!(
                "{} ({n} actions waiting for the broker)",
                newest.job.doing()
            ),
        })
    }

    /// Show what a finished job came back with: one result per command, in order.
    fn finish(
        &mut self,
        job: Job,
        ids: &[CommandId],
        results: Vec<CommandResult>,
        source: &mut dyn Source,
    ) {
        if let Job::KickSlow { clients } = job {
            return self.finish_kick_slow(&clients, results, source);
        }
        if let Job::Bulk { bulk, items } = job {
            return self.finish_bulk(bulk, &items, results, source);
        }
        let Some(result) = results.into_iter().next() else {
            return;
        };
        match job {
            Job::Peek { queue, page } => self.finish_peek(queue, page, result),
            Job::Describe { target, .. } => self.finish_describe(target, result),
            Job::Publish { destination, kind } => {
                self.finish_publish(ids.first().copied(), &destination, kind, result, source);
            }
            Job::Requeue { queue, msg, holder } => {
                match result {
                    Ok(_) => self.set_status(
                        Level::Done,
                        format!("Requeued message {msg} to {queue} (taken from {holder})"),
                    ),
                    Err(e) => self.set_status(
                        Level::Error,
                        format!("Requeue of message {msg} failed: {e}"),
                    ),
                }
                self.refetch(source);
            }
            Job::Purge { queue } => {
                match result {
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
                self.refetch(source);
            }
            Job::Kick { who } => {
                match result {
                    Ok(_) => self.set_status(Level::Done, format!("Kicked {who}")),
                    Err(e) => self.set_status(Level::Error, format!("Kick of {who} failed: {e}")),
                }
                self.refetch(source);
            }
            Job::KickSlow { .. } | Job::Bulk { .. } => {}
            Job::Move { from, to } => {
                match result {
                    Ok(CommandOutcome::Moved { count }) => {
                        let s = if count == 1 { "" } else { "s" };
                        self.set_status(
                            Level::Done,
                            format!("Moved {count} message{s} from {from} to {to}"),
                        );
                    }
                    Ok(_) => self.set_status(Level::Done, format!("Moved {from} to {to}")),
                    Err(e) => self.set_status(
                        Level::Error,
                        format!("Move from {from} to {to} failed: {e}"),
                    ),
                }
                self.refetch(source);
            }
            Job::RequeueConsumer { holder } => {
                match result {
                    Ok(CommandOutcome::RequeuedAll { count }) => {
                        let s = if count == 1 { "" } else { "s" };
                        self.set_status(
                            Level::Done,
                            format!("Requeued {count} job{s} of {holder}"),
                        );
                    }
                    Ok(_) => self.set_status(Level::Done, format!("Requeued the jobs of {holder}")),
                    Err(e) => self.set_status(
                        Level::Error,
                        format!("Requeue of the jobs of {holder} failed: {e}"),
                    ),
                }
                self.refetch(source);
            }
            Job::MoveBack { from, to } => {
                match result {
                    Ok(CommandOutcome::Moved { count }) => {
                        let s = if count == 1 { "" } else { "s" };
                        self.set_status(
                            Level::Done,
                            format!("Moved {count} message{s} from {from} back to {to}"),
                        );
                    }
                    Ok(_) => self.set_status(Level::Done, format!("Moved {from} back to {to}")),
                    Err(e) => self.set_status(
                        Level::Error,
                        format!("Move from {from} to {to} failed: {e}"),
                    ),
                }
                self.refetch(source);
                self.reload_peek(source);
            }
            Job::Drop { queue, msg } => {
                match result {
                    Ok(_) => {
                        self.set_status(Level::Done, format!("Dropped message {msg} from {queue}"))
                    }
                    Err(e) => self.set_status(
                        Level::Error,
                        format!("Drop of message {msg} from {queue} failed: {e}"),
                    ),
                }
                self.refetch(source);
                self.reload_peek(source);
            }
        }
    }

    fn finish_peek(&mut self, queue: String, page: PeekPage, result: CommandResult) {
        let (messages, truncated, next) = match result {
            Ok(CommandOutcome::Peeked {
                messages,
                truncated,
                next,
            }) => (messages, truncated, next),
            Ok(other) => {
                let text = format!("Peek of {queue}: unexpected answer {other:?}");
                return self.set_status(Level::Error, text);
            }
            Err(e) => return self.set_status(Level::Error, format!("Peek of {queue} failed: {e}")),
        };
        let ready = self
            .snapshot
            .queues
            .iter()
            .find(|q| q.name == queue)
            .map(|q| q.ready);
        let first_page = page.page == 0 && page.query.is_empty();
        let peek = Peek {
            queue,
            page: page.page,
            after: page.after,
            back: page.back,
            next,
            query: page.query,
            selected: None,
            messages,
            ready,
            truncated,
            scroll: 0,
        };
        match &mut self.overlay {
            // Consumed meanwhile: the page asked for is gone, the one shown stays.
            Some(Overlay::Peek(open))
                if open.queue == peek.queue
                    && peek.messages.is_empty()
                    && open.query == peek.query
                    && peek.page > 0 =>
            {
                let text = format!(
                    "No ready messages on page {} of {} now",
                    peek.page + 1,
                    peek.queue
                );
                self.set_status(Level::Info, text);
            }
            Some(Overlay::Peek(open)) if open.queue == peek.queue => {
                // After a drop or a move the same page comes back: the selection
                // stays where it was, on the message now there.
                let same_page = open.after == peek.after && open.query == peek.query;
                let selected = open.selected.filter(|_| same_page);
                *open = Peek {
                    selected: selected
                        .map(|i| i.min(peek.messages.len().saturating_sub(1)))
                        .filter(|_| !peek.messages.is_empty()),
                    ..peek
                };
            }
            // The popup opens over the view it was asked from; if another popup
            // was opened while the peek ran, that one stays.
            None if first_page => self.overlay = Some(Overlay::Peek(peek)),
            _ => self.set_status(
                Level::Info,
                format!(
                    "The peek at {} came back while a popup was open; Enter peeks again",
                    peek.queue
                ),
            ),
        }
    }

    fn finish_publish(
        &mut self,
        id: Option<CommandId>,
        destination: &str,
        kind: DestinationKind,
        result: CommandResult,
        source: &mut dyn Source,
    ) {
        let form_waiting = id.is_some()
            && matches!(&self.overlay, Some(Overlay::Publish { sending, .. }) if *sending == id);
        match result {
            Ok(outcome) => {
                let text = match outcome {
                    // Nobody listening is worth saying: the message went nowhere.
                    CommandOutcome::Published { seq, subscribers } => {
                        let s = if subscribers == 1 { "" } else { "s" };
                        format!(
                            "Published to {destination}: {subscribers} subscriber{s} (seq {seq})"
                        )
                    }
                    // A broker's message ids are numbers: named, so they do not read as counts.
                    CommandOutcome::Sent { msg } => {
                        format!("Sent to {destination} as message {msg}")
                    }
                    other => format!("Sent to {destination}: {other:?}"),
                };
                if form_waiting {
                    // Back to the tail the form came from, if any, where the message
                    // shows with its deliveries as soon as it arrives.
                    if let Some(Overlay::Publish { tail, .. }) = self.overlay.take() {
                        self.overlay = tail.map(|tail| Overlay::Tail(*tail));
                    }
                }
                self.set_status(Level::Done, text);
                self.refetch(source);
            }
            Err(e) => match &mut self.overlay {
                // The form stays open with what was typed, so the mistake can be fixed.
                Some(Overlay::Publish { form, sending, .. }) if form_waiting => {
                    form.error = Some(e.to_string());
                    *sending = None;
                }
                // The form was closed while the message was on its way.
                _ => {
                    let what = match kind {
                        DestinationKind::Topic => "Publish",
                        DestinationKind::Queue => "Send",
                    };
                    self.set_status(Level::Error, format!("{what} to {destination} failed: {e}"));
                }
            },
        }
    }

    /// Say how many of a bulk action's commands succeeded, and the first few
    /// failures with their reasons.
    fn finish_bulk(
        &mut self,
        bulk: Bulk,
        items: &[String],
        results: Vec<CommandResult>,
        source: &mut dyn Source,
    ) {
        let mut purged = 0u64;
        let mut failed = Vec::new();
        for (item, result) in items.iter().zip(results) {
            match result {
                Ok(CommandOutcome::Purged { count }) => purged = purged.saturating_add(count),
                Ok(_) => {}
                Err(e) => failed.push(format!("{item}: {e}")),
            }
        }
        let total = items.len();
        let done = total - failed.len();
        let noun = bulk.noun(total);
        let mut text = if failed.is_empty() {
            format!("{} {done} {noun}", bulk.done())
        } else {
            format!(
                "{} {done} of {total} {noun}, {} failed",
                bulk.done(),
                failed.len()
            )
        };
        if bulk == Bulk::Purge {
            let s = if purged == 1 { "" } else { "s" };
            text.push_str(&format!(" ({} ready message{s})", format::grouped(purged)));
        }
        if !failed.is_empty() {
            let more = failed.len().saturating_sub(3);
            failed.truncate(3);
            text.push_str(&format!(": {}", failed.join("; ")));
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
        }
        let level = if failed.is_empty() {
            Level::Done
        } else {
            Level::Error
        };
        self.set_status(level, text);
        self.refetch(source);
    }

    fn finish_kick_slow(
        &mut self,
        clients: &[String],
        results: Vec<CommandResult>,
        source: &mut dyn Source,
    ) {
        let failed: Vec<String> = clients
            .iter()
            .zip(results)
            .filter_map(|(client, result)| result.err().map(|e| format!("{client}: {e}")))
            .collect();
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
        self.refetch(source);
    }
}
