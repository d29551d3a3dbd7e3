//! The clients view: every connection with its subscriptions, consumers, unacked
//! jobs, outbound buffer fill, rates and age; slow clients in red.

use ratatui::style::Style;
use ratatui::widgets::Cell;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::gauge;
use crate::widgets::table::{self, number, Cells};

/// A kick this many seconds away, or fewer, turns a client's row red.
pub const KICK_SOON_S: u64 = 10;
/// And this many, amber.
pub const KICK_COMING_S: u64 = 60;

/// Draw client `i` with these column widths.
pub fn row(snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Cells {
    let c = &snap.clients[i];
    let r = rates.client(i);
    // Another node's client is `c42@web2`: its node has a column of its own.
    let id = c.id.split_once('@').map_or(c.id.as_str(), |(id, _)| id);
    let row = Cells::new([
        table::text(id, widths[0]),
        table::text(c.node.as_deref().unwrap_or("-"), widths[1]),
        table::text(c.name.as_deref().unwrap_or("-"), widths[2]),
        table::text(c.user.as_deref().unwrap_or("-"), widths[3]),
        table::text(&c.addr, widths[4]),
        number(format::count(c.subs)),
        number(format::count(c.consumers)),
        number(format::count(c.unacked)),
        Cell::from(gauge::buffer(
            c.pending_bytes,
            c.pending_limit,
            c.slow,
            usize::from(widths[8]),
        )),
        number(c.kick_in_s.map_or("-".into(), format::seconds)),
        number(format::rate(r.msgs_in)),
        number(format::rate(r.msgs_out)),
        number(format::seconds(c.connected_s)),
    ]);
    // Red when slow or about to be kicked, amber while a kick comes within a minute.
    match c.kick_in_s {
        _ if c.slow => row.style(Style::new().red()),
        Some(s) if s <= KICK_SOON_S => row.style(Style::new().red()),
        Some(s) if s <= KICK_COMING_S => row.style(Style::new().yellow()),
        _ => row,
    }
}
