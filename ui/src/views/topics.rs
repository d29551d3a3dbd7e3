//! The topics view: every topic with its subscribers, rates, totals, storage and flags.

use std::borrow::Cow;
use std::cmp::Ordering;

use ratatui::layout::Constraint;
use ratatui::style::Style;
use ratatui::widgets::Row;
use switchyard_broker::stats::TopicStats;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::table::{self, float_cmp, natural_cmp, number, Column, TableModel};

/// The topics table.
pub struct Topics;

const COLUMNS: &[Column] = &[
    Column::text("Name", Constraint::Fill(1)),
    Column::number("Subs", 5),
    Column::number("In/s", 7),
    Column::number("Out/s", 7),
    Column::number("In", 8),
    Column::number("Out", 8),
    Column::number("Stored", 8),
    Column::text("Flags", Constraint::Length(15)),
];

fn flags(t: &TopicStats) -> &'static str {
    match (t.retained, t.sealed) {
        (true, true) => "retained sealed",
        (true, false) => "retained",
        (false, true) => "sealed",
        (false, false) => "",
    }
}

impl TableModel for Topics {
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
            1 => ta.subscribers.cmp(&tb.subscribers),
            2 => float_cmp(ra.msgs_in, rb.msgs_in),
            3 => float_cmp(ra.msgs_out, rb.msgs_out),
            4 => ta.msgs_in.cmp(&tb.msgs_in),
            5 => ta.msgs_out.cmp(&tb.msgs_out),
            6 => ta.stored.cmp(&tb.stored),
            7 => flags(ta).cmp(flags(tb)),
            _ => Ordering::Equal,
        }
        .then_with(|| natural_cmp(&ta.name, &tb.name))
    }

    fn row(&self, snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Row<'static> {
        let t = &snap.topics[i];
        let r = rates.topic(i);
        let row = Row::new([
            table::name(&t.name, widths[0]),
            number(format::count(t.subscribers)),
            number(format::rate(r.msgs_in)),
            number(format::rate(r.msgs_out)),
            number(format::count(t.msgs_in)),
            number(format::count(t.msgs_out)),
            number(if t.retained {
                format::count(t.stored)
            } else {
                "-".into()
            }),
            table::text(flags(t), widths[7]),
        ]);
        if t.sealed {
            row.style(Style::new().dark_gray())
        } else {
            row
        }
    }
}
