//! The `:` command line, a k9s habit: the words it knows, how a typed line
//! parses into a [`Verb`], how Tab completes it from the snapshot's names, and
//! the line being edited with its history. Running a verb is the app's job
//! (`app/command_line.rs`); nothing here draws.

use switchyard_broker::{names, Snapshot};
use tui_input::Input;

use crate::view::View;

/// Earlier lines kept for ↑/↓, oldest dropped first.
pub const HISTORY_KEEP: usize = 100;

/// Candidates a line offers at most; past this many the line says how many more.
pub const CANDIDATES_SHOWN: usize = 8;

/// What a word's arguments name, for completion and for the error when a name
/// is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A queue of the snapshot.
    Queue,
    /// A topic, or a pattern over topics.
    Topic,
    /// A client, by id or by the name it gave in `hello`.
    Client,
}

/// One word the command line knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// The word in full, as completion offers it.
    pub name: &'static str,
    /// Its short form, if it has one (`q` for `queue`).
    pub short: Option<&'static str>,
    /// What its arguments name, in order.
    pub args: &'static [Arg],
    /// Whether the arguments may be left out (`:q` alone shows the Queues view).
    pub optional: bool,
    /// How it is typed, for the help and for a usage error.
    pub usage: &'static str,
    /// What it does, for the help.
    pub help: &'static str,
}

const fn word(
    name: &'static str,
    short: Option<&'static str>,
    args: &'static [Arg],
    optional: bool,
    usage: &'static str,
    help: &'static str,
) -> Word {
    Word {
        name,
        short,
        args,
        optional,
        usage,
        help,
    }
}

/// Every word, in the order the help lists them and completion offers them.
/// `:q` is the queue, as the issue asks; `:quit` leaves.
pub static WORDS: &[Word] = &[
    word(
        "queue",
        Some("q"),
        &[Arg::Queue],
        true,
        ":q QUEUE",
        "Queues, that queue selected",
    ),
    word(
        "topic",
        Some("t"),
        &[Arg::Topic],
        true,
        ":t PATTERN",
        "topics matching it (* >)",
    ),
    word(
        "client",
        Some("c"),
        &[Arg::Client],
        true,
        ":c CLIENT",
        "Clients, by id or name",
    ),
    word(
        "inflight",
        Some("i"),
        &[],
        false,
        ":i",
        "the in-flight jobs",
    ),
    word("overview", Some("o"), &[], false, ":o", "the overview"),
    word(
        "purge",
        None,
        &[Arg::Queue],
        false,
        ":purge QUEUE",
        "purge its ready messages (asks)",
    ),
    word(
        "move",
        None,
        &[Arg::Queue, Arg::Queue],
        false,
        ":move FROM TO",
        "move all ready messages (asks)",
    ),
    word(
        "kick",
        None,
        &[Arg::Client],
        false,
        ":kick CLIENT",
        "kick it, by id or name (asks)",
    ),
    word("help", Some("h"), &[], false, ":help", "this help"),
    word("quit", None, &[], false, ":quit", "quit, as q does"),
];

/// What a line asks for, parsed; names are checked against the snapshot when
/// it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// Show a view, nothing selected (`:i`, or `:q` alone).
    Show(View),
    /// The Queues view with this queue selected.
    Queue(String),
    /// The Topics view showing only the topics this pattern matches.
    Topics(String),
    /// The Clients view with this client (id or name) selected.
    Client(String),
    /// Ask to purge this queue.
    Purge(String),
    /// Ask to move every ready message of `from` to `to`.
    Move {
        /// Where they are.
        from: String,
        /// Where they go.
        to: String,
    },
    /// Ask to kick this client (id or name).
    Kick(String),
    /// Open the help.
    Help,
    /// Quit, as `q` does.
    Quit,
}

impl Verb {
    /// Whether running it changes the broker (a read-only console refuses it).
    pub fn changes_broker(&self) -> bool {
        matches!(self, Verb::Purge(_) | Verb::Move { .. } | Verb::Kick(_))
    }
}

/// The word `typed` names, in full or short.
fn find_word(typed: &str) -> Option<&'static Word> {
    WORDS
        .iter()
        .find(|w| w.name == typed || w.short == Some(typed))
}

/// Parse a line (without its `:`). An empty line is `Ok(None)`: nothing to run.
pub fn parse(line: &str) -> Result<Option<Verb>, String> {
    let mut tokens = line.split_whitespace();
    let Some(first) = tokens.next() else {
        return Ok(None);
    };
    let Some(word) = find_word(first) else {
        return Err(format!(
            "Unknown command :{first} (Tab completes; :help lists the keys)"
        ));
    };
    let args: Vec<String> = tokens.map(str::to_string).collect();
    let usage = || format!("Usage: {}", word.usage);
    if args.len() > word.args.len() || (args.len() < word.args.len() && !word.optional) {
        return Err(usage());
    }
    let mut args = args.into_iter();
    let verb = match (word.name, args.next(), args.next()) {
        ("queue", None, _) => Verb::Show(View::Queues),
        ("queue", Some(q), _) => Verb::Queue(q),
        ("topic", None, _) => Verb::Show(View::Topics),
        ("topic", Some(pattern), _) => {
            names::check_pattern(&pattern).map_err(|e| format!("Pattern {pattern}: {e}"))?;
            Verb::Topics(pattern)
        }
        ("client", None, _) => Verb::Show(View::Clients),
        ("client", Some(c), _) => Verb::Client(c),
        ("inflight", ..) => Verb::Show(View::InFlight),
        ("overview", ..) => Verb::Show(View::Overview),
        ("purge", Some(q), _) => Verb::Purge(q),
        ("move", Some(from), Some(to)) => Verb::Move { from, to },
        ("kick", Some(c), _) => Verb::Kick(c),
        ("help", ..) => Verb::Help,
        ("quit", ..) => Verb::Quit,
        _ => return Err(usage()),
    };
    Ok(Some(verb))
}

/// The names `arg` may take in `snapshot`, sorted, each once: a client by its
/// id and by its name.
pub fn names_of(arg: Arg, snapshot: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = match arg {
        Arg::Queue => snapshot.queues.iter().map(|q| q.name.clone()).collect(),
        Arg::Topic => snapshot.topics.iter().map(|t| t.name.clone()).collect(),
        Arg::Client => snapshot
            .clients
            .iter()
            .flat_map(|c| std::iter::once(c.id.clone()).chain(c.name.clone()))
            .collect(),
    };
    names.sort();
    names.dedup();
    names
}

/// What Tab could put where the cursor is (at the end of `line`): the byte
/// where the word being completed starts, and every candidate for it.
pub fn candidates(line: &str, snapshot: &Snapshot) -> (usize, Vec<String>) {
    let start = line.rfind(char::is_whitespace).map_or(0, |at| {
        at + line[at..].chars().next().map_or(1, char::len_utf8)
    });
    let prefix = &line[start..];
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    let pool: Vec<String> = match before.split_first() {
        None => WORDS.iter().map(|w| w.name.to_string()).collect(),
        Some((first, done)) => match find_word(first).and_then(|w| w.args.get(done.len())) {
            Some(&arg) => names_of(arg, snapshot),
            None => Vec::new(),
        },
    };
    let found = pool.into_iter().filter(|n| n.starts_with(prefix)).collect();
    (start, found)
}

/// `line` after Tab: the word at its end extended as far as every candidate
/// agrees, and a space after it when only one is left; `None` when Tab has
/// nothing to add.
pub fn complete(line: &str, snapshot: &Snapshot) -> Option<String> {
    let (start, found) = candidates(line, snapshot);
    let first = found.first()?;
    let common = found.iter().skip(1).fold(first.as_str(), |common, name| {
        let same = common
            .char_indices()
            .zip(name.chars())
            .find(|((_, a), b)| a != b)
            .map_or(common.len().min(name.len()), |((at, _), _)| at);
        &common[..same]
    });
    let mut out = format!("{}{common}", &line[..start]);
    if found.len() == 1 {
        out.push(' ');
    }
    (out != line).then_some(out)
}

/// The line being typed after `:`, and where ↑/↓ stand in the history.
#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    /// The text after the `:`.
    pub input: Input,
    /// Which earlier line ↑ recalled, counting back from the newest (0); `None`
    /// while editing a line of one's own.
    recalled: Option<usize>,
    /// The line being typed before ↑ recalled an earlier one, for ↓ to bring back.
    draft: String,
}

impl CommandLine {
    /// Replace the text, cursor at its end.
    pub fn set(&mut self, text: String) {
        self.input = Input::new(text);
    }

    /// The text typed.
    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// An edit: the line is one's own again.
    pub fn edited(&mut self) {
        self.recalled = None;
    }

    /// ↑ (`older`) or ↓ through `history` (oldest first).
    pub fn recall(&mut self, history: &[String], older: bool) {
        let next = match (self.recalled, older) {
            (None, true) if !history.is_empty() => {
                self.draft = self.value().to_string();
                Some(0)
            }
            (None, _) => return,
            (Some(back), true) => Some((back + 1).min(history.len() - 1)),
            (Some(0), false) => None,
            (Some(back), false) => Some(back - 1),
        };
        self.recalled = next;
        let text = match next {
            Some(back) => history[history.len() - 1 - back].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.set(text);
    }
}

/// Add `line` to `history` (unless it repeats the newest), keeping [`HISTORY_KEEP`].
pub fn remember(history: &mut Vec<String>, line: &str) {
    let line = line.trim();
    if line.is_empty() || history.last().is_some_and(|last| last == line) {
        return;
    }
    history.push(line.to_string());
    if history.len() > HISTORY_KEEP {
        history.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn words_parse_in_full_and_short() {
        assert_eq!(parse("q jobs"), Ok(Some(Verb::Queue("jobs".into()))));
        assert_eq!(parse("queue  jobs "), Ok(Some(Verb::Queue("jobs".into()))));
        assert_eq!(parse("q"), Ok(Some(Verb::Show(View::Queues))));
        assert_eq!(
            parse("t orders.>"),
            Ok(Some(Verb::Topics("orders.>".into())))
        );
        assert_eq!(
            parse("c worker-1"),
            Ok(Some(Verb::Client("worker-1".into())))
        );
        assert_eq!(parse("i"), Ok(Some(Verb::Show(View::InFlight))));
        assert_eq!(parse("purge jobs"), Ok(Some(Verb::Purge("jobs".into()))));
        assert_eq!(
            parse("move jobs.dead jobs"),
            Ok(Some(Verb::Move {
                from: "jobs.dead".into(),
                to: "jobs".into()
            }))
        );
        assert_eq!(parse("kick c3"), Ok(Some(Verb::Kick("c3".into()))));
        assert_eq!(parse("help"), Ok(Some(Verb::Help)));
        assert_eq!(parse("quit"), Ok(Some(Verb::Quit)));
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(
            parse("frobnicate x"),
            Err("Unknown command :frobnicate (Tab completes; :help lists the keys)".into())
        );
        assert_eq!(parse("purge"), Err("Usage: :purge QUEUE".into()));
        assert_eq!(parse("move jobs"), Err("Usage: :move FROM TO".into()));
        assert_eq!(parse("q jobs more"), Err("Usage: :q QUEUE".into()));
        assert_eq!(parse("i now"), Err("Usage: :i".into()));
        let bad = parse("t orders.>.eu").unwrap_err();
        assert!(bad.starts_with("Pattern orders.>.eu: "), "{bad}");
    }

    #[test]
    fn only_purge_move_and_kick_change_the_broker() {
        let changing: Vec<_> = [
            "q jobs",
            "t >",
            "c c1",
            "i",
            "purge jobs",
            "move a b",
            "kick c1",
            "help",
            "quit",
        ]
        .iter()
        .filter(|l| parse(l).unwrap().unwrap().changes_broker())
        .copied()
        .collect();
        assert_eq!(changing, ["purge jobs", "move a b", "kick c1"]);
    }

    #[test]
    fn tab_completes_the_word_then_names_of_the_snapshot() {
        let snap = fixture::typical(10);
        assert_eq!(complete("pu", &snap).as_deref(), Some("purge "));
        assert_eq!(
            complete("q", &snap).as_deref(),
            Some("qu"),
            "queue and quit"
        );
        assert_eq!(complete("purge j", &snap).as_deref(), Some("purge jobs "));
        assert_eq!(complete("q e", &snap).as_deref(), Some("q emails.send "));
        // The second queue of a move completes too.
        assert_eq!(
            complete("move jobs t", &snap).as_deref(),
            Some("move jobs thumbnails ")
        );
        // Topics share a prefix: Tab goes as far as they agree.
        assert_eq!(complete("t metr", &snap).as_deref(), Some("t metrics."));
        assert_eq!(
            complete("t metrics.", &snap),
            None,
            "cpu or mem: nothing to add"
        );
        // Clients by id or by name.
        assert_eq!(complete("kick worker-", &snap), None);
        assert_eq!(
            complete("kick worker-2", &snap).as_deref(),
            Some("kick worker-2 ")
        );
        assert_eq!(
            complete("kick or", &snap).as_deref(),
            Some("kick order-service ")
        );
        // Nothing past the last argument, nothing for an unknown word.
        assert_eq!(complete("purge jobs ", &snap), None);
        assert_eq!(complete("zap j", &snap), None);
    }

    #[test]
    fn candidates_are_listed_for_the_word_at_the_end() {
        let snap = fixture::typical(10);
        assert_eq!(
            candidates("t metrics.", &snap),
            (2, vec!["metrics.cpu".into(), "metrics.mem".into()])
        );
        assert_eq!(candidates("", &snap).1.len(), WORDS.len());
        let (_, clients) = candidates("c ", &snap);
        assert!(clients.contains(&"c5".to_string()) && clients.contains(&"worker-1".to_string()));
    }

    #[test]
    fn history_recalls_older_and_newer_and_the_draft() {
        let mut history = Vec::new();
        for line in ["q jobs", "q jobs", " t > ", "", "i"] {
            remember(&mut history, line);
        }
        assert_eq!(history, ["q jobs", "t >", "i"]);
        let mut line = CommandLine::default();
        line.set("pur".into());
        line.recall(&history, true);
        assert_eq!(line.value(), "i");
        line.recall(&history, true);
        line.recall(&history, true);
        line.recall(&history, true);
        assert_eq!(line.value(), "q jobs", "stops at the oldest");
        line.recall(&history, false);
        assert_eq!(line.value(), "t >");
        line.recall(&history, false);
        line.recall(&history, false);
        assert_eq!(line.value(), "pur", "back to what was being typed");
        line.recall(&history, false);
        assert_eq!(line.value(), "pur");
    }

    #[test]
    fn history_keeps_the_newest() {
        let mut history = Vec::new();
        for n in 0..HISTORY_KEEP + 5 {
            remember(&mut history, &format!("q q{n}"));
        }
        assert_eq!(history.len(), HISTORY_KEEP);
        assert_eq!(history[0], "q q5");
    }
}
