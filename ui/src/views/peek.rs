//! The peek popup: a page of a queue's next ready messages, pretty-printed, not
//! consumed.

use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use switchyard_broker::Headers;

use crate::app::{Peek, PEEK_MAX};
use crate::format;
use crate::widgets::{centered, popup};

/// `name=value` pairs of a message's headers, multi-valued ones as `name=[a,b]`.
pub fn header_pairs(headers: Option<&Headers>) -> String {
    let Some(headers) = headers else {
        return String::new();
    };
    headers
        .iter()
        .map(|(name, value)| {
            let values: Vec<&str> = value.values().collect();
            match values.as_slice() {
                [one] => format!("{name}={one}"),
                many => format!("{name}=[{}]", many.join(",")),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The popup's title in `width` columns: which messages of how many ready the
/// page shows, and that peeking consumes nothing, if there is room for it.
pub fn title(peek: &Peek, width: u16) -> String {
    let n = peek.messages.len();
    if n == 0 {
        return format!(" Peek {}: no ready messages ", peek.queue);
    }
    let (first, last) = (peek.first(), peek.first() + n - 1);
    let of = match peek.ready {
        Some(ready) => format!(" of {} ready", format::grouped(ready)),
        None => String::new(),
    };
    let head = format!(" Peek {}: messages {first}–{last}{of} ", peek.queue);
    let full = format!("{head}(not consumed) ");
    if Line::raw(full.as_str()).width() <= usize::from(width) {
        full
    } else {
        head
    }
}

/// What the page cannot show, said after its last message: that the broker
/// cut its answer to fit its buffer, or that it peeks no further than
/// [`PEEK_MAX`] messages.
fn notes(peek: &Peek) -> Vec<String> {
    let mut notes = Vec::new();
    if peek.truncated {
        notes.push(
            "The broker cut its answer to fit its outbound buffer: this page ends early."
                .to_string(),
        );
    }
    match peek.ready {
        Some(ready) if peek.at_broker_limit() && ready > PEEK_MAX as u64 => notes.push(format!(
            "The broker peeks at the first {} messages: the {} after them cannot be shown.",
            format::grouped(PEEK_MAX as u64),
            format::grouped(ready - PEEK_MAX as u64)
        )),
        _ => {}
    }
    notes
}

/// Draw the peek popup over `area`, clamping its scroll to the content.
pub fn render(frame: &mut Frame, area: Rect, peek: &mut Peek) {
    let dialog = centered(area, 100, area.height.saturating_sub(2));
    let title = title(peek, dialog.width.saturating_sub(2));
    let inner = popup(frame, dialog, Line::from(title));

    let mut lines: Vec<Line> = Vec::new();
    for (i, m) in peek.messages.iter().enumerate() {
        let mut head = vec![
            Span::styled(
                format!("#{} ", peek.first() + i),
                Style::new().yellow().bold(),
            ),
            Span::raw(m.msg.clone().unwrap_or_default()).bold(),
        ];
        if let Some(seq) = m.seq {
            head.push(Span::raw(format!("seq {seq}")).bold());
        }
        head.push(Span::styled(
            format!("  attempt {}  {}  ", m.attempt, format::clock_ms(m.time)),
            Style::new().dark_gray(),
        ));
        lines.push(Line::from(head));
        // Headers whole, one a line, wrapped: a dead-letter queue's
        // `x-dead-letter-reason` is the point of peeking at it.
        let width = usize::from(inner.width);
        for (name, value) in m.headers.iter().flatten() {
            let values: Vec<&str> = value.values().collect();
            let text = format!("  {name}: {}", values.join(", "));
            for piece in wrapped(&text, width) {
                lines.push(Line::styled(piece, Style::new().cyan()));
            }
        }
        let pretty = serde_json::to_string_pretty(&m.data).unwrap_or_else(|e| e.to_string());
        for l in pretty.lines() {
            lines.extend(
                wrapped(&format!("  {l}"), width)
                    .into_iter()
                    .map(Line::from),
            );
        }
        lines.push(Line::default());
    }
    for note in notes(peek) {
        let width = usize::from(inner.width);
        lines.extend(
            wrapped(&note, width)
                .into_iter()
                .map(|l| Line::from(l).dim()),
        );
    }
    if lines.is_empty() {
        lines.push(Line::from(" no ready messages").dim());
    }

    let height = usize::from(inner.height);
    peek.scroll = peek.scroll.min(lines.len().saturating_sub(height));
    let scroll = u16::try_from(peek.scroll).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}

/// `text` cut into pieces of at most `width` characters (at least one piece),
/// continuation pieces indented, so nothing is cut off at the popup's edge.
fn wrapped(text: &str, width: usize) -> Vec<String> {
    const INDENT: &str = "    ";
    let width = width.max(INDENT.len() + 1);
    let mut pieces = Vec::new();
    let mut chars: Vec<char> = text.chars().collect();
    let mut first = true;
    loop {
        let room = if first { width } else { width - INDENT.len() };
        let rest: Vec<char> = chars.split_off(chars.len().min(room));
        let piece: String = chars.iter().collect();
        pieces.push(if first {
            piece
        } else {
            format!("{INDENT}{piece}")
        });
        first = false;
        if rest.is_empty() {
            return pieces;
        }
        chars = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::wrapped;

    #[test]
    fn long_lines_wrap_whole_and_short_ones_stay() {
        assert_eq!(wrapped("abc", 10), vec!["abc"]);
        assert_eq!(wrapped("abcdefghij", 6), vec!["abcdef", "    gh", "    ij"]);
        let long = "x".repeat(250);
        let pieces = wrapped(&long, 80);
        assert!(pieces.iter().all(|p| p.chars().count() <= 80));
        let joined: String = pieces.iter().map(|p| p.trim_start()).collect();
        assert_eq!(joined, long);
    }
}
