//! The overview: in/out rate sparklines, broker totals (with outbound memory
//! against its budget), the busiest topics and deepest queues, and the event log
//! (connects, kicks, slow marks, dead letters, purges and who did them).

use std::cmp::Ordering;
use std::collections::VecDeque;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use switchyard_broker::stats::EventKind;
use switchyard_broker::Snapshot;

use crate::app::App;
use crate::format;
use crate::rates::Rates;
use crate::tables::events::kind_name;
use crate::tables::{self, float_cmp, natural_cmp};
use crate::view::View;
use crate::views::clients::{KICK_COMING_S, KICK_SOON_S};
use crate::widgets::table::{self, number, Cells, Listing};

/// The colour an event kind is drawn in, in the log.
fn kind_color(kind: EventKind) -> Color {
    match kind {
        EventKind::Connect => Color::Green,
        EventKind::Disconnect => Color::DarkGray,
        EventKind::Kick => Color::Red,
        EventKind::Slow => Color::Yellow,
        EventKind::DeadLetter => Color::Magenta,
        EventKind::Purge => Color::Red,
        EventKind::Delete => Color::Red,
        EventKind::Requeue => Color::Cyan,
        EventKind::Publish => Color::Blue,
        EventKind::Storage => Color::DarkGray,
        EventKind::Refused => Color::Red,
        EventKind::Other => Color::Gray,
    }
}

/// Draw event `i` of the log with these column widths.
pub fn event_row(snap: &Snapshot, _: &Rates, i: usize, widths: &[u16]) -> Cells {
    let e = &snap.events[i];
    Cells::new([
        Cell::from(format::clock(e.time)).dark_gray(),
        Cell::from(kind_name(e.kind)).fg(kind_color(e.kind)),
        table::text(&e.text, widths[2]),
    ])
}

/// Draw the overview.
pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let [top, middle, log] = Layout::vertical([
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [sparks, totals_area] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(48)]).areas(top);
    let [spark_in, spark_out] =
        Layout::vertical([Constraint::Length(4), Constraint::Length(4)]).areas(sparks);
    let rates = &app.rates;
    sparkline(
        frame,
        spark_in,
        "Messages in",
        rates.server.msgs_in,
        &rates.history_in,
        Color::Green,
    );
    sparkline(
        frame,
        spark_out,
        "Messages out",
        rates.server.msgs_out,
        &rates.history_out,
        Color::Cyan,
    );
    totals(frame, totals_area, &app.snapshot);

    let [busy, deep] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(middle);
    busiest_topics(frame, busy, &app.snapshot, &app.rates);
    deepest_queues(frame, deep, &app.snapshot);

    let i = View::Overview.index();
    let listing = Listing {
        title: "Events",
        model: tables::model(View::Overview),
        row: event_row,
    };
    table::render(
        frame,
        log,
        listing,
        &app.snapshot,
        &app.rates,
        &mut app.tables[i],
    );
}

/// A sparkline's title: its name, the rate now, and the peak over the span
/// shown, in `width` columns of border. Cut at the border, the title would cut
/// its last number (`peak 1.7` for 1.7k/s), so on a narrow screen the span,
/// then the peak, give way whole.
fn spark_title(
    name: &str,
    now: f64,
    peak: u64,
    seconds: usize,
    width: u16,
    color: Color,
) -> Line<'static> {
    let head = format!(" {name} ");
    let rate = format!("{}/s", format::rate(now));
    let peak = format!("  peak {}/s", format::rate(peak as f64));
    let span = format!(" over {}", format::seconds(seconds as u64));
    let room = usize::from(width.saturating_sub(2));
    // A closing space cut off by the border's corner is no loss.
    let fits = |tail: &str| Line::raw(format!("{head}{rate}{}", tail.trim_end())).width() <= room;
    let tail = [
        format!("{peak}{span} "),
        format!("{peak} "),
        " ".to_string(),
    ]
    .into_iter()
    .find(|tail| fits(tail))
    .unwrap_or_default();
    Line::from(vec![
        Span::raw(head).bold().white(),
        Span::styled(rate, Style::new().fg(color).bold()),
        Span::styled(tail, Style::new().dark_gray()),
    ])
}

fn sparkline(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    now: f64,
    history: &VecDeque<u64>,
    color: Color,
) {
    let block = Block::bordered().border_style(Style::new().dark_gray());
    let width = usize::from(block.inner(area).width);
    // The newest samples, one per second, right-aligned so time runs to the right edge.
    let shown: Vec<u64> = history
        .iter()
        .skip(history.len().saturating_sub(width))
        .copied()
        .collect();
    let peak = shown.iter().copied().max().unwrap_or(0);
    let title = spark_title(title, now, peak, shown.len(), area.width, color);
    let block = block.title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let pad = inner.width.saturating_sub(shown.len() as u16);
    let spark_area = Rect {
        x: inner.x + pad,
        width: inner.width - pad,
        ..inner
    };
    frame.render_widget(
        Sparkline::default()
            .data(&shown)
            .max(peak.max(1))
            .style(Style::new().fg(color)),
        spark_area,
    );
}

fn totals(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let ready: u64 = snap.queues.iter().map(|q| q.ready).sum();
    let unacked: u64 = snap.queues.iter().map(|q| q.unacked).sum();
    let slow_now = snap.clients.iter().filter(|c| c.slow).count() as u64;
    let pair = |a: &str, av: String, b: &str, bv: String| {
        Line::from(vec![
            Span::styled(format!(" {a:<14}"), Style::new().dark_gray()),
            Span::raw(format!("{av:>7}")).bold(),
            Span::styled(format!("    {b:<12}"), Style::new().dark_gray()),
            Span::raw(format!("{bv:>7}")).bold(),
        ])
    };
    let warn = |n: u64| {
        let s = format::count(n);
        if n > 0 {
            Span::raw(format!("{s:>7}")).bold().red()
        } else {
            Span::raw(format!("{s:>7}")).bold()
        }
    };
    let lines = vec![
        pair(
            "Messages in",
            format::count(snap.server.msgs_in),
            "Topics",
            format::count(snap.topics.len() as u64),
        ),
        pair(
            "Messages out",
            format::count(snap.server.msgs_out),
            "Queues",
            format::count(snap.queues.len() as u64),
        ),
        pair(
            "Connections",
            format::count(snap.server.connections),
            "Ready",
            format::count(ready),
        ),
        pair(
            "Unacked jobs",
            format::count(unacked),
            "In-flight",
            format::count(snap.server.inflight),
        ),
        Line::from(vec![
            Span::styled(format!(" {:<14}", "Slow now"), Style::new().dark_gray()),
            warn(slow_now),
            Span::styled(
                format!("    {:<12}", "Slow kicked"),
                Style::new().dark_gray(),
            ),
            warn(snap.server.slow_consumers),
        ]),
        Line::from(vec![
            Span::styled(format!(" {:<14}", "Dead letters"), Style::new().dark_gray()),
            warn(snap.server.dead),
            Span::styled(
                format!("    {:<12}", "Stuck queues"),
                Style::new().dark_gray(),
            ),
            warn(snap.queues.iter().filter(|q| q.stuck).count() as u64),
        ]),
    ];
    let mut block = Block::bordered()
        .border_style(Style::new().dark_gray())
        .title(Line::from(" Totals ").bold().white());
    if let Some(outbound) = outbound(snap) {
        block = block.title(outbound.right_aligned());
    }
    if let Some(kick) = next_kick(snap) {
        block = block.title_bottom(kick);
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// ` next kick c4 (name) in 4s `: the client whose filling buffer will be full
/// first, red within [`KICK_SOON_S`], amber within [`KICK_COMING_S`]; none while
/// no buffer fills.
fn next_kick(snap: &Snapshot) -> Option<Line<'static>> {
    let c = snap
        .clients
        .iter()
        .filter(|c| c.kick_in_s.is_some())
        .min_by(|a, b| {
            a.kick_in_s
                .cmp(&b.kick_in_s)
                .then_with(|| natural_cmp(&a.id, &b.id))
        })?;
    let secs = c.kick_in_s?;
    let who = match &c.name {
        Some(name) => format!("{} ({})", c.id, format::fit(name, 20)),
        None => c.id.clone(),
    };
    let style = if secs <= KICK_SOON_S {
        Style::new().red().bold()
    } else if secs <= KICK_COMING_S {
        Style::new().yellow().bold()
    } else {
        Style::new().dark_gray()
    };
    Some(Line::styled(
        format!(" next kick {who} in {} ", format::seconds(secs)),
        style,
    ))
}

/// `outbound USED / BUDGET`: the bytes waiting in all outbound buffers against
/// `max_outbound`, yellow from the three quarters where kicking stops, red past
/// the budget (clients are being kicked). None from a broker without a budget.
fn outbound(snap: &Snapshot) -> Option<Line<'static>> {
    let (used, budget) = (snap.server.outbound_bytes, snap.server.outbound_budget);
    if budget == 0 {
        return None;
    }
    let figure = Span::raw(format!(
        "{} / {}",
        format::bytes(used),
        format::bytes(budget)
    ))
    .bold();
    let figure = if used > budget {
        figure.red()
    } else if used >= budget - budget / 4 {
        figure.yellow()
    } else {
        figure.white()
    };
    Some(Line::from(vec![
        Span::styled(" outbound ", Style::new().dark_gray()),
        figure,
        Span::raw(" "),
    ]))
}

/// The indices of the `k` first rows by `cmp`, in order, without sorting them all.
fn top_k(n: usize, k: usize, mut cmp: impl FnMut(&usize, &usize) -> Ordering) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if k == 0 {
        return Vec::new();
    }
    if n > k {
        idx.select_nth_unstable_by(k - 1, &mut cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

fn small_table(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    header: [&'static str; 4],
    rows: Vec<Row<'static>>,
    empty: &str,
) {
    let block = Block::bordered()
        .border_style(Style::new().dark_gray())
        .title(Line::from(format!(" {title} ")).bold().white());
    if rows.is_empty() {
        frame.render_widget(Paragraph::new(empty).dim().centered().block(block), area);
        return;
    }
    let header = Row::new(header.iter().enumerate().map(|(i, h)| {
        let line = Line::from(*h);
        Cell::from(if i == 0 { line } else { line.right_aligned() })
    }))
    .style(Style::new().bold().cyan());
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

fn busiest_topics(frame: &mut Frame, area: Rect, snap: &Snapshot, rates: &Rates) {
    let k = usize::from(area.height.saturating_sub(3));
    let total = |i: usize| rates.topic(i).msgs_in + rates.topic(i).msgs_out;
    let busiest = top_k(snap.topics.len(), k, |&a, &b| {
        float_cmp(total(b), total(a))
            .then_with(|| natural_cmp(&snap.topics[a].name, &snap.topics[b].name))
    });
    let name_width = area.width.saturating_sub(2 + 3 * 9);
    let rows = busiest
        .into_iter()
        .map(|i| {
            let t = &snap.topics[i];
            Row::new([
                table::name(&t.name, name_width),
                number(format::rate(rates.topic(i).msgs_in)),
                number(format::rate(rates.topic(i).msgs_out)),
                number(format::count(t.subscribers)),
            ])
        })
        .collect();
    small_table(
        frame,
        area,
        "Busiest topics",
        ["Topic", "In/s", "Out/s", "Subs"],
        rows,
        "no topics yet",
    );
}

fn deepest_queues(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let k = usize::from(area.height.saturating_sub(3));
    let deepest = top_k(snap.queues.len(), k, |&a, &b| {
        let (qa, qb) = (&snap.queues[a], &snap.queues[b]);
        (qb.ready + qb.unacked)
            .cmp(&(qa.ready + qa.unacked))
            .then_with(|| natural_cmp(&qa.name, &qb.name))
    });
    let name_width = area.width.saturating_sub(2 + 3 * 9);
    let rows = deepest
        .into_iter()
        .map(|i| {
            let q = &snap.queues[i];
            let row = Row::new([
                table::name(&q.name, name_width),
                number(format::count(q.ready)),
                number(format::count(q.unacked)),
                number(
                    q.oldest_ready_ms
                        .map(format::millis)
                        .unwrap_or_else(|| "-".into()),
                ),
            ]);
            // Stuck: its depth grew for 30 s with no ack.
            if q.stuck {
                row.red()
            } else {
                row
            }
        })
        .collect();
    small_table(
        frame,
        area,
        "Deepest queues",
        ["Queue", "Ready", "Unacked", "Oldest"],
        rows,
        "no queues yet",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(used: u64, budget: u64) -> Option<(String, Option<Color>)> {
        let mut snap = Snapshot::default();
        (snap.server.outbound_bytes, snap.server.outbound_budget) = (used, budget);
        outbound(&snap).map(|line| {
            let text = line.spans.iter().map(|s| s.content.as_ref()).collect();
            (text, line.spans[1].style.fg)
        })
    }

    #[test]
    fn outbound_warns_from_the_low_mark_and_alarms_past_the_budget() {
        let gib = 1 << 30;
        assert_eq!(at(0, 0), None, "a broker without a budget shows none");
        assert_eq!(
            at(512, 4 * gib),
            Some((" outbound 512 B / 4.0 GiB ".to_string(), Some(Color::White)))
        );
        assert_eq!(at(3 * gib, 4 * gib).unwrap().1, Some(Color::Yellow));
        assert_eq!(at(4 * gib + 1, 4 * gib).unwrap().1, Some(Color::Red));
    }
}
