//! The tail popup: the topic's subscriptions with their filters, then its
//! messages as they are published, three lines each: the fields a filter can test
//! (topic, seq, time, headers), the JSON `data`, and which subscriptions' filters
//! passed it, so which subscribers received it.

use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{describe_query, LiveTail, TailEntry};
use crate::delivery::{Subscriber, Subscribers, Verdict};
use crate::format;
use crate::views::peek::header_pairs;
use crate::widgets::popup;

/// Lines each message takes.
const LINES_PER_MESSAGE: usize = 3;

/// The widest a subscription's `client/sid` label is drawn; longer ones are cut.
const LABEL_MAX: usize = 16;

/// The client name column of the subscription list.
const NAME_W: usize = 18;

/// The pattern column of the subscription list.
const PATTERN_W: usize = 24;

/// Columns between two subscriptions on a message's delivery line.
const GAP: usize = 2;

/// Draw the tail popup over `area`, the newest message at the bottom.
pub fn render(frame: &mut Frame, area: Rect, tail: &mut LiveTail) {
    let subs = tail.subscribers.list().len();
    let query = match describe_query(&tail.query) {
        Some(q) => format!(" ({q})"),
        None => String::new(),
    };
    let title = format!(
        " Tail {}{query} · {} received · {subs} subscription{} ",
        tail.pattern,
        tail.received,
        if subs == 1 { "" } else { "s" }
    );
    let inner = popup(frame, area, Line::from(title));
    let width = usize::from(inner.width);

    let sub_lines = subscription_lines(&tail.subscribers, usize::from(inner.height), width);
    let [subs_area, messages_area] = Layout::vertical([
        Constraint::Length(u16::try_from(sub_lines.len()).unwrap_or(u16::MAX)),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(sub_lines), subs_area);

    let len = tail.messages.len();
    let fits = (usize::from(messages_area.height) / LINES_PER_MESSAGE).max(1);
    tail.back = tail.back.min(len.saturating_sub(fits));
    let end = len - tail.back;
    let start = end.saturating_sub(fits);
    let mut lines = Vec::new();
    for m in tail.messages.range(start..end) {
        let message = &m.message;
        lines.push(Line::from(vec![
            Span::styled(format!("#{:<8}", message.seq), Style::new().yellow().bold()),
            Span::styled(
                format!("{}  ", format::clock_ms(message.time)),
                Style::new().dark_gray(),
            ),
            Span::raw(format!("{}  ", message.topic)).bold(),
            Span::styled(header_pairs(message.headers.as_ref()), Style::new().cyan()),
        ]));
        // Cut before copying: a payload may be far wider than the screen.
        let data = format::fit(&m.data_json, width.saturating_sub(2));
        lines.push(Line::from(format!("  {data}")));
        lines.push(delivery_line(m, width));
    }
    if lines.is_empty() {
        lines.push(Line::from(format!(" waiting for messages on {}…", tail.pattern)).dim());
    }
    frame.render_widget(Paragraph::new(lines), messages_area);

    let where_ = if tail.back == 0 {
        " following · ↑ scrolls back ".to_string()
    } else {
        format!(" {} newer below · End follows ", tail.back)
    };
    let bottom = Rect {
        y: area.bottom().saturating_sub(1),
        height: 1,
        ..area
    };
    frame.render_widget(
        Line::from(where_).right_aligned().dark_gray(),
        bottom.inner(Margin {
            horizontal: 2,
            vertical: 0,
        }),
    );
}

/// The subscriptions section: a heading, a row per subscription (a quarter of
/// the popup at most, then `+N more`), and a blank line before the messages.
fn subscription_lines(
    subscribers: &Subscribers,
    height: usize,
    width: usize,
) -> Vec<Line<'static>> {
    let list = subscribers.list();
    let topic = subscribers.topic();
    if list.is_empty() {
        return vec![
            Line::from(format!(
                " No subscription on {topic}: its messages reach nobody"
            ))
            .dim(),
            Line::default(),
        ];
    }
    let s = if list.len() == 1 { "" } else { "s" };
    let heading = format!(" {} subscription{s} on {topic}", list.len());
    let legend = "   ✓ delivered   ✗ filtered out";
    let mut spans = vec![Span::styled(
        format::fit(&heading, width),
        Style::new().yellow().bold(),
    )];
    // The legend only when it fits whole: a long topic name matters more.
    if Span::raw(heading.as_str()).width() + Span::raw(legend).width() <= width {
        spans.extend([
            Span::raw("   "),
            Span::styled("✓", Style::new().green().bold()),
            Span::styled(" delivered   ", Style::new().dark_gray()),
            Span::styled("✗", Style::new().red().bold()),
            Span::styled(" filtered out", Style::new().dark_gray()),
        ]);
    }
    let mut lines = vec![Line::from(spans)];
    let room = (height / 4).max(1);
    let shown = if list.len() <= room {
        list.len()
    } else {
        room - 1
    };
    let label_w = label_width(list.iter());
    let filter_w = width.saturating_sub(2 + label_w + 2 + NAME_W + 2 + PATTERN_W + 2);
    for sub in &list[..shown] {
        let mut row = vec![
            Span::raw(format!("  {}  ", pad(&sub.label(), label_w))).bold(),
            match &sub.client_name {
                Some(name) => Span::raw(pad(name, NAME_W)),
                None => Span::styled(pad("(no name)", NAME_W), Style::new().dark_gray()),
            },
            Span::raw("  "),
            Span::raw(pad(&format::fit_middle(&sub.pattern, PATTERN_W), PATTERN_W)),
            Span::raw("  "),
        ];
        match (&sub.filter, subscribers.filter_error(sub)) {
            (None, _) => row.push(Span::styled(
                "(no filter: every message)",
                Style::new().dark_gray(),
            )),
            (Some(filter), None) => row.push(Span::styled(
                format::fit(filter, filter_w),
                Style::new().cyan(),
            )),
            (Some(filter), Some(err)) => row.push(Span::styled(
                format::fit(&format!("{filter}  (does not parse here: {err})"), filter_w),
                Style::new().yellow(),
            )),
        }
        lines.push(Line::from(row));
    }
    if shown < list.len() {
        lines.push(
            Line::from(format!(
                "  +{} more (the Clients view details each client's)",
                list.len() - shown
            ))
            .dim(),
        );
    }
    lines.push(Line::default());
    lines
}

/// `→ 2 of 3  ✓ c1/a  ✗ c4/s1  ✓ c5/eu`: each subscription in the subscribers'
/// order, in cells of one width so that a subscription keeps its column from one
/// message to the next; those that do not fit are counted in `+N more`.
fn delivery_line(m: &TailEntry, width: usize) -> Line<'static> {
    let delivery = &m.delivery;
    if delivery.is_empty() {
        return Line::from("  → nobody: no subscription").dim();
    }
    let n = delivery.len();
    let digits = n.to_string().len();
    let head = format!("  → {:>digits$} of {n}  ", delivery.delivered());
    let label_w = label_width(delivery.iter().map(|(s, _)| s));
    let cell = 2 + label_w + GAP;
    let room = width.saturating_sub(head.chars().count());
    // The longest `+N more (k ✓)` could be, so that it always fits when needed.
    let more_w = format!("+{n} more ({n} ✓)").chars().count();
    let fit = if n * cell <= room + GAP {
        n
    } else {
        room.saturating_sub(more_w) / cell
    };

    let mut spans = vec![Span::styled(head, Style::new().dark_gray())];
    for (sub, verdict) in delivery.iter().take(fit) {
        let (mark, mark_style, label_style) = mark(verdict);
        spans.push(Span::styled(format!("{mark} "), mark_style));
        spans.push(Span::styled(
            format!("{}{}", pad(&sub.label(), label_w), " ".repeat(GAP)),
            label_style,
        ));
    }
    if fit < n {
        let hidden_delivered = delivery
            .iter()
            .skip(fit)
            .filter(|(_, v)| *v == Verdict::Delivered)
            .count();
        spans.push(Span::styled(
            format!("+{} more ({hidden_delivered} ✓)", n - fit),
            Style::new().dark_gray(),
        ));
    }
    Line::from(spans)
}

/// The mark for a verdict, its style, and the style of the label after it.
fn mark(verdict: Verdict) -> (&'static str, Style, Style) {
    match verdict {
        Verdict::Delivered => ("✓", Style::new().green().bold(), Style::new()),
        Verdict::FilteredOut => ("✗", Style::new().red(), Style::new().dark_gray()),
        Verdict::Unknown => ("?", Style::new().yellow(), Style::new().dark_gray()),
    }
}

/// The widest label of `subs`, at most [`LABEL_MAX`].
fn label_width<'a>(subs: impl Iterator<Item = &'a Subscriber>) -> usize {
    // Measured in parts: this runs over every subscription, for every message shown.
    subs.map(|s| Span::raw(s.client.as_str()).width() + 1 + Span::raw(s.sid.as_str()).width())
        .max()
        .unwrap_or(0)
        .min(LABEL_MAX)
}

/// `text` cut or padded with spaces to exactly `width` columns.
fn pad(text: &str, width: usize) -> String {
    let cut = format::fit(text, width);
    let used = Span::raw(cut.as_str()).width();
    format!("{cut}{}", " ".repeat(width.saturating_sub(used)))
}
