//! What the publish form holds: a payload, a destination and optional headers,
//! typed with tui-input, turned into a `Publish` (topic) or `Send` (queue)
//! command. Drawn by `widgets/publish_form.rs`.

use crossterm::event::{Event, KeyEvent};
use switchyard_broker::Command;
use switchyard_broker::{HeaderValue, Headers};
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

/// Whether the form publishes to a topic or sends to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// `pub` to a topic: fan-out to its subscribers.
    Topic,
    /// `send` to a queue: one consumer gets it.
    Queue,
}

impl DestinationKind {
    /// `topic` or `queue`, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            DestinationKind::Topic => "topic",
            DestinationKind::Queue => "queue",
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
    /// The headers, `name=value` pairs.
    Headers,
}

/// The state of the publish form.
#[derive(Debug, Clone)]
pub struct PublishForm {
    /// Topic or queue.
    pub kind: DestinationKind,
    /// The topic or queue name; starts as the selected row's.
    pub destination: Input,
    /// The message body.
    pub payload: Input,
    /// The headers, as `region=eu tags=[urgent,vip]`; most filter keys are headers.
    pub headers: Input,
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

/// The headers a headers field holds: space-separated `name=value` pairs, a
/// value in brackets (`tags=[urgent,vip]`) for a multi-valued header, the way
/// the tail and peek popups show them. Nothing typed is no headers.
pub fn headers_value(text: &str) -> Result<Option<Headers>, String> {
    let mut headers = Headers::new();
    for pair in text.split_whitespace() {
        let Some((name, value)) = pair.split_once('=').filter(|(name, _)| !name.is_empty()) else {
            return Err(format!("headers are name=value pairs, not {pair}"));
        };
        let value = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some("") => HeaderValue::Many(Vec::new()),
            Some(list) => HeaderValue::Many(list.split(',').map(str::to_string).collect()),
            None => HeaderValue::One(value.to_string()),
        };
        if headers.insert(name.to_string(), value).is_some() {
            return Err(format!("header {name} is given twice; write {name}=[a,b]"));
        }
    }
    Ok((!headers.is_empty()).then_some(headers))
}

impl PublishForm {
    /// A form for `kind` named `destination`, focus in the payload.
    pub fn new(kind: DestinationKind, destination: &str) -> Self {
        PublishForm {
            kind,
            destination: Input::new(destination.to_string()),
            payload: Input::default(),
            headers: Input::default(),
            focus: Field::Payload,
            error: None,
        }
    }

    /// Move the focus to the next field, in the order they are drawn.
    pub fn focus_next(&mut self) {
        self.focus = match self.focus {
            Field::Payload => Field::Destination,
            Field::Destination => Field::Headers,
            Field::Headers => Field::Payload,
        };
    }

    /// Move the focus to the previous field.
    pub fn focus_prev(&mut self) {
        self.focus = match self.focus {
            Field::Payload => Field::Headers,
            Field::Destination => Field::Payload,
            Field::Headers => Field::Destination,
        };
    }

    /// Type a key into the focused field.
    pub fn type_key(&mut self, key: KeyEvent) {
        let input = match self.focus {
            Field::Payload => &mut self.payload,
            Field::Destination => &mut self.destination,
            Field::Headers => &mut self.headers,
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
        let headers = headers_value(self.headers.value())?;
        Ok(match self.kind {
            DestinationKind::Topic => Command::Publish {
                topic: name,
                data,
                headers,
            },
            DestinationKind::Queue => Command::Send {
                queue: name,
                data,
                headers,
            },
        })
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
    fn focus_starts_in_the_payload_and_moves_through_the_fields_both_ways() {
        let mut form = PublishForm::new(DestinationKind::Queue, "jobs");
        assert_eq!(form.focus, Field::Payload);
        type_text(&mut form, "x");
        form.focus_next();
        type_text(&mut form, "2");
        form.focus_next();
        type_text(&mut form, "a=1");
        assert_eq!(form.payload.value(), "x");
        assert_eq!(form.destination.value(), "jobs2");
        assert_eq!(form.headers.value(), "a=1");
        form.focus_next();
        assert_eq!(form.focus, Field::Payload, "wraps around");
        form.focus_prev();
        assert_eq!(form.focus, Field::Headers, "and back");
    }

    #[test]
    fn headers_are_typed_as_the_popups_show_them() {
        let headers = headers_value("region=eu  tags=[urgent,vip] empty= none=[]")
            .unwrap()
            .unwrap();
        let shown: Vec<(&str, Vec<&str>)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.values().collect()))
            .collect();
        assert_eq!(
            shown,
            [
                ("empty", vec![""]),
                ("none", vec![]),
                ("region", vec!["eu"]),
                ("tags", vec!["urgent", "vip"]),
            ]
        );
        assert_eq!(headers["region"], HeaderValue::One("eu".into()));
        assert_eq!(headers_value("   "), Ok(None));
        assert_eq!(
            headers_value("region"),
            Err("headers are name=value pairs, not region".to_string())
        );
        assert_eq!(
            headers_value("=eu"),
            Err("headers are name=value pairs, not =eu".to_string())
        );
        assert_eq!(
            headers_value("tag=a tag=b"),
            Err("header tag is given twice; write tag=[a,b]".to_string())
        );
    }

    #[test]
    fn bad_headers_stop_the_command_and_good_ones_go_with_it() {
        let mut form = PublishForm::new(DestinationKind::Topic, "orders.eu");
        form.focus = Field::Headers;
        type_text(&mut form, "region");
        assert!(form.command().is_err());
        type_text(&mut form, "=eu");
        let Ok(Command::Publish { headers, .. }) = form.command() else {
            panic!("{:?}", form.command());
        };
        assert_eq!(headers, headers_value("region=eu").unwrap());
    }

    #[test]
    fn an_empty_destination_is_refused_before_sending() {
        let form = PublishForm::new(DestinationKind::Topic, "  ");
        assert_eq!(form.command(), Err("a topic name is needed".to_string()));
    }
}
