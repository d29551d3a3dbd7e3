//! The peek popup: a page of a queue's ready messages (paged through the whole
//! queue by the broker's cursor, selected by a search), pretty-printed, not
//! consumed; one of them selected; and the `/` prompt it shares with the tail.

use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use switchyard_broker::Headers;

use crate::app::{describe_query, query_of, Peek};
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
/// page shows (of what the search selects), and that peeking consumes nothing,
/// if there is room for it.
pub fn title(peek: &Peek, width: u16) -> String {
    let n = peek.messages.len();
    let query = describe_query(&peek.query);
    let head = match (&query, n) {
        (Some(q), 0) => format!(" Peek {}: no ready message matches {q} ", peek.queue),
        (None, 0) => format!(" Peek {}: no ready messages ", peek.queue),
        (Some(q), n) => {
            let (first, last) = (peek.first(), peek.first() + n - 1);
            format!(" Peek {} ({q}): matches {first}–{last} ", peek.queue)
        }
        (None, n) => {
            let (first, last) = (peek.first(), peek.first() + n - 1);
            let of = match peek.ready {
                Some(ready) => format!(" of {} ready", format::grouped(ready)),
                None => String::new(),
            };
            format!(" Peek {}: messages {first}–{last}{of} ", peek.queue)
        }
    };
    let full = format!("{head}(not consumed) ");
    if n > 0 && Line::raw(full.as_str()).width() <= usize::from(width) {
        full
    } else {
        head
    }
}

/// What the page cannot show, said after its last message: that the broker
/// cut its answer to fit its buffer, and whether more pages follow.
fn notes(peek: &Peek) -> Vec<String> {
    let mut notes = Vec::new();
    if peek.truncated {
        notes.push(
            "The broker cut its answer to fit its outbound buffer: this page ends early."
                .to_string(),
        );
    }
    if peek.next.is_some() {
        notes.push("More follow: → for the next page.".to_string());
    }
    notes
}

/// Draw the peek popup over `area`, clamping its scroll to the content. With a
/// message selected, the view starts at it (PgDn scrolls on from there).
/// Returns where the popup is, for the search prompt.
pub fn render(frame: &mut Frame, area: Rect, peek: &mut Peek) -> Rect {
    let dialog = centered(area, 100, area.height.saturating_sub(2));
    let title = title(peek, dialog.width.saturating_sub(2));
    let inner = popup(frame, dialog, Line::from(title));

    let mut lines: Vec<Line> = Vec::new();
    let mut selected_at = 0;
    for (i, m) in peek.messages.iter().enumerate() {
        let selected = peek.selected == Some(i);
        if selected {
            selected_at = lines.len();
        }
        let number = Style::new().yellow().bold();
        let mut head = vec![
            Span::styled(if selected { "▶ " } else { "" }, number),
            Span::styled(format!("#{} ", peek.first() + i), number),
            Span::raw(m.msg.clone().unwrap_or_default()).bold(),
        ];
        if let Some(seq) = m.seq {
            head.push(Span::raw(format!("seq {seq}")).bold());
        }
        head.push(Span::styled(
            format!("  attempt {}  {}  ", m.attempt, format::clock_ms(m.time)),
            Style::new().dark_gray(),
        ));
        let head = Line::from(head);
        lines.push(if selected { head.reversed() } else { head });
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
        let empty = match describe_query(&peek.query) {
            Some(q) => {
                format!(" no ready message matches {q} · / changes it (empty: every message)")
            }
            None => " no ready messages".to_string(),
        };
        lines.push(Line::from(empty).dim());
    }

    let height = usize::from(inner.height);
    let room = lines.len().saturating_sub(height);
    peek.scroll = peek.scroll.min(room.saturating_sub(selected_at));
    let scroll = (selected_at + peek.scroll).min(room);
    let scroll = u16::try_from(scroll).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
    dialog
}

/// The `/` prompt on the last line inside the peek or tail popup at `area`:
/// the text typed, and whether the broker takes it as a filter or a substring.
pub fn render_search(frame: &mut Frame, area: Rect, text: &str) {
    // The rule, said as the text is typed: a filter if it parses as one.
    let kind = match query_of(text) {
        q if q.filter.is_some() => "a filter",
        q if q.search.is_some() => "text (not a filter)",
        _ => "everything",
    };
    let line = Line::from(vec![
        Span::styled(" / ", Style::new().yellow().bold()),
        Span::raw(text.to_string()),
        Span::raw("▏").yellow(),
        Span::styled(
            format!("  {kind} · ⏎ search · Esc cancel "),
            Style::new().dark_gray(),
        ),
    ]);
    let bottom = Rect {
        y: area.bottom().saturating_sub(2),
        height: 1,
        x: area.x.saturating_add(1),
        width: area.width.saturating_sub(2),
    };
    frame.render_widget(ratatui::widgets::Clear, bottom);
    frame.render_widget(Paragraph::new(line).on_black(), bottom);
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
