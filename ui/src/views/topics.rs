//! The topics view: every topic with its subscribers, rates, totals, storage and
//! flags; sealed topics greyed out.

use ratatui::style::Style;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::tables::topics::flags;
use crate::widgets::table::{self, number, Cells};

/// Draw topic `i` with these column widths.
pub fn row(snap: &Snapshot, rates: &Rates, i: usize, widths: &[u16]) -> Cells {
    let t = &snap.topics[i];
    let r = rates.topic(i);
    let row = Cells::new([
        table::name(&t.name, widths[0]),
        number(format::count(t.subscribers)),
        number(format::rate(r.msgs_in)),
        number(format::rate(r.msgs_out)),
        number(format::count(t.msgs_in)),
        number(format::count(t.msgs_out)),
        number(if t.retained {
            format::count(t.stored)
        } else {
            "-".into()
        }),
        table::text(flags(t), widths[7]),
    ]);
    if t.sealed {
        row.style(Style::new().dark_gray())
    } else {
        row
    }
}
