//! The in-flight table: every delivered, unacked job with its consumer, attempt,
//! age and time left before it is redelivered. The soonest deadline comes first.

use std::borrow::Cow;
use std::cmp::Ordering;

use switchyard_broker::Snapshot;

use super::{natural_cmp, Column, Sort, TableModel, Width};
use crate::format;
use crate::rates::Rates;

/// The in-flight jobs table.
pub struct InFlightTable;

/// Narrow, the delivery tag goes first (requeue names the message, not the
/// tag), then the age and the consumer; the message id (`m000012`) stays whole.
const COLUMNS: &[Column] = &[
    Column::name("Queue", 2, 14),
    Column::number("Tag", 6).optional(3),
    Column::name("Message", 1, 8),
    // The id and the name it gave in `hello`: `c3 worker-2`.
    Column::name("Client", 1, 7),
    // A node of a cluster: the node of the client holding the job.
    Column::text("Node", Width::Fixed(8))
        .cluster_only()
        .optional(0),
    Column::text("Consumer", Width::Fixed(10)).optional(1),
    Column::number("Attempt", 7),
    Column::number("Age", 7).optional(2),
    Column::number("Deadline in", 13),
];

/// The column the table starts sorted by: time left to the ack deadline.
const DEADLINE: usize = 8;

/// The node of the client `id` holds in the cluster view: another node's
/// client is `c42@web2`; a plain id is this node's (none on one machine).
pub fn node_of<'s>(snap: &'s Snapshot, id: &'s str) -> Option<&'s str> {
    match id.split_once('@') {
        Some((_, node)) => Some(node),
        None => snap.server.cluster.as_ref().map(|c| c.node.as_str()),
    }
}

impl TableModel for InFlightTable {
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
            4 => natural_cmp(
                node_of(snap, &ja.client).unwrap_or("-"),
                node_of(snap, &jb.client).unwrap_or("-"),
            ),
            5 => natural_cmp(&ja.cid, &jb.cid),
            6 => ja.attempt.cmp(&jb.attempt),
            7 => ja.age_ms.cmp(&jb.age_ms),
            DEADLINE => ja.deadline_in_ms.cmp(&jb.deadline_in_ms),
            _ => Ordering::Equal,
        }
    }
}
