//! What each table lists, on the state side: its columns, how its rows filter,
//! sort and keep their selection, and the [`TableState`] the app keeps per view.
//!
//! Drawing a row is the views' job (`views/`); the app rebuilds tables from a
//! snapshot with this module alone, so state never asks the drawing layer.

pub mod clients;
pub mod events;
pub mod inflight;
mod order;
pub mod queues;
mod state;
pub mod topics;

use std::borrow::Cow;
use std::cmp::Ordering;

use switchyard_broker::Snapshot;

use crate::rates::Rates;
use crate::view::View;

pub use order::{float_cmp, natural_cmp, rate_cmp};
pub use state::TableState;

/// How wide a column is drawn, as the drawing's layout will read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Exactly this many terminal columns.
    Fixed(u16),
    /// A share of what the fixed columns leave, by weight; optional columns give
    /// way before it gets narrower than `min`, so a name stays readable.
    Fill {
        /// Its share against the other fill columns.
        weight: u16,
        /// The narrowest it is drawn while an optional column could make room.
        min: u16,
    },
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The header text.
    pub title: &'static str,
    /// How wide it is.
    pub width: Width,
    /// Numbers are right-aligned and sort biggest first.
    pub numeric: bool,
    /// When the table is too narrow for every column, optional ones are left
    /// out, the highest rank first: on 80 columns a cut name and cut numbers
    /// tell no rows apart, while a table without its address or totals column
    /// still does. `None` for the columns a row is read for (its name, the
    /// counters an operator acts on), which always stay.
    pub drop_rank: Option<u8>,
    /// Drawn only for a node of a cluster (`serve --nats`): the Node column.
    pub cluster_only: bool,
}

impl Column {
    /// A text column.
    pub const fn text(title: &'static str, width: Width) -> Column {
        Column {
            title,
            width,
            numeric: false,
            drop_rank: None,
            cluster_only: false,
        }
    }

    /// A name column: it takes the room the other columns leave, and never less
    /// than `min` while an optional column can make way.
    pub const fn name(title: &'static str, weight: u16, min: u16) -> Column {
        Column::text(title, Width::Fill { weight, min })
    }

    /// A numeric column.
    pub const fn number(title: &'static str, width: u16) -> Column {
        Column {
            title,
            width: Width::Fixed(width),
            numeric: true,
            drop_rank: None,
            cluster_only: false,
        }
    }

    /// This column, left out when the table is narrow: of the optional columns,
    /// the highest `rank` goes first.
    pub const fn optional(self, rank: u8) -> Column {
        Column {
            drop_rank: Some(rank),
            ..self
        }
    }

    /// This column, drawn only when the broker is a node of a cluster.
    pub const fn cluster_only(self) -> Column {
        Column {
            cluster_only: true,
            ..self
        }
    }

    /// Whether it is drawn for `snap`'s broker.
    pub fn drawn_for(&self, snap: &Snapshot) -> bool {
        !self.cluster_only || snap.server.cluster.is_some()
    }

    /// The narrowest this column is drawn while columns can still be dropped.
    pub const fn min_width(&self) -> u16 {
        match self.width {
            Width::Fixed(n) => n,
            Width::Fill { min, .. } => min,
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

/// What one table lists, taken from a snapshot: its columns, and how its rows
/// filter and sort. Rows are named by their index in the snapshot's list; the
/// table keeps only indices.
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
    /// Order rows `a` and `b` by `column`, ascending, as the column shows them:
    /// rows equal here keep their previous order in the table, then
    /// [`TableModel::tie_break`] decides.
    fn compare(
        &self,
        snap: &Snapshot,
        rates: &Rates,
        column: usize,
        a: usize,
        b: usize,
    ) -> Ordering;
    /// Order rows `a` and `b` that are equal in the sorted column and new to the
    /// order (by name, say); by default they stay in snapshot order.
    fn tie_break(&self, _snap: &Snapshot, _a: usize, _b: usize) -> Ordering {
        Ordering::Equal
    }
    /// Does the selection stay on the last row when rows are appended (a log)?
    fn follows_tail(&self) -> bool {
        false
    }
}

/// The table model behind each view (the overview's is its event log).
pub fn model(view: View) -> &'static dyn TableModel {
    match view {
        View::Overview => &events::EventLog,
        View::Topics => &topics::TopicsTable,
        View::Queues => &queues::QueuesTable,
        View::Clients => &clients::ClientsTable,
        View::InFlight => &inflight::InFlightTable,
    }
}
