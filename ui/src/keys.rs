//! The key bindings: one table that turns keys into [`Action`]s and from which the
//! footer and the `?` help overlay are drawn, so what is shown is what works.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::action::Action;
use crate::view::View;

/// Which part of the dashboard has the keyboard, and so which bindings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Everywhere, before anything else.
    Any,
    /// A view's table, with no dialog open.
    Table,
    /// Typing a table filter after `/`.
    Filter,
    /// Typing a command after `:`.
    Command,
    /// A yes/no question before a destructive action.
    Confirm,
    /// The publish form.
    Form,
    /// A read-only popup: help, peek or client details (and the tail, through
    /// [`Context::Tail`]).
    Popup,
    /// The tail popup: every popup key, and its own (`p` to publish a test).
    Tail,
    /// The peek popup: every popup key, and paging.
    Peek,
    /// A queue's or topic's page, with no popup over it.
    Page,
}

impl Context {
    /// The heading of this context's section in the help overlay.
    pub fn title(self) -> &'static str {
        match self {
            Context::Any => "Anywhere",
            Context::Table => "Views and tables",
            Context::Filter => "Typing a filter",
            Context::Command => "Command line (:)",
            Context::Confirm => "Confirm dialogs",
            Context::Form => "Publish form",
            Context::Popup => "Popups (help, peek, tail, details)",
            Context::Tail => "Tail popup",
            Context::Peek => "Peek popup",
            Context::Page => "Queue and topic pages",
        }
    }

    /// Do `other`'s bindings work here? A context's own do; the tail and peek
    /// popups also take every popup key.
    pub fn covers(self, other: Context) -> bool {
        self == other || (matches!(self, Context::Tail | Context::Peek) && other == Context::Popup)
    }

    /// Does typing in this context edit text (so unbound keys are text, not ignored)?
    pub fn takes_text(self) -> bool {
        matches!(self, Context::Filter | Context::Command | Context::Form)
    }
}

/// The views a binding works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every view.
    All,
    /// Only these views.
    Only(&'static [View]),
}

impl Scope {
    /// Does the binding apply on `view`?
    pub fn includes(self, view: View) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(views) => views.contains(&view),
        }
    }
}

/// One key: a key code, with or without Ctrl. Shift is part of the character
/// (`S` is not `s`), so it is not matched separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    code: KeyCode,
    ctrl: bool,
}

impl Key {
    const fn code(code: KeyCode) -> Key {
        Key { code, ctrl: false }
    }

    const fn ch(c: char) -> Key {
        Key::code(KeyCode::Char(c))
    }

    const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: true,
        }
    }

    /// Does a key event from the terminal press this key?
    pub fn matches(&self, event: &KeyEvent) -> bool {
        if event.modifiers.contains(KeyModifiers::ALT) {
            return false;
        }
        if self.ctrl != event.modifiers.contains(KeyModifiers::CONTROL) {
            return false;
        }
        let code = match event.code {
            // Some terminals report Shift-s as `s` with the Shift modifier.
            KeyCode::Char(c) if event.modifiers.contains(KeyModifiers::SHIFT) => {
                KeyCode::Char(c.to_ascii_uppercase())
            }
            code => code,
        };
        code == self.code
    }
}

/// How a binding appears in the footer: a few keys and a word or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The keys as shown, e.g. `↑↓ jk`.
    pub keys: &'static str,
    /// What they do, e.g. `select`.
    pub text: &'static str,
}

/// One row of the key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// Where the binding applies.
    pub context: Context,
    /// Which views it applies in.
    pub scope: Scope,
    /// The keys that trigger it.
    pub keys: &'static [Key],
    /// The action it triggers.
    pub action: Action,
    /// The keys as the help overlay shows them; empty to leave the row out of help
    /// (when a neighbouring row already describes it, like `2`..`5` under `1-5`).
    pub label: &'static str,
    /// What it does, for the help overlay.
    pub help: &'static str,
    /// Its entry in the footer, if it has one.
    pub footer: Option<Hint>,
    /// Whether the footer offers it only while a table filter is kept (the
    /// actions on every row a filter lists).
    pub filtered: bool,
}

const fn bind(
    context: Context,
    scope: Scope,
    keys: &'static [Key],
    action: Action,
    label: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        context,
        scope,
        keys,
        action,
        label,
        help,
        footer: None,
        filtered: false,
    }
}

impl Binding {
    const fn hint(mut self, keys: &'static str, text: &'static str) -> Binding {
        self.footer = Some(Hint { keys, text });
        self
    }

    /// Offered in the footer only while a filter is kept.
    const fn when_filtered(mut self) -> Binding {
        self.filtered = true;
        self
    }
}

use Context::{Any, Command, Confirm, Filter, Form, Page, Peek, Popup, Table, Tail};
use Scope::{All, Only};

const UP: Key = Key::code(KeyCode::Up);
const DOWN: Key = Key::code(KeyCode::Down);
const PG_UP: Key = Key::code(KeyCode::PageUp);
const PG_DOWN: Key = Key::code(KeyCode::PageDown);
const HOME: Key = Key::code(KeyCode::Home);
const END: Key = Key::code(KeyCode::End);
const ENTER: Key = Key::code(KeyCode::Enter);
const ESC: Key = Key::code(KeyCode::Esc);
const TAB: Key = Key::code(KeyCode::Tab);
const BACK_TAB: Key = Key::code(KeyCode::BackTab);
const LEFT: Key = Key::code(KeyCode::Left);
const RIGHT: Key = Key::code(KeyCode::Right);
const SPACE: Key = Key::ch(' ');

/// Every key binding, in the order the footer and the help overlay list them.
///
/// A binding for the current view wins over one for all views (`k` kicks on
/// Clients, and moves up everywhere else); otherwise the first match wins.
#[rustfmt::skip]
pub static BINDINGS: &[Binding] = &[
    bind(Any, All, &[Key::ctrl('c')], Action::Quit, "Ctrl-C", "quit, as q does (even while typing)"),
    // Views and tables.
    bind(Table, All, &[Key::ch('1')], Action::ShowView(View::Overview), "1-5", "overview, topics, queues, clients, in-flight"),
    bind(Table, All, &[Key::ch('2')], Action::ShowView(View::Topics), "", ""),
    bind(Table, All, &[Key::ch('3')], Action::ShowView(View::Queues), "", ""),
    bind(Table, All, &[Key::ch('4')], Action::ShowView(View::Clients), "", ""),
    bind(Table, All, &[Key::ch('5')], Action::ShowView(View::InFlight), "", ""),
    bind(Table, All, &[TAB], Action::NextView, "Tab", "next view"),
    bind(Table, All, &[BACK_TAB], Action::PrevView, "Shift-Tab", "previous view"),
    bind(Table, All, &[DOWN, Key::ch('j')], Action::Down, "↓ j", "select the next row").hint("↑↓ jk", "select"),
    bind(Table, All, &[UP, Key::ch('k')], Action::Up, "↑ k", "select the previous row (only ↑ on Clients)"),
    bind(Table, All, &[PG_DOWN], Action::PageDown, "PgDn", "down a page"),
    bind(Table, All, &[PG_UP], Action::PageUp, "PgUp", "up a page"),
    bind(Table, All, &[HOME, Key::ch('g')], Action::Top, "Home g", "first row"),
    bind(Table, All, &[END, Key::ch('G')], Action::Bottom, "End G", "last row (the event log follows there)"),
    bind(Table, All, &[Key::ch('/')], Action::Filter, "/", "filter the table by substring").hint("/", "filter"),
    bind(Table, All, &[Key::ch(':')], Action::CommandLine, ":", "command line: :q jobs, :purge jobs…").hint(":", "cmd"),
    bind(Table, All, &[ESC], Action::Back, "Esc", "back: clear the filter, or previous view"),
    bind(Table, All, &[SPACE], Action::Pause, "Space", "pause the tables (again: resume)").hint("␣", "pause"),
    bind(Table, All, &[Key::ch('s')], Action::SortNext, "s", "sort by the next column").hint("s S", "sort"),
    bind(Table, All, &[Key::ch('S')], Action::SortReverse, "S", "reverse the sort"),
    bind(Table, Only(&[View::Clients]), &[Key::ch('f')], Action::SortFullest, "f", "Clients: fullest buffer first").hint("f", "fullest"),
    bind(Table, Only(&[View::Topics]), &[ENTER], Action::Open, "Enter", "Topics: its page (subscribers, charts)").hint("⏎", "page"),
    bind(Table, Only(&[View::Queues]), &[ENTER], Action::Open, "Enter", "Queues: its page (consumers, charts)").hint("⏎", "page"),
    bind(Table, Only(&[View::Clients]), &[ENTER], Action::Open, "Enter", "Clients: details and subscriptions").hint("⏎", "details"),
    bind(Table, Only(&[View::InFlight]), &[ENTER], Action::Open, "Enter", "In-flight: details of the consumer").hint("⏎", "consumer"),
    bind(Table, Only(&[View::Topics, View::Queues, View::InFlight]), &[Key::ch('p')], Action::Publish, "p", "publish to the topic, send to the queue").hint("p", "publish"),
    bind(Table, Only(&[View::Queues]), &[Key::ch('x')], Action::Purge, "x", "Queues: purge ready messages (asks)").hint("x", "purge"),
    bind(Table, Only(&[View::Queues]), &[Key::ctrl('x')], Action::PurgeListed, "Ctrl-X", "Queues: purge every queue listed (asks)").hint("^X", "purge listed").when_filtered(),
    bind(Table, Only(&[View::Clients]), &[Key::ch('k')], Action::Kick, "k", "Clients: kick the client (asks)").hint("k", "kick"),
    bind(Table, Only(&[View::Clients]), &[Key::ctrl('k')], Action::KickListed, "Ctrl-K", "Clients: kick every client listed (asks)").hint("^K", "kick listed").when_filtered(),
    bind(Table, All, &[Key::ch('K')], Action::KickSlow, "K", "kick every slow client (asks)").hint("K", "kick slow"),
    bind(Table, Only(&[View::InFlight]), &[Key::ch('r')], Action::Requeue, "r", "In-flight: requeue the job now").hint("r", "requeue"),
    bind(Table, Only(&[View::InFlight]), &[Key::ch('R')], Action::RequeueConsumer, "R", "In-flight: requeue its consumer's jobs (asks)"),
    bind(Table, Only(&[View::InFlight]), &[Key::ctrl('r')], Action::RequeueListed, "Ctrl-R", "In-flight: requeue every job listed (asks)").hint("^R", "requeue listed").when_filtered(),
    bind(Table, All, &[Key::ch('?')], Action::Help, "?", "this help").hint("?", "help"),
    bind(Table, All, &[Key::ch('q')], Action::Quit, "q", "quit (asks first if anything would be lost)").hint("q", "quit"),
    // Typing a filter.
    bind(Filter, All, &[ENTER], Action::ApplyFilter, "Enter", "keep the filter, back to the table").hint("⏎", "keep"),
    bind(Filter, All, &[ESC], Action::ClearFilter, "Esc", "clear the filter").hint("Esc", "clear"),
    bind(Filter, All, &[DOWN], Action::Down, "↓", "select the next row"),
    bind(Filter, All, &[UP], Action::Up, "↑", "select the previous row"),
    // The command line.
    bind(Command, All, &[ENTER], Action::RunCommand, "Enter", "run the command").hint("⏎", "run"),
    bind(Command, All, &[TAB], Action::Complete, "Tab", "complete the word or name").hint("Tab", "complete"),
    bind(Command, All, &[UP], Action::HistoryBack, "↑ ↓", "earlier commands").hint("↑↓", "history"),
    bind(Command, All, &[DOWN], Action::HistoryForward, "", ""),
    bind(Command, All, &[ESC], Action::Back, "Esc", "close the line").hint("Esc", "close"),
    // Confirm dialogs.
    bind(Confirm, All, &[Key::ch('y'), Key::ch('Y')], Action::Confirm, "y", "go ahead").hint("y", "yes"),
    bind(Confirm, All, &[Key::ch('n'), Key::ch('N'), ESC], Action::Cancel, "n Esc", "cancel").hint("n Esc", "no"),
    // The publish form.
    bind(Form, All, &[ENTER], Action::Submit, "Enter", "send").hint("⏎", "send"),
    bind(Form, All, &[TAB], Action::FocusNext, "Tab", "next field").hint("Tab", "next field"),
    bind(Form, All, &[BACK_TAB], Action::FocusPrev, "Shift-Tab", "previous field"),
    bind(Form, All, &[ESC], Action::Cancel, "Esc", "cancel").hint("Esc", "cancel"),
    // Popups.
    bind(Popup, All, &[DOWN, Key::ch('j')], Action::Down, "↓ j", "scroll down (peek: select the next)").hint("↑↓ jk", "scroll"),
    bind(Popup, All, &[UP, Key::ch('k')], Action::Up, "↑ k", "scroll up"),
    bind(Popup, All, &[PG_DOWN], Action::PageDown, "PgDn", "down a page"),
    bind(Popup, All, &[PG_UP], Action::PageUp, "PgUp", "up a page"),
    bind(Popup, All, &[HOME, Key::ch('g')], Action::Top, "Home g", "top (a tail's oldest message)"),
    bind(Popup, All, &[END, Key::ch('G')], Action::Bottom, "End G", "bottom (a tail follows there)"),
    // `q` closes a popup: pressed to leave what is open, it must not stop the broker.
    bind(Popup, All, &[ESC, Key::ch('?'), Key::ch('q')], Action::Close, "Esc q", "close").hint("Esc", "close"),
    // The tail popup, besides the popup keys above.
    bind(Tail, All, &[Key::ch('p')], Action::Publish, "p", "publish a test message to the topic").hint("p", "test publish"),
    bind(Tail, All, &[Key::ch('/')], Action::Search, "/", "tail only a filter's or a text's matches").hint("/", "search"),
    bind(Tail, All, &[Key::ch('e')], Action::Export, "e", "export the messages to a .jsonl file").hint("e", "export"),
    // The peek popup, besides the popup keys above: PgUp/PgDn scroll within a page.
    bind(Peek, All, &[RIGHT, Key::ch('n')], Action::NextPage, "→ n", "the next 10 messages").hint("←→ np", "page"),
    bind(Peek, All, &[LEFT, Key::ch('p')], Action::PrevPage, "← p", "the previous 10 messages"),
    bind(Peek, All, &[Key::ch('/')], Action::Search, "/", "show only a filter's or a text's matches").hint("/", "search"),
    bind(Peek, All, &[Key::ch('e')], Action::Export, "e", "export the page (or selected) to .jsonl").hint("e", "export"),
    bind(Peek, All, &[Key::ch('d')], Action::DropMessage, "d", "drop the selected message (asks)").hint("d", "drop"),
    bind(Peek, All, &[Key::ch('m')], Action::MoveOne, "m", "dead letter: move the selected back (asks)").hint("m M", "move back"),
    bind(Peek, All, &[Key::ch('M')], Action::MoveBack, "M", "dead letters: move all back (asks)"),

    bind(Page, All, &[ENTER], Action::Open, "Enter", "peek at the queue, tail the topic").hint("⏎", "peek/tail"),
    bind(Page, All, &[DOWN, Key::ch('j')], Action::Down, "↓ j", "scroll the consumers or subscribers").hint("↑↓ jk", "scroll"),
    bind(Page, All, &[UP, Key::ch('k')], Action::Up, "↑ k", "scroll back"),
    bind(Page, All, &[Key::ch('?')], Action::Help, "?", "this help").hint("?", "help"),
    bind(Page, All, &[ESC, Key::ch('q')], Action::Close, "Esc q", "back to the view").hint("Esc", "back"),
];

/// The action a key press triggers in `context` on `view`, if any.
pub fn action_for(context: Context, view: View, event: &KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let here = |b: &&Binding| context.covers(b.context) || b.context == Context::Any;
    let this_view = BINDINGS
        .iter()
        .filter(here)
        .filter(|b| matches!(b.scope, Scope::Only(views) if views.contains(&view)));
    let every_view = BINDINGS
        .iter()
        .filter(here)
        .filter(|b| b.scope == Scope::All);
    this_view
        .chain(every_view)
        .find(|b| b.keys.iter().any(|k| k.matches(event)))
        .map(|b| b.action)
}

/// The footer entries for `context` on `view`, in table order; without the
/// actions that change the broker when the console is `read_only`, and without
/// the actions on every listed row unless the table is `filtered`.
pub fn footer(
    context: Context,
    view: View,
    read_only: bool,
    filtered: bool,
) -> impl Iterator<Item = Hint> {
    BINDINGS
        .iter()
        .filter(move |b| context.covers(b.context) && b.scope.includes(view))
        .filter(move |b| !(read_only && b.action.changes_broker()))
        .filter(move |b| filtered || !b.filtered)
        .filter_map(|b| b.footer)
}

/// The help overlay's sections: each context with its labelled bindings.
pub fn help() -> Vec<(Context, Vec<&'static Binding>)> {
    [
        Table, Filter, Command, Confirm, Form, Popup, Tail, Peek, Page, Any,
    ]
    .into_iter()
    .map(|context| {
        let rows = BINDINGS
            .iter()
            .filter(|b| b.context == context && !b.label.is_empty())
            .collect();
        (context, rows)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn k_kicks_on_clients_and_moves_up_elsewhere() {
        let k = key(KeyCode::Char('k'));
        assert_eq!(action_for(Table, View::Clients, &k), Some(Action::Kick));
        assert_eq!(action_for(Table, View::Topics, &k), Some(Action::Up));
        assert_eq!(
            action_for(Table, View::Clients, &key(KeyCode::Up)),
            Some(Action::Up)
        );
    }

    #[test]
    fn shift_letters_match_either_way_terminals_send_them() {
        let plain = key(KeyCode::Char('S'));
        let shifted = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::SHIFT);
        let upper_shifted = KeyEvent::new(KeyCode::Char('S'), KeyModifiers::SHIFT);
        for ev in [plain, shifted, upper_shifted] {
            assert_eq!(
                action_for(Table, View::Topics, &ev),
                Some(Action::SortReverse)
            );
        }
        assert_eq!(
            action_for(Table, View::Topics, &key(KeyCode::Char('s'))),
            Some(Action::SortNext)
        );
    }

    #[test]
    fn ctrl_c_quits_everywhere_and_q_is_text_in_forms() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for context in [Table, Filter, Confirm, Form, Popup, Tail] {
            assert_eq!(
                action_for(context, View::Queues, &ctrl_c),
                Some(Action::Quit)
            );
        }
        assert_eq!(
            action_for(Form, View::Queues, &key(KeyCode::Char('q'))),
            None
        );
        assert_eq!(
            action_for(Filter, View::Queues, &key(KeyCode::Char('q'))),
            None
        );
        // In a popup `q` closes it: pressed to leave what is open, it must not
        // reach the broker.
        for context in [Popup, Tail] {
            assert_eq!(
                action_for(context, View::Topics, &key(KeyCode::Char('q'))),
                Some(Action::Close)
            );
        }
    }

    #[test]
    fn view_specific_keys_do_nothing_elsewhere() {
        assert_eq!(
            action_for(Table, View::Topics, &key(KeyCode::Char('x'))),
            None
        );
        assert_eq!(
            action_for(Table, View::Queues, &key(KeyCode::Char('r'))),
            None
        );
        assert_eq!(
            action_for(Table, View::Overview, &key(KeyCode::Char('p'))),
            None
        );
    }

    #[test]
    fn the_tail_takes_the_popup_keys_and_p_which_other_popups_do_not() {
        let p = key(KeyCode::Char('p'));
        assert_eq!(action_for(Tail, View::Topics, &p), Some(Action::Publish));
        assert_eq!(action_for(Popup, View::Topics, &p), None);
        assert_eq!(
            action_for(Tail, View::Topics, &key(KeyCode::Esc)),
            Some(Action::Close)
        );
        let hints: Vec<&str> = footer(Tail, View::Topics, false, false)
            .map(|h| h.keys)
            .collect();
        assert_eq!(hints, ["↑↓ jk", "Esc", "p", "/", "e"]);
        assert!(!footer(Popup, View::Topics, false, false).any(|h| h.keys == "p"));
    }

    #[test]
    fn a_read_only_footer_hides_every_key_that_changes_the_broker() {
        let keys = |view, read_only| -> Vec<&str> {
            footer(Table, view, read_only, false)
                .map(|h| h.keys)
                .collect()
        };
        assert_eq!(
            keys(View::Queues, false),
            ["↑↓ jk", "/", ":", "␣", "s S", "⏎", "p", "x", "K", "?", "q"]
        );
        assert_eq!(
            keys(View::Queues, true),
            ["↑↓ jk", "/", ":", "␣", "s S", "⏎", "?", "q"]
        );
        let filtered: Vec<&str> = footer(Table, View::Queues, true, true)
            .map(|h| h.keys)
            .collect();
        assert!(!filtered.contains(&"^X"), "read-only: no bulk purge");
        let hints: Vec<&str> = footer(Tail, View::Topics, true, false)
            .map(|h| h.keys)
            .collect();
        assert_eq!(hints, ["↑↓ jk", "Esc", "/", "e"]);
    }

    #[test]
    fn the_actions_on_every_listed_row_are_offered_only_while_filtered() {
        let keys = |view, filtered| -> Vec<&str> {
            footer(Table, view, false, filtered)
                .map(|h| h.keys)
                .collect()
        };
        assert!(!keys(View::Queues, false).contains(&"^X"));
        assert!(keys(View::Queues, true).contains(&"^X"));
        assert!(keys(View::InFlight, true).contains(&"^R"));
        assert!(keys(View::Clients, true).contains(&"^K"));
        assert!(!keys(View::Topics, true).iter().any(|k| k.starts_with('^')));
        let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        assert_eq!(
            action_for(Table, View::Queues, &ctrl('x')),
            Some(Action::PurgeListed)
        );
        assert_eq!(
            action_for(Table, View::InFlight, &ctrl('r')),
            Some(Action::RequeueListed)
        );
        assert_eq!(
            action_for(Table, View::Clients, &ctrl('k')),
            Some(Action::KickListed)
        );
        assert_eq!(
            action_for(Table, View::Clients, &key(KeyCode::Char('k'))),
            Some(Action::Kick)
        );
    }

    #[test]
    fn g_and_shift_g_go_to_the_ends_of_tables_and_popups() {
        for context in [Table, Popup, Tail, Peek] {
            assert_eq!(
                action_for(context, View::Queues, &key(KeyCode::Char('g'))),
                Some(Action::Top)
            );
            assert_eq!(
                action_for(context, View::Queues, &key(KeyCode::Char('G'))),
                Some(Action::Bottom)
            );
        }
    }

    #[test]
    fn the_command_line_takes_text_and_its_own_keys() {
        assert_eq!(
            action_for(Table, View::Topics, &key(KeyCode::Char(':'))),
            Some(Action::CommandLine)
        );
        assert_eq!(
            action_for(Command, View::Topics, &key(KeyCode::Char('q'))),
            None
        );
        assert_eq!(
            action_for(Command, View::Topics, &key(KeyCode::Char(' '))),
            None
        );
        assert_eq!(
            action_for(Command, View::Topics, &key(KeyCode::Tab)),
            Some(Action::Complete)
        );
        assert_eq!(
            action_for(Command, View::Topics, &key(KeyCode::Esc)),
            Some(Action::Back)
        );
        assert_eq!(
            action_for(Command, View::Topics, &key(KeyCode::Up)),
            Some(Action::HistoryBack)
        );
        assert!(Command.takes_text());
        assert_eq!(
            action_for(Table, View::Topics, &key(KeyCode::Char(' '))),
            Some(Action::Pause)
        );
        assert_eq!(
            action_for(Filter, View::Topics, &key(KeyCode::Char(' '))),
            None,
            "a space in a filter is text"
        );
    }

    #[test]
    fn releases_are_ignored() {
        let mut q = key(KeyCode::Char('q'));
        q.kind = KeyEventKind::Release;
        assert_eq!(action_for(Table, View::Topics, &q), None);
    }

    #[test]
    fn no_key_means_two_things_in_the_same_place() {
        let same_level = |a: Scope, b: Scope| match (a, b) {
            (All, All) => true,
            (Only(x), Only(y)) => x.iter().any(|v| y.contains(v)),
            _ => false,
        };
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                let contexts_meet = a.context.covers(b.context)
                    || b.context.covers(a.context)
                    || a.context == Any
                    || b.context == Any;
                if contexts_meet && same_level(a.scope, b.scope) {
                    let shared = a.keys.iter().any(|k| b.keys.contains(k));
                    assert!(!shared, "{a:?} and {b:?} share a key");
                }
            }
        }
    }

    #[test]
    fn every_action_in_the_table_is_reachable_from_help_or_a_sibling_row() {
        // A binding with no label must share its action family with a labelled one
        // (the 2-5 rows under 1-5); anything else would be a hidden key.
        for b in BINDINGS.iter().filter(|b| b.label.is_empty()) {
            assert!(
                matches!(b.action, Action::ShowView(_) | Action::HistoryForward),
                "{b:?} is hidden from help"
            );
        }
    }
}
