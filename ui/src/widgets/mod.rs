//! Pieces shared by the views: the scrolling table, the buffer gauge, the confirm
//! dialog, the publish form, and placing a popup over the screen.

pub mod confirm;
pub mod gauge;
pub mod publish_form;
pub mod table;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear};
use ratatui::Frame;

/// A `width` x `height` rectangle centred in `area`, shrunk to fit inside it.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}

/// Blank `area` and draw a popup frame titled `title` over it; returns the inside.
pub fn popup(frame: &mut Frame, area: Rect, title: Line<'_>) -> Rect {
    frame.render_widget(Clear, area);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().cyan())
        .title(title.bold());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}
