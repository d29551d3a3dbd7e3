//! Browsing in the peek and the tail popups: selecting a peeked message, the
//! `/` search (a filter if the text parses as one, else a substring, both
//! evaluated by the broker), exporting what is shown to a JSON Lines file, and
//! the questions before dropping a message or moving dead letters back.

use std::io::Write;
use std::path::{Path, PathBuf};

use switchyard_broker::export::{peeked_line, tail_line};
use switchyard_broker::{HeaderValue, PeekedMessage};
use tui_input::Input;

use super::overlay::{query_of, Confirmation, LiveTail, Overlay, Peek};
use super::{App, Level};
use crate::source::Source;

impl Peek {
    /// Move the selection by `delta` messages (the first press selects the
    /// first), scrolling it into view at the top.
    pub(super) fn select_by(&mut self, delta: isize) {
        if self.messages.is_empty() {
            return;
        }
        let last = self.messages.len() - 1;
        self.selected = Some(match self.selected {
            None => 0,
            Some(i) => i.saturating_add_signed(delta).min(last),
        });
        // The view puts the selected message's first line at the top.
        self.scroll = 0;
    }
}

/// The queue a dead letter died in: its `x-dead-letter-queue`.
pub(super) fn died_in(m: &PeekedMessage) -> Option<String> {
    match m.headers.as_ref()?.get("x-dead-letter-queue")? {
        HeaderValue::One(q) => Some(q.clone()),
        HeaderValue::Many(qs) => qs.first().cloned(),
    }
}

impl App {
    /// `/` in the peek or the tail: start typing, from the query shown.
    pub(super) fn start_search(&mut self) {
        let shown = match &self.overlay {
            Some(Overlay::Peek(peek)) => &peek.query,
            Some(Overlay::Tail(tail)) => &tail.query,
            _ => return,
        };
        let text = shown.filter.clone().or_else(|| shown.search.clone());
        self.search_input = Some(Input::new(text.unwrap_or_default()));
    }

    /// Enter on the search: the peek starts again at its first page of what
    /// the query selects; the tail starts again with it.
    pub(super) fn apply_search(&mut self, source: &mut dyn Source) {
        let Some(input) = self.search_input.take() else {
            return;
        };
        let query = query_of(input.value());
        match &self.overlay {
            Some(Overlay::Peek(_)) => self.search_peek(source, query),
            Some(Overlay::Tail(tail)) => {
                let pattern = tail.pattern.clone();
                match source.open_tail(&pattern, &query) {
                    Ok(()) => {
                        let mut tail = LiveTail::new(pattern, &self.snapshot);
                        tail.query = query;
                        self.overlay = Some(Overlay::Tail(tail));
                    }
                    Err(e) => {
                        self.set_status(Level::Error, format!("Tail of {pattern} failed: {e}"))
                    }
                }
            }
            _ => {}
        }
    }

    /// `d` in the peek: ask before dropping the selected message.
    pub(super) fn ask_drop(&mut self) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let Some(msg) = peek.selection().and_then(|m| m.msg.clone()) else {
            return self.set_status(Level::Info, "Select a message first (↑↓)");
        };
        let queue = peek.queue.clone();
        self.ask_over_peek(Confirmation::Drop { queue, msg });
    }

    /// `m` in the peek of a dead-letter queue: ask before moving the selected
    /// message back to the queue it died in.
    pub(super) fn ask_move_one(&mut self) {
        let Some(Overlay::Peek(peek)) = &self.overlay else {
            return;
        };
        let Some(m) = peek.selection() else {
            return self.set_status(Level::Info, "Select a message first (↑↓); M moves them all");
        };
        let (Some(msg), Some(to)) = (m.msg.clone(), died_in(m)) else {
            let text = "Not a dead letter: the message has no x-dead-letter-queue";
            return self.set_status(Level::Info, text);
        };
        let from = peek.queue.clone();
        self.ask_over_peek(Confirmation::MoveOne { from, to, msg });
    }

    /// Ask `question` over the open peek, which comes back once it is answered.
    pub(super) fn ask_over_peek(&mut self, question: Confirmation) {
        self.behind = self.overlay.take();
        self.overlay = Some(Overlay::Confirm(question));
    }

    /// `e`: write what the popup shows (the peek's page, or its selected
    /// message; the tail's messages) to a new JSON Lines file.
    pub(super) fn export(&mut self) {
        let (name, lines): (&str, Vec<String>) = match &self.overlay {
            Some(Overlay::Peek(peek)) => match peek.selection() {
                Some(m) => (&peek.queue, vec![peeked_line(m)]),
                None => (&peek.queue, peek.messages.iter().map(peeked_line).collect()),
            },
            Some(Overlay::Tail(tail)) => (
                &tail.pattern,
                tail.messages
                    .iter()
                    .map(|e| tail_line(&e.message))
                    .collect(),
            ),
            _ => return,
        };
        if lines.is_empty() {
            return self.set_status(Level::Info, "Nothing to export: no messages shown");
        }
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let count = lines.len();
        match write_new(&self.export_dir, name, unix, &lines) {
            Ok(path) => {
                let s = if count == 1 { "" } else { "s" };
                let text = format!("Exported {count} message{s} to {}", path.display());
                self.set_status(Level::Done, text);
            }
            Err(e) => self.set_status(Level::Error, format!("Export failed: {e}")),
        }
    }
}

/// Writes `lines` to a new `switchyard-<name>-<unix>.jsonl` in `dir` (`-2`,
/// `-3`… if taken), never over an existing file; its path.
fn write_new(dir: &Path, name: &str, unix: u64, lines: &[String]) -> std::io::Result<PathBuf> {
    // A pattern's `*` and `>` (or anything else) make no file name.
    let name: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    let mut body = lines.join("\n");
    body.push('\n');
    for n in 1.. {
        let file = match n {
            1 => format!("switchyard-{name}-{unix}.jsonl"),
            n => format!("switchyard-{name}-{unix}-{n}.jsonl"),
        };
        let path = dir.join(file);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(body.as_bytes())?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_never_overwrites_and_names_no_pattern_characters() {
        let dir = std::env::temp_dir().join(format!("sy-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = vec!["{\"a\":1}".to_string(), "{\"a\":2}".to_string()];
        let first = write_new(&dir, "orders.*", 7, &lines).unwrap();
        let second = write_new(&dir, "orders.*", 7, &lines[..1]).unwrap();
        assert_eq!(first, dir.join("switchyard-orders._-7.jsonl"));
        assert_eq!(second, dir.join("switchyard-orders._-7-2.jsonl"));
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "{\"a\":1}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
