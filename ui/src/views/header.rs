//! The header every view shares: which broker, how long up, how busy; and the tabs.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Tabs;
use ratatui::Frame;

use crate::app::App;
use crate::format;
use crate::view::View;

/// Draw the header line: broker URL, version, uptime, connections, msgs/s in and out.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let server = &app.snapshot.server;
    let label = |s: &'static str| Span::styled(s, Style::new().dark_gray());
    let value = |s: String| Span::styled(s, Style::new().bold());
    let sep = || Span::styled("  │  ", Style::new().dark_gray());
    let mut spans = vec![
        Span::styled(" Switchyard ", Style::new().black().on_cyan().bold()),
        Span::raw(" "),
        Span::styled(app.url.clone(), Style::new().cyan()),
    ];
    if !server.version.is_empty() {
        spans.push(Span::styled(
            format!("  v{}", server.version),
            Style::new().dark_gray(),
        ));
    }
    spans.extend([
        sep(),
        label("up "),
        value(format::uptime(server.uptime_s)),
        sep(),
        value(format::count(server.connections)),
        label(" connections"),
        sep(),
        label("in "),
        value(format!("{}/s", format::rate(app.rates.server.msgs_in))),
        sep(),
        label("out "),
        value(format!("{}/s", format::rate(app.rates.server.msgs_out))),
    ]);
    frame.render_widget(Line::from(spans), area);
}

/// Draw the tabs, each with its key and row count.
pub fn render_tabs(frame: &mut Frame, area: Rect, app: &App) {
    let snap = &app.snapshot;
    let titles = View::ALL.iter().map(|&view| {
        let count = match view {
            View::Overview => String::new(),
            View::Topics => format!(" {}", snap.topics.len()),
            View::Queues => format!(" {}", snap.queues.len()),
            View::Clients => format!(" {}", snap.clients.len()),
            View::InFlight => format!(" {}", snap.inflight.len()),
        };
        Line::from(vec![
            Span::styled(format!("{} ", view.index() + 1), Style::new().dark_gray()),
            Span::raw(view.title()),
            Span::styled(count, Style::new().dark_gray()),
        ])
    });
    frame.render_widget(
        Tabs::new(titles)
            .select(app.view.index())
            .highlight_style(Style::new().black().on_white().bold())
            .divider(Span::styled("│", Style::new().dark_gray())),
        area,
    );
}
