//! The clients table: every connection with its user, subscriptions, consumers, unacked
//! jobs, outbound buffer fill, rates and age.

use std::borrow::Cow;
use std::cmp::Ordering;

use switchyard_broker::Snapshot;

use super::{float_cmp, natural_cmp, rate_cmp, Column, TableModel, Width};
use crate::format;
use crate::rates::Rates;

/// The clients table.
pub struct ClientsTable;

/// Narrow, the address goes first (the details popup shows it), then the user
/// and the age; the id, the name, the buffer gauge and the rates stay. A node of
/// a cluster has a Node column too, which the time to a kick makes room for.
const COLUMNS: &[Column] = &[
    Column::text("ID", Width::Fixed(6)),
    Column::text("Node", Width::Fixed(8))
        .cluster_only()
        .optional(0),
    Column::name("Name", 1, 12),
    Column::text("User", Width::Fixed(12)).optional(3),
    Column::text("Address", Width::Fixed(21)).optional(4),
    Column::number("Subs", 4).optional(1),
    Column::number("Cons", 4),
    Column::number("Unack", 5),
    Column::text("Outbound buffer", Width::Fixed(22)),
    // Optional for the Node column's sake only: on one machine every column
    // of rank 0 fits at 80 columns.
    Column::number("Kick in", 7).optional(0),
    Column::number("In/s", 6),
    Column::number("Out/s", 6),
    Column::number("Up", 6).optional(2),
];

/// How full an outbound buffer is, as a share of its limit (0 when there is no
/// limit): what the buffer column sorts by and its gauge shows.
pub fn buffer_fill(pending_bytes: u64, limit: u64) -> f64 {
    if limit == 0 {
        0.0
    } else {
        pending_bytes as f64 / limit as f64
    }
}

/// The Outbound buffer column: what "fullest first" (`f`) sorts by.
pub const BUFFER_COLUMN: usize = 8;

/// A buffer's fill in whole percent, as its gauge shows it: what the column
/// sorts by, so buffers that read the same keep their order.
fn fill_shown(pending_bytes: u64, limit: u64) -> f64 {
    (buffer_fill(pending_bytes, limit) * 100.0).round()
}

impl TableModel for ClientsTable {
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
            || c.user
                .as_deref()
                .is_some_and(|u| format::contains_ignore_case(u, needle))
            || format::contains_ignore_case(&c.addr, needle)
            || c.node
                .as_deref()
                .is_some_and(|n| format::contains_ignore_case(n, needle))
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
            0 => natural_cmp(&ca.id, &cb.id),
            1 => natural_cmp(
                ca.node.as_deref().unwrap_or("-"),
                cb.node.as_deref().unwrap_or("-"),
            ),
            2 => natural_cmp(
                ca.name.as_deref().unwrap_or("-"),
                cb.name.as_deref().unwrap_or("-"),
            ),
            3 => natural_cmp(
                ca.user.as_deref().unwrap_or("-"),
                cb.user.as_deref().unwrap_or("-"),
            ),
            4 => natural_cmp(&ca.addr, &cb.addr),
            5 => ca.subs.cmp(&cb.subs),
            6 => ca.consumers.cmp(&cb.consumers),
            7 => ca.unacked.cmp(&cb.unacked),
            BUFFER_COLUMN => float_cmp(
                fill_shown(ca.pending_bytes, ca.pending_limit),
                fill_shown(cb.pending_bytes, cb.pending_limit),
            ),
            // Soonest first when descending: no kick coming sorts last.
            9 => cb
                .kick_in_s
                .unwrap_or(u64::MAX)
                .cmp(&ca.kick_in_s.unwrap_or(u64::MAX)),
            10 => rate_cmp(ra.msgs_in, rb.msgs_in),
            11 => rate_cmp(ra.msgs_out, rb.msgs_out),
            12 => ca.connected_s.cmp(&cb.connected_s),
            _ => Ordering::Equal,
        }
    }

    fn tie_break(&self, snap: &Snapshot, a: usize, b: usize) -> Ordering {
        natural_cmp(&snap.clients[a].id, &snap.clients[b].id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_without_a_limit_is_empty() {
        assert_eq!(buffer_fill(100, 0), 0.0);
        assert_eq!(buffer_fill(512, 1024), 0.5);
    }
}
