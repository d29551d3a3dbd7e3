//! The in-flight view: every delivered, unacked job with its consumer, attempt,
//! age and time left before it is redelivered; overdue jobs in red, retried ones
//! in yellow.

use ratatui::style::Style;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::tables::inflight::node_of;
use crate::widgets::table::{self, number, Cells};

/// A job's holder as the table shows it: its id, then its name if it gave one.
/// Drawn rows only look it up, so a long client list costs a scan per row shown.
fn client_named(snap: &Snapshot, id: &str) -> String {
    match snap
        .clients
        .iter()
        .find(|c| c.id == id)
        .and_then(|c| c.name.as_deref())
    {
        Some(name) => format!("{} {name}", local_id(id)),
        None => local_id(id).to_string(),
    }
}

/// `c42` of another node's `c42@web2`: the Node column names the node.
fn local_id(id: &str) -> &str {
    id.split_once('@').map_or(id, |(id, _)| id)
}

/// Draw in-flight job `i` with these column widths.
pub fn row(snap: &Snapshot, _: &Rates, i: usize, widths: &[u16]) -> Cells {
    let j = &snap.inflight[i];
    let row = Cells::new([
        table::name(&j.queue, widths[0]),
        number(j.tag.to_string()),
        table::name(&j.msg, widths[2]),
        table::text(&client_named(snap, &j.client), widths[3]),
        table::text(node_of(snap, &j.client).unwrap_or("-"), widths[4]),
        table::text(&j.cid, widths[5]),
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
