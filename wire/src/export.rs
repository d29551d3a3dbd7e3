//! One line of JSON per message browsed: what `switchyard peek` prints and what
//! the console's export writes, in one format (JSON Lines).
//!
//! A line is `{"msg":"7","time":..,"attempt":0,"expires"?:..,"headers":{..},"data":..}`
//! for a queue's message, `{"seq":7,...}` for a retained topic's, and `{"topic":"a.b","seq":7,...}`
//! for a tail's (which may cover many topics). `headers` is always there (`{}`
//! when the message has none), so a reader need not test for it.

use serde::Serialize;

use crate::{Headers, PeekedMessage, TailMessage};

#[derive(Serialize)]
struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    headers: &'a Headers,
    data: &'a serde_json::Value,
}

static NO_HEADERS: Headers = Headers::new();

fn encode(line: &Line<'_>) -> String {
    // Plain data with string keys: serializing it cannot fail.
    serde_json::to_string(line).unwrap_or_default()
}

/// The JSON line (without its newline) of a message seen by `peek`.
pub fn peeked_line(m: &PeekedMessage) -> String {
    encode(&Line {
        topic: None,
        msg: m.msg.as_deref(),
        seq: m.seq,
        time: m.time,
        // Deliveries so far and the time to live: a queue's messages only.
        attempt: m.msg.is_some().then_some(m.attempt),
        expires: m.expires,
        headers: m.headers.as_ref().unwrap_or(&NO_HEADERS),
        data: &m.data,
    })
}

/// The JSON line (without its newline) of a message seen by a tail.
pub fn tail_line(m: &TailMessage) -> String {
    encode(&Line {
        topic: Some(&m.topic),
        msg: None,
        seq: Some(m.seq),
        time: m.time,
        attempt: None,
        expires: None,
        headers: m.headers.as_ref().unwrap_or(&NO_HEADERS),
        data: &m.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderValue;

    #[test]
    fn lines_name_the_message_and_always_carry_headers() {
        let mut headers = Headers::new();
        headers.insert("trace".into(), HeaderValue::One("abc".into()));
        let queued = PeekedMessage {
            msg: Some("7".into()),
            seq: None,
            time: 1000,
            attempt: 2,
            expires: None,
            data: serde_json::json!({"total": 120}),
            headers: Some(headers),
        };
        assert_eq!(
            peeked_line(&queued),
            r#"{"msg":"7","time":1000,"attempt":2,"headers":{"trace":"abc"},"data":{"total":120}}"#
        );
        let retained = PeekedMessage {
            msg: None,
            seq: Some(3),
            headers: None,
            ..queued
        };
        assert_eq!(
            peeked_line(&retained),
            r#"{"seq":3,"time":1000,"headers":{},"data":{"total":120}}"#
        );
        let tailed = TailMessage {
            topic: "a.b".into(),
            seq: 4,
            time: 5,
            data: serde_json::json!("x"),
            headers: None,
        };
        assert_eq!(
            tail_line(&tailed),
            r#"{"topic":"a.b","seq":4,"time":5,"headers":{},"data":"x"}"#
        );
    }
}
