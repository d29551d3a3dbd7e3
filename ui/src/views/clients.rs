//! The clients view: every connection with its subscriptions, consumers, unacked
//! jobs, outbound buffer fill, rates and age; slow clients in red.

use std::borrow::Cow;
use std::cmp::Ordering;

use ratatui::layout::Constraint;
use ratatui::style::Style;
use ratatui::widgets::{Cell, Row};
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::gauge;
use crate::widgets::table::{self, float_cmp, natural_cmp, number, Column, TableModel};

/// The clients table.
pub struct Clients;

const COLUMNS: &[Column] = &[
    Column::text("ID", Constraint::Length(6)),
    Column::text("Name", Constraint::Fill(1)),
    Column::text("Address", Constraint::Length(21)),
    Column::number("Subs", 4),
    Column::number("Cons", 4),
    Column::number("Unack", 5),
    Column::text("Outbound buffer", Constraint::Length(22)),
    Column::number("In/s", 6),
    Column::number("Out/s", 6),
    Column::number("Up", 6),
];

impl TableModel for Clients {
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn noun(&self) -> &'static str {
        "clients"
    }

    fn len(&self, snap: &Snapshot) -> usize {
        snap.clients.len()
    }

    fn key<'s>(&self, snap: &'s Snapshot, i: usize) -> Cow<'s, str> {
        Cow::Borrowed(&snap.clients[i].id)
    }

    fn matches(&self, snap: &Snapshot, i: usize, needle: &str) -> bool {
        let c = &snap.clients[i];
        format::contains_ignore_case(&c.id, needle)
            || c.name
                .as_deref()
                .is_some_and(|n| format::contains_ignore_case(n, needle))
            || format::contains_ignore_case(&c.addr, needle)
            || (c.slow && "slow".contains(needle))
    }

    fn compare(
        &self,
        snap: &Snapshot,
        rates: &Rates,
        column: usize,
        a: usize,
        b: usize,
    ) -> Ordering {
        let (ca, cb) = (&snap.clients[a], &snap.clients[b]);
        let (ra, rb) = (rates.client(a), rates.client(b));
        match column {
            1 => natural_cmp(
                ca.name.as_deref().unwrap_or("-"),
                cb.name.as_deref().unwrap_or("-"),
            ),
            2 => natural_cmp(&ca.addr, &cb.addr),
            3 => ca.subs.cmp(&cb.subs),
            4 => ca.consumers.cmp(&cb.consumers),
            5 => ca.unacked.cmp(&cb.unacked),
            6 => float_cmp(
                gauge::fill(ca.pending_bytes, ca.pending_limit),
                gauge::fill(cb.pending_bytes, cb.pending_limit),
            ),
            7 => float_cmp(ra.msgs_in, rb.msgs_in),
            8 => float_cmp(ra.msgs_out, rb.msgs_out),
            9 => ca.connected_s.cmp(&cb.connected_s),
            _ => Ordering::Equal,
        }
        .then_with(|| natural_cmp(&ca.id, &cb.id))
    }

    fn row(&self, snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Row<'static> {
        let c = &snap.clients[i];
        let r = rates.client(i);
        let row = Row::new([
            table::text(&c.id, widths[0]),
            table::text(c.name.as_deref().unwrap_or("-"), widths[1]),
            table::text(&c.addr, widths[2]),
            number(format::count(c.subs)),
            number(format::count(c.consumers)),
            number(format::count(c.unacked)),
            Cell::from(gauge::buffer(
                c.pending_bytes,
                c.pending_limit,
                c.slow,
                usize::from(widths[6]),
            )),
            number(format::rate(r.msgs_in)),
            number(format::rate(r.msgs_out)),
            number(format::seconds(c.connected_s)),
        ]);
        if c.slow {
            row.style(Style::new().red())
        } else {
            row
        }
    }
}
