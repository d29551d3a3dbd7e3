//! The client detail popup: one client's figures, its subscriptions with their
//! filters, and the jobs it holds unacked.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;
use switchyard_broker::Snapshot;

use crate::format;
use crate::rates::Rates;
use crate::widgets::{centered, gauge, popup, table};

/// Draw the detail of client `id` over `area`, clamping `scroll` to its subscriptions.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    snap: &Snapshot,
    rates: &Rates,
    id: &str,
    scroll: &mut usize,
) {
    let dialog = centered(area, 110, area.height.saturating_sub(2));
    let Some((i, c)) = snap.clients.iter().enumerate().find(|(_, c)| c.id == id) else {
        let inner = popup(frame, dialog, Line::from(format!(" Client {id} ")));
        frame.render_widget(
            Paragraph::new(format!(" {id} is no longer connected")).dim(),
            inner,
        );
        return;
    };
    let name = c.name.as_deref().unwrap_or("(no name)");
    let inner = popup(
        frame,
        dialog,
        Line::from(format!(" Client {} · {name} ", c.id)),
    );
    let [figures, subs_area, jobs_area] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Fill(2),
        Constraint::Fill(1),
    ])
    .areas(inner);

    let r = rates.client(i);
    let label = |s: &str| Span::styled(format!(" {s} "), Style::new().dark_gray());
    let mut first = vec![
        label("user"),
        Span::raw(c.user.clone().unwrap_or_else(|| "-".into())).bold(),
        label("  address"),
        Span::raw(c.addr.clone()).bold(),
        label("  connected"),
        Span::raw(format::seconds(c.connected_s)).bold(),
    ];
    if c.slow {
        first.push(
            Span::raw("   SLOW: its outbound buffer is over half full")
                .red()
                .bold(),
        );
    }
    let mut buffer = vec![label("outbound buffer")];
    buffer.extend(gauge::buffer(c.pending_bytes, c.pending_limit, c.slow, 22).spans);
    buffer.push(Span::raw(format!(
        "   {} frames, {} of {}",
        c.pending,
        format::bytes(c.pending_bytes),
        format::bytes(c.pending_limit)
    )));
    let lines = vec![
        Line::from(first),
        Line::from(vec![
            label("subscriptions"),
            Span::raw(c.subs.to_string()).bold(),
            label("  consumers"),
            Span::raw(c.consumers.to_string()).bold(),
            label("  unacked"),
            Span::raw(c.unacked.to_string()).bold(),
        ]),
        Line::from(vec![
            label("published"),
            Span::raw(format!(
                "{} ({}/s)",
                format::count(c.msgs_in),
                format::rate(r.msgs_in)
            ))
            .bold(),
            label("  delivered"),
            Span::raw(format!(
                "{} ({}/s)",
                format::count(c.msgs_out),
                format::rate(r.msgs_out)
            ))
            .bold(),
        ]),
        Line::from(buffer),
        Line::from(vec![
            label("reads"),
            Span::raw(format!(
                "{}/s ({} in all)",
                format::bytes(c.drain_rate),
                format::bytes(c.bytes_out)
            ))
            .bold(),
            label("  publishers paced for it"),
            Span::raw(format::count(c.pauses)).bold(),
            label("  paused for others"),
            Span::raw(format::count(c.paused)).bold(),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), figures);

    // Subscriptions, scrollable.
    let header = Row::new(["SID", "Pattern", "Filter"]).style(Style::new().bold().cyan());
    let visible = usize::from(subs_area.height.saturating_sub(2)).max(1);
    *scroll = (*scroll).min(c.subscriptions.len().saturating_sub(visible));
    let filter_width = subs_area.width.saturating_sub(12 + 28 + 4);
    let rows = c.subscriptions.iter().skip(*scroll).take(visible).map(|s| {
        Row::new([
            table::text(&s.sid, 12),
            table::name(&s.pattern, 28),
            match &s.filter {
                Some(f) => table::text(f, filter_width),
                None => Cell::from("(none: every message)").dark_gray(),
            },
        ])
    });
    let title = if c.subscriptions.len() > visible {
        format!(
            " Subscriptions {}-{} of {} ",
            *scroll + 1,
            (*scroll + visible).min(c.subscriptions.len()),
            c.subscriptions.len()
        )
    } else {
        format!(" Subscriptions {} ", c.subscriptions.len())
    };
    let title = Line::from(vec![Span::raw(title).bold().yellow()]);
    if c.subscriptions.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![title, Line::from(" no subscriptions").dim()]),
            subs_area,
        );
    } else {
        let [title_area, table_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(subs_area);
        frame.render_widget(title, title_area);
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(12),
                    Constraint::Length(28),
                    Constraint::Fill(1),
                ],
            )
            .header(header),
            table_area,
        );
    }

    // Jobs it holds.
    let jobs = || snap.inflight.iter().filter(|j| j.client == c.id);
    let [title_area, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(jobs_area);
    frame.render_widget(
        Line::from(format!(" Unacked jobs {} ", jobs().count()))
            .bold()
            .yellow(),
        title_area,
    );
    // Only the rows that fit are built.
    let rows = jobs().take(usize::from(table_area.height)).map(|j| {
        Row::new([
            table::name(&j.queue, 28),
            Cell::from(j.msg.clone()),
            Cell::from(j.cid.clone()),
            Cell::from(format!("attempt {}", j.attempt)),
            Cell::from(format!("age {}", format::millis(j.age_ms))),
            Cell::from(format::deadline(j.deadline_in_ms)),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(28),
                Constraint::Length(14),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(12),
                Constraint::Fill(1),
            ],
        ),
        table_area,
    );
}
