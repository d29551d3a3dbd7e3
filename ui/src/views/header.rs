//! The header every view shares: which broker, how long up, how busy; and the tabs.

use std::net::SocketAddr;
use std::time::Instant;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Tabs;
use ratatui::Frame;

use crate::app::App;
use crate::format;
use crate::source::Link;
use crate::view::View;

/// Draw the header line: broker URL, version, `auth off` in red for a broker open
/// to the network without tokens, uptime, connections, msgs/s in and out; or,
/// while the link is down, that it is and when the next try is.
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
    if let Link::Down { why, retry_at } = &app.link {
        let wait = retry_at.saturating_duration_since(Instant::now());
        spans.extend([
            sep(),
            Span::styled(
                format!("disconnected, retrying in {}s", wait.as_secs_f64().ceil()),
                Style::new().black().on_red().bold(),
            ),
            Span::styled(format!(" {why}"), Style::new().red()),
        ]);
        frame.render_widget(Line::from(spans), area);
        return;
    }
    if open_to_anyone(&server.listen, server.auth) {
        spans.extend([sep(), Span::styled("auth off", Style::new().red().bold())]);
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

/// Whether the broker listens beyond this machine with no token asked: then any
/// host that reaches the port may do everything, and the operator must see it.
/// A loopback broker without auth is the two-command start, not a warning.
fn open_to_anyone(listen: &str, auth: bool) -> bool {
    !auth
        && listen
            .parse::<SocketAddr>()
            .is_ok_and(|addr| !addr.ip().is_loopback())
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
            // The whole ledger, though a remote console lists only its oldest jobs.
            View::InFlight => format!(" {}", snap.server.inflight.max(snap.inflight.len() as u64)),
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

#[cfg(test)]
mod tests {
    use super::open_to_anyone;

    #[test]
    fn only_a_broker_beyond_loopback_without_auth_is_open_to_anyone() {
        assert!(open_to_anyone("0.0.0.0:7400", false));
        assert!(open_to_anyone("192.168.1.5:7400", false));
        assert!(!open_to_anyone("0.0.0.0:7400", true));
        assert!(!open_to_anyone("127.0.0.1:7400", false));
        assert!(!open_to_anyone("[::1]:7400", false));
        // An older broker's snapshot, or none yet: no guess.
        assert!(!open_to_anyone("", false));
    }
}
