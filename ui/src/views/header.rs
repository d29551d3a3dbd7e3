//! The header every view shares: which broker, how long up, how busy, whether
//! the tables are paused; and the tabs.

use std::net::SocketAddr;

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
    let mut head = vec![
        Span::styled(" Switchyard ", Style::new().black().on_cyan().bold()),
        Span::raw(" "),
        Span::styled(app.url.clone(), Style::new().cyan()),
    ];
    // What follows the URL, in the order shown, each with its rank: on a narrow
    // terminal the lowest-ranked pieces are left out whole, never cut mid-number.
    let mut pieces: Vec<(u8, Vec<Span>)> = Vec::new();
    if app.paused() {
        // Frozen numbers read as live ones unless this says otherwise.
        pieces.push((
            10,
            vec![Span::styled(
                " PAUSED (Space resumes) ",
                Style::new().black().on_yellow().bold(),
            )],
        ));
    }
    if let Link::Down { why, retry_at } = &app.link {
        let wait = retry_at.saturating_duration_since(app.now());
        pieces.push((
            9,
            vec![Span::styled(
                format!("disconnected, retrying in {}s", wait.as_secs_f64().ceil()),
                Style::new().black().on_red().bold(),
            )],
        ));
        // Words, not a number: cut to the room left rather than left out.
        let left = usize::from(area.width)
            .saturating_sub(app.url.chars().count() + 60)
            .max(12);
        pieces.push((
            8,
            vec![Span::styled(format::fit(why, left), Style::new().red())],
        ));
    } else {
        // A node of a cluster (`serve --nats`): its name, and in red while its
        // NATS link is down (it refuses pubs meanwhile).
        if let Some(cluster) = &server.cluster {
            if !cluster.connected {
                pieces.push((
                    9,
                    vec![Span::styled(
                        "NATS down",
                        Style::new().black().on_red().bold(),
                    )],
                ));
            }
            pieces.push((6, vec![label("node "), value(cluster.node.clone())]));
            // The nodes its view holds (`cluster/view.rs`), and which are gone:
            // their clients are no longer in the tables.
            if !cluster.nodes.is_empty() {
                let count = cluster.nodes.len();
                let noun = if count == 1 { " node" } else { " nodes" };
                pieces.push((6, vec![value(format::count(count as u64)), label(noun)]));
                let gone: Vec<&str> = cluster
                    .nodes
                    .iter()
                    .filter(|n| n.gone)
                    .map(|n| n.node.as_str())
                    .collect();
                let text = match gone.as_slice() {
                    [] => None,
                    [one] => Some(format!("{} gone", format::fit(one, 16))),
                    many => Some(format!("{} nodes gone", many.len())),
                };
                if let Some(text) = text {
                    pieces.push((
                        8,
                        vec![Span::styled(text, Style::new().black().on_red().bold())],
                    ));
                }
            }
        }
        if open_to_anyone(&server.listen, server.auth) {
            pieces.push((9, vec![Span::styled("auth off", Style::new().red().bold())]));
        }
        pieces.push((
            2,
            vec![label("up "), value(format::uptime(server.uptime_s))],
        ));
        pieces.push((
            3,
            vec![
                value(format::count(server.connections)),
                label(" connections"),
            ],
        ));
        pieces.push((
            5,
            vec![
                label("in "),
                value(format!("{}/s", format::rate(app.rates.server.msgs_in))),
            ],
        ));
        pieces.push((
            4,
            vec![
                label("out "),
                value(format!("{}/s", format::rate(app.rates.server.msgs_out))),
            ],
        ));
    }
    let width = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
    let sep_width = SEPARATOR.chars().count();
    let mut room = usize::from(area.width).saturating_sub(width(&head));
    // Pieces by rank, highest first, while they fit; then the version (rank 1).
    let mut by_rank: Vec<usize> = (0..pieces.len()).collect();
    by_rank.sort_by_key(|&i| std::cmp::Reverse(pieces[i].0));
    let mut shown = vec![false; pieces.len()];
    for i in by_rank {
        let w = sep_width + width(&pieces[i].1);
        if w <= room {
            room -= w;
            shown[i] = true;
        }
    }
    let version = format!("  v{}", server.version);
    if !server.version.is_empty() && version.len() <= room {
        head.push(Span::styled(version, Style::new().dark_gray()));
    }
    let mut spans = head;
    for ((_, piece), shown) in pieces.into_iter().zip(shown) {
        if shown {
            spans.push(Span::styled(SEPARATOR, Style::new().dark_gray()));
            spans.extend(piece);
        }
    }
    frame.render_widget(Line::from(spans), area);
}

/// Between two pieces of the header.
const SEPARATOR: &str = "  │  ";

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
