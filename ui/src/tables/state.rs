//! The state of one table: the rows that pass its filter in its sort order, the
//! selection that stays on its row across snapshots, and the scroll position.

use std::collections::HashMap;

use switchyard_broker::{names, Snapshot};

use super::{Sort, TableModel};
use crate::rates::Rates;

/// Rows a page moves before the table has been drawn and knows its height.
const DEFAULT_PAGE: usize = 20;

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
    /// A topic pattern (`orders.>`, from `:t`) the rows' keys must match, or empty.
    pub pattern: String,
    /// The sort order.
    pub sort: Sort,
    /// The key of the selected row, to find it again in the next snapshot.
    pub selected_key: Option<String>,
    /// Where each row (by key) was after the last rebuild, and the sort it was
    /// in: rows equal in the sorted column keep these places on the next one.
    previous: Option<(Sort, HashMap<String, usize>)>,
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
            pattern: String::new(),
            sort,
            selected_key: None,
            previous: None,
        }
    }

    /// Whether a filter or a pattern hides rows (kept or being typed).
    pub fn filtered(&self) -> bool {
        !self.filter.is_empty() || !self.pattern.is_empty()
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
            .filter(|&i| {
                self.pattern.is_empty()
                    || names::pattern_matches(&self.pattern, &model.key(snap, i))
            })
            .collect();
        self.sort_rows(model, snap, rates);
        self.previous = Some((self.sort, self.positions(model, snap)));

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

    /// Sort the rows by the sorted column. Rows equal in it (rates that read the
    /// same, say) keep the order they had after the last rebuild, if it was in
    /// the same sort: smoothed rates still wobble in their last digit, and a
    /// table reshuffling every tick cannot be read. New rows and a fresh sort
    /// fall back to the model's tie-break (the name), then snapshot order.
    fn sort_rows(&mut self, model: &dyn TableModel, snap: &Snapshot, rates: &Rates) {
        let Sort { column, descending } = self.sort;
        let previous = match &self.previous {
            Some((sort, positions)) if *sort == self.sort => Some(positions),
            _ => None,
        };
        // Looked up once per row, not once per comparison.
        let mut place = vec![usize::MAX; self.total];
        if let Some(positions) = previous {
            for &i in &self.rows {
                if let Some(&at) = positions.get(&*model.key(snap, i)) {
                    place[i] = at;
                }
            }
        }
        // Ties end at the index, so an unstable sort gives the stable order.
        self.rows.sort_unstable_by(|&a, &b| {
            let order = model.compare(snap, rates, column, a, b);
            let order = if descending { order.reverse() } else { order };
            order
                .then(place[a].cmp(&place[b]))
                .then_with(|| model.tie_break(snap, a, b))
                .then(a.cmp(&b))
        });
    }

    /// Each row's position in `rows`, by key.
    fn positions(&self, model: &dyn TableModel, snap: &Snapshot) -> HashMap<String, usize> {
        self.rows
            .iter()
            .enumerate()
            .map(|(at, &i)| (model.key(snap, i).into_owned(), at))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::Rate;
    use crate::tables::topics::TopicsTable;
    use switchyard_broker::stats::TopicStats;

    /// The topics `a` and `b` sorted by messages in per second, highest first,
    /// after each of `steps` (their two rates), by name.
    fn ranked(steps: &[(f64, f64)]) -> Vec<Vec<&'static str>> {
        let topic = |name: &str| TopicStats {
            name: name.into(),
            ..Default::default()
        };
        let snap = Snapshot {
            topics: vec![topic("a"), topic("b")],
            ..Default::default()
        };
        let mut state = TableState::new(Sort {
            column: 2,
            descending: true,
        });
        let mut rates = Rates::default();
        steps
            .iter()
            .map(|&(a, b)| {
                rates.topics = [a, b]
                    .map(|msgs_in| Rate {
                        msgs_in,
                        msgs_out: 0.0,
                    })
                    .to_vec();
                state.rebuild(&TopicsTable, &snap, &rates);
                state.rows.iter().map(|&i| ["a", "b"][i]).collect()
            })
            .collect()
    }

    #[test]
    fn rows_whose_rates_read_the_same_keep_their_order() {
        assert_eq!(
            ranked(&[(10.02, 10.01), (10.01, 10.02), (10.02, 10.01)]),
            [["a", "b"], ["a", "b"], ["a", "b"]]
        );
        // The previous order wins over the name: b stays on top.
        assert_eq!(
            ranked(&[(10.0, 20.0), (10.02, 10.01)]),
            [["b", "a"], ["b", "a"]]
        );
    }

    #[test]
    fn rows_whose_rates_differ_reorder() {
        assert_eq!(
            ranked(&[(20.0, 10.0), (10.0, 20.0), (10.4, 9.6)]),
            [["a", "b"], ["b", "a"], ["a", "b"]]
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
