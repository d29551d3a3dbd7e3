//! The queues view: depth (ready, unacked), consumers, rates, redeliveries, dead
//! letters, the age of the oldest waiting message, and storage; a queue with
//! messages and nobody to take them in yellow.

use ratatui::style::{Style, Stylize};
use ratatui::widgets::Cell;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::tables::queues::state;
use crate::widgets::table::{self, number, Cells};

/// Draw queue `i` with these column widths.
pub fn row(snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Cells {
    let q = &snap.queues[i];
    let r = rates.queue(i);
    let dead = number(format::count(q.dead));
    let row = Cells::new([
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
        number(if q.requests > 0 {
            format::rate(rates.requests(i).msgs_in)
        } else {
            "-".into()
        }),
        number(match (q.reply_p50_ms, q.reply_p99_ms) {
            (Some(p50), Some(p99)) => format!("{}/{}", format::ms_short(p50), format::ms(p99)),
            _ => "-".into(),
        }),
        number(if q.requests > 0 {
            format::count(q.request_timeouts)
        } else {
            "-".into()
        }),
        if q.stuck {
            Cell::from(state(q)).red().bold()
        } else {
            Cell::from(state(q))
        },
    ]);
    // Messages waiting with nobody to take them is what an operator looks for first.
    if q.stuck {
        row.style(Style::new().red())
    } else if q.ready > 0 && q.consumers == 0 {
        row.style(Style::new().yellow())
    } else {
        row
    }
}
