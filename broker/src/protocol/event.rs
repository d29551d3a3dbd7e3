//! Builders for broker → client frames. Each returns one compact JSON object,
//! written by hand (no serde on the delivery path): a delivery's shared part is
//! serialized once per message and spliced into each subscriber's frame.

use crate::command::CommandOutcome;
use crate::error::BrokerError;
use crate::protocol::{Headers, Payload, RequestId, PROTOCOL_VERSION};

/// Appends `s` to `out` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{b:04x}")),
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn open(ev: &str, id: Option<&RequestId>) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"ev\":\"");
    out.push_str(ev);
    out.push('"');
    if let Some(id) = id {
        out.push_str(",\"id\":");
        out.push_str(id.as_json());
    }
    out
}

/// The fields of the `ok` that answers an operator command, as `(name, raw JSON)`.
pub fn outcome_fields(outcome: &CommandOutcome) -> Vec<(&'static str, String)> {
    match outcome {
        CommandOutcome::Published { seq, .. } => vec![("seq", seq.to_string())],
        CommandOutcome::Sent { msg } => {
            let mut json = String::new();
            push_json_str(&mut json, msg);
            vec![("msg", json)]
        }
        CommandOutcome::Purged { count } => vec![("purged", count.to_string())],
        CommandOutcome::Moved { count } => vec![("moved", count.to_string())],
        CommandOutcome::RequeuedAll { count } => vec![("requeued", count.to_string())],
        CommandOutcome::Kicked | CommandOutcome::Requeued | CommandOutcome::Dropped => Vec::new(),
        // Peeked messages are plain data; serializing them cannot fail.
        CommandOutcome::Peeked {
            messages,
            truncated,
            next,
        } => {
            let mut fields = vec![(
                "messages",
                serde_json::to_string(messages).unwrap_or_else(|_| "[]".into()),
            )];
            if *truncated {
                fields.push(("truncated", "true".into()));
            }
            if let Some(next) = next {
                fields.push(("next", next.to_string()));
            }
            fields
        }
        // Pages are plain data too.
        CommandOutcome::QueuePage(page) => vec![(
            "queue",
            serde_json::to_string(page).unwrap_or_else(|_| "null".into()),
        )],
        CommandOutcome::TopicPage(page) => vec![(
            "topic",
            serde_json::to_string(page).unwrap_or_else(|_| "null".into()),
        )],
    }
}

/// `{"ev":"ok","id":...}` with extra fields given as `(name, raw JSON)` pairs.
pub fn ok(id: &RequestId, fields: &[(&str, &str)]) -> String {
    let mut out = open("ok", Some(id));
    for (name, json) in fields {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        out.push_str(json);
    }
    out.push('}');
    out
}

pub fn error(id: Option<&RequestId>, err: &BrokerError) -> String {
    let mut out = open("error", id);
    out.push_str(",\"code\":\"");
    out.push_str(err.code.as_str());
    out.push_str("\",\"message\":");
    push_json_str(&mut out, &err.message);
    out.push('}');
    out
}

pub fn pong(id: Option<&RequestId>) -> String {
    let mut out = open("pong", id);
    out.push('}');
    out
}

pub fn welcome(client: &str, server: &str, max_payload: usize) -> String {
    let mut out = open("welcome", None);
    out.push_str(",\"client\":");
    push_json_str(&mut out, client);
    out.push_str(",\"server\":");
    push_json_str(&mut out, server);
    out.push_str(&format!(
        ",\"protocol\":{PROTOCOL_VERSION},\"max_payload\":{max_payload}}}"
    ));
    out
}

pub fn kicked(reason: &str) -> String {
    let mut out = open("kicked", None);
    out.push_str(",\"reason\":");
    push_json_str(&mut out, reason);
    out.push('}');
    out
}

pub fn cancelled(cid: &str) -> String {
    let mut out = open("cancelled", None);
    out.push_str(",\"cid\":");
    push_json_str(&mut out, cid);
    out.push('}');
    out
}

pub fn end(sid: &str, topic: &str) -> String {
    let mut out = open("end", None);
    out.push_str(",\"sid\":");
    push_json_str(&mut out, sid);
    out.push_str(",\"topic\":");
    push_json_str(&mut out, topic);
    out.push('}');
    out
}

pub fn reply(id: &RequestId, data: &Payload) -> String {
    let mut out = open("reply", Some(id));
    out.push_str(",\"data\":");
    out.push_str(data.as_json());
    out.push('}');
    out
}

pub fn stats(id: Option<&RequestId>, snapshot: &crate::stats::Snapshot) -> String {
    with_fields(open("stats", id), snapshot)
}

/// `{"ev":"tail","topic":...,"seq":...,"time":...,"data":...,"headers":...}`: one
/// message seen by an operator's `tail`.
pub fn tail(message: &crate::command::TailMessage) -> String {
    with_fields(open("tail", None), message)
}

/// `head` (an opened event) closed with the fields of `value`, a struct.
fn with_fields(mut head: String, value: &impl serde::Serialize) -> String {
    // Plain data (a snapshot, a message): serializing it cannot fail.
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    if body.len() > 2 {
        head.push(',');
        head.push_str(&body[1..]);
    } else {
        head.push('}');
    }
    head
}

/// The per-subscription head of a `msg` delivery: `{"ev":"msg","sid":"s1",`.
pub fn msg_head(sid: &str) -> String {
    let mut out = String::with_capacity(24 + sid.len());
    out.push_str("{\"ev\":\"msg\",\"sid\":");
    push_json_str(&mut out, sid);
    out.push(',');
    out
}

/// Writes the shared tail of a `msg` delivery, serialized once per published
/// message, into `out`; returns where `data` sits in it.
pub fn msg_body(
    out: &mut String,
    topic: &str,
    seq: u64,
    time: u64,
    data: &str,
    headers: Option<&Headers>,
) -> std::ops::Range<usize> {
    let mut n = itoa::Buffer::new();
    out.push_str("\"topic\":");
    push_json_str(out, topic);
    out.push_str(",\"seq\":");
    out.push_str(n.format(seq));
    out.push_str(",\"time\":");
    out.push_str(n.format(time));
    out.push_str(",\"data\":");
    let at = out.len();
    out.push_str(data);
    let data_at = at..out.len();
    push_headers(out, headers);
    out.push('}');
    data_at
}

/// A `job` delivery to a queue consumer.
#[allow(clippy::too_many_arguments)]
pub fn job(
    cid: &str,
    queue: &str,
    tag: u64,
    msg: &str,
    attempt: u32,
    reply: bool,
    data: &Payload,
    headers: Option<&Headers>,
) -> String {
    let mut out = String::with_capacity(96 + cid.len() + queue.len() + data.len());
    out.push_str("{\"ev\":\"job\",\"cid\":");
    push_json_str(&mut out, cid);
    out.push_str(",\"queue\":");
    push_json_str(&mut out, queue);
    out.push_str(&format!(",\"tag\":{tag},\"msg\":"));
    push_json_str(&mut out, msg);
    out.push_str(&format!(",\"attempt\":{attempt}"));
    if reply {
        out.push_str(",\"reply\":true");
    }
    out.push_str(",\"data\":");
    out.push_str(data.as_json());
    push_headers(&mut out, headers);
    out.push('}');
    out
}

fn push_headers(out: &mut String, headers: Option<&Headers>) {
    if let Some(h) = headers {
        if !h.is_empty() {
            out.push_str(",\"headers\":");
            // Headers are strings only; serializing them cannot fail.
            out.push_str(&serde_json::to_string(h).unwrap_or_else(|_| "{}".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn events_are_compact_json() {
        let id = RequestId::from_value(&serde_json::json!("x\"y")).unwrap();
        let err = BrokerError::new(ErrorCode::NotFound, "no \"such\"\nthing");
        let text = error(Some(&id), &err);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ev":"error","id":"x\"y","code":"not_found","message":"no \"such\"\nthing"})
        );
        assert!(!text.contains('\n'));
        let mut s = String::new();
        push_json_str(&mut s, "\u{1}é");
        assert_eq!(s, "\"\\u0001é\"");
    }
}
