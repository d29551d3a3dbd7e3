//! The in-flight view: every delivered, unacked job with its consumer, attempt,
//! age and time left before it is redelivered. The soonest deadline comes first.

use std::borrow::Cow;
use std::cmp::Ordering;

use ratatui::layout::Constraint;
use ratatui::style::Style;
use ratatui::widgets::Row;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::table::{self, natural_cmp, number, Column, Sort, TableModel};

/// The in-flight jobs table.
pub struct InFlight;

const COLUMNS: &[Column] = &[
    Column::text("Queue", Constraint::Fill(2)),
    Column::number("Tag", 6),
    Column::text("Message", Constraint::Fill(1)),
    Column::text("Client", Constraint::Length(7)),
    Column::text("Consumer", Constraint::Length(10)),
    Column::number("Attempt", 7),
    Column::number("Age", 7),
    Column::number("Deadline in", 13),
];

/// The column the table starts sorted by: time left to the ack deadline.
const DEADLINE: usize = 7;

impl TableModel for InFlight {
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn default_sort(&self) -> Sort {
        Sort {
            column: DEADLINE,
            descending: false,
        }
    }

    fn noun(&self) -> &'static str {
        "unacked jobs"
    }

    fn len(&self, snap: &Snapshot) -> usize {
        snap.inflight.len()
    }

    fn key<'s>(&self, snap: &'s Snapshot, i: usize) -> Cow<'s, str> {
        // Tags are unique per connection, message ids per queue.
        let j = &snap.inflight[i];
        Cow::Owned(format!("{}\u{0}{}", j.client, j.tag))
    }

    fn matches(&self, snap: &Snapshot, i: usize, needle: &str) -> bool {
        let j = &snap.inflight[i];
        [&j.queue, &j.msg, &j.client, &j.cid]
            .iter()
            .any(|field| format::contains_ignore_case(field, needle))
    }

    fn compare(&self, snap: &Snapshot, _: &Rates, column: usize, a: usize, b: usize) -> Ordering {
        let (ja, jb) = (&snap.inflight[a], &snap.inflight[b]);
        match column {
            0 => natural_cmp(&ja.queue, &jb.queue),
            1 => ja.tag.cmp(&jb.tag),
            2 => natural_cmp(&ja.msg, &jb.msg),
            3 => natural_cmp(&ja.client, &jb.client),
            4 => natural_cmp(&ja.cid, &jb.cid),
            5 => ja.attempt.cmp(&jb.attempt),
            6 => ja.age_ms.cmp(&jb.age_ms),
            DEADLINE => ja.deadline_in_ms.cmp(&jb.deadline_in_ms),
            _ => Ordering::Equal,
        }
    }

    fn row(&self, snap: &Snapshot, _: &Rates, i: usize, widths: &[u16]) -> Row<'static> {
        let j = &snap.inflight[i];
        let row = Row::new([
            table::name(&j.queue, widths[0]),
            number(j.tag.to_string()),
            table::name(&j.msg, widths[2]),
            table::text(&j.client, widths[3]),
            table::text(&j.cid, widths[4]),
            number(j.attempt.to_string()),
            number(format::millis(j.age_ms)),
            number(format::deadline(j.deadline_in_ms)),
        ]);
        if j.deadline_in_ms < 0 {
            row.style(Style::new().red())
        } else if j.attempt > 1 {
            row.style(Style::new().yellow())
        } else {
            row
        }
    }
}
