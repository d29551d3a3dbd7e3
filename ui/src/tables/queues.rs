//! The queues table: depth (ready, unacked), consumers, rates, redeliveries, dead
//! letters, the age of the oldest waiting message, storage, its requests (a
//! second, reply time p50/p99 sorted by p99, timeouts), and its kind (or that
//! it is stuck).

use std::borrow::Cow;
use std::cmp::Ordering;

use switchyard_broker::stats::QueueStats;
use switchyard_broker::Snapshot;

use super::{float_cmp, natural_cmp, rate_cmp, Column, TableModel, Width};
use crate::format;
use crate::rates::Rates;

/// The queues table.
pub struct QueuesTable;

/// Narrow, the kind goes first (a memory queue shows `-` stored), then storage,
/// redeliveries and the oldest message's age; depth, consumers, rates and dead
/// letters, what an operator acts on, stay.
const COLUMNS: &[Column] = &[
    Column::name("Name", 1, 18),
    Column::number("Ready", 7),
    Column::number("Unacked", 7),
    Column::number("Cons", 4),
    Column::number("In/s", 6),
    Column::number("Ack/s", 6),
    Column::number("Redeliv", 7).optional(2),
    Column::number("Dead", 5),
    Column::number("Oldest", 7).optional(1),
    Column::number("Stored", 7).optional(3),
    Column::number("Req/s", 6).optional(7),
    Column::number("p50/p99", 11).optional(5),
    Column::number("Timeout", 7).optional(6),
    Column::text("Kind", Width::Fixed(7)).optional(4),
];

/// The Kind column: `stuck` (its depth grew for 30 s with no ack) before what
/// the queue is, since that is what an operator must see.
pub fn state(q: &QueueStats) -> &'static str {
    if q.stuck {
        "stuck"
    } else {
        kind(q)
    }
}

/// The Kind column: sorted by the same text it shows.
pub fn kind(q: &QueueStats) -> &'static str {
    if q.durable {
        "durable"
    } else {
        "memory"
    }
}

impl TableModel for QueuesTable {
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
            0 => natural_cmp(&qa.name, &qb.name),
            1 => qa.ready.cmp(&qb.ready),
            2 => qa.unacked.cmp(&qb.unacked),
            3 => qa.consumers.cmp(&qb.consumers),
            4 => rate_cmp(ra.msgs_in, rb.msgs_in),
            5 => rate_cmp(ra.msgs_out, rb.msgs_out),
            6 => qa.redelivered.cmp(&qb.redelivered),
            7 => qa.dead.cmp(&qb.dead),
            8 => qa.oldest_ready_ms.cmp(&qb.oldest_ready_ms),
            9 => qa.stored.cmp(&qb.stored),
            10 => rate_cmp(rates.requests(a).msgs_in, rates.requests(b).msgs_in),
            11 => float_cmp(
                qa.reply_p99_ms.unwrap_or(-1.0),
                qb.reply_p99_ms.unwrap_or(-1.0),
            ),
            12 => qa.request_timeouts.cmp(&qb.request_timeouts),
            13 => state(qa).cmp(state(qb)),
            _ => Ordering::Equal,
        }
    }

    fn tie_break(&self, snap: &Snapshot, a: usize, b: usize) -> Ordering {
        natural_cmp(&snap.queues[a].name, &snap.queues[b].name)
    }
}
