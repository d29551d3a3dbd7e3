//! The keyboard habits borrowed from k9s: the `:` line and what its verbs do,
//! Esc going back one level, Space pausing the tables, and the actions on every
//! row a kept filter lists (each asked about once, with the count, then sent as
//! one command per row through the source, so they work over the wire too).

use std::collections::HashMap;

use tui_input::backend::crossterm::EventHandler;

use super::overlay::{named, Confirmation, Overlay};
use super::{App, Level, BACK_KEEP};
use crate::command_line::{self, CommandLine, Verb};
use crate::source::Source;
use crate::tables;
use crate::view::View;

/// What the read-only refusal says, for keys and the `:` line alike.
pub(super) const READ_ONLY: &str =
    "Read-only console (--read-only): it does not publish, purge, kick or requeue";

impl App {
    /// The `:` line, if it is open.
    pub fn command_line(&self) -> Option<&CommandLine> {
        self.command_line.as_ref()
    }

    /// What Tab could complete the `:` line with, from the snapshot shown.
    pub fn command_candidates(&self) -> Vec<String> {
        match &self.command_line {
            Some(line) => command_line::candidates(line.value(), &self.snapshot).1,
            None => Vec::new(),
        }
    }

    pub(super) fn open_command_line(&mut self) {
        self.command_line = Some(CommandLine::default());
    }

    pub(super) fn type_command(&mut self, key: crossterm::event::KeyEvent) {
        if let Some(line) = &mut self.command_line {
            line.input.handle_event(&crossterm::event::Event::Key(key));
            line.edited();
            // The last error is about the line as it was; the completions show again.
            self.status = None;
        }
    }

    pub(super) fn complete_command(&mut self) {
        let Some(line) = &mut self.command_line else {
            return;
        };
        if let Some(done) = command_line::complete(line.value(), &self.snapshot) {
            line.set(done);
            line.edited();
        }
    }

    pub(super) fn recall_command(&mut self, older: bool) {
        if let Some(line) = &mut self.command_line {
            line.recall(&self.history, older);
        }
    }

    /// Enter on the `:` line: run it, or say what is wrong and stay in the line.
    pub(super) fn run_command(&mut self, source: &mut dyn Source) {
        let Some(line) = &self.command_line else {
            return;
        };
        let text = line.value().to_string();
        command_line::remember(&mut self.history, &text);
        let verb = match command_line::parse(&text) {
            Ok(Some(verb)) => verb,
            Ok(None) => {
                self.command_line = None;
                return;
            }
            Err(why) => return self.set_status(Level::Error, why),
        };
        if verb.changes_broker() && source.read_only() {
            self.command_line = None;
            return self.set_status(Level::Error, READ_ONLY);
        }
        match self.run_verb(verb, &*source) {
            Ok(()) => self.command_line = None,
            Err(why) => self.set_status(Level::Error, why),
        }
    }

    fn run_verb(&mut self, verb: Verb, source: &dyn Source) -> Result<(), String> {
        match verb {
            Verb::Show(view) => self.show(view),
            Verb::Queue(name) => {
                self.queue_named(&name)?;
                self.show(View::Queues);
                self.select_key(&name);
            }
            Verb::Topics(pattern) => {
                self.show(View::Topics);
                let table = &mut self.tables[View::Topics.index()];
                table.pattern = pattern.clone();
                table.filter.clear();
                self.rebuild(View::Topics);
                let n = self.tables[View::Topics.index()].rows.len();
                let s = if n == 1 { "" } else { "s" };
                self.set_status(
                    Level::Info,
                    format!("{n} topic{s} match {pattern} (Esc shows every topic)"),
                );
            }
            Verb::Client(name) => {
                let id = self.client_named(&name)?;
                self.show(View::Clients);
                self.select_key(&id);
            }
            Verb::Purge(name) => {
                let count = self.queue_named(&name)?.ready;
                self.overlay = Some(Overlay::Confirm(Confirmation::Purge { queue: name, count }));
            }
            Verb::Move { from, to } => {
                let count = self.queue_named(&from)?.ready;
                self.queue_named(&to)?;
                if from == to {
                    return Err(format!("{from} is where the messages are already"));
                }
                if count == 0 {
                    return Err(format!("Nothing to move: {from} has no ready messages"));
                }
                self.overlay = Some(Overlay::Confirm(Confirmation::Move { from, to, count }));
            }
            Verb::Kick(name) => {
                let id = self.client_named(&name)?;
                let Some(c) = self.snapshot.clients.iter().find(|c| c.id == id) else {
                    return Err(format!("No client {id}"));
                };
                self.overlay = Some(Overlay::Confirm(Confirmation::Kick {
                    client: c.id.clone(),
                    name: c.name.clone(),
                    addr: c.addr.clone(),
                }));
            }
            Verb::Help => self.overlay = Some(Overlay::Help { scroll: 0 }),
            Verb::Quit => self.ask_quit(source),
        }
        Ok(())
    }

    fn queue_named(&self, name: &str) -> Result<&switchyard_broker::stats::QueueStats, String> {
        (self.snapshot.queues.iter())
            .find(|q| q.name == name)
            .ok_or_else(|| format!("No queue named {name} (Tab completes names)"))
    }

    /// The id of the client `name` names: its id, or the one name it gave in
    /// `hello` (two clients of one name are told apart by id).
    fn client_named(&self, name: &str) -> Result<String, String> {
        let clients = &self.snapshot.clients;
        if let Some(c) = clients.iter().find(|c| c.id == name) {
            return Ok(c.id.clone());
        }
        let named: Vec<&str> = (clients.iter())
            .filter(|c| c.name.as_deref() == Some(name))
            .map(|c| c.id.as_str())
            .collect();
        match named[..] {
            [id] => Ok(id.to_string()),
            [] => Err(format!("No client {name}, by id or name (Tab completes)")),
            _ => Err(format!(
                "{} clients are named {name} ({}): name one by id",
                named.len(),
                named.join(", ")
            )),
        }
    }

    /// Select the row of the current view whose key is `key`, clearing the
    /// table's filter if it hides that row.
    fn select_key(&mut self, key: &str) {
        let view = self.view;
        let model = tables::model(view);
        let find = |app: &App| {
            let table = &app.tables[view.index()];
            (table.rows.iter()).position(|&i| model.key(&app.snapshot, i) == key)
        };
        let at = find(self).or_else(|| {
            let table = &mut self.tables[view.index()];
            table.filter.clear();
            table.pattern.clear();
            self.rebuild(view);
            find(self)
        });
        if let Some(at) = at {
            self.move_selection(|t| t.selected = at);
        }
    }

    /// Esc, one level back: the `:` line closes; a kept filter (or `:t`
    /// pattern) clears; on a plain view, the view shown before it (the Overview
    /// when there is none). Popups and dialogs close with their own Esc first,
    /// and a filter being typed clears with its own.
    pub fn back(&mut self) {
        if self.command_line.take().is_some() {
            return;
        }
        let i = self.view.index();
        if self.tables[i].filtered() {
            self.tables[i].filter.clear();
            self.tables[i].pattern.clear();
            return self.rebuild(self.view);
        }
        let previous = self.back_to.pop().unwrap_or(View::Overview);
        if previous != self.view {
            self.show_view(previous, false);
        }
    }

    /// Remember `view` as the one to go back to, when it leaves the screen.
    pub(super) fn leaving(&mut self, view: View) {
        if self.back_to.last() != Some(&view) {
            self.back_to.push(view);
        }
        if self.back_to.len() > BACK_KEEP {
            self.back_to.remove(0);
        }
    }

    /// Space: freeze the tables, or resume them with the newest snapshot.
    pub(super) fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if self.paused {
            return self.set_status(
                Level::Info,
                "Paused: the tables hold still, the broker is still watched (Space resumes)",
            );
        }
        if let (Some(live), Some(at)) = (self.live.take(), self.last_refresh) {
            self.refresh(live, at);
        }
        self.set_status(Level::Info, "Resumed");
    }

    /// The rows the current table lists, or why there is nothing to act on: the
    /// actions on every listed row need a kept filter.
    fn listed(&self, key: &str, noun: &str) -> Result<Vec<usize>, String> {
        let table = self.current_table();
        if !table.filtered() {
            return Err(format!(
                "{key} acts on every {noun} a / filter lists: filter first"
            ));
        }
        if table.rows.is_empty() {
            return Err(format!("The filter lists no {noun}s"));
        }
        Ok(table.rows.clone())
    }

    pub(super) fn ask_purge_listed(&mut self) {
        if self.view != View::Queues {
            return;
        }
        match self.listed("Ctrl-X", "queue") {
            Ok(rows) => {
                let queues: Vec<String> = (rows.iter())
                    .map(|&i| self.snapshot.queues[i].name.clone())
                    .collect();
                let mut confirmation = Confirmation::PurgeListed { queues, ready: 0 };
                confirmation.update(&self.snapshot);
                self.overlay = Some(Overlay::Confirm(confirmation));
            }
            Err(why) => self.set_status(Level::Info, why),
        }
    }

    pub(super) fn ask_requeue_listed(&mut self) {
        if self.view != View::InFlight {
            return;
        }
        match self.listed("Ctrl-R", "job") {
            Ok(rows) => {
                let jobs = (rows.iter())
                    .map(|&i| {
                        let j = &self.snapshot.inflight[i];
                        (j.queue.clone(), j.msg.clone())
                    })
                    .collect();
                // Each holder named once, through one index of the clients: a
                // filter may list 10,000 jobs of as many clients.
                let names: HashMap<&str, Option<&str>> = (self.snapshot.clients.iter())
                    .map(|c| (c.id.as_str(), c.name.as_deref()))
                    .collect();
                let mut ids: Vec<&str> = (rows.iter())
                    .map(|&i| self.snapshot.inflight[i].client.as_str())
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let holders = (ids.iter())
                    .map(|&id| match names.get(id).copied().flatten() {
                        Some(name) => format!("{id} ({name})"),
                        None => id.to_string(),
                    })
                    .collect();
                self.overlay = Some(Overlay::Confirm(Confirmation::RequeueListed {
                    jobs,
                    holders,
                }));
            }
            Err(why) => self.set_status(Level::Info, why),
        }
    }

    pub(super) fn ask_kick_listed(&mut self) {
        if self.view != View::Clients {
            return;
        }
        match self.listed("Ctrl-K", "client") {
            Ok(rows) => {
                let clients = (rows.iter())
                    .map(|&i| self.snapshot.clients[i].id.clone())
                    .collect();
                let shown = (rows.iter())
                    .map(|&i| named(&self.snapshot.clients[i]))
                    .collect();
                self.overlay = Some(Overlay::Confirm(Confirmation::KickListed {
                    clients,
                    shown,
                }));
            }
            Err(why) => self.set_status(Level::Info, why),
        }
    }
}
