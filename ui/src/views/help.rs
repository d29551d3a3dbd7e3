//! The `?` help overlay: every key binding, drawn from the key table.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::keys::{self, Context};
use crate::widgets::popup;

/// Draw the help overlay over `area`: table keys on the left, the rest on the right.
pub fn render(frame: &mut Frame, area: Rect) {
    let inner = popup(frame, area, Line::from(" Keys · Esc or ? closes "));
    let [left, right] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
        .spacing(2)
        .areas(inner);
    let mut left_lines = Vec::new();
    let mut right_lines = Vec::new();
    for (context, bindings) in keys::help() {
        let lines = if context == Context::Table {
            &mut left_lines
        } else {
            &mut right_lines
        };
        lines.push(Line::from(Span::styled(
            context.title(),
            Style::new().yellow().bold(),
        )));
        for b in bindings {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<10}", b.label), Style::new().cyan().bold()),
                Span::raw(b.help),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(left_lines), left);
    frame.render_widget(Paragraph::new(right_lines), right);
}
