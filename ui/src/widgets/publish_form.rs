//! The publish form: a payload and a destination, typed with tui-input, turned into
//! a `Publish` (topic) or `Send` (queue) command.

use crossterm::event::{Event, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use switchyard_broker::Command;
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use super::{centered, popup};

/// Whether the form publishes to a topic or sends to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `pub` to a topic: fan-out to its subscribers.
    Topic,
    /// `send` to a queue: one consumer gets it.
    Queue,
}

impl Destination {
    fn noun(self) -> &'static str {
        match self {
            Destination::Topic => "topic",
            Destination::Queue => "queue",
        }
    }
}

/// Which field has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The message body, as JSON.
    Payload,
    /// The topic or queue name.
    Destination,
}

/// The state of the publish form.
#[derive(Debug, Clone)]
pub struct PublishForm {
    /// Topic or queue.
    pub kind: Destination,
    /// The topic or queue name; starts as the selected row's.
    pub destination: Input,
    /// The message body.
    pub payload: Input,
    /// The focused field; the payload first, since the destination is usually right.
    pub focus: Field,
    /// Why the last attempt to send failed, shown inside the form.
    pub error: Option<String>,
}

/// The JSON a payload field holds: its text parsed as JSON, or, when it is not JSON,
/// the text itself as a JSON string (so `hello` sends `"hello"`).
pub fn payload_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

impl PublishForm {
    /// A form for `kind` named `destination`, focus in the payload.
    pub fn new(kind: Destination, destination: &str) -> Self {
        PublishForm {
            kind,
            destination: Input::new(destination.to_string()),
            payload: Input::default(),
            focus: Field::Payload,
            error: None,
        }
    }

    /// Move the focus to the other field.
    pub fn toggle_focus(&mut self) {
        self.focus = match self.focus {
            Field::Payload => Field::Destination,
            Field::Destination => Field::Payload,
        };
    }

    /// Type a key into the focused field.
    pub fn type_key(&mut self, key: KeyEvent) {
        let input = match self.focus {
            Field::Payload => &mut self.payload,
            Field::Destination => &mut self.destination,
        };
        input.handle_event(&Event::Key(key));
    }

    /// The command the form would send, or why it cannot send yet.
    pub fn command(&self) -> Result<Command, String> {
        let name = self.destination.value().trim().to_string();
        if name.is_empty() {
            return Err(format!("a {} name is needed", self.kind.noun()));
        }
        let data = payload_value(self.payload.value());
        Ok(match self.kind {
            Destination::Topic => Command::Publish {
                topic: name,
                data,
                headers: None,
            },
            Destination::Queue => Command::Send {
                queue: name,
                data,
                headers: None,
            },
        })
    }

    /// Draw the form centred in `area`, with the cursor in the focused field.
    pub fn render(&self, frame: &mut Frame, area: Rect) {
        let title = match self.kind {
            Destination::Topic => " Publish to a topic ",
            Destination::Queue => " Send to a queue ",
        };
        let dialog = centered(area, 84, 12);
        let inner = popup(frame, dialog, Line::from(title));
        let [payload, note, destination, error, hints] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Length(3),
            Constraint::Length(2),
            Constraint::Length(1),
        ])
        .areas(inner);

        let note_text = if self.payload.value().is_empty() {
            "JSON; text that is not JSON is sent as a JSON string"
        } else if serde_json::from_str::<serde_json::Value>(self.payload.value()).is_ok() {
            "valid JSON, sent as is"
        } else {
            "not JSON: sent as a JSON string"
        };
        self.field(frame, payload, "Payload", &self.payload, Field::Payload);
        frame.render_widget(Line::from(format!(" {note_text}")).dim(), note);
        let label = match self.kind {
            Destination::Topic => "Topic",
            Destination::Queue => "Queue",
        };
        self.field(
            frame,
            destination,
            label,
            &self.destination,
            Field::Destination,
        );
        if let Some(err) = &self.error {
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

    fn field(&self, frame: &mut Frame, area: Rect, label: &str, input: &Input, which: Field) {
        let focused = self.focus == which;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn type_text(form: &mut PublishForm, text: &str) {
        for c in text.chars() {
            form.type_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    #[test]
    fn json_payloads_are_sent_as_json_and_text_as_a_string() {
        assert_eq!(payload_value(r#"{"a": 1}"#), serde_json::json!({"a": 1}));
        assert_eq!(payload_value("42"), serde_json::json!(42));
        assert_eq!(
            payload_value("hello world"),
            serde_json::json!("hello world")
        );
        assert_eq!(payload_value(""), serde_json::json!(""));
    }

    #[test]
    fn focus_starts_in_the_payload_and_tab_moves_to_the_destination() {
        let mut form = PublishForm::new(Destination::Queue, "jobs");
        assert_eq!(form.focus, Field::Payload);
        type_text(&mut form, "x");
        form.toggle_focus();
        type_text(&mut form, "2");
        assert_eq!(form.payload.value(), "x");
        assert_eq!(form.destination.value(), "jobs2");
    }

    #[test]
    fn an_empty_destination_is_refused_before_sending() {
        let form = PublishForm::new(Destination::Topic, "  ");
        assert_eq!(form.command(), Err("a topic name is needed".to_string()));
    }
}
