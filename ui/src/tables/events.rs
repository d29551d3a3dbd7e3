//! The overview's event log as a table: connects, kicks, slow marks, dead
//! letters, purges and who did them, oldest first, following new events.

use std::borrow::Cow;
use std::cmp::Ordering;

use switchyard_broker::stats::EventKind;
use switchyard_broker::Snapshot;

use super::{Column, TableModel, Width};
use crate::format;
use crate::rates::Rates;

/// The event log, as a table.
pub struct EventLog;

const COLUMNS: &[Column] = &[
    Column::text("Time", Width::Fixed(8)),
    Column::text("Kind", Width::Fixed(11)),
    Column::name("Event", 1, 20),
];

/// How an event kind is named in the log: what its Kind column shows, filters
/// and sorts by.
pub fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Connect => "connect",
        EventKind::Disconnect => "disconnect",
        EventKind::Kick => "kick",
        EventKind::Slow => "slow",
        EventKind::DeadLetter => "dead letter",
        EventKind::Purge => "purge",
        EventKind::Delete => "delete",
        EventKind::Requeue => "requeue",
        EventKind::Publish => "publish",
        EventKind::Storage => "storage",
        EventKind::Refused => "refused",
        EventKind::Other => "other",
    }
}

impl TableModel for EventLog {
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn noun(&self) -> &'static str {
        "events"
    }

    fn len(&self, snap: &Snapshot) -> usize {
        snap.events.len()
    }

    fn key<'s>(&self, snap: &'s Snapshot, i: usize) -> Cow<'s, str> {
        Cow::Owned(snap.events[i].seq.to_string())
    }

    fn matches(&self, snap: &Snapshot, i: usize, needle: &str) -> bool {
        let e = &snap.events[i];
        format::contains_ignore_case(&e.text, needle) || kind_name(e.kind).contains(needle)
    }

    fn compare(&self, snap: &Snapshot, _: &Rates, column: usize, a: usize, b: usize) -> Ordering {
        let (ea, eb) = (&snap.events[a], &snap.events[b]);
        match column {
            0 => ea.seq.cmp(&eb.seq),
            1 => kind_name(ea.kind).cmp(kind_name(eb.kind)),
            2 => ea.text.cmp(&eb.text),
            _ => Ordering::Equal,
        }
    }

    fn tie_break(&self, snap: &Snapshot, a: usize, b: usize) -> Ordering {
        snap.events[a].seq.cmp(&snap.events[b].seq)
    }

    fn follows_tail(&self) -> bool {
        true
    }
}
