//! Reading client frames: a frame's text into [`Request`]s, one per JSON object.
//!
//! Parsing is one pass (the scanner in `scan.rs`, or serde_json for what it
//! leaves) into borrowed raw fields, then a typed check per op that names any
//! missing or mistyped field. `data` is kept as the raw JSON text the client sent
//! (compacted if it held a newline) and is never parsed on the publish path.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::scan::Scan;
use crate::command::{Command, MessageQuery, PeekTarget};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::{
    compact, out_of_range, ClientFrame, Confirm, FrameError, Headers, Payload, QueueOptions,
    ReplayFrom, Request, RequestId, Retention, WatchOptions, MAX_NESTING, PREFETCH,
    REQUEST_TIMEOUT_MS, TTL_MS,
};
use crate::queue::QueueConfig;

/// Declares the fields any op takes, once, for both ways a frame is read.
macro_rules! frame_fields {
    ($($field:ident),* $(,)?) => {
        /// Every field any op takes: the raw JSON text of its value, borrowed from
        /// the frame. A `null` counts as absent, except for `data`.
        #[derive(Default)]
        struct RawFrame<'a> {
            $($field: Option<&'a str>,)*
        }

        impl<'a> RawFrame<'a> {
            /// Where a key's value goes, if any op takes that field.
            fn slot(&mut self, key: &str) -> Option<&mut Option<&'a str>> {
                match key {
                    $(stringify!($field) => Some(&mut self.$field),)*
                    _ => None,
                }
            }

            fn drop_nulls(&mut self) {
                let data = self.data;
                $(if self.$field == Some("null") {
                    self.$field = None;
                })*
                self.data = data;
            }
        }

        /// The same fields read by serde_json, for a frame the scanner leaves to it.
        #[derive(Deserialize)]
        struct SerdeFrame<'a> {
            $(
                #[serde(default, borrow, deserialize_with = "present")]
                $field: Option<&'a RawValue>,
            )*
        }

        impl<'a> std::convert::From<SerdeFrame<'a>> for RawFrame<'a> {
            fn from(f: SerdeFrame<'a>) -> Self {
                RawFrame {
                    $($field: f.$field.map(RawValue::get),)*
                }
            }
        }
    };
}

frame_fields!(
    op,
    id,
    topic,
    queue,
    data,
    headers,
    sid,
    filter,
    from,
    retain,
    durable,
    max_len,
    ack_timeout_ms,
    max_attempts,
    dead_letter,
    confirm,
    cid,
    prefetch,
    tag,
    requeue,
    timeout_ms,
    ttl_ms,
    webhook,
    to,
    interval_ms,
    changes,
    inflight,
    n,
    client,
    reason,
    msg,
    name,
    token,
    after,
    search,
);

/// A field that is there, even as `null` (serde's `Option` would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> RawFrame<'a> {
    /// Reads a frame: the scanner's one pass, or serde_json for what it leaves.
    /// The error is the message for `bad_frame`.
    fn read(text: &'a str) -> Result<Self, String> {
        let mut raw = RawFrame::default();
        let mut nulls = false;
        let scanned = super::scan::object(text, |key, value| match raw.slot(key) {
            // A repeated field: serde_json names it in its error.
            Some(Some(_)) => false,
            Some(slot) => {
                *slot = Some(value);
                nulls |= value == "null";
                true
            }
            None => true,
        });
        match scanned {
            Scan::Read => {
                if nulls {
                    raw.drop_nulls();
                }
                return Ok(raw);
            }
            Scan::TooDeep(key @ ("data" | "headers")) => return Err(too_deep(key)),
            // Another field (serde reads it), or a frame the scanner leaves.
            Scan::TooDeep(_) | Scan::Left => {}
        }
        // serde would read an array as a struct's fields in order: only objects here.
        if !text.trim_start().starts_with('{') {
            return Err("expected a JSON object".to_string());
        }
        match serde_json::from_str::<SerdeFrame>(text) {
            Ok(frame) => {
                let mut raw = RawFrame::from(frame);
                raw.drop_nulls();
                // The scanner checks nesting as it reads; here it is checked after.
                for (key, value) in [("data", raw.data), ("headers", raw.headers)] {
                    if value.is_some_and(|v| super::scan::nests_deeper(v, MAX_NESTING)) {
                        return Err(too_deep(key));
                    }
                }
                Ok(raw)
            }
            Err(e) => Err(format!("malformed JSON: {e}")),
        }
    }
}

fn bad(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorCode::BadFrame, message)
}

fn too_deep(field: &str) -> String {
    format!("`{field}` nests deeper than {MAX_NESTING} levels")
}

/// An optional integer field within `range`; the error names the field and the range.
fn bounded<T: Expect + Copy + Into<u64>>(
    field: &str,
    raw: Option<&str>,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<Option<T>, BrokerError> {
    match optional::<T>(field, raw)? {
        Some(v) if !range.contains(&v.into()) => Err(out_of_range(field, range)),
        v => Ok(v),
    }
}

/// What a field must be, for the error message that names it.
trait Expect: DeserializeOwned {
    const WHAT: &'static str;
}
impl Expect for String {
    const WHAT: &'static str = "a string";
}
impl Expect for u64 {
    const WHAT: &'static str = "a non-negative integer";
}
impl Expect for u32 {
    const WHAT: &'static str = "a non-negative integer below 2^32";
}
impl Expect for bool {
    const WHAT: &'static str = "true or false";
}
impl Expect for Headers {
    const WHAT: &'static str = "an object of string or string-array values";
}
impl Expect for Confirm {
    const WHAT: &'static str = "\"stored\" or \"done\"";
}
impl Expect for crate::webhook::WebhookSpec {
    const WHAT: &'static str = "an object {url, max_in_flight?, timeout_ms?}";
}
impl Expect for Retention {
    const WHAT: &'static str = "an object {max_messages?, max_bytes?, max_age_s?}";
}

fn typed<T: Expect>(field: &str, raw: &str) -> Result<T, BrokerError> {
    serde_json::from_str(raw).map_err(|_| bad(format!("field `{field}` must be {}", T::WHAT)))
}

fn optional<T: Expect>(field: &str, raw: Option<&str>) -> Result<Option<T>, BrokerError> {
    raw.map(|r| typed(field, r)).transpose()
}

fn required<T: Expect>(field: &str, raw: Option<&str>) -> Result<T, BrokerError> {
    match raw {
        Some(r) => typed(field, r),
        None => Err(bad(format!("missing field `{field}`"))),
    }
}

/// A required string field, borrowed from the frame unless it holds escapes.
fn required_str<'a>(field: &str, raw: Option<&'a str>) -> Result<Cow<'a, str>, BrokerError> {
    let raw = raw.ok_or_else(|| bad(format!("missing field `{field}`")))?;
    // `raw` is valid JSON: between its quotes, with no escape, is the string itself.
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if memchr::memchr(b'\\', inner.as_bytes()).is_none() => {
            Ok(Cow::Borrowed(inner))
        }
        _ => typed::<String>(field, raw).map(Cow::Owned),
    }
}

fn required_data(raw: Option<&str>) -> Result<Payload, BrokerError> {
    raw.map(|r| Payload(Arc::from(compact(r).as_ref())))
        .ok_or_else(|| bad("missing field `data`"))
}

/// A peek's cursor: the `next` of the page before, a number; a queue's message
/// id as its string (`"41"`) is taken too.
fn parse_after(raw: &str) -> Result<u64, BrokerError> {
    const WHAT: &str =
        "field `after` must be a non-negative integer (a `next`, a seq or a message id)";
    match serde_json::from_str::<serde_json::Value>(raw).map_err(|_| bad(WHAT))? {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| bad(WHAT)),
        serde_json::Value::String(s) => s.parse().map_err(|_| bad(WHAT)),
        _ => Err(bad(WHAT)),
    }
}

fn parse_from(raw: &str) -> Result<ReplayFrom, BrokerError> {
    const WHAT: &str = "field `from` must be \"new\", \"first\", {\"seq\":N} or {\"time\":T}";
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad(WHAT))?;
    match &value {
        serde_json::Value::String(s) if s == "new" => Ok(ReplayFrom::New),
        serde_json::Value::String(s) if s == "first" => Ok(ReplayFrom::First),
        serde_json::Value::Object(map) if map.len() == 1 => {
            if let Some(seq) = map.get("seq") {
                return seq.as_u64().map(ReplayFrom::Seq).ok_or_else(|| bad(WHAT));
            }
            match map.get("time") {
                Some(serde_json::Value::Number(n)) => {
                    n.as_u64().map(ReplayFrom::Time).ok_or_else(|| bad(WHAT))
                }
                Some(serde_json::Value::String(s)) => crate::time::parse_rfc3339_ms(s)
                    .map(ReplayFrom::Time)
                    .ok_or_else(|| bad(format!("field `from`: `{s}` is not an RFC 3339 time"))),
                _ => Err(bad(WHAT)),
            }
        }
        _ => Err(bad(WHAT)),
    }
}

/// Splits a text frame into its JSON objects, parses each one and hands it to `each`
/// in order.
///
/// A frame holds one JSON object or several separated by newlines. Each line is
/// parsed once, directly (the common case: compact JSON, one object per line), and
/// handed on at once. Only if a line fails is the rest of the frame read again as a
/// whole, for an object that spans lines (pretty-printed); if that fails too, each
/// line answers for itself, so one bad line costs only its own error.
pub fn parse_frames<'a>(text: &'a str, mut each: impl FnMut(Result<Request<'a>, FrameError>)) {
    let mut rest = text;
    let mut handed = false;
    while !rest.is_empty() {
        let (line, after) = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(nl) => (&rest[..nl], &rest[nl + 1..]),
            None => (rest, ""),
        };
        if !line.trim().is_empty() {
            match parse_request(line) {
                Ok(request) => each(Ok(request)),
                Err(_) => return parse_spanning(rest, &mut each),
            }
            handed = true;
        }
        rest = after;
    }
    if !handed {
        each(Err(FrameError {
            id: None,
            error: bad("empty frame: expected a JSON object"),
        }));
    }
}

/// The rest of a frame whose first line did not parse on its own: its objects if
/// the whole of it is JSON, else each line on its own.
fn parse_spanning<'a>(rest: &'a str, each: &mut impl FnMut(Result<Request<'a>, FrameError>)) {
    let mut whole = Vec::new();
    for item in serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>() {
        match item {
            Ok(raw) => whole.push(raw),
            Err(_) => {
                rest.split('\n')
                    .filter(|line| !line.trim().is_empty())
                    .for_each(|line| each(parse_request(line)));
                return;
            }
        }
    }
    whole
        .into_iter()
        .for_each(|raw| each(parse_request(raw.get())));
}

/// Parses one JSON object into a [`Request`].
pub fn parse_request(text: &str) -> Result<Request<'_>, FrameError> {
    let raw = match RawFrame::read(text) {
        Ok(raw) => raw,
        Err(message) => {
            return Err(FrameError {
                id: salvage_id(text),
                error: bad(message),
            })
        }
    };
    let id = match raw.id {
        None => None,
        // A number is echoed exactly as sent, even one no f64 holds.
        Some(r) if RequestId::from_number_text(r).is_some() => RequestId::from_number_text(r),
        Some(r) => match serde_json::from_str::<serde_json::Value>(r) {
            Ok(serde_json::Value::Null) => None,
            Ok(v) => match RequestId::from_value(&v) {
                Some(id) => Some(id),
                None => {
                    return Err(FrameError {
                        id: None,
                        error: bad("field `id` must be a number or a string"),
                    })
                }
            },
            Err(_) => None,
        },
    };
    match frame_of(&raw) {
        Ok(frame) => Ok(Request { id, frame }),
        Err(error) => Err(FrameError { id, error }),
    }
}

/// Best effort at the id of a frame that is not valid JSON, so its error can name it.
fn salvage_id(text: &str) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    let parsed: IdOnly = serde_json::from_str(text).ok()?;
    parsed.id.as_ref().and_then(RequestId::from_value)
}

fn frame_of<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, BrokerError> {
    let op = required_str("op", raw.op)?;
    let frame = match op.as_ref() {
        "hello" => ClientFrame::Hello {
            name: optional("name", raw.name)?,
            token: optional("token", raw.token)?,
        },
        "ping" => ClientFrame::Ping,
        "pub" => ClientFrame::Pub {
            topic: required_str("topic", raw.topic)?,
            data: compact(raw.data.ok_or_else(|| bad("missing field `data`"))?),
            headers: optional("headers", raw.headers)?,
        },
        "sub" => ClientFrame::Sub {
            topic: required("topic", raw.topic)?,
            sid: required("sid", raw.sid)?,
            filter: optional("filter", raw.filter)?,
            from: raw.from.map(parse_from).transpose()?,
        },
        "unsub" => ClientFrame::Unsub {
            sid: required("sid", raw.sid)?,
        },
        "declare" => match (raw.topic, raw.queue) {
            (Some(_), Some(_)) => return Err(bad("`declare` takes `topic` or `queue`, not both")),
            (Some(topic), None) => ClientFrame::DeclareTopic {
                topic: typed("topic", topic)?,
                retain: optional("retain", raw.retain)?,
            },
            (None, Some(queue)) => ClientFrame::DeclareQueue {
                queue: typed("queue", queue)?,
                options: QueueOptions {
                    durable: optional("durable", raw.durable)?,
                    max_len: optional("max_len", raw.max_len)?,
                    ack_timeout_ms: bounded(
                        "ack_timeout_ms",
                        raw.ack_timeout_ms,
                        &QueueConfig::ACK_TIMEOUT_MS,
                    )?,
                    max_attempts: bounded(
                        "max_attempts",
                        raw.max_attempts,
                        &QueueConfig::MAX_ATTEMPTS,
                    )?,
                    dead_letter: optional("dead_letter", raw.dead_letter)?,
                },
            },
            (None, None) => return Err(bad("missing field `topic` or `queue`")),
        },
        "seal" => ClientFrame::Seal {
            topic: required("topic", raw.topic)?,
        },
        "delete" => match (raw.topic, raw.queue) {
            (Some(_), Some(_)) => return Err(bad("`delete` takes `topic` or `queue`, not both")),
            (Some(topic), None) => ClientFrame::DeleteTopic {
                topic: typed("topic", topic)?,
            },
            (None, Some(queue)) => ClientFrame::DeleteQueue {
                queue: typed("queue", queue)?,
            },
            (None, None) => return Err(bad("missing field `topic` or `queue`")),
        },
        "send" => ClientFrame::Send {
            queue: required("queue", raw.queue)?,
            data: required_data(raw.data)?,
            headers: optional("headers", raw.headers)?,
            ttl_ms: bounded("ttl_ms", raw.ttl_ms, &TTL_MS)?,
            confirm: optional("confirm", raw.confirm)?.unwrap_or_default(),
        },
        "consume" if raw.webhook.is_some() => ClientFrame::Webhook {
            queue: required("queue", raw.queue)?,
            spec: required("webhook", raw.webhook)?,
        },
        "consume" => ClientFrame::Consume {
            queue: required("queue", raw.queue)?,
            cid: required("cid", raw.cid)?,
            prefetch: bounded("prefetch", raw.prefetch, &PREFETCH)?.unwrap_or(1),
        },
        "cancel" => ClientFrame::Cancel {
            cid: required("cid", raw.cid)?,
        },
        "ack" => ClientFrame::Ack {
            tag: required("tag", raw.tag)?,
        },
        "nack" => ClientFrame::Nack {
            tag: required("tag", raw.tag)?,
            requeue: optional("requeue", raw.requeue)?.unwrap_or(true),
        },
        "request" => ClientFrame::Request {
            queue: required("queue", raw.queue)?,
            data: required_data(raw.data)?,
            headers: optional("headers", raw.headers)?,
            timeout_ms: bounded("timeout_ms", raw.timeout_ms, &REQUEST_TIMEOUT_MS)?
                .unwrap_or(30_000),
        },
        "reply" => ClientFrame::Reply {
            tag: required("tag", raw.tag)?,
            data: required_data(raw.data)?,
        },
        "purge" => ClientFrame::Command(Command::Purge {
            queue: required("queue", raw.queue)?,
        }),
        "stats" => ClientFrame::Stats,
        "watch" => ClientFrame::Watch(WatchOptions {
            interval_ms: optional("interval_ms", raw.interval_ms)?.unwrap_or(1000),
            changes: optional("changes", raw.changes)?.unwrap_or(false),
            inflight: optional("inflight", raw.inflight)?,
            client: optional("client", raw.client)?,
        }),
        "unwatch" => ClientFrame::Unwatch,
        "tail" => ClientFrame::Tail {
            pattern: required("topic", raw.topic)?,
            query: MessageQuery {
                filter: optional("filter", raw.filter)?,
                search: optional("search", raw.search)?,
            },
        },
        "untail" => ClientFrame::Untail,
        "peek" => {
            let target = match (raw.topic, raw.queue) {
                (Some(_), Some(_)) => return Err(bad("`peek` takes `topic` or `queue`, not both")),
                (Some(topic), None) => PeekTarget::Topic(typed("topic", topic)?),
                (None, Some(queue)) => PeekTarget::Queue(typed("queue", queue)?),
                (None, None) => return Err(bad("missing field `topic` or `queue`")),
            };
            let n: Option<u64> = optional("n", raw.n)?;
            ClientFrame::Command(Command::Peek {
                target,
                n: n.unwrap_or(10).min(1000) as usize,
                after: raw.after.map(parse_after).transpose()?,
                query: MessageQuery {
                    filter: optional("filter", raw.filter)?,
                    search: optional("search", raw.search)?,
                },
            })
        }
        "describe" => ClientFrame::Command(Command::Describe {
            target: match (raw.topic, raw.queue) {
                (Some(_), Some(_)) => {
                    return Err(bad("`describe` takes `topic` or `queue`, not both"))
                }
                (Some(topic), None) => PeekTarget::Topic(typed("topic", topic)?),
                (None, Some(queue)) => PeekTarget::Queue(typed("queue", queue)?),
                (None, None) => return Err(bad("missing field `topic` or `queue`")),
            },
        }),
        "kick" => ClientFrame::Command(Command::Kick {
            client: required("client", raw.client)?,
            reason: optional("reason", raw.reason)?,
        }),
        "requeue" if raw.client.is_some() => ClientFrame::Command(Command::RequeueConsumer {
            client: required("client", raw.client)?,
            cid: required("cid", raw.cid)?,
        }),
        "requeue" => ClientFrame::Command(Command::Requeue {
            queue: required("queue", raw.queue)?,
            msg: required("msg", raw.msg)?,
        }),
        "move" => ClientFrame::Command(Command::Move {
            from: required("from", raw.from)?,
            to: required("to", raw.to)?,
            n: optional("n", raw.n)?,
            filter: optional("filter", raw.filter)?,
            msg: optional("msg", raw.msg)?,
        }),
        "drop" => ClientFrame::Command(Command::Drop {
            queue: required("queue", raw.queue)?,
            msg: required("msg", raw.msg)?,
        }),
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(BrokerError::new(
                ErrorCode::UnknownOp,
                format!("unknown op `{shown}`"),
            ));
        }
    };
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Request<'_>, FrameError> {
        parse_request(text)
    }

    fn all(text: &str) -> Vec<Result<Request<'_>, FrameError>> {
        let mut out = Vec::new();
        parse_frames(text, |r| out.push(r));
        out
    }

    #[test]
    fn parses_pub_with_raw_data() {
        let r = one(r#"{"op":"pub","id":7,"topic":"a.b","data":{"x": [1, 2]}}"#).unwrap();
        assert_eq!(r.id.unwrap().as_json(), "7");
        match r.frame {
            ClientFrame::Pub {
                topic,
                data,
                headers,
            } => {
                assert_eq!(topic, "a.b");
                assert!(
                    matches!(topic, Cow::Borrowed(_)),
                    "no copy of a plain topic"
                );
                assert_eq!(data, r#"{"x": [1, 2]}"#);
                assert!(matches!(data, Cow::Borrowed(_)), "no copy of one-line data");
                assert_eq!(headers, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multi_line_data_is_compacted() {
        let r = one("{\"op\":\"pub\",\"topic\":\"a\",\"data\":{\n\"x\": 1\n}}").unwrap();
        let ClientFrame::Pub { data, .. } = r.frame else {
            panic!()
        };
        assert_eq!(data, r#"{"x":1}"#);
    }

    #[test]
    fn null_is_data_but_elsewhere_absent() {
        let r = one(r#"{"op":"pub","id":null,"topic":"t","data":null,"headers":null}"#).unwrap();
        assert_eq!(r.id, None);
        assert_eq!(
            r.frame,
            ClientFrame::Pub {
                topic: Cow::Borrowed("t"),
                data: Cow::Borrowed("null"),
                headers: None,
            }
        );
        let e = one(r#"{"op":"pub","topic":null,"data":1}"#).unwrap_err();
        assert_eq!(e.error, bad("missing field `topic`"));
    }

    #[test]
    fn frames_the_scanner_leaves_are_read_by_serde() {
        // An escaped key.
        let r = one(r#"{"o\u0070":"pub","topic":"t","data":[1]}"#).unwrap();
        assert!(matches!(r.frame, ClientFrame::Pub { ref data, .. } if data == "[1]"));
        // A repeated field is refused, naming it.
        let e = one(r#"{"op":"pub","topic":"t","topic":"u","data":1}"#).unwrap_err();
        assert!(
            e.error
                .message
                .starts_with("malformed JSON: duplicate field `topic`"),
            "{}",
            e.error.message
        );
        // Invalid JSON in `data` is refused whichever reader saw it.
        let e = one(r#"{"op":"pub","topic":"t","data":{"a":01}}"#).unwrap_err();
        assert!(
            e.error.message.starts_with("malformed JSON"),
            "{}",
            e.error.message
        );
    }

    #[test]
    fn escaped_topics_are_unescaped() {
        let r = one(r#"{"op":"pub","topic":"a\u002eb","data":1}"#).unwrap();
        let ClientFrame::Pub { topic, .. } = r.frame else {
            panic!()
        };
        assert_eq!(topic, "a.b");
        let e = one(r#"{"op":"pub","topic":7,"data":1}"#).unwrap_err();
        assert_eq!(e.error, bad("field `topic` must be a string"));
        let e = one(r#"{"op":7}"#).unwrap_err();
        assert_eq!(e.error, bad("field `op` must be a string"));
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        let e = one(r#"{"op":"pub","id":"a","data":1}"#).unwrap_err();
        assert_eq!(e.id.unwrap().as_json(), "\"a\"");
        assert_eq!(e.error, bad("missing field `topic`"));
        let e = one(r#"{"op":"consume","queue":"q","cid":"w","prefetch":"x"}"#).unwrap_err();
        assert_eq!(
            e.error,
            bad("field `prefetch` must be a non-negative integer below 2^32")
        );
        let e = one(r#"{"op":"send","queue":"q","data":1,"confirm":"later"}"#).unwrap_err();
        assert_eq!(
            e.error,
            bad("field `confirm` must be \"stored\" or \"done\"")
        );
    }

    #[test]
    fn unknown_op_and_non_objects() {
        let e = one(r#"{"op":"fly","id":1}"#).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::UnknownOp);
        assert_eq!(e.id.unwrap().as_json(), "1");
        let e = one("[1,2]").unwrap_err();
        assert_eq!(e.error, bad("expected a JSON object"));
        let e = one(r#"{"op":"ping""#).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadFrame);
    }

    #[test]
    fn data_and_headers_of_every_op_nest_at_most_max_nesting() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        for op in [
            r#""op":"pub","topic":"t""#,
            r#""op":"send","queue":"q""#,
            r#""op":"request","queue":"q""#,
            r#""op":"reply","tag":1"#,
        ] {
            let ok = format!("{{{op},\"data\":{}}}", nested(MAX_NESTING));
            assert!(one(&ok).is_ok(), "{ok}");
            let deep = format!("{{{op},\"data\":{}}}", nested(MAX_NESTING + 1));
            assert_eq!(one(&deep).unwrap_err().error, bad(too_deep("data")), "{op}");
            // The same frame read by serde_json (an escaped key).
            let left = format!(
                "{{\"\\u0069d\":1,{op},\"data\":{}}}",
                nested(MAX_NESTING + 1)
            );
            assert_eq!(
                one(&left).unwrap_err().error,
                bad(too_deep("data")),
                "{left}"
            );
        }
        let headers = format!(
            r#"{{"op":"pub","topic":"t","data":1,"headers":{{"h":{}}}}}"#,
            nested(MAX_NESTING)
        );
        assert_eq!(one(&headers).unwrap_err().error, bad(too_deep("headers")));
        // Other fields are serde's to read: deep unknown fields are still ignored.
        let other = format!(r#"{{"op":"ping","future":{}}}"#, nested(MAX_NESTING + 1));
        assert_eq!(one(&other).unwrap().frame, ClientFrame::Ping);
    }

    #[test]
    fn numeric_options_are_bounded() {
        let e = one(r#"{"op":"declare","queue":"q","ack_timeout_ms":0}"#).unwrap_err();
        assert_eq!(
            e.error,
            bad("field `ack_timeout_ms` must be from 100 to 86400000")
        );
        let e = one(r#"{"op":"declare","queue":"q","max_attempts":0}"#).unwrap_err();
        assert_eq!(e.error, bad("field `max_attempts` must be at least 1"));
        let e = one(r#"{"op":"declare","queue":"q","max_attempts":4294967296}"#).unwrap_err();
        assert_eq!(
            e.error,
            bad("field `max_attempts` must be a non-negative integer below 2^32")
        );
        let e = one(r#"{"op":"consume","queue":"q","cid":"c","prefetch":10001}"#).unwrap_err();
        assert_eq!(e.error, bad("field `prefetch` must be from 1 to 10000"));
        let e = one(r#"{"op":"request","queue":"q","data":1,"timeout_ms":0}"#).unwrap_err();
        assert_eq!(e.error, bad("field `timeout_ms` must be from 1 to 600000"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let r = one(r#"{"op":"ping","future":{"a":1}}"#).unwrap();
        assert_eq!(r.frame, ClientFrame::Ping);
    }

    #[test]
    fn frames_split_on_newlines_and_bad_lines_stand_alone() {
        let ids = |text| -> Vec<Result<String, String>> {
            all(text)
                .into_iter()
                .map(|r| match r {
                    Ok(r) => Ok(r.id.unwrap().as_json().to_string()),
                    Err(e) => Err(e.error.message),
                })
                .collect()
        };
        assert_eq!(
            ids("{\"op\":\"ping\",\"id\":1}\n{\"op\":\"ping\",\"id\":2}"),
            vec![Ok("1".to_string()), Ok("2".to_string())]
        );
        let got = ids("{\"op\":\"ping\",\"id\":1}\n{oops\n{\"op\":\"ping\",\"id\":3}");
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_err() && got[2].is_ok());
        assert_eq!(
            ids("   \n  "),
            vec![Err("empty frame: expected a JSON object".to_string())]
        );
        // A compact line, then an object over several lines: both, in order.
        assert_eq!(
            ids("{\"op\":\"ping\",\"id\":1}\n{\n \"op\": \"ping\",\n \"id\": 2\n}\n"),
            vec![Ok("1".to_string()), Ok("2".to_string())]
        );
    }

    #[test]
    fn headers_one_or_many() {
        let r =
            one(r#"{"op":"pub","topic":"t","data":1,"headers":{"a":"1","b":["x","y"]}}"#).unwrap();
        let ClientFrame::Pub { headers, .. } = r.frame else {
            panic!()
        };
        let h = headers.unwrap();
        assert_eq!(h["a"].values().collect::<Vec<_>>(), vec!["1"]);
        assert_eq!(h["b"].values().collect::<Vec<_>>(), vec!["x", "y"]);
        let e = one(r#"{"op":"pub","topic":"t","data":1,"headers":{"a":1}}"#).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadFrame);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in ".{0,200}") {
            let _ = all(&text);
        }

        #[test]
        fn truncated_frames_never_panic(cut in 0usize..120) {
            let full = r#"{"op":"send","id":1,"queue":"jobs","data":{"a":[1,2,{"b":null}]},"headers":{"h":["x"]},"confirm":"done"}"#;
            let cut = cut.min(full.len());
            let _ = all(&full[..cut]);
        }
    }
}
