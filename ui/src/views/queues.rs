//! The queues view: depth (ready, unacked), consumers, rates, redeliveries, dead
//! letters, the age of the oldest waiting message, and storage.

use std::borrow::Cow;
use std::cmp::Ordering;

use ratatui::layout::Constraint;
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Cell, Row};
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::table::{self, float_cmp, natural_cmp, number, Column, TableModel};

/// The queues table.
pub struct Queues;

const COLUMNS: &[Column] = &[
    Column::text("Name", Constraint::Fill(1)),
    Column::number("Ready", 7),
    Column::number("Unacked", 7),
    Column::number("Cons", 4),
    Column::number("In/s", 6),
    Column::number("Ack/s", 6),
    Column::number("Redeliv", 7),
    Column::number("Dead", 5),
    Column::number("Oldest", 7),
    Column::number("Stored", 7),
    Column::text("Kind", Constraint::Length(7)),
];

/// The Kind column: sorted by the same text it shows.
fn kind(q: &switchyard_broker::stats::QueueStats) -> &'static str {
    if q.durable {
        "durable"
    } else {
        "memory"
    }
}

impl TableModel for Queues {
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn noun(&self) -> &'static str {
        "queues"
    }

    fn len(&self, snap: &Snapshot) -> usize {
        snap.queues.len()
    }

    fn key<'s>(&self, snap: &'s Snapshot, i: usize) -> Cow<'s, str> {
        Cow::Borrowed(&snap.queues[i].name)
    }

    fn matches(&self, snap: &Snapshot, i: usize, needle: &str) -> bool {
        format::contains_ignore_case(&snap.queues[i].name, needle)
    }

    fn compare(
        &self,
        snap: &Snapshot,
        rates: &Rates,
        column: usize,
        a: usize,
        b: usize,
    ) -> Ordering {
        let (qa, qb) = (&snap.queues[a], &snap.queues[b]);
        let (ra, rb) = (rates.queue(a), rates.queue(b));
        match column {
            1 => qa.ready.cmp(&qb.ready),
            2 => qa.unacked.cmp(&qb.unacked),
            3 => qa.consumers.cmp(&qb.consumers),
            4 => float_cmp(ra.msgs_in, rb.msgs_in),
            5 => float_cmp(ra.msgs_out, rb.msgs_out),
            6 => qa.redelivered.cmp(&qb.redelivered),
            7 => qa.dead.cmp(&qb.dead),
            8 => qa.oldest_ready_ms.cmp(&qb.oldest_ready_ms),
            9 => qa.stored.cmp(&qb.stored),
            10 => kind(qa).cmp(kind(qb)),
            _ => Ordering::Equal,
        }
        .then_with(|| natural_cmp(&qa.name, &qb.name))
    }

    fn row(&self, snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Row<'static> {
        let q = &snap.queues[i];
        let r = rates.queue(i);
        let dead = number(format::count(q.dead));
        let row = Row::new([
            table::name(&q.name, widths[0]),
            number(format::count(q.ready)),
            number(format::count(q.unacked)),
            number(format::count(q.consumers)),
            number(format::rate(r.msgs_in)),
            number(format::rate(r.msgs_out)),
            number(format::count(q.redelivered)),
            if q.dead > 0 { dead.red() } else { dead },
            number(
                q.oldest_ready_ms
                    .map(format::millis)
                    .unwrap_or_else(|| "-".into()),
            ),
            number(if q.durable {
                format::count(q.stored)
            } else {
                "-".into()
            }),
            Cell::from(kind(q)),
        ]);
        // Messages waiting with nobody to take them is what an operator looks for first.
        if q.ready > 0 && q.consumers == 0 {
            row.style(Style::new().yellow())
        } else {
            row
        }
    }
}
