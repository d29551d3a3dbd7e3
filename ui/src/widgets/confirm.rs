//! The yes/no dialog shown before a destructive action.

use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{centered, popup};

/// Draw a confirm dialog titled `title` asking `question`, centred in `area`.
pub fn render(frame: &mut Frame, area: Rect, title: &str, question: &str) {
    let width = (Span::raw(question).width() as u16 + 6).clamp(44, 90);
    let lines = (Span::raw(question).width() as u16)
        .div_ceil(width - 4)
        .max(1);
    let dialog = centered(area, width, lines + 4);
    let inner = popup(frame, dialog, Line::from(format!(" {title} ")));
    let text = vec![
        Line::from(question.to_string()).bold(),
        Line::default(),
        Line::from(vec![
            Span::styled(" y ", Style::new().black().on_green().bold()),
            Span::raw(" yes   "),
            Span::styled(" n ", Style::new().black().on_red().bold()),
            Span::raw(" / "),
            Span::styled(" Esc ", Style::new().black().on_red().bold()),
            Span::raw(" no"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        inner,
    );
}
