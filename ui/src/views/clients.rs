//! The clients view: every connection with its subscriptions, consumers, unacked
//! jobs, outbound buffer fill, rates and age; slow clients in red.

use ratatui::style::Style;
use ratatui::widgets::Cell;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::gauge;
use crate::widgets::table::{self, number, Cells};

/// Draw client `i` with these column widths.
pub fn row(snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Cells {
    let c = &snap.clients[i];
    let r = rates.client(i);
    let row = Cells::new([
        table::text(&c.id, widths[0]),
        table::text(c.name.as_deref().unwrap_or("-"), widths[1]),
        table::text(c.user.as_deref().unwrap_or("-"), widths[2]),
        table::text(&c.addr, widths[3]),
        number(format::count(c.subs)),
        number(format::count(c.consumers)),
        number(format::count(c.unacked)),
        Cell::from(gauge::buffer(
            c.pending_bytes,
            c.pending_limit,
            c.slow,
            usize::from(widths[7]),
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
