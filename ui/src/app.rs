//! The dashboard's state and the one place it changes: [`App::update`] takes an
//! [`Action`] (from a key, through the table in `keys.rs`) and runs it, sending
//! commands through the [`Source`]; [`App::refresh`] takes in a new snapshot.
//! Drawing (in `views/`) only reads this state.
//!
//! The state is here; `update.rs` turns actions into changes of it, `commands.rs`
//! starts the ones that ask the broker, `outcomes.rs` shows what they come back
//! with (later: the broker may take seconds, and the screen does not wait),
//! `overlay.rs` holds the popups and dialogs, and `command_line.rs` runs what
//! the `:` line asks for and the actions on every row a filter lists.

mod browse;
mod command_line;
mod commands;
mod outcomes;
mod overlay;
mod page;
mod update;

use std::time::{Duration, Instant};

use crossterm::event::KeyEvent;
use switchyard_broker::Snapshot;
use tui_input::Input;

use crate::action::Action;
use crate::command_line::CommandLine;
use crate::keys::{self, Context};
use crate::rates::Rates;
use crate::reply::Replies;
use crate::source::{Link, Source, Wants};
use crate::tables::{self, TableState};
use crate::view::View;

pub use commands::{KICK_REASON, KICK_SLOW_REASON, PEEK_COUNT};
pub use overlay::{
    describe_query, query_of, Confirmation, LiveTail, Overlay, Peek, StopBroker, TailEntry,
    TAIL_KEEP,
};
pub use page::{Page, PageData, PAGE_EVERY};

/// How long a status message (a toast) stays on screen.
pub const TOAST_FOR: Duration = Duration::from_secs(4);

/// In-flight jobs a remote source is asked for while a view lists them: the
/// oldest, as the in-flight table sorts by default. Eight screens of rows, at a
/// cost that does not grow with the broker's ledger (docs/PROTOCOL.md, `watch`).
pub const INFLIGHT_SHOWN: usize = 200;

/// How many tail messages one tick takes from the source.
const TAIL_BATCH: usize = 500;

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

/// The one-line result of the last action: a toast, gone after [`TOAST_FOR`]
/// or when another view is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// What happened.
    pub text: String,
    /// Success, failure or neither.
    pub level: Level,
    /// When it was set, on the app's clock (the time of the last refresh), so
    /// expiry follows the ticks and tests stay deterministic; `None` until the
    /// first refresh gives it a time.
    since: Option<Instant>,
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
    /// A queue's or topic's page, open over its view (and under any popup).
    pub(crate) page: Option<Page>,
    /// The popup a question was asked from (the peek, for a drop or a move):
    /// it comes back once the question is answered, either way.
    pub(crate) behind: Option<Overlay>,
    /// The question before quitting stops the broker, over everything else.
    pub(crate) stopping: Option<StopBroker>,
    pub(crate) filter_input: Option<Input>,
    /// The search typed after `/` in the peek or the tail popup, while typing.
    pub(crate) search_input: Option<Input>,
    /// Where `e` writes its JSON Lines files.
    pub(crate) export_dir: std::path::PathBuf,
    pub(crate) status: Option<Status>,
    last_refresh: Option<Instant>,
    quit: bool,
    /// Where the source sends command outcomes back.
    replies: Replies,
    /// Actions waiting for the broker's answers, oldest first.
    running: Vec<outcomes::Running>,
    /// The link to the broker as of the last tick.
    pub(crate) link: Link,
    /// Whether the source refuses actions that change the broker.
    pub(crate) read_only: bool,
    /// The `:` line, while it is open.
    pub(crate) command_line: Option<CommandLine>,
    /// Lines run from the `:` line this session, oldest first.
    pub(crate) history: Vec<String>,
    /// Views shown before this one, for Esc to go back to; the newest last.
    back_to: Vec<View>,
    /// Whether the tables are frozen: the newest snapshot taken meanwhile waits
    /// here (`Some` once one has come), shown when they resume.
    pub(crate) paused: bool,
    live: Option<Snapshot>,
}

/// Views Esc can go back through.
const BACK_KEEP: usize = 32;

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
            page: None,
            behind: None,
            stopping: None,
            filter_input: None,
            search_input: None,
            export_dir: std::path::PathBuf::from("."),
            status: None,
            last_refresh: None,
            quit: false,
            replies: Replies::new(),
            running: Vec::new(),
            link: Link::Up,
            read_only: false,
            command_line: None,
            history: Vec::new(),
            back_to: Vec::new(),
            paused: false,
            live: None,
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

    /// The question before quitting stops the broker, if it is being asked.
    pub fn stopping(&self) -> Option<&StopBroker> {
        self.stopping.as_ref()
    }

    /// The result of the last action, if any.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// Write exports (`e` in the peek and the tail) into `dir` rather than the
    /// working directory.
    pub fn export_into(&mut self, dir: impl Into<std::path::PathBuf>) {
        self.export_dir = dir.into();
    }

    /// The search being typed in the peek or the tail popup, if any.
    pub fn search_input(&self) -> Option<&str> {
        self.search_input.as_ref().map(Input::value)
    }

    /// The state of `view`'s table.
    pub fn table(&self, view: View) -> &TableState {
        &self.tables[view.index()]
    }

    /// Where the keyboard is.
    pub fn context(&self) -> Context {
        if self.stopping.is_some() {
            return Context::Confirm;
        }
        // Typing a search in the peek or the tail: keys are text, as in a filter.
        if self.search_input.is_some()
            && matches!(self.overlay, Some(Overlay::Peek(_) | Overlay::Tail(_)))
        {
            return Context::Filter;
        }
        match &self.overlay {
            Some(Overlay::Confirm(_)) => Context::Confirm,
            Some(Overlay::Publish { .. }) => Context::Form,
            Some(Overlay::Tail(_)) => Context::Tail,
            Some(Overlay::Peek(_)) => Context::Peek,
            Some(_) => Context::Popup,
            None if self.command_line.is_some() => Context::Command,
            None if self.page.is_some() => Context::Page,
            None if self.filter_input.is_some() => Context::Filter,
            None => Context::Table,
        }
    }

    /// Whether the tables are paused (Space): they show the snapshot they froze at.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Take in a snapshot seen at `now`: derive rates, re-filter and re-sort the
    /// shown table keeping its selection. While paused, the snapshot is kept for
    /// when the tables resume, and only the clock and open questions follow it.
    pub fn refresh(&mut self, snapshot: Snapshot, now: Instant) {
        self.last_refresh = Some(now);
        self.expire_status(now);
        // An open question states what would be lost now, not when it was asked:
        // even while paused, it follows the broker.
        if let Some(stopping) = &mut self.stopping {
            *stopping = StopBroker::of(&snapshot);
        }
        if let Some(Overlay::Confirm(confirmation)) = &mut self.overlay {
            confirmation.update(&snapshot);
        }
        if self.paused {
            self.live = Some(snapshot);
            return;
        }
        // While the link is down the snapshot is the last one received (or none
        // yet): its counters say nothing about rates now.
        if self.link == Link::Up {
            self.rates.observe(&snapshot, now);
        }
        self.snapshot = snapshot;
        if let Some(tail) = overlay::tail_of(&mut self.overlay) {
            tail.subscribers.update(&self.snapshot);
        }
        self.fresh = [false; 5];
        self.rebuild(self.view);
        if self.view != View::Overview {
            // The overview's event log follows new events even while hidden.
            self.rebuild(View::Overview);
        }
    }

    /// Call `wake` (from any thread) whenever a command's outcome arrives, so an
    /// event loop waiting for input or the next tick can take it at once.
    pub fn wake_on_reply(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        self.replies.wake_with(wake);
    }

    /// One tick of the event loop: take in any command outcomes that arrived, the
    /// source's latest snapshot and any new tail messages.
    pub fn tick(&mut self, source: &mut dyn Source, now: Instant) {
        self.receive_outcomes(source);
        let link = source.link();
        if link == Link::Up && self.link != Link::Up {
            // Back after a gap (the broker may have restarted, its counters from
            // zero): rates start again from the first snapshot now.
            self.rates = Rates::default();
        }
        self.link = link;
        self.read_only = source.read_only();
        source.want(&self.wants());
        // The snapshot first, so new tail messages are judged against the
        // subscriptions as they are now.
        self.refresh(source.snapshot(), now);
        if let Some(tail) = overlay::tail_of(&mut self.overlay) {
            tail.push(source.poll_tail(TAIL_BATCH));
        }
        self.refresh_page(source);
        self.receive_outcomes(source);
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

    fn set_status(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            level,
            since: self.last_refresh,
        });
    }

    /// Drop the status once it has been shown for [`TOAST_FOR`].
    fn expire_status(&mut self, now: Instant) {
        let Some(status) = &mut self.status else {
            return;
        };
        match status.since {
            Some(since) if now.saturating_duration_since(since) >= TOAST_FOR => {
                self.status = None;
            }
            Some(_) => {}
            None => status.since = Some(now),
        }
    }

    /// How the link to the broker stands, as of the last tick.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The time of the last refresh: what the screen says "now" is, so that a
    /// drawing never reads the clock itself.
    pub(crate) fn now(&self) -> Instant {
        self.last_refresh.unwrap_or_else(Instant::now)
    }

    /// What is on screen, for a source that sends only that: the oldest
    /// [`INFLIGHT_SHOWN`] jobs while the in-flight view is up, a client's jobs while
    /// its detail is open, no job list otherwise.
    fn wants(&self) -> Wants {
        match &self.overlay {
            Some(Overlay::Client { client, .. }) => Wants {
                inflight: INFLIGHT_SHOWN,
                client: Some(client.clone()),
            },
            _ if self.view == View::InFlight => Wants {
                inflight: INFLIGHT_SHOWN,
                client: None,
            },
            _ => Wants::default(),
        }
    }

    fn current_table(&self) -> &TableState {
        &self.tables[self.view.index()]
    }

    fn rebuild(&mut self, view: View) {
        let i = view.index();
        self.tables[i].rebuild(tables::model(view), &self.snapshot, &self.rates);
        self.fresh[i] = true;
    }

    fn selected(&self, view: View) -> Option<usize> {
        self.tables[view.index()].selected_row()
    }

    /// After a command, show its effect now rather than at the next tick. The time
    /// is the last refresh's: no time has passed as far as rates are concerned.
    fn refetch(&mut self, source: &mut dyn Source) {
        if let Some(at) = self.last_refresh {
            self.refresh(source.snapshot(), at);
        }
    }
}

#[cfg(test)]
mod tests;
