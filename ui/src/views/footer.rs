//! The two bottom lines: the status line (the filter being typed, an action
//! still waiting for the broker, or the last action's result) and the key hints
//! for where the keyboard is.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::{App, Level};
use crate::keys;

/// Draw the status line.
pub fn render_status(frame: &mut Frame, area: Rect, app: &App) {
    if let Some(input) = &app.filter_input {
        let prompt = " filter / ";
        let width = usize::from(area.width).saturating_sub(prompt.len() + 1);
        let scroll = input.visual_scroll(width);
        let shown: String = input.value().chars().skip(scroll).collect();
        frame.render_widget(
            Line::from(vec![
                Span::styled(prompt, Style::new().yellow().bold()),
                Span::raw(shown),
            ]),
            area,
        );
        let column = (prompt.len() + input.visual_cursor().saturating_sub(scroll)) as u16;
        frame.set_cursor_position((area.x + column.min(area.width.saturating_sub(1)), area.y));
        return;
    }
    // Until its answer comes, an action's last word is that it is on its way.
    if let Some(doing) = app.in_progress() {
        let line = Line::from(vec![
            Span::styled(" · ", Style::new().bold()),
            Span::raw(doing),
        ]);
        frame.render_widget(line, area);
        return;
    }
    let table = &app.tables[app.view.index()];
    let line = match &app.status {
        Some(status) => {
            let (mark, style) = match status.level {
                Level::Info => (" · ", Style::new()),
                Level::Done => (" ✓ ", Style::new().green()),
                Level::Error => (" ✗ ", Style::new().red()),
            };
            Line::from(vec![
                Span::styled(mark, style.bold()),
                Span::styled(status.text.clone(), style),
            ])
        }
        None if !table.filter.is_empty() => Line::from(vec![
            Span::styled(" filter ", Style::new().yellow()),
            Span::raw(table.filter.clone()),
            Span::styled("  (/ edits, Esc clears)", Style::new().dark_gray()),
        ]),
        None => Line::default(),
    };
    frame.render_widget(line, area);
}

/// Draw the key hints for the current context and view, from the key table.
/// On a narrow terminal hints are left out whole: first the moves everyone
/// knows (select, filter, sort), then from the right; help and quit stay, and
/// `?` lists whatever was left out.
pub fn render_keys(frame: &mut Frame, area: Rect, app: &App) {
    let mut hints: Vec<_> = keys::footer(app.context(), app.view, app.read_only).collect();
    let shown = |h: &keys::Hint| h.keys.chars().count() + 1 + h.text.chars().count() + 3;
    let kept = |h: &keys::Hint| matches!(h.keys, "?" | "q");
    while 1 + hints.iter().map(shown).sum::<usize>() > usize::from(area.width) + 3 {
        let known = |h: &keys::Hint| matches!(h.keys, "↑↓ jk" | "/" | "s S");
        let drop = hints
            .iter()
            .rposition(known)
            .or_else(|| hints.iter().rposition(|h| !kept(h)));
        match drop {
            Some(i) => {
                hints.remove(i);
            }
            None => break,
        }
    }
    let mut spans = vec![Span::raw(" ")];
    for hint in hints {
        spans.push(Span::styled(hint.keys, Style::new().cyan().bold()));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(hint.text, Style::new().dark_gray()));
        spans.push(Span::raw("   "));
    }
    frame.render_widget(Line::from(spans), area);
}
