//! The tail popup: a topic's messages as they are published, two lines each: the
//! fields a filter can test (topic, seq, time, headers), then the JSON `data`.

use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::Tail;
use crate::format;
use crate::views::peek::header_pairs;
use crate::widgets::popup;

/// Lines each message takes.
const LINES_PER_MESSAGE: usize = 2;

/// Draw the tail popup over `area`, the newest message at the bottom.
pub fn render(frame: &mut Frame, area: Rect, tail: &mut Tail) {
    let len = tail.messages.len();
    let title = format!(" Tail {} · {} received ", tail.pattern, tail.received);
    let inner = popup(frame, area, Line::from(title));
    let fits = (usize::from(inner.height) / LINES_PER_MESSAGE).max(1);
    tail.back = tail.back.min(len.saturating_sub(fits));
    let end = len - tail.back;
    let start = end.saturating_sub(fits);

    let width = usize::from(inner.width);
    let mut lines = Vec::new();
    for m in tail.messages.range(start..end) {
        lines.push(Line::from(vec![
            Span::styled(format!("#{:<8}", m.seq), Style::new().yellow().bold()),
            Span::styled(
                format!("{}  ", format::clock_ms(m.time)),
                Style::new().dark_gray(),
            ),
            Span::raw(format!("{}  ", m.topic)).bold(),
            Span::styled(header_pairs(m.headers.as_ref()), Style::new().cyan()),
        ]));
        let json = serde_json::to_string(&m.data).unwrap_or_else(|e| e.to_string());
        lines.push(Line::from(format::fit(&format!("  {json}"), width)));
    }
    if lines.is_empty() {
        lines.push(Line::from(format!(" waiting for messages on {}…", tail.pattern)).dim());
    }
    frame.render_widget(Paragraph::new(lines), inner);

    let where_ = if tail.back == 0 {
        " following · ↑ scrolls back ".to_string()
    } else {
        format!(" {} newer below · End follows ", tail.back)
    };
    let bottom = Rect {
        y: area.bottom().saturating_sub(1),
        height: 1,
        ..area
    };
    frame.render_widget(
        Line::from(where_).right_aligned().dark_gray(),
        bottom.inner(ratatui::layout::Margin {
            horizontal: 2,
            vertical: 0,
        }),
    );
}
