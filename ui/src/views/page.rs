//! A queue's or a topic's page, drawn in place of its view's table: its settings,
//! charts of its last 15 minutes (sampled by the broker once a second, so they
//! reach back before the console was attached), and who consumes or subscribes.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use switchyard_broker::page::{QueuePage, TopicPage};

use crate::app::{Page, PageData};
use crate::format;
use crate::widgets::{gauge, popup, table};

/// Draw `page` over `area` (the body between header and status line).
pub fn render(frame: &mut Frame, area: Rect, page: &mut Page) {
    let kind = if page.is_queue() { "Queue" } else { "Topic" };
    let title = Line::from(format!(" {kind} {} ", page.name()));
    let inner = popup(frame, area, title);
    // Borrowed apart, so the page is read in place while its scroll is clamped:
    // no copy of 15 minutes of samples per frame drawn.
    let Page {
        data,
        ack_rates,
        request_rate,
        scroll,
        ..
    } = page;
    match data {
        PageData::Waiting => frame.render_widget(Paragraph::new(" Loading…").dim(), inner),
        PageData::Failed(why) => frame.render_widget(
            Paragraph::new(format!(" The broker did not describe it: {why}")).red(),
            inner,
        ),
        PageData::Queue(q) => {
            let rates = Rates {
                acks: ack_rates,
                requests: *request_rate,
            };
            queue(frame, inner, q, &rates, scroll);
        }
        PageData::Topic(t) => topic(frame, inner, t, scroll),
    }
}

fn label(s: &str) -> Span<'static> {
    Span::styled(format!("{s} "), Style::new().dark_gray())
}

fn value(s: String) -> Span<'static> {
    Span::raw(s).bold()
}

/// `label value` pairs, two spaces apart, as one line.
fn pairs(items: Vec<(&str, String)>) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for (i, (l, v)) in items.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(label(l));
        spans.push(value(v));
    }
    Line::from(spans)
}

/// The last `width` columns' worth of `samples`: each column the largest (for
/// depths) or the mean (for rates) of the samples it covers, so 15 minutes fit
/// any width.
pub fn columns(samples: &[u64], width: usize, largest: bool) -> Vec<u64> {
    if width == 0 || samples.is_empty() {
        return Vec::new();
    }
    let per = samples.len().div_ceil(width);
    // From the newest back, so the newest column is whole and the columns do not
    // shift with each new sample (only the oldest one may be partial).
    let mut out: Vec<u64> = samples
        .rchunks(per)
        .map(|c| {
            if largest {
                c.iter().copied().max().unwrap_or(0)
            } else {
                c.iter().sum::<u64>() / c.len() as u64
            }
        })
        .collect();
    out.reverse();
    out
}

/// A sparkline of `samples` in `area` titled with its name, its latest value and
/// its peak over the time shown.
fn chart(frame: &mut Frame, area: Rect, name: &str, samples: &[u64], largest: bool, style: Style) {
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().dark_gray());
    let inner = block.inner(area);
    let shown = columns(samples, usize::from(inner.width), largest);
    let now = samples.last().copied().unwrap_or(0);
    let peak = samples.iter().copied().max().unwrap_or(0);
    let minutes = (samples.len() as u64).div_ceil(60);
    let title = if samples.is_empty() {
        format!(" {name}: no samples yet ")
    } else {
        format!(
            " {name} {}, peak {} (last {minutes} min) ",
            format::count(now),
            format::count(peak)
        )
    };
    frame.render_widget(block.title(Span::styled(title, Style::new().bold())), area);
    frame.render_widget(Sparkline::default().data(&shown).style(style), inner);
}

/// What the console derives from its two latest answers.
struct Rates<'a> {
    /// Each consumer's acks a second.
    acks: &'a [Option<f64>],
    /// The queue's requests a second.
    requests: Option<f64>,
}

fn queue(frame: &mut Frame, area: Rect, q: &QueuePage, rates: &Rates<'_>, scroll: &mut usize) {
    let s = &q.stats;
    let settings = pairs(vec![
        (
            "kind",
            if s.durable {
                "durable".into()
            } else {
                "in memory".into()
            },
        ),
        ("ack timeout", format::millis(q.ack_timeout_ms)),
        (
            "max attempts",
            q.max_attempts.map_or("-".into(), |n| n.to_string()),
        ),
        ("max len", q.max_len.map_or("-".into(), format::count)),
        (
            "dead letters to",
            match (&q.dead_letter, &q.dead_letter_stats) {
                (None, _) => "- (dropped)".into(),
                (Some(dl), Some(d)) => format!("{dl} ({} ready)", format::count(d.ready)),
                (Some(dl), None) => format!("{dl} (not created yet)"),
            },
        ),
    ]);
    let figures = pairs(vec![
        ("ready", format::count(s.ready)),
        ("unacked", format::count(s.unacked)),
        ("consumers", format::count(s.consumers)),
        ("redelivered", format::count(s.redelivered)),
        ("dead", format::count(s.dead)),
    ]);
    // The third line: that it is stuck, first, then its requests if it has any.
    let mut third = if s.requests > 0 {
        pairs(vec![
            ("requests", format::count(s.requests)),
            ("req/s", rates.requests.map_or("-".into(), format::rate)),
            ("timeouts", format::count(s.request_timeouts)),
            ("reply p50/p99", latency(s.reply_p50_ms, s.reply_p99_ms)),
        ])
    } else {
        Line::raw("")
    };
    if s.stuck {
        third.spans.insert(
            0,
            Span::raw(" STUCK: depth grew for 30 s, no ack ")
                .red()
                .bold(),
        );
    }
    let [head, depth, rates_area, list] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Fill(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(vec![settings, figures, third]), head);
    let h = &q.history;
    let depth_samples: Vec<u64> = h.ready.iter().zip(&h.unacked).map(|(r, u)| r + u).collect();
    chart(
        frame,
        depth,
        "Depth (ready + unacked)",
        &depth_samples,
        true,
        Style::new().cyan(),
    );
    let [a, b, c] = Layout::horizontal([Constraint::Fill(1); 3]).areas(rates_area);
    chart(frame, a, "In/s", &h.msgs_in, false, Style::new().green());
    chart(frame, b, "Ack/s", &h.acked, false, Style::new().blue());
    chart(
        frame,
        c,
        "Redelivered/s",
        &h.redelivered,
        false,
        Style::new().yellow(),
    );
    consumers(frame, list, q, rates.acks, scroll);
}

/// `1.2 ms / 8.0 ms`, or `-` without replies lately.
fn latency(p50: Option<f64>, p99: Option<f64>) -> String {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
    format!("{} / {}", ms(p50), ms(p99))
}

/// The frame of a page's list, titled `Consumers (12)` or, when the broker
/// listed fewer than there are, `Consumers (1,200, the first 1,000)`; returns
/// the inside.
fn list_area(frame: &mut Frame, area: Rect, noun: &str, shown: usize, total: u64) -> Rect {
    let more = if (shown as u64) < total {
        format!(", the first {}", format::grouped(shown as u64))
    } else {
        String::new()
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().dark_gray())
        .title(Span::styled(
            format!(" {noun} ({}{more}) ", format::count(total)),
            Style::new().bold(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

/// Keep `scroll` within `rows` shown `height` at a time.
fn clamp_scroll(scroll: &mut usize, rows: usize, height: usize) {
    *scroll = (*scroll).min(rows.saturating_sub(height.max(1)));
}

fn consumers(
    frame: &mut Frame,
    area: Rect,
    q: &QueuePage,
    ack_rates: &[Option<f64>],
    scroll: &mut usize,
) {
    let shown = q.consumers.len();
    let inner = list_area(frame, area, "Consumers", shown, q.stats.consumers);
    if q.consumers.is_empty() {
        let text = if q.stats.ready > 0 {
            " Nobody consumes it: its ready messages wait."
        } else {
            " Nobody consumes it."
        };
        return frame.render_widget(Paragraph::new(text).dim(), inner);
    }
    let height = usize::from(inner.height.saturating_sub(1));
    clamp_scroll(scroll, shown, height);
    let name_width = inner.width.saturating_sub(50).clamp(8, 40);
    let rows = q
        .consumers
        .iter()
        .enumerate()
        .skip(*scroll)
        .take(height)
        .map(|(i, c)| {
            Row::new(vec![
                Cell::from(c.client.clone()),
                table::name(c.name.as_deref().unwrap_or("-"), name_width),
                table::name(&c.cid, 12),
                table::number(format::count(u64::from(c.prefetch))),
                table::number(format::count(u64::from(c.unacked))),
                table::number(
                    ack_rates
                        .get(i)
                        .copied()
                        .flatten()
                        .map_or("-".into(), format::rate),
                ),
                table::number(format::count(c.acked)),
            ])
        });
    let header = Row::new([
        "client", "name", "cid", "prefetch", "unacked", "acks/s", "acked",
    ])
    .style(Style::new().dark_gray());
    let widths = [
        Constraint::Length(7),
        Constraint::Length(name_width),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(10),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), inner);
}

fn topic(frame: &mut Frame, area: Rect, t: &TopicPage, scroll: &mut usize) {
    let s = &t.stats;
    let mut items = vec![
        (
            "kind",
            if s.retained {
                "retained".into()
            } else {
                "live only".into()
            },
        ),
        ("subscribers", format::count(s.subscribers)),
        ("published", format::count(s.msgs_in)),
        ("delivered", format::count(s.msgs_out)),
    ];
    if s.retained {
        items.push((
            "stored",
            format!(
                "{} ({})",
                format::count(s.stored),
                format::bytes(s.stored_bytes)
            ),
        ));
    }
    let mut line = pairs(items);
    if s.sealed {
        line.spans.push(Span::raw("  SEALED").yellow().bold());
    }
    let [head, rates, list] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(6),
        Constraint::Fill(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(line), head);
    let h = &t.history;
    let [a, b] = Layout::horizontal([Constraint::Fill(1); 2]).areas(rates);
    chart(frame, a, "In/s", &h.msgs_in, false, Style::new().green());
    chart(frame, b, "Out/s", &h.msgs_out, false, Style::new().blue());
    subscribers(frame, list, t, scroll);
}

fn subscribers(frame: &mut Frame, area: Rect, t: &TopicPage, scroll: &mut usize) {
    let shown = t.subscribers.len();
    let inner = list_area(frame, area, "Subscribers", shown, t.stats.subscribers);
    if t.subscribers.is_empty() {
        return frame.render_widget(Paragraph::new(" Nobody subscribes to it.").dim(), inner);
    }
    let height = usize::from(inner.height.saturating_sub(1));
    clamp_scroll(scroll, shown, height);
    let retained = t.stats.retained;
    let flexible = inner
        .width
        .saturating_sub(7 + 8 + 18 + if retained { 8 } else { 0 } + 4);
    let (name_w, pattern_w) = (flexible / 3, flexible / 3);
    let filter_w = flexible - name_w - pattern_w;
    let rows = t.subscribers.iter().skip(*scroll).take(height).map(|s| {
        let mut cells = vec![
            Cell::from(s.client.clone()),
            table::name(s.name.as_deref().unwrap_or("-"), name_w),
            table::name(&s.sid, 8),
            table::name(&s.pattern, pattern_w),
            table::name(s.filter.as_deref().unwrap_or("-"), filter_w),
            Cell::from(gauge::buffer(s.pending_bytes, s.pending_limit, false, 18)),
        ];
        if retained {
            let lag = match (s.lag, s.replaying) {
                (Some(n), true) => format!("{} ↻", format::count(n)),
                (Some(n), false) => format::count(n),
                (None, _) => "-".into(),
            };
            cells.push(table::number(lag));
        }
        Row::new(cells)
    });
    let mut titles = vec!["client", "name", "sid", "pattern", "filter", "buffer"];
    let mut widths = vec![
        Constraint::Length(7),
        Constraint::Length(name_w),
        Constraint::Length(8),
        Constraint::Length(pattern_w),
        Constraint::Length(filter_w),
        Constraint::Length(18),
    ];
    if retained {
        titles.push("lag");
        widths.push(Constraint::Length(8));
    }
    let header = Row::new(titles).style(Style::new().dark_gray());
    frame.render_widget(Table::new(rows, widths).header(header), inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_15_minutes_into_any_width() {
        let samples: Vec<u64> = (0..900).collect();
        let shown = columns(&samples, 100, true);
        assert_eq!(shown.len(), 100);
        assert_eq!((shown[0], shown[99]), (8, 899));
        let means = columns(&samples, 100, false);
        assert_eq!((means[0], means[99]), (4, 895));
        // 10 samples in 4 columns of 3: the newest three whole, the oldest one alone.
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(columns(&ten, 4, true), vec![1, 4, 7, 10]);
        assert_eq!(columns(&[5, 7], 100, true), vec![5, 7]);
        assert!(columns(&[], 10, true).is_empty());
        assert!(columns(&[1], 0, true).is_empty());
    }
}
