//! Drawing: one file per view and per popup, all reading [`App`] and changing
//! nothing but scroll positions (which only drawing can clamp, knowing the height).
//! A view's file draws its table's rows; what the rows are and their order come
//! from the state side (`tables/`).

pub mod client_detail;
pub mod clients;
pub mod footer;
pub mod header;
pub mod help;
pub mod inflight;
pub mod overview;
pub mod page;
pub mod peek;
pub mod queues;
pub mod tail;
pub mod topics;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::Style;
use ratatui::Frame;

use crate::app::{App, Overlay};
use crate::source::Link;
use crate::tables;
use crate::view::View;
use crate::widgets::table::{self, DrawRow, Listing};
use crate::widgets::{confirm, publish_form};

/// How a row of `view`'s table is drawn (the overview's table is its event log).
fn row_drawer(view: View) -> DrawRow {
    match view {
        View::Overview => overview::event_row,
        View::Topics => topics::row,
        View::Queues => queues::row,
        View::Clients => clients::row,
        View::InFlight => inflight::row,
    }
}

/// The smallest terminal the dashboard draws on: every view is checked at this
/// size. Below it, cut numbers would lie (`290` shown as `90`), so one line says
/// so instead.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Draw the whole dashboard: header, tabs, the current view, status line, key
/// hints, and any popup on top; or, on a terminal below [`MIN_SIZE`], one line
/// saying it is too small.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        return too_small(frame);
    }
    let [header_area, tabs_area, body, status_area, keys_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    header::render(frame, header_area, app);
    header::render_tabs(frame, tabs_area, app);
    let view = app.view;
    if let Some(page) = &mut app.page {
        page::render(frame, body, page);
    } else if view == View::Overview {
        overview::render(frame, body, app);
    } else {
        let i = view.index();
        let listing = Listing {
            title: view.title(),
            model: tables::model(view),
            row: row_drawer(view),
        };
        table::render(
            frame,
            body,
            listing,
            &app.snapshot,
            &app.rates,
            &mut app.tables[i],
        );
    }
    footer::render_status(frame, status_area, app);
    footer::render_keys(frame, keys_area, app);

    let search = app.search_input().map(str::to_string);
    match &mut app.overlay {
        None => {}
        Some(Overlay::Help { scroll }) => help::render(frame, body, scroll),
        Some(Overlay::Confirm(confirmation)) => {
            confirm::render(frame, body, confirmation.title(), &confirmation.question());
        }
        Some(Overlay::Publish { form, tail, .. }) => {
            if let Some(tail) = tail {
                tail::render(frame, body, tail);
            }
            publish_form::render(frame, body, form, tail.is_some());
        }
        Some(Overlay::Peek(peek)) => {
            let dialog = peek::render(frame, body, peek);
            if let Some(text) = &search {
                peek::render_search(frame, dialog, text);
            }
        }
        Some(Overlay::Tail(tail)) => {
            tail::render(frame, body, tail);
            if let Some(text) = &search {
                peek::render_search(frame, body, text);
            }
        }
        Some(Overlay::Client { client, scroll }) => {
            client_detail::render(frame, body, &app.snapshot, &app.rates, client, scroll);
        }
    }
    if let Some(stopping) = &app.stopping {
        confirm::render(frame, body, stopping.title(), &stopping.question());
    }
    if app.link != Link::Up {
        // The last data stays, greyed: it is what the broker held, not what it holds.
        frame
            .buffer_mut()
            .set_style(body, Style::new().dark_gray().not_bold());
    }
}

/// The one line drawn on a terminal below [`MIN_SIZE`], in its middle, cut at
/// word ends rather than mid-number.
fn too_small(frame: &mut Frame) {
    use ratatui::layout::Alignment;
    use ratatui::widgets::{Paragraph, Wrap};
    let area = frame.area();
    let text = format!(
        "terminal {}×{} is too small: Switchyard needs {}×{}",
        area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
    );
    let lines = (text.len() as u16)
        .div_ceil(area.width.max(1))
        .min(area.height);
    let [_, middle, _] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(lines),
        Constraint::Fill(1),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        middle,
    );
}
