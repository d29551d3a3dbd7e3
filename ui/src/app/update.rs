//! The update: each [`Action`] turned into a change of the state. Actions that
//! ask the broker for something hand over to `commands.rs`.

use crossterm::event::KeyEvent;
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use super::overlay::{self, Confirmation, Overlay, StopBroker};
use super::{App, Level};
use crate::action::Action;
use crate::publish::{DestinationKind, PublishForm};
use crate::source::Source;
use crate::tables::{self, Sort, TableState};
use crate::view::View;

/// How far a page moves in a popup.
const POPUP_PAGE: usize = 10;

impl App {
    /// Run one action.
    pub fn update(&mut self, action: Action, source: &mut dyn Source) {
        if action.changes_broker() && source.read_only() {
            return self.set_status(Level::Error, super::command_line::READ_ONLY);
        }
        match action {
            Action::Quit => self.ask_quit(&*source),
            Action::Help => self.overlay = Some(Overlay::Help { scroll: 0 }),
            Action::ShowView(view) => self.show(view),
            Action::NextView => self.show(self.view.shifted(1)),
            Action::PrevView => self.show(self.view.shifted(View::ALL.len() - 1)),
            Action::Down => self.scroll(1),
            Action::Up => self.scroll(-1),
            Action::PageDown => self.page(true),
            Action::PageUp => self.page(false),
            Action::Top => self.jump(false),
            Action::Bottom => self.jump(true),
            Action::Filter => {
                self.filter_input = Some(Input::new(self.current_table().filter.clone()));
            }
            Action::ApplyFilter if self.search_input.is_some() => self.apply_search(source),
            Action::ClearFilter if self.search_input.is_some() => self.search_input = None,
            Action::ApplyFilter => self.filter_input = None,
            Action::ClearFilter => {
                self.filter_input = None;
                self.set_filter(String::new());
            }
            Action::Back => self.back(),
            Action::CommandLine => self.open_command_line(),
            Action::RunCommand => self.run_command(source),
            Action::Complete => self.complete_command(),
            Action::HistoryBack => self.recall_command(true),
            Action::HistoryForward => self.recall_command(false),
            Action::Pause => self.toggle_pause(),
            Action::PurgeListed => self.ask_purge_listed(),
            Action::RequeueListed => self.ask_requeue_listed(),
            Action::KickListed => self.ask_kick_listed(),
            Action::SortNext => self.sort(true),
            Action::SortReverse => self.sort(false),
            Action::SortFullest => self.sort_fullest(),
            Action::Open => self.open(source),
            Action::Publish => self.open_publish_form(),
            Action::Purge => self.ask_purge(),
            Action::Kick => self.ask_kick(),
            Action::KickSlow => self.ask_kick_slow(),
            Action::Requeue => self.requeue(source),
            Action::MoveBack => self.ask_move_back(),
            Action::MoveOne => self.ask_move_one(),
            Action::DropMessage => self.ask_drop(),
            Action::Search => self.start_search(),
            Action::Export => self.export(),
            Action::RequeueConsumer => self.ask_requeue_consumer(),
            // The stop question sits over any other dialog, so it takes the answer.
            Action::Confirm if self.stopping.is_some() => self.quit = true,
            Action::Cancel if self.stopping.is_some() => self.keep_running(),
            Action::Confirm => self.confirm(source),
            Action::Cancel => self.cancel(),
            Action::Submit => self.submit(source),
            Action::FocusNext => {
                if let Some(Overlay::Publish { form, .. }) = &mut self.overlay {
                    form.focus_next();
                }
            }
            Action::FocusPrev => {
                if let Some(Overlay::Publish { form, .. }) = &mut self.overlay {
                    form.focus_prev();
                }
            }
            Action::Close => self.close(source),
            Action::NextPage => self.turn_peek_page(source, true),
            Action::PrevPage => self.turn_peek_page(source, false),
            Action::Type(key) => self.type_key(key),
        }
        // Whatever the source has answered already shows now: a source that answers
        // at once (a fixture) is done before the next frame.
        self.receive_outcomes(source);
    }

    /// Quit, asking first when that stops a broker that would drop clients or
    /// in-memory messages (counted from the latest snapshot).
    pub(super) fn ask_quit(&mut self, source: &dyn Source) {
        let stopping = StopBroker::of(&self.snapshot);
        if !source.quitting_stops_broker() || stopping.loses_nothing() {
            self.quit = true;
        } else {
            self.stopping = Some(stopping);
        }
    }

    /// No to the stop question: back to whatever was open under it.
    fn keep_running(&mut self) {
        self.stopping = None;
        self.set_status(Level::Info, "Not stopped: the broker keeps running");
    }

    pub(super) fn show(&mut self, view: View) {
        self.show_view(view, true);
    }

    /// Show `view`; `remember` the one it replaces for Esc to go back to (not
    /// when going back).
    pub(super) fn show_view(&mut self, view: View, remember: bool) {
        // A toast is about the view it was raised on.
        if view != self.view {
            self.status = None;
            if remember {
                self.leaving(self.view);
            }
        }
        self.view = view;
        self.filter_input = None;
        if !self.fresh[view.index()] {
            self.rebuild(view);
        }
    }

    /// Apply a selection movement to the current table and remember the row.
    pub(super) fn move_selection(&mut self, f: impl FnOnce(&mut TableState)) {
        let i = self.view.index();
        f(&mut self.tables[i]);
        self.tables[i].remember(tables::model(self.view), &self.snapshot);
    }

    fn scroll(&mut self, delta: isize) {
        match &mut self.overlay {
            Some(Overlay::Peek(peek)) => peek.select_by(delta),
            Some(Overlay::Help { scroll }) => *scroll = scroll.saturating_add_signed(delta),
            Some(Overlay::Client { scroll, .. }) => *scroll = scroll.saturating_add_signed(delta),
            // Up goes back in time, away from the newest message.
            Some(Overlay::Tail(tail)) => {
                tail.back = tail
                    .back
                    .saturating_add_signed(-delta)
                    .min(tail.messages.len().saturating_sub(1));
            }
            Some(_) => {}
            None => match &mut self.page {
                Some(page) => page.scroll = page.scroll.saturating_add_signed(delta),
                None => self.move_selection(|t| t.move_by(delta)),
            },
        }
    }

    fn page(&mut self, down: bool) {
        match &self.overlay {
            Some(_) => {
                let page = isize::try_from(POPUP_PAGE).unwrap_or(1);
                self.scroll(if down { page } else { -page });
            }
            None => self.move_selection(|t| if down { t.page_down() } else { t.page_up() }),
        }
    }

    fn jump(&mut self, bottom: bool) {
        match &mut self.overlay {
            // Views clamp an overlong scroll to the content when they draw it.
            Some(Overlay::Peek(peek)) => peek.scroll = if bottom { usize::MAX } else { 0 },
            Some(Overlay::Help { scroll }) => *scroll = if bottom { usize::MAX } else { 0 },
            Some(Overlay::Client { scroll, .. }) => *scroll = if bottom { usize::MAX } else { 0 },
            Some(Overlay::Tail(tail)) => {
                tail.back = if bottom {
                    0
                } else {
                    tail.messages.len().saturating_sub(1)
                };
            }
            Some(_) => {}
            None => self.move_selection(|t| if bottom { t.last() } else { t.first() }),
        }
    }

    fn set_filter(&mut self, filter: String) {
        let i = self.view.index();
        if self.tables[i].filter != filter {
            self.tables[i].filter = filter;
            self.rebuild(self.view);
        }
    }

    /// Clients by buffer fill, fullest first: who will be kicked next.
    fn sort_fullest(&mut self) {
        if self.view != View::Clients {
            return;
        }
        self.tables[View::Clients.index()].sort = Sort {
            column: tables::clients::BUFFER_COLUMN,
            descending: true,
        };
        self.rebuild(View::Clients);
        // A new order starts at its top: the first rows are what it is for.
        self.move_selection(|table| {
            table.selected = 0;
            table.offset = 0;
        });
        self.set_status(Level::Info, "Sorted by outbound buffer, fullest first");
    }

    fn sort(&mut self, next_column: bool) {
        let model = tables::model(self.view);
        let columns = model.columns();
        let table = &mut self.tables[self.view.index()];
        let Sort { column, descending } = table.sort;
        table.sort = if next_column {
            // Past the columns not drawn (Node, on one machine).
            let mut column = (column + 1) % columns.len();
            while !columns[column].drawn_for(&self.snapshot) {
                column = (column + 1) % columns.len();
            }
            Sort {
                column,
                descending: columns[column].numeric,
            }
        } else {
            Sort {
                column,
                descending: !descending,
            }
        };
        let sort = table.sort;
        self.rebuild(self.view);
        // A new order starts at its top: the first rows are what it is for.
        self.move_selection(|table| {
            table.selected = 0;
            table.offset = 0;
        });
        let order = match (columns[sort.column].numeric, sort.descending) {
            (true, true) => "highest first",
            (true, false) => "lowest first",
            (false, false) => "A to Z",
            (false, true) => "Z to A",
        };
        self.set_status(
            Level::Info,
            format!("Sorted by {}, {order}", columns[sort.column].title),
        );
    }

    fn open(&mut self, source: &mut dyn Source) {
        if self.page.is_some() {
            return self.open_from_page(source);
        }
        match self.view {
            View::Overview => {}
            View::Topics | View::Queues => self.open_page(source),
            View::Clients => {
                if let Some(i) = self.selected(View::Clients) {
                    self.overlay = Some(Overlay::Client {
                        client: self.snapshot.clients[i].id.clone(),
                        scroll: 0,
                    });
                }
            }
            View::InFlight => {
                if let Some(i) = self.selected(View::InFlight) {
                    self.overlay = Some(Overlay::Client {
                        client: self.snapshot.inflight[i].client.clone(),
                        scroll: 0,
                    });
                }
            }
        }
    }

    fn open_publish_form(&mut self) {
        match self.overlay.take() {
            // From a tail, to its topic: publish a test message and watch which
            // filters pass it.
            Some(Overlay::Tail(tail)) => {
                let form = PublishForm::new(DestinationKind::Topic, &tail.pattern);
                self.overlay = Some(Overlay::Publish {
                    form,
                    tail: Some(Box::new(tail)),
                    sending: None,
                });
                return;
            }
            other => self.overlay = other,
        }
        let (kind, name) = match self.view {
            View::Topics => (
                DestinationKind::Topic,
                self.selected(View::Topics)
                    .map(|i| self.snapshot.topics[i].name.clone()),
            ),
            View::Queues => (
                DestinationKind::Queue,
                self.selected(View::Queues)
                    .map(|i| self.snapshot.queues[i].name.clone()),
            ),
            View::InFlight => (
                DestinationKind::Queue,
                self.selected(View::InFlight)
                    .map(|i| self.snapshot.inflight[i].queue.clone()),
            ),
            View::Overview | View::Clients => return,
        };
        let form = PublishForm::new(kind, name.as_deref().unwrap_or(""));
        self.overlay = Some(Overlay::Publish {
            form,
            tail: None,
            sending: None,
        });
    }

    fn ask_purge(&mut self) {
        if self.view != View::Queues {
            return;
        }
        if let Some(i) = self.selected(View::Queues) {
            let q = &self.snapshot.queues[i];
            if q.ready == 0 {
                let text = format!("Nothing to purge: {} has no ready messages", q.name);
                return self.set_status(Level::Info, text);
            }
            self.overlay = Some(Overlay::Confirm(Confirmation::Purge {
                queue: q.name.clone(),
                count: q.ready,
            }));
        }
    }

    fn ask_kick(&mut self) {
        if self.view != View::Clients {
            return;
        }
        if let Some(i) = self.selected(View::Clients) {
            let c = &self.snapshot.clients[i];
            self.overlay = Some(Overlay::Confirm(Confirmation::Kick {
                client: c.id.clone(),
                name: c.name.clone(),
                addr: c.addr.clone(),
            }));
        }
    }

    /// On the In-flight view: every job of the selected job's consumer, counted
    /// in the list as shown.
    fn ask_requeue_consumer(&mut self) {
        if self.view != View::InFlight {
            return;
        }
        let Some(i) = self.selected(View::InFlight) else {
            return self.set_status(Level::Info, "No job selected");
        };
        let job = &self.snapshot.inflight[i];
        let (client, cid) = (job.client.clone(), job.cid.clone());
        let count = (self.snapshot.inflight.iter())
            .filter(|j| j.client == client && j.cid == cid)
            .count() as u64;
        let name = (self.snapshot.clients.iter())
            .find(|c| c.id == client)
            .and_then(|c| c.name.clone());
        self.overlay = Some(Overlay::Confirm(Confirmation::RequeueConsumer {
            client,
            cid,
            name,
            count,
        }));
    }

    /// From the peek popup of a dead-letter queue: where its messages died is
    /// their `x-dead-letter-queue`, the first one shown naming it.
    fn ask_move_back(&mut self) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let died_in = peek.messages.iter().find_map(super::browse::died_in);
        let Some(to) = died_in else {
            let text = format!(
                "Nothing to move back: the messages shown of {} are not dead letters (no x-dead-letter-queue)",
                peek.queue
            );
            return self.set_status(Level::Info, text);
        };
        let from = peek.queue.clone();
        let count = peek.ready.unwrap_or(peek.messages.len() as u64);
        self.ask_over_peek(Confirmation::MoveBack { from, to, count });
    }

    fn ask_kick_slow(&mut self) {
        let slow = || self.snapshot.clients.iter().filter(|c| c.slow);
        let clients: Vec<String> = slow().map(|c| c.id.clone()).collect();
        let shown = slow().map(overlay::named).collect();
        if clients.is_empty() {
            self.set_status(Level::Info, "No client is marked slow");
        } else {
            self.overlay = Some(Overlay::Confirm(Confirmation::KickSlow { clients, shown }));
        }
    }

    fn cancel(&mut self) {
        match self.overlay.take() {
            Some(Overlay::Confirm(confirmation)) => {
                let what = match confirmation {
                    Confirmation::Purge { queue, .. } => format!("purge of {queue}"),
                    Confirmation::Kick { client, .. } => format!("kick of {client}"),
                    Confirmation::KickSlow { .. } => "kick of slow clients".to_string(),
                    Confirmation::MoveBack { from, .. } => format!("move of {from}'s dead letters"),
                    Confirmation::MoveOne { from, msg, .. } => {
                        format!("move of message {msg} of {from}")
                    }
                    Confirmation::Drop { queue, msg } => {
                        format!("drop of message {msg} of {queue}")
                    }
                    Confirmation::Move { from, to, .. } => format!("move from {from} to {to}"),
                    Confirmation::PurgeListed { queues, .. } => {
                        format!("purge of {} listed queues", queues.len())
                    }
                    Confirmation::RequeueListed { jobs, .. } => {
                        format!("requeue of {} listed jobs", jobs.len())
                    }
                    Confirmation::KickListed { clients, .. } => {
                        format!("kick of {} listed clients", clients.len())
                    }
                    Confirmation::RequeueConsumer { client, cid, .. } => {
                        format!("requeue of {client}/{cid}'s jobs")
                    }
                };
                self.set_status(Level::Info, format!("Cancelled the {what}"));
                self.overlay = self.behind.take();
            }
            Some(Overlay::Publish { tail, sending, .. }) => {
                self.overlay = tail.map(|tail| Overlay::Tail(*tail));
                // What was sent cannot be called back; its outcome shows when it comes.
                let text = match sending {
                    Some(_) => "Form closed; the message already sent is still on its way",
                    None => "Publish cancelled",
                };
                self.set_status(Level::Info, text);
            }
            other => self.overlay = other,
        }
    }

    fn close(&mut self, source: &mut dyn Source) {
        match self.overlay.take() {
            Some(Overlay::Tail(_)) => source.close_tail(),
            Some(_) => {}
            // Nothing over the page: the page itself closes, back to its view.
            None => self.close_page(),
        }
    }

    fn type_key(&mut self, key: KeyEvent) {
        if let Some(input) = &mut self.search_input {
            input.handle_event(&crossterm::event::Event::Key(key));
        } else if let Some(Overlay::Publish { form, .. }) = &mut self.overlay {
            form.type_key(key);
            // An edit makes the last error stale.
            form.error = None;
        } else if self.command_line.is_some() {
            self.type_command(key);
        } else if let Some(input) = &mut self.filter_input {
            input.handle_event(&crossterm::event::Event::Key(key));
            let filter = input.value().to_string();
            self.set_filter(filter);
        }
    }
}
