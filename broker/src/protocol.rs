//! The wire protocol: client frames parsed from JSON, broker events written as JSON,
//! and the error codes of PROTOCOL.md.
//!
//! Parsing is one pass of serde_json into borrowed raw fields, then a typed check
//! per op that names any missing or mistyped field. `data` is kept as the raw JSON
//! text the client sent (compacted if it held a newline) and is never parsed on the
//! publish path: deliveries splice it into their frame as it is.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{BrokerError, ErrorCode};
pub use switchyard_wire::{HeaderValue, Headers};

/// Protocol version announced in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A client-chosen request id (number or string), kept as its JSON text to echo back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// An id from a JSON value: only numbers and strings are ids.
    pub fn from_value(v: &serde_json::Value) -> Option<RequestId> {
        match v {
            serde_json::Value::Number(_) | serde_json::Value::String(_) => {
                Some(RequestId(Arc::from(v.to_string())))
            }
            _ => None,
        }
    }
}

/// A message body: the JSON text of `data`, compact (it never holds a raw newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

/// Validated raw JSON as one line: borrowed as it is unless it spans lines.
fn compact(text: &str) -> Cow<'_, str> {
    // Outside strings (where they must be escaped), so only as whitespace.
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
        // Cannot fail: serde_json already validated this text.
        let value: serde_json::Value =
            serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        Cow::Owned(value.to_string())
    } else {
        Cow::Borrowed(text)
    }
}

impl Payload {
    /// Takes validated raw JSON, compacting it only if it spans lines.
    pub(crate) fn from_raw(raw: &RawValue) -> Payload {
        Payload(Arc::from(compact(raw.get()).as_ref()))
    }

    pub fn from_value(v: &serde_json::Value) -> Payload {
        Payload(Arc::from(v.to_string()))
    }

    pub fn as_json(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

/// When a `send` is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// When the message is in the queue (and on disk, for a durable queue).
    #[default]
    Stored,
    /// When a consumer acked it.
    Done,
}

/// Where a replaying subscription starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum From {
    #[default]
    New,
    First,
    Seq(u64),
    /// Unix milliseconds.
    Time(u64),
}

/// Options of a queue `declare`; `None` keeps the current or default value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueOptions {
    pub durable: Option<bool>,
    pub max_len: Option<u64>,
    pub ack_timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub dead_letter: Option<String>,
}

/// Retention of a retained topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    #[serde(default)]
    pub max_messages: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub max_age_s: Option<u64>,
}

/// What `peek` looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekOf {
    Queue(String),
    Topic(String),
}

/// One parsed client frame, without its id. A `pub` borrows its topic and data
/// from the frame text, so publishing copies the message only into its delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame<'a> {
    Hello {
        name: Option<String>,
        token: Option<String>,
    },
    Ping,
    Pub {
        topic: Cow<'a, str>,
        /// The raw JSON of `data`, on one line.
        data: Cow<'a, str>,
        headers: Option<Headers>,
    },
    Sub {
        topic: String,
        sid: String,
        filter: Option<String>,
        from: Option<From>,
    },
    Unsub {
        sid: String,
    },
    DeclareTopic {
        topic: String,
        retain: Option<Retention>,
    },
    DeclareQueue {
        queue: String,
        options: QueueOptions,
    },
    Seal {
        topic: String,
    },
    DeleteTopic {
        topic: String,
    },
    DeleteQueue {
        queue: String,
    },
    Send {
        queue: String,
        data: Payload,
        headers: Option<Headers>,
        confirm: Confirm,
    },
    Consume {
        queue: String,
        cid: String,
        prefetch: u32,
    },
    Cancel {
        cid: String,
    },
    Ack {
        tag: u64,
    },
    Nack {
        tag: u64,
        requeue: bool,
    },
    Request {
        queue: String,
        data: Payload,
        headers: Option<Headers>,
        timeout_ms: u64,
    },
    Reply {
        tag: u64,
        data: Payload,
    },
    Purge {
        queue: String,
    },
    Stats,
    Watch {
        interval_ms: u64,
    },
    Unwatch,
    Peek {
        of: PeekOf,
        n: usize,
    },
    Kick {
        client: String,
        reason: Option<String>,
    },
}

/// A parsed client frame with the id to answer it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    pub id: Option<RequestId>,
    pub frame: ClientFrame<'a>,
}

/// A frame that could not be understood: the error to send, and the id if one was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub id: Option<RequestId>,
    pub error: BrokerError,
}

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
    interval_ms,
    n,
    client,
    reason,
    name,
    token,
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
        let scanned = crate::scan::object(text, |key, value| match raw.slot(key) {
            // A repeated field: serde_json names it in its error.
            Some(Some(_)) => false,
            Some(slot) => {
                *slot = Some(value);
                nulls |= value == "null";
                true
            }
            None => true,
        });
        if scanned {
            if nulls {
                raw.drop_nulls();
            }
            return Ok(raw);
        }
        // serde would read an array as a struct's fields in order: only objects here.
        if !text.trim_start().starts_with('{') {
            return Err("expected a JSON object".to_string());
        }
        match serde_json::from_str::<SerdeFrame>(text) {
            Ok(frame) => {
                let mut raw = RawFrame::from(frame);
                raw.drop_nulls();
                Ok(raw)
            }
            Err(e) => Err(format!("malformed JSON: {e}")),
        }
    }
}

fn bad(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorCode::BadFrame, message)
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

fn parse_from(raw: &str) -> Result<From, BrokerError> {
    const WHAT: &str = "field `from` must be \"new\", \"first\", {\"seq\":N} or {\"time\":T}";
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad(WHAT))?;
    match &value {
        serde_json::Value::String(s) if s == "new" => Ok(From::New),
        serde_json::Value::String(s) if s == "first" => Ok(From::First),
        serde_json::Value::Object(map) if map.len() == 1 => {
            if let Some(seq) = map.get("seq") {
                return seq.as_u64().map(From::Seq).ok_or_else(|| bad(WHAT));
            }
            match map.get("time") {
                Some(serde_json::Value::Number(n)) => {
                    n.as_u64().map(From::Time).ok_or_else(|| bad(WHAT))
                }
                Some(serde_json::Value::String(s)) => crate::time::parse_rfc3339_ms(s)
                    .map(From::Time)
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
                    ack_timeout_ms: optional("ack_timeout_ms", raw.ack_timeout_ms)?,
                    max_attempts: optional("max_attempts", raw.max_attempts)?,
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
            confirm: optional("confirm", raw.confirm)?.unwrap_or_default(),
        },
        "consume" => ClientFrame::Consume {
            queue: required("queue", raw.queue)?,
            cid: required("cid", raw.cid)?,
            prefetch: optional("prefetch", raw.prefetch)?.unwrap_or(1),
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
            timeout_ms: optional("timeout_ms", raw.timeout_ms)?.unwrap_or(30_000),
        },
        "reply" => ClientFrame::Reply {
            tag: required("tag", raw.tag)?,
            data: required_data(raw.data)?,
        },
        "purge" => ClientFrame::Purge {
            queue: required("queue", raw.queue)?,
        },
        "stats" => ClientFrame::Stats,
        "watch" => ClientFrame::Watch {
            interval_ms: optional("interval_ms", raw.interval_ms)?.unwrap_or(1000),
        },
        "unwatch" => ClientFrame::Unwatch,
        "peek" => {
            let of = match (raw.topic, raw.queue) {
                (Some(_), Some(_)) => return Err(bad("`peek` takes `topic` or `queue`, not both")),
                (Some(topic), None) => PeekOf::Topic(typed("topic", topic)?),
                (None, Some(queue)) => PeekOf::Queue(typed("queue", queue)?),
                (None, None) => return Err(bad("missing field `topic` or `queue`")),
            };
            let n: Option<u64> = optional("n", raw.n)?;
            ClientFrame::Peek {
                of,
                n: n.unwrap_or(10).min(1000) as usize,
            }
        }
        "kick" => ClientFrame::Kick {
            client: required("client", raw.client)?,
            reason: optional("reason", raw.reason)?,
        },
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

/// Builders for broker → client frames. Each returns one compact JSON object.
pub mod event {

    use super::*;

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
        let mut out = open("stats", id);
        // A Snapshot is plain data; serializing it cannot fail.
        let body = serde_json::to_string(snapshot).unwrap_or_else(|_| "{}".into());
        if body.len() > 2 {
            out.push(',');
            out.push_str(&body[1..]);
        } else {
            out.push('}');
        }
        out
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

    #[test]
    fn events_are_compact_json() {
        let id = RequestId::from_value(&serde_json::json!("x\"y")).unwrap();
        let err = BrokerError::new(ErrorCode::NotFound, "no \"such\"\nthing");
        let text = event::error(Some(&id), &err);
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
