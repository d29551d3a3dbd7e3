//! Drawing the publish form: its three fields, whether the payload is JSON, the
//! last error, and the keys. What it holds is `crate::publish`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use tui_input::Input;

use super::{centered, popup};
use crate::publish::{DestinationKind, Field, PublishForm};

/// Draw `form` centred in `area`, with the cursor in the focused field. A form
/// opened from a tail says that its test message is a real publish, which every
/// subscriber of the topic receives, not only the tail.
pub fn render(frame: &mut Frame, area: Rect, form: &PublishForm, from_tail: bool) {
    let title = match form.kind {
        _ if from_tail => " Test message: a real publish, every subscriber gets it ",
        DestinationKind::Topic => " Publish to a topic ",
        DestinationKind::Queue => " Send to a queue ",
    };
    let dialog = centered(area, 84, 15);
    let inner = popup(frame, dialog, Line::from(title));
    let [payload, note, destination, headers, error, hints] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Length(2),
        Constraint::Length(1),
    ])
    .areas(inner);

    let note_text = if form.payload.value().is_empty() {
        "JSON; text that is not JSON is sent as a JSON string"
    } else if serde_json::from_str::<serde_json::Value>(form.payload.value()).is_ok() {
        "valid JSON, sent as is"
    } else {
        "not JSON: sent as a JSON string"
    };
    field(
        frame,
        payload,
        "Payload",
        &form.payload,
        form.focus == Field::Payload,
    );
    frame.render_widget(Line::from(format!(" {note_text}")).dim(), note);
    let label = match form.kind {
        DestinationKind::Topic => "Topic",
        DestinationKind::Queue => "Queue",
    };
    field(
        frame,
        destination,
        label,
        &form.destination,
        form.focus == Field::Destination,
    );
    field(
        frame,
        headers,
        "Headers (optional): name=value name=[a,b]",
        &form.headers,
        form.focus == Field::Headers,
    );
    if let Some(err) = &form.error {
        let text = Line::from(vec![
            Span::raw(" ✗ ").red().bold(),
            Span::raw(err.clone()).red(),
        ]);
        frame.render_widget(Paragraph::new(text), error);
    }
    frame.render_widget(
        Line::from(vec![
            Span::raw(" ⏎ ").bold(),
            Span::raw("send   "),
            Span::raw("Tab ").bold(),
            Span::raw("next field   "),
            Span::raw("Esc ").bold(),
            Span::raw("cancel"),
        ]),
        hints,
    );
}

/// Draw one text field; the focused one has a yellow border and the cursor.
fn field(frame: &mut Frame, area: Rect, label: &str, input: &Input, focused: bool) {
    let border = if focused {
        Style::new().yellow()
    } else {
        Style::new().dark_gray()
    };
    let title = if focused {
        format!(" {label} ◀ ")
    } else {
        format!(" {label} ")
    };
    let block = Block::bordered().border_style(border).title(title);
    let text_area = block.inner(area);
    let width = usize::from(text_area.width.saturating_sub(1));
    let scroll = input.visual_scroll(width);
    frame.render_widget(
        Paragraph::new(input.value())
            .scroll((0, u16::try_from(scroll).unwrap_or(u16::MAX)))
            .block(block),
        area,
    );
    if focused {
        let column = input.visual_cursor().saturating_sub(scroll);
        let x = text_area.x
            + u16::try_from(column)
                .unwrap_or(u16::MAX)
                .min(text_area.width);
        frame.set_cursor_position((x, text_area.y));
    }
}
