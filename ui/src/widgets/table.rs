//! Drawing the scrolling table every list view uses: the header with its sort
//! arrow, the rows that fit (so 10,000 rows cost what 25 do), the selection mark,
//! the scrollbar, and the message for a table that is empty or filtered empty;
//! on a narrow terminal, which columns are left out so the rest read whole.
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
use crate::tables::{Column, Sort, TableModel, TableState, Width};

/// The mark in front of the selected row.
const SELECTED_MARK: &str = "▶ ";

/// Draws row `i` of the snapshot's list with these column widths (0 for a column
/// left out); each view has one.
pub type DrawRow = fn(&Snapshot, &Rates, usize, &[u16]) -> Cells;

/// One row as a view draws it: a cell for every column of its table, and the
/// row's style. The table keeps the cells of the columns that fit, so a view
/// draws every column the same way whatever the terminal's width.
pub struct Cells {
    cells: Vec<Cell<'static>>,
    style: Style,
}

impl Cells {
    /// A row of these cells, one per column, left to right.
    pub fn new(cells: impl IntoIterator<Item = Cell<'static>>) -> Cells {
        Cells {
            cells: cells.into_iter().collect(),
            style: Style::new(),
        }
    }

    /// The same row drawn in `style`.
    pub fn style(self, style: Style) -> Cells {
        Cells { style, ..self }
    }

    /// The row with only the cells of the `shown` columns (ascending).
    fn keep(self, shown: &[usize]) -> Row<'static> {
        let cells = self
            .cells
            .into_iter()
            .enumerate()
            .filter(|(i, _)| shown.binary_search(i).is_ok())
            .map(|(_, cell)| cell);
        Row::new(cells).style(self.style)
    }
}

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
        Width::Fill { weight, .. } => Constraint::Fill(weight),
    }
}

/// The columns drawn in `width` terminal columns (one between each two), in
/// order: while they do not fit at their narrowest, the optional column of the
/// highest drop rank is left out (the rightmost of equal ranks). `keep`, the
/// column the table is sorted by, goes last of the optional ones: its arrow
/// says what the order is, but a whole name and whole numbers come first.
///
/// A column that is not optional is never left out, so on a terminal too narrow
/// even for those the layout squeezes them; [`MIN_SIZE`](crate::views::MIN_SIZE)
/// is chosen so that every table's fit.
pub fn shown_columns(columns: &[Column], width: u16, keep: usize) -> Vec<usize> {
    shown_among(columns, (0..columns.len()).collect(), width, keep)
}

/// [`shown_columns`] of the columns `shown` (ascending) only.
fn shown_among(columns: &[Column], mut shown: Vec<usize>, width: u16, keep: usize) -> Vec<usize> {
    while needed(columns, &shown) > u32::from(width) {
        let next = shown
            .iter()
            .enumerate()
            .filter_map(|(at, &i)| columns[i].drop_rank.map(|rank| (i != keep, rank, at)))
            .max();
        match next {
            Some((_, _, at)) => {
                shown.remove(at);
            }
            None => break,
        }
    }
    shown
}

/// Terminal columns the `shown` columns need at their narrowest, with spacing.
fn needed(columns: &[Column], shown: &[usize]) -> u32 {
    let widths: u32 = shown
        .iter()
        .map(|&i| u32::from(columns[i].min_width()))
        .sum();
    widths + shown.len().saturating_sub(1) as u32
}

/// The width of every column in `width` terminal columns: 0 for one left out.
fn column_widths(columns: &[Column], shown: &[usize], width: u16) -> Vec<u16> {
    let areas = Layout::horizontal(shown.iter().map(|&i| constraint(columns[i].width)))
        .spacing(1)
        .split(Rect::new(0, 0, width, 1));
    let mut widths = vec![0; columns.len()];
    for (&i, area) in shown.iter().zip(areas.iter()) {
        widths[i] = area.width;
    }
    widths
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
    let count = if state.filtered() {
        let mut count = format!(" {title} {} of {}", state.rows.len(), state.total);
        if !state.pattern.is_empty() {
            count.push_str(&format!(" · matching {}", state.pattern));
        }
        if !state.filter.is_empty() {
            count.push_str(&format!(" · filter “{}”", state.filter));
        }
        count.push(' ');
        count
    } else {
        format!(" {title} {} ", state.total)
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
    let room = inner.width.saturating_sub(mark);
    // The Node column only for a node of a cluster.
    let candidates = (0..columns.len())
        .filter(|&i| columns[i].drawn_for(snap))
        .collect();
    let shown = shown_among(columns, candidates, room, state.sort.column);
    let widths = column_widths(columns, &shown, room);
    let header = Row::new(shown.iter().map(|&i| {
        let c = &columns[i];
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
    let rows = visible
        .iter()
        .map(|&i| row(snap, rates, i, &widths).keep(&shown));
    let table = Table::new(rows, shown.iter().map(|&i| Constraint::Length(widths[i])))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables;
    use crate::view::View;
    use crate::views::MIN_SIZE;

    const NAME: Column = Column::name("Name", 1, 10);
    const A: Column = Column::number("A", 5);
    const B: Column = Column::number("B", 5).optional(1);
    const C: Column = Column::number("C", 5).optional(2);
    const D: Column = Column::number("D", 5).optional(2);

    #[test]
    fn optional_columns_go_highest_rank_first_then_rightmost() {
        let columns = [NAME, A, B, C, D];
        // 10 + 4 × 5 + 4 spaces: everything fits.
        assert_eq!(shown_columns(&columns, 34, 0), [0, 1, 2, 3, 4]);
        assert_eq!(shown_columns(&columns, 33, 0), [0, 1, 2, 3]);
        assert_eq!(shown_columns(&columns, 27, 0), [0, 1, 2]);
        assert_eq!(shown_columns(&columns, 21, 0), [0, 1]);
        // Not even the name's minimum fits: what is not optional stays anyway.
        assert_eq!(shown_columns(&columns, 5, 0), [0, 1]);
    }

    #[test]
    fn the_sorted_column_goes_last_of_the_optional_ones() {
        let columns = [NAME, A, B, C, D];
        assert_eq!(shown_columns(&columns, 27, 4), [0, 1, 4]);
        assert_eq!(shown_columns(&columns, 21, 4), [0, 1]);
    }

    /// At the smallest size drawn, every table's columns fit at their narrowest,
    /// whichever column it is sorted by: no number is cut, no name squeezed.
    #[test]
    fn every_table_fits_at_the_minimum_size_whatever_its_sort() {
        let room = MIN_SIZE.0 - 2 - Span::raw(SELECTED_MARK).width() as u16;
        for view in View::ALL {
            let columns = tables::model(view).columns();
            for keep in 0..columns.len() {
                let shown = shown_columns(columns, room, keep);
                assert!(
                    needed(columns, &shown) <= u32::from(room),
                    "{view:?} sorted by {}: {shown:?}",
                    columns[keep].title
                );
            }
        }
    }

    #[test]
    fn columns_left_out_have_no_width_and_the_name_takes_what_is_left() {
        let columns = [NAME, A, B, C, D];
        let shown = shown_columns(&columns, 30, 0);
        assert_eq!(column_widths(&columns, &shown, 30), [12, 5, 5, 5, 0]);
    }
}
