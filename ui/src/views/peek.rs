//! The peek popup: a queue's next ready messages, pretty-printed, not consumed.

use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use switchyard_broker::Headers;

use crate::app::Peek;
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

/// Draw the peek popup over `area`, clamping its scroll to the content.
pub fn render(frame: &mut Frame, area: Rect, peek: &mut Peek) {
    let n = peek.messages.len();
    let title = format!(
        " Peek {}: next {n} ready message{} (not consumed) ",
        peek.queue,
        if n == 1 { "" } else { "s" }
    );
    let dialog = centered(area, 100, area.height.saturating_sub(2));
    let inner = popup(frame, dialog, Line::from(title));

    let mut lines: Vec<Line> = Vec::new();
    for (i, m) in peek.messages.iter().enumerate() {
        let mut head = vec![
            Span::styled(format!("#{} ", i + 1), Style::new().yellow().bold()),
            Span::raw(m.msg.clone().unwrap_or_default()).bold(),
        ];
        if let Some(seq) = m.seq {
            head.push(Span::raw(format!("seq {seq}")).bold());
        }
        head.push(Span::styled(
            format!("  attempt {}  {}  ", m.attempt, format::clock_ms(m.time)),
            Style::new().dark_gray(),
        ));
        head.push(Span::styled(
            header_pairs(m.headers.as_ref()),
            Style::new().cyan(),
        ));
        lines.push(Line::from(head));
        let pretty = serde_json::to_string_pretty(&m.data).unwrap_or_else(|e| e.to_string());
        lines.extend(pretty.lines().map(|l| Line::from(format!("  {l}"))));
        lines.push(Line::default());
    }
    if lines.is_empty() {
        lines.push(Line::from(" no ready messages").dim());
    }

    let height = usize::from(inner.height);
    peek.scroll = peek.scroll.min(lines.len().saturating_sub(height));
    let scroll = u16::try_from(peek.scroll).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}
