//! The two bottom lines: the status line (the filter being typed, an action
//! still waiting for the broker, or the last action's result) and the key hints
//! for where the keyboard is.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::{App, Level};
use crate::command_line;
use crate::format;
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
        None if app.command_line.is_some() => candidates(app, usize::from(area.width)),
        None if table.filtered() => {
            let mut spans = Vec::new();
            if !table.pattern.is_empty() {
                spans.push(Span::styled(" matching ", Style::new().yellow()));
                spans.push(Span::raw(table.pattern.clone()));
            }
            if !table.filter.is_empty() {
                spans.push(Span::styled(" filter ", Style::new().yellow()));
                spans.push(Span::raw(table.filter.clone()));
            }
            spans.push(Span::styled(
                "  (/ edits, Esc clears)",
                Style::new().dark_gray(),
            ));
            Line::from(spans)
        }
        None => Line::default(),
    };
    frame.render_widget(line, area);
}

/// What Tab could complete the `:` line with, as many as fit the brief list.
fn candidates(app: &App, width: usize) -> Line<'static> {
    let found = app.command_candidates();
    let typing_a_word = app
        .command_line
        .as_ref()
        .is_some_and(|l| !l.value().is_empty() && !l.value().ends_with(' '));
    if found.is_empty() && !typing_a_word {
        return Line::default();
    }
    if found.is_empty() {
        return Line::from(Span::styled(" no completions", Style::new().dark_gray()));
    }
    let mut spans = vec![Span::styled(" Tab ", Style::new().cyan().bold())];
    // Whole names only, as many as fit beside the count of the rest.
    let mut room = width.saturating_sub(5 + "and 99,999 more".len());
    let mut shown = 0;
    for name in found.iter().take(command_line::CANDIDATES_SHOWN) {
        let w = name.chars().count() + 2;
        if w > room {
            break;
        }
        room -= w;
        shown += 1;
        spans.push(Span::raw(name.clone()));
        spans.push(Span::raw("  "));
    }
    let more = found.len() - shown;
    if more > 0 {
        spans.push(Span::styled(
            format!("and {} more", format::grouped(more as u64)),
            Style::new().dark_gray(),
        ));
    }
    Line::from(spans)
}

/// Draw the `:` line over the key hints, with the cursor where it types.
fn render_command_line(frame: &mut Frame, area: Rect, input: &tui_input::Input) {
    let prompt = " : ";
    let width = usize::from(area.width).saturating_sub(prompt.len() + 1);
    let scroll = input.visual_scroll(width);
    let shown: String = input.value().chars().skip(scroll).collect();
    frame.render_widget(
        Line::from(vec![
            Span::styled(prompt, Style::new().cyan().bold()),
            Span::raw(shown),
        ]),
        area,
    );
    let column = (prompt.len() + input.visual_cursor().saturating_sub(scroll)) as u16;
    frame.set_cursor_position((area.x + column.min(area.width.saturating_sub(1)), area.y));
}

/// Draw the key hints for the current context and view, from the key table.
/// On a narrow terminal hints are left out whole: first the moves everyone
/// knows (select, filter, sort), then from the right; help and quit stay, and
/// `?` lists whatever was left out.
pub fn render_keys(frame: &mut Frame, area: Rect, app: &App) {
    if let (Some(line), None) = (&app.command_line, &app.overlay) {
        return render_command_line(frame, area, &line.input);
    }
    let filtered = app.tables[app.view.index()].filtered();
    let mut hints: Vec<_> =
        keys::footer(app.context(), app.view, app.read_only, filtered).collect();
    let shown = |h: &keys::Hint| h.keys.chars().count() + 1 + h.text.chars().count() + 3;
    let kept = |h: &keys::Hint| matches!(h.keys, "?" | "q");
    while 1 + hints.iter().map(shown).sum::<usize>() > usize::from(area.width) + 3 {
        let known = |h: &keys::Hint| matches!(h.keys, "↑↓ jk" | "/" | "s S" | "␣");
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
