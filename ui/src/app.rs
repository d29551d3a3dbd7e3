//! The dashboard's state and the one place it changes: [`App::update`] takes an
//! [`Action`] (from a key, through the table in `keys.rs`) and runs it, sending
//! commands through the [`Source`]; [`App::refresh`] takes in a new snapshot.
//! Drawing (in `views/`) only reads this state.

use std::collections::VecDeque;
use std::time::Instant;

use crossterm::event::KeyEvent;
use switchyard_broker::{
    BrokerError, Command, CommandOutcome, PeekTarget, PeekedMessage, Snapshot, TailMessage,
};
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use crate::action::Action;
use crate::delivery::{Delivery, Subscribers};
use crate::keys::{self, Context};
use crate::publish::{DestinationKind, PublishForm};
use crate::rates::Rates;
use crate::source::Source;
use crate::tables::{self, Sort, TableState};
use crate::view::View;

/// How many ready messages a peek asks for.
pub const PEEK_COUNT: usize = 10;

/// How many tail messages the tail popup keeps; older ones scroll away.
pub const TAIL_KEEP: usize = 1_000;

/// How many tail messages one tick takes from the source.
const TAIL_BATCH: usize = 500;

/// How far a page moves in a popup.
const POPUP_PAGE: usize = 10;

/// The reason a kicked client is given.
pub const KICK_REASON: &str = "kicked by operator";

/// The reason a client kicked for being slow is given.
pub const KICK_SLOW_REASON: &str = "slow_consumer";

/// A destructive action waiting for a yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Purge a queue's ready messages; `count` is what the snapshot showed.
    Purge {
        /// The queue.
        queue: String,
        /// Ready messages when asked.
        count: u64,
    },
    /// Kick one client.
    Kick {
        /// Client id.
        client: String,
        /// Its name, if it gave one, for the question.
        name: Option<String>,
        /// Its address, for the question.
        addr: String,
    },
    /// Kick every client that was marked slow when asked.
    KickSlow {
        /// Their ids.
        clients: Vec<String>,
    },
}

impl Confirmation {
    /// The question the confirm dialog asks.
    pub fn question(&self) -> String {
        match self {
            Confirmation::Purge { queue, count } => {
                let s = if *count == 1 { "" } else { "s" };
                format!("Purge {count} ready message{s} from {queue}? y/n")
            }
            Confirmation::Kick { client, name, addr } => match name {
                Some(name) => format!("Kick client {client} ({name}, {addr})? y/n"),
                None => format!("Kick client {client} ({addr})? y/n"),
            },
            Confirmation::KickSlow { clients } => {
                let s = if clients.len() == 1 { "" } else { "s" };
                format!(
                    "Kick {} slow client{s} ({})? y/n",
                    clients.len(),
                    list(clients, 6)
                )
            }
        }
    }

    /// The confirm dialog's title.
    pub fn title(&self) -> &'static str {
        match self {
            Confirmation::Purge { .. } => "Purge queue",
            Confirmation::Kick { .. } => "Kick client",
            Confirmation::KickSlow { .. } => "Kick slow clients",
        }
    }
}

/// `a, b, c and 4 more`.
fn list(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(max) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// The next ready messages of a queue, as peeked.
#[derive(Debug, Clone, PartialEq)]
pub struct Peek {
    /// The queue.
    pub queue: String,
    /// What `peek` returned, next to be delivered first.
    pub messages: Vec<PeekedMessage>,
    /// First line shown.
    pub scroll: usize,
}

/// A live tail of a topic, with who each message reached.
#[derive(Debug, Clone)]
pub struct LiveTail {
    /// The topic tailed (the Topics view tails one topic by name).
    pub pattern: String,
    /// The newest [`TAIL_KEEP`] messages, oldest first.
    pub messages: VecDeque<TailEntry>,
    /// Messages received since the tail opened, dropped ones included.
    pub received: u64,
    /// How many messages back from the newest the view is scrolled; 0 follows.
    pub back: usize,
    /// The topic's subscriptions in the latest snapshot, filters compiled.
    pub subscribers: Subscribers,
}

/// A tailed message and what was worked out about it once, when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct TailEntry {
    /// The message.
    pub message: TailMessage,
    /// Its `data` as JSON text: what the filters read and the popup shows.
    pub data_json: String,
    /// Which subscriptions' filters passed it.
    pub delivery: Delivery,
}

impl LiveTail {
    fn new(topic: String, snapshot: &Snapshot) -> Self {
        LiveTail {
            subscribers: Subscribers::new(&topic, snapshot),
            pattern: topic,
            messages: VecDeque::new(),
            received: 0,
            back: 0,
        }
    }

    /// Take in new messages, judging each against the subscribers' filters now,
    /// so drawing only reads the result.
    fn push(&mut self, messages: Vec<TailMessage>) {
        let n = messages.len();
        self.received += n as u64;
        for message in messages {
            let data_json = serde_json::to_string(&message.data).unwrap_or_else(|e| e.to_string());
            let delivery = self.subscribers.deliver(&message, &data_json);
            self.messages.push_back(TailEntry {
                message,
                data_json,
                delivery,
            });
        }
        while self.messages.len() > TAIL_KEEP {
            self.messages.pop_front();
        }
        // Scrolled back, the view stays on what it showed instead of following.
        if self.back > 0 {
            self.back = (self.back + n).min(self.messages.len().saturating_sub(1));
        }
    }
}

/// The tail an overlay holds, if any: the tail popup's, or the one a publish form
/// opened from it keeps running underneath.
fn tail_of(overlay: &mut Option<Overlay>) -> Option<&mut LiveTail> {
    match overlay {
        Some(Overlay::Tail(tail)) => Some(tail),
        Some(Overlay::Publish {
            tail: Some(tail), ..
        }) => Some(tail),
        _ => None,
    }
}

/// A popup or dialog over the current view.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// The key table.
    Help,
    /// A question before a destructive action.
    Confirm(Confirmation),
    /// The publish form.
    Publish {
        /// The form.
        form: PublishForm,
        /// The tail it was opened from: it keeps taking messages underneath, and
        /// comes back when the form closes, to show who the test message reached.
        tail: Option<Box<LiveTail>>,
    },
    /// Peeked queue messages.
    Peek(Peek),
    /// A live topic tail.
    Tail(LiveTail),
    /// One client's details and subscriptions.
    Client {
        /// Client id.
        client: String,
        /// First subscription row shown.
        scroll: usize,
    },
}

/// How a status message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Neutral information.
    Info,
    /// An action succeeded.
    Done,
    /// An action failed.
    Error,
}

/// The one-line result of the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// What happened.
    pub text: String,
    /// Success, failure or neither.
    pub level: Level,
}

/// The dashboard's whole state.
#[derive(Debug)]
pub struct App {
    pub(crate) url: String,
    pub(crate) snapshot: Snapshot,
    pub(crate) rates: Rates,
    pub(crate) view: View,
    pub(crate) tables: [TableState; 5],
    /// Tables rebuilt from the current snapshot; the others are rebuilt when shown.
    fresh: [bool; 5],
    pub(crate) overlay: Option<Overlay>,
    pub(crate) filter_input: Option<Input>,
    pub(crate) status: Option<Status>,
    last_refresh: Option<Instant>,
    quit: bool,
}

impl App {
    /// A dashboard for the broker at `url` (shown in the header), with no data yet.
    pub fn new(url: impl Into<String>) -> Self {
        let tables = View::ALL.map(|v| TableState::new(tables::model(v).default_sort()));
        App {
            url: url.into(),
            snapshot: Snapshot::default(),
            rates: Rates::default(),
            view: View::Overview,
            tables,
            fresh: [false; 5],
            overlay: None,
            filter_input: None,
            status: None,
            last_refresh: None,
            quit: false,
        }
    }

    /// Has the user asked to leave?
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// The view shown.
    pub fn view(&self) -> View {
        self.view
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The popup or dialog open, if any.
    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    /// The result of the last action, if any.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// The state of `view`'s table.
    pub fn table(&self, view: View) -> &TableState {
        &self.tables[view.index()]
    }

    /// Where the keyboard is.
    pub fn context(&self) -> Context {
        match &self.overlay {
            Some(Overlay::Confirm(_)) => Context::Confirm,
            Some(Overlay::Publish { .. }) => Context::Form,
            Some(Overlay::Tail(_)) => Context::Tail,
            Some(_) => Context::Popup,
            None if self.filter_input.is_some() => Context::Filter,
            None => Context::Table,
        }
    }

    /// Take in a snapshot seen at `now`: derive rates, re-filter and re-sort the
    /// shown table keeping its selection.
    pub fn refresh(&mut self, snapshot: Snapshot, now: Instant) {
        self.rates.observe(&snapshot, now);
        self.snapshot = snapshot;
        self.last_refresh = Some(now);
        if let Some(tail) = tail_of(&mut self.overlay) {
            tail.subscribers.update(&self.snapshot);
        }
        self.fresh = [false; 5];
        self.rebuild(self.view);
        if self.view != View::Overview {
            // The overview's event log follows new events even while hidden.
            self.rebuild(View::Overview);
        }
    }

    /// One tick of the event loop: take in the source's latest snapshot and any
    /// new tail messages.
    pub fn tick(&mut self, source: &mut dyn Source, now: Instant) {
        // The snapshot first, so new tail messages are judged against the
        // subscriptions as they are now.
        self.refresh(source.snapshot(), now);
        if let Some(tail) = tail_of(&mut self.overlay) {
            tail.push(source.poll_tail(TAIL_BATCH));
        }
    }

    /// Turn a key press into an action (through the key table) and run it.
    pub fn handle_key(&mut self, key: KeyEvent, source: &mut dyn Source) {
        let context = self.context();
        match keys::action_for(context, self.view, &key) {
            Some(action) => self.update(action, source),
            None if context.takes_text() => self.update(Action::Type(key), source),
            None => {}
        }
    }

    /// Run one action.
    pub fn update(&mut self, action: Action, source: &mut dyn Source) {
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.overlay = Some(Overlay::Help),
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
            Action::ApplyFilter => self.filter_input = None,
            Action::ClearFilter => {
                self.filter_input = None;
                self.set_filter(String::new());
            }
            Action::SortNext => self.sort(true),
            Action::SortReverse => self.sort(false),
            Action::Open => self.open(source),
            Action::Publish => self.open_publish_form(),
            Action::Purge => self.ask_purge(),
            Action::Kick => self.ask_kick(),
            Action::KickSlow => self.ask_kick_slow(),
            Action::Requeue => self.requeue(source),
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
            Action::Type(key) => self.type_key(key),
        }
    }

    fn set_status(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            level,
        });
    }

    fn current_table(&self) -> &TableState {
        &self.tables[self.view.index()]
    }

    fn rebuild(&mut self, view: View) {
        let i = view.index();
        self.tables[i].rebuild(tables::model(view), &self.snapshot, &self.rates);
        self.fresh[i] = true;
    }

    fn show(&mut self, view: View) {
        self.view = view;
        self.filter_input = None;
        if !self.fresh[view.index()] {
            self.rebuild(view);
        }
    }

    /// Apply a selection movement to the current table and remember the row.
    fn move_selection(&mut self, f: impl FnOnce(&mut TableState)) {
        let i = self.view.index();
        f(&mut self.tables[i]);
        self.tables[i].remember(tables::model(self.view), &self.snapshot);
    }

    fn scroll(&mut self, delta: isize) {
        match &mut self.overlay {
            Some(Overlay::Peek(peek)) => peek.scroll = peek.scroll.saturating_add_signed(delta),
            Some(Overlay::Client { scroll, .. }) => *scroll = scroll.saturating_add_signed(delta),
            // Up goes back in time, away from the newest message.
            Some(Overlay::Tail(tail)) => {
                tail.back = tail
                    .back
                    .saturating_add_signed(-delta)
                    .min(tail.messages.len().saturating_sub(1));
            }
            Some(_) => {}
            None => self.move_selection(|t| t.move_by(delta)),
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

    fn sort(&mut self, next_column: bool) {
        let model = tables::model(self.view);
        let columns = model.columns();
        let table = &mut self.tables[self.view.index()];
        let Sort { column, descending } = table.sort;
        table.sort = if next_column {
            let column = (column + 1) % columns.len();
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

    fn selected(&self, view: View) -> Option<usize> {
        self.tables[view.index()].selected_row()
    }

    fn open(&mut self, source: &mut dyn Source) {
        match self.view {
            View::Overview => {}
            View::Topics => {
                let Some(topic) = self
                    .selected(View::Topics)
                    .map(|i| self.snapshot.topics[i].name.clone())
                else {
                    return self.set_status(Level::Info, "No topic selected");
                };
                match source.open_tail(&topic) {
                    Ok(()) => {
                        self.overlay = Some(Overlay::Tail(LiveTail::new(topic, &self.snapshot)))
                    }
                    Err(e) => self.set_status(Level::Error, format!("Tail of {topic} failed: {e}")),
                }
            }
            View::Queues => {
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
        self.overlay = Some(Overlay::Publish { form, tail: None });
    }

    fn ask_purge(&mut self) {
        if self.view != View::Queues {
            return;
        }
        if let Some(i) = self.selected(View::Queues) {
            let q = &self.snapshot.queues[i];
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

    fn ask_kick_slow(&mut self) {
        let clients: Vec<String> = self
            .snapshot
            .clients
            .iter()
            .filter(|c| c.slow)
            .map(|c| c.id.clone())
            .collect();
        if clients.is_empty() {
            self.set_status(Level::Info, "No client is marked slow");
        } else {
            self.overlay = Some(Overlay::Confirm(Confirmation::KickSlow { clients }));
        }
    }

    fn requeue(&mut self, source: &mut dyn Source) {
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

    fn confirm(&mut self, source: &mut dyn Source) {
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

    fn cancel(&mut self) {
        match self.overlay.take() {
            Some(Overlay::Confirm(confirmation)) => {
                let what = match confirmation {
                    Confirmation::Purge { queue, .. } => format!("purge of {queue}"),
                    Confirmation::Kick { client, .. } => format!("kick of {client}"),
                    Confirmation::KickSlow { .. } => "kick of slow clients".to_string(),
                };
                self.set_status(Level::Info, format!("Cancelled the {what}"));
            }
            Some(Overlay::Publish { tail, .. }) => {
                self.overlay = tail.map(|tail| Overlay::Tail(*tail));
                self.set_status(Level::Info, "Publish cancelled");
            }
            other => self.overlay = other,
        }
    }

    fn submit(&mut self, source: &mut dyn Source) {
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

    fn close(&mut self, source: &mut dyn Source) {
        if let Some(Overlay::Tail(_)) = self.overlay.take() {
            source.close_tail();
        }
    }

    fn type_key(&mut self, key: KeyEvent) {
        if let Some(Overlay::Publish { form, .. }) = &mut self.overlay {
            form.type_key(key);
            // An edit makes the last error stale.
            form.error = None;
        } else if let Some(input) = &mut self.filter_input {
            input.handle_event(&crossterm::event::Event::Key(key));
            let filter = input.value().to_string();
            self.set_filter(filter);
        }
    }

    /// After a command, show its effect now rather than at the next tick. The time
    /// is the last refresh's: no time has passed as far as rates are concerned.
    fn refetch(&mut self, source: &mut dyn Source) {
        if let Some(at) = self.last_refresh {
            self.refresh(source.snapshot(), at);
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

#[cfg(test)]
mod tests;
