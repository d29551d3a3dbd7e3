//! Drawing the scrolling table every list view uses: the header with its sort
//! arrow, the rows that fit (so 10,000 rows cost what 25 do), the selection mark,
//! the scrollbar, and the message for a table that is empty or filtered empty.
//! What the rows are and in which order is the state side's (`tables/`).

use ratatui::layout::{Alignment, Constraint, Layout, Margin, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, HighlightSpacing, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState,
    Table,
};
use ratatui::Frame;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::tables::{Sort, TableModel, TableState, Width};

/// The mark in front of the selected row.
const SELECTED_MARK: &str = "▶ ";

/// Draws row `i` of the snapshot's list with these column widths; each view has one.
pub type DrawRow = fn(&Snapshot, &Rates, usize, &[u16]) -> Row<'static>;

/// A table to draw: its title, what it lists, and how its rows look.
#[derive(Clone, Copy)]
pub struct Listing<'a> {
    /// The title, before the row count.
    pub title: &'a str,
    /// What the table lists, from the state side.
    pub model: &'a dyn TableModel,
    /// How one row is drawn.
    pub row: DrawRow,
}

/// The layout constraint for a column width.
fn constraint(width: Width) -> Constraint {
    match width {
        Width::Fixed(n) => Constraint::Length(n),
        Width::Fill(weight) => Constraint::Fill(weight),
    }
}

/// A right-aligned cell, for numbers.
pub fn number(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).alignment(Alignment::Right))
}

/// A text cell cut to `width` columns with an ellipsis.
pub fn text(text: &str, width: u16) -> Cell<'static> {
    Cell::from(format::fit(text, usize::from(width)))
}

/// A name cell cut to `width` columns in the middle, keeping the end that often
/// tells similar names apart.
pub fn name(text: &str, width: u16) -> Cell<'static> {
    Cell::from(format::fit_middle(text, usize::from(width)))
}

/// Draw `state`'s rows of `listing` in `area`.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    listing: Listing<'_>,
    snap: &Snapshot,
    rates: &Rates,
    state: &mut TableState,
) {
    let Listing { title, model, row } = listing;
    let count = if state.filter.is_empty() {
        format!(" {title} {} ", state.total)
    } else {
        format!(
            " {title} {} of {} · filter “{}” ",
            state.rows.len(),
            state.total,
            state.filter
        )
    };
    let mut block = Block::bordered()
        .border_style(Style::new().dark_gray())
        .title(Line::from(count).bold().white());
    if !state.rows.is_empty() {
        let position = format!(" {}/{} ", state.selected + 1, state.rows.len());
        block = block.title_bottom(Line::from(position).right_aligned().white());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let viewport = usize::from(inner.height - 1);
    state.scroll_to_show(viewport);

    let columns = model.columns();
    let mark = Span::raw(SELECTED_MARK).width() as u16;
    let widths: Vec<u16> = Layout::horizontal(columns.iter().map(|c| constraint(c.width)))
        .spacing(1)
        .split(Rect::new(0, 0, inner.width.saturating_sub(mark), 1))
        .iter()
        .map(|r| r.width)
        .collect();
    let header = Row::new(columns.iter().enumerate().map(|(i, c)| {
        let arrow = match state.sort {
            Sort { column, descending } if column == i => {
                if descending {
                    "▼"
                } else {
                    "▲"
                }
            }
            _ => "",
        };
        let label = Line::from(format!("{}{arrow}", c.title));
        Cell::from(if c.numeric {
            label.right_aligned()
        } else {
            label
        })
    }))
    .style(Style::new().bold().cyan());

    let visible = &state.rows[state.offset..(state.offset + viewport).min(state.rows.len())];
    let rows = visible.iter().map(|&i| row(snap, rates, i, &widths));
    let table = Table::new(rows, widths.iter().map(|&w| Constraint::Length(w)))
        .header(header)
        .row_highlight_style(Style::new().reversed())
        .highlight_symbol(SELECTED_MARK)
        .highlight_spacing(HighlightSpacing::Always);
    let mut table_state = ratatui::widgets::TableState::default();
    if !visible.is_empty() {
        table_state.select(Some(state.selected - state.offset));
    }
    frame.render_stateful_widget(table, inner, &mut table_state);

    if state.rows.is_empty() {
        let message = if state.total == 0 {
            format!("no {} yet", model.noun())
        } else {
            format!(
                "no {} match “{}” (Esc clears the filter)",
                model.noun(),
                state.filter
            )
        };
        let body = Rect {
            y: inner.y + 1,
            height: inner.height - 1,
            ..inner
        };
        frame.render_widget(
            Paragraph::new(message).dim().alignment(Alignment::Center),
            body.centered_vertically(Constraint::Length(1)),
        );
    } else if state.rows.len() > viewport {
        let mut bar = ScrollbarState::new(state.rows.len() - viewport + 1)
            .position(state.offset)
            .viewport_content_length(viewport);
        let track = area.inner(Margin {
            vertical: 1,
            horizontal: 0,
        });
        let track = Rect {
            y: track.y + 1,
            height: track.height.saturating_sub(1),
            ..track
        };
        frame.render_stateful_widget(
            Scrollbar::new(ScrollbarOrientation::VerticalRight)
                .begin_symbol(None)
                .end_symbol(None),
            track,
            &mut bar,
        );
    }
}
