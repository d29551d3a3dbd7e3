//! The scrolling table every list view uses: substring filter, sort by any column,
//! a selection that stays on its row across refreshes, and drawing only the rows
//! that fit, so 10,000 rows cost what 25 do.

use std::borrow::Cow;
use std::cmp::Ordering;

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

/// Rows a page moves before the table has been drawn and knows its height.
const DEFAULT_PAGE: usize = 20;

/// The mark in front of the selected row.
const SELECTED_MARK: &str = "▶ ";

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The header text.
    pub title: &'static str,
    /// How wide it is.
    pub width: Constraint,
    /// Numbers are right-aligned and sort biggest first.
    pub numeric: bool,
}

impl Column {
    /// A text column.
    pub const fn text(title: &'static str, width: Constraint) -> Column {
        Column {
            title,
            width,
            numeric: false,
        }
    }

    /// A numeric column.
    pub const fn number(title: &'static str, width: u16) -> Column {
        Column {
            title,
            width: Constraint::Length(width),
            numeric: true,
        }
    }
}

/// The sort order of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// Index into the model's columns.
    pub column: usize,
    /// Biggest (or last) first.
    pub descending: bool,
}

/// What one table lists, taken from a snapshot: its columns, how its rows filter
/// and sort, and how a row is drawn. Rows are named by their index in the
/// snapshot's list; the table keeps only indices.
pub trait TableModel {
    /// The columns, left to right.
    fn columns(&self) -> &'static [Column];
    /// The order a fresh table starts in.
    fn default_sort(&self) -> Sort {
        Sort {
            column: 0,
            descending: false,
        }
    }
    /// What the rows are, plural, for "no topics yet".
    fn noun(&self) -> &'static str;
    /// How many rows the snapshot holds.
    fn len(&self, snap: &Snapshot) -> usize;
    /// A name for row `i` that is the same in the next snapshot, to keep it selected
    /// (borrowed where the row has one: it is compared for every row on a rebuild).
    fn key<'s>(&self, snap: &'s Snapshot, i: usize) -> Cow<'s, str>;
    /// Does row `i` contain `needle` (lowercase) in any text column?
    fn matches(&self, snap: &Snapshot, i: usize, needle: &str) -> bool;
    /// Order rows `a` and `b` by `column`, ascending.
    fn compare(
        &self,
        snap: &Snapshot,
        rates: &Rates,
        column: usize,
        a: usize,
        b: usize,
    ) -> Ordering;
    /// Draw row `i` with these column widths.
    fn row(&self, snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Row<'static>;
    /// Does the selection stay on the last row when rows are appended (a log)?
    fn follows_tail(&self) -> bool {
        false
    }
}

/// The state of one table: which rows pass the filter in which order, the
/// selection, and the scroll position.
#[derive(Debug, Clone, PartialEq)]
pub struct TableState {
    /// Indices into the snapshot's list, filtered and sorted.
    pub rows: Vec<usize>,
    /// Rows in the snapshot before filtering.
    pub total: usize,
    /// Position of the selected row in `rows`.
    pub selected: usize,
    /// Position in `rows` of the first row drawn.
    pub offset: usize,
    /// Rows that fit on screen when it was last drawn; what PgUp/PgDn move.
    pub page: usize,
    /// The substring filter, as typed.
    pub filter: String,
    /// The sort order.
    pub sort: Sort,
    /// The key of the selected row, to find it again in the next snapshot.
    pub selected_key: Option<String>,
}

impl TableState {
    /// An empty table sorted by `sort`.
    pub fn new(sort: Sort) -> Self {
        TableState {
            rows: Vec::new(),
            total: 0,
            selected: 0,
            offset: 0,
            page: DEFAULT_PAGE,
            filter: String::new(),
            sort,
            selected_key: None,
        }
    }

    /// The snapshot index of the selected row, if there is one.
    pub fn selected_row(&self) -> Option<usize> {
        self.rows.get(self.selected).copied()
    }

    /// Move the selection by `delta` rows, stopping at either end.
    pub fn move_by(&mut self, delta: isize) {
        let last = self.rows.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    /// Move down a page.
    pub fn page_down(&mut self) {
        self.move_by(isize::try_from(self.page.max(1)).unwrap_or(isize::MAX));
    }

    /// Move up a page.
    pub fn page_up(&mut self) {
        self.move_by(-isize::try_from(self.page.max(1)).unwrap_or(isize::MAX));
    }

    /// Select the first row.
    pub fn first(&mut self) {
        self.selected = 0;
    }

    /// Select the last row.
    pub fn last(&mut self) {
        self.selected = self.rows.len().saturating_sub(1);
    }

    /// Record the key of the selected row, after the selection moved.
    pub fn remember(&mut self, model: &dyn TableModel, snap: &Snapshot) {
        self.selected_key = self.selected_row().map(|i| model.key(snap, i).into_owned());
    }

    /// Filter and sort `snap`'s rows again, keeping the selection on the same row
    /// (by key) if it is still there, or on the last row of a log that follows new rows.
    pub fn rebuild(&mut self, model: &dyn TableModel, snap: &Snapshot, rates: &Rates) {
        let at_end = self.rows.is_empty() || self.selected + 1 >= self.rows.len();
        let needle = self.filter.to_lowercase();
        self.total = model.len(snap);
        self.rows = (0..self.total)
            .filter(|&i| needle.is_empty() || model.matches(snap, i, &needle))
            .collect();
        let Sort { column, descending } = self.sort;
        // Ties are broken by index, so an unstable sort gives the stable order.
        self.rows.sort_unstable_by(|&a, &b| {
            let order = model.compare(snap, rates, column, a, b);
            let order = if descending { order.reverse() } else { order };
            order.then(a.cmp(&b))
        });

        if model.follows_tail() && at_end {
            self.last();
        } else if let Some(key) = &self.selected_key {
            let still_here = |pos: usize| model.key(snap, self.rows[pos]) == *key;
            if self.selected < self.rows.len() && still_here(self.selected) {
                // Common case: nothing moved.
            } else if let Some(pos) = (0..self.rows.len()).find(|&pos| still_here(pos)) {
                self.selected = pos;
            }
        }
        self.move_by(0);
        self.remember(model, snap);
    }

    /// Adjust the scroll offset so the selected row is among `height` visible rows.
    pub fn scroll_to_show(&mut self, height: usize) {
        self.page = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + self.page {
            self.offset = self.selected + 1 - self.page;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(self.page));
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

/// Compare strings the way people count: `c2` before `c10`.
///
/// Sorting 10,000 rows four times a second calls this a few hundred thousand
/// times, on names that often share long prefixes, so it skips the common prefix
/// byte by byte and only reads numbers where the names first differ.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let common = ab.iter().zip(bb).take_while(|(x, y)| x == y).count();
    // The first difference may be inside a number: back up to where it starts.
    let mut start = common;
    while start > 0 && ab[start - 1].is_ascii_digit() {
        start -= 1;
    }
    let digit_at = |s: &[u8]| s.get(start).is_some_and(u8::is_ascii_digit);
    if !(digit_at(ab) && digit_at(bb)) {
        return ab[common..].cmp(&bb[common..]);
    }
    let run = |s: &[u8]| s[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    let (ra, rb) = (run(ab), run(bb));
    let (va, vb) = (
        significant(&ab[start..start + ra]),
        significant(&bb[start..start + rb]),
    );
    va.len()
        .cmp(&vb.len())
        .then_with(|| va.cmp(vb))
        // Equal numbers (`02` and `2`): the rest decides, then the shorter spelling.
        .then_with(|| natural_cmp(&a[start + ra..], &b[start + rb..]))
        .then(ra.cmp(&rb))
}

/// Digits without their leading zeros.
fn significant(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

/// Compare two floats (rates) in a total order, so sorting stays well defined even
/// if a NaN slipped in.
pub fn float_cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

/// Draw `state`'s rows of `model` in `area`, in a block titled `title`.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    model: &dyn TableModel,
    snap: &Snapshot,
    rates: &Rates,
    state: &mut TableState,
) {
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
    let widths: Vec<u16> = Layout::horizontal(columns.iter().map(|c| c.width))
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
    let rows = visible.iter().map(|&i| model.row(snap, rates, i, &widths));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_counts_digits() {
        let mut ids = vec![
            "c10",
            "c2",
            "c1",
            "c100",
            "b7",
            "c02x",
            "c2x",
            "c",
            "jobs.a.0010",
            "jobs.a.0009",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            [
                "b7",
                "c",
                "c1",
                "c2",
                "c2x",
                "c02x",
                "c10",
                "c100",
                "jobs.a.0009",
                "jobs.a.0010"
            ]
        );
        assert_eq!(natural_cmp("c7", "c7"), Ordering::Equal);
        assert_eq!(
            natural_cmp("10.0.0.12:39004", "10.0.0.9:51820"),
            Ordering::Greater
        );
    }

    #[test]
    fn paging_and_ends_stay_in_bounds() {
        let mut state = TableState::new(Sort {
            column: 0,
            descending: false,
        });
        state.rows = (0..50).collect();
        state.page = 20;
        state.page_down();
        assert_eq!(state.selected, 20);
        state.page_down();
        state.page_down();
        assert_eq!(state.selected, 49);
        state.page_up();
        assert_eq!(state.selected, 29);
        state.first();
        state.move_by(-1);
        assert_eq!(state.selected, 0);
        state.last();
        assert_eq!(state.selected, 49);
    }

    #[test]
    fn scrolling_keeps_the_selection_visible() {
        let mut state = TableState::new(Sort {
            column: 0,
            descending: false,
        });
        state.rows = (0..100).collect();
        state.selected = 30;
        state.scroll_to_show(10);
        assert_eq!(state.offset, 21);
        state.selected = 5;
        state.scroll_to_show(10);
        assert_eq!(state.offset, 5);
        state.rows.truncate(8);
        state.selected = 7;
        state.scroll_to_show(10);
        assert_eq!(state.offset, 0);
    }
}
