//! The topics table: every topic with its subscribers, rates, totals, storage and flags.

use std::borrow::Cow;
use std::cmp::Ordering;

use switchyard_broker::stats::TopicStats;
use switchyard_broker::Snapshot;

use super::{natural_cmp, rate_cmp, Column, TableModel, Width};
use crate::format;
use crate::rates::Rates;

/// The topics table.
pub struct TopicsTable;

/// Narrow, the flags go first (sealed topics are greyed, retained ones show a
/// stored count), then the totals, which the rates beside them summarise.
const COLUMNS: &[Column] = &[
    Column::name("Name", 1, 20),
    Column::number("Subs", 5),
    Column::number("In/s", 7),
    Column::number("Out/s", 7),
    Column::number("In", 8).optional(1),
    Column::number("Out", 8).optional(2),
    Column::number("Stored", 8).optional(3),
    Column::text("Flags", Width::Fixed(15)).optional(4),
];

/// The Flags column: filtered and sorted by the same text it shows.
pub fn flags(t: &TopicStats) -> &'static str {
    match (t.retained, t.sealed) {
        (true, true) => "retained sealed",
        (true, false) => "retained",
        (false, true) => "sealed",
        (false, false) => "",
    }
}

impl TableModel for TopicsTable {
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn noun(&self) -> &'static str {
        "topics"
    }

    fn len(&self, snap: &Snapshot) -> usize {
        snap.topics.len()
    }

    fn key<'s>(&self, snap: &'s Snapshot, i: usize) -> Cow<'s, str> {
        Cow::Borrowed(&snap.topics[i].name)
    }

    fn matches(&self, snap: &Snapshot, i: usize, needle: &str) -> bool {
        let t = &snap.topics[i];
        format::contains_ignore_case(&t.name, needle) || flags(t).contains(needle)
    }

    fn compare(
        &self,
        snap: &Snapshot,
        rates: &Rates,
        column: usize,
        a: usize,
        b: usize,
    ) -> Ordering {
        let (ta, tb) = (&snap.topics[a], &snap.topics[b]);
        let (ra, rb) = (rates.topic(a), rates.topic(b));
        match column {
            0 => natural_cmp(&ta.name, &tb.name),
            1 => ta.subscribers.cmp(&tb.subscribers),
            2 => rate_cmp(ra.msgs_in, rb.msgs_in),
            3 => rate_cmp(ra.msgs_out, rb.msgs_out),
            4 => ta.msgs_in.cmp(&tb.msgs_in),
            5 => ta.msgs_out.cmp(&tb.msgs_out),
            6 => ta.stored.cmp(&tb.stored),
            7 => flags(ta).cmp(flags(tb)),
            _ => Ordering::Equal,
        }
    }

    fn tie_break(&self, snap: &Snapshot, a: usize, b: usize) -> Ordering {
        natural_cmp(&snap.topics[a].name, &snap.topics[b].name)
    }
}
