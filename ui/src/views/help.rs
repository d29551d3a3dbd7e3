//! The `?` help overlay: every key binding, drawn from the key table, in two
//! columns where they fit side by side and in one scrolled column where not.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::command_line;
use crate::keys::{self, Context};
use crate::widgets::popup;

/// Columns between the two halves when they are side by side.
const GAP: u16 = 2;

/// The help lines: table keys and those that work anywhere (`left`), and the
/// dialogs' and popups' (`right`): two halves of about the same height, which
/// fit side by side at 120x32.
fn sections() -> (Vec<Line<'static>>, Vec<Line<'static>>) {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for (context, bindings) in keys::help() {
        let lines = if matches!(context, Context::Table | Context::Any) {
            &mut left
        } else {
            &mut right
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
        if context == Context::Command {
            for w in command_line::WORDS {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {:<14}", w.usage), Style::new().cyan().bold()),
                    Span::raw(w.help),
                ]));
            }
        }
    }
    (left, right)
}

/// Draw the help overlay over `area`, clamping `scroll` (the first line shown)
/// to the content: side by side when both halves fit whole, else one column
/// (at 80x24 the halves would be cut mid-word), with a mark on the border
/// while there is more above or below.
pub fn render(frame: &mut Frame, area: Rect, scroll: &mut usize) {
    let inner = popup(frame, area, Line::from(" Keys · Esc or ? closes "));
    let (left, right) = sections();
    let widest = left
        .iter()
        .chain(&right)
        .map(Line::width)
        .max()
        .unwrap_or(0);
    let half = usize::from(inner.width.saturating_sub(GAP) / 2);
    let columns = if widest <= half {
        let [l, r] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
            .spacing(GAP)
            .areas(inner);
        vec![(left, l), (right, r)]
    } else {
        vec![(left.into_iter().chain(right).collect(), inner)]
    };
    let height = columns
        .iter()
        .map(|(lines, _)| lines.len())
        .max()
        .unwrap_or(0);
    *scroll = (*scroll).min(height.saturating_sub(usize::from(inner.height)));
    let offset = u16::try_from(*scroll).unwrap_or(u16::MAX);
    for (lines, column) in columns {
        frame.render_widget(Paragraph::new(lines).scroll((offset, 0)), column);
    }
    let below = *scroll + usize::from(inner.height) < height;
    more_mark(frame, area, *scroll > 0, below);
}

/// `↑↓ more` on the popup's bottom border, for content above or below the view.
fn more_mark(frame: &mut Frame, area: Rect, above: bool, below: bool) {
    let mark = match (above, below) {
        (false, false) => return,
        (true, true) => " ↑↓ more ",
        (false, true) => " ↓ more ",
        (true, false) => " ↑ more ",
    };
    let Some(y) = area.bottom().checked_sub(1) else {
        return;
    };
    let row = Rect {
        x: area.x + 1,
        y,
        width: area.width.saturating_sub(3),
        height: 1,
    };
    frame.render_widget(Line::from(mark).cyan().bold().right_aligned(), row);
}
