//! The wire protocol: what a client frame says ([`ClientFrame`], parsed in
//! `parse.rs` with the one-pass scanner of `scan.rs`) and what the broker writes
//! back (`event.rs`). Error codes and headers are the wire crate's, shared with
//! the client and the console.

pub mod event;
mod parse;
pub(crate) mod scan;

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{BrokerError, ErrorCode};
pub use event::push_json_str;
pub use parse::{parse_frames, parse_request};
use switchyard_wire::Command;
pub use switchyard_wire::{HeaderValue, Headers};

/// Protocol version announced in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Deepest nesting of a frame's `data` and `headers` (`[[1]]` is 2 levels):
/// deeper is `bad_frame`. serde_json, which the CLI reads events with, stops at
/// 128 levels for a whole event, so whatever the broker accepts reads back.
pub const MAX_NESTING: usize = 64;

/// The `prefetch` a `consume` may ask for (default 1).
pub const PREFETCH: RangeInclusive<u64> = 1..=10_000;

/// The `timeout_ms` a `request` may give (default 30 s): 1 ms to 10 minutes.
pub const REQUEST_TIMEOUT_MS: RangeInclusive<u64> = 1..=600_000;

/// The `ttl_ms` a `send` may give (absent: no limit): 1 ms to 365 days.
pub const TTL_MS: RangeInclusive<u64> = 1..=31_536_000_000;

/// The `bad_frame` for a numeric field outside its range, naming both.
pub(crate) fn out_of_range(field: &str, range: &RangeInclusive<u64>) -> BrokerError {
    // A range up to a type's largest value has no upper bound worth stating.
    let allowed = if [u64::from(u32::MAX), u64::MAX].contains(range.end()) {
        format!("at least {}", range.start())
    } else {
        format!("from {} to {}", range.start(), range.end())
    };
    BrokerError::new(
        ErrorCode::BadFrame,
        format!("field `{field}` must be {allowed}"),
    )
}

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

    /// An id from the raw text of a JSON number, kept as sent so the reply echoes it
    /// exactly, even one no f64 holds (`1e400`, a 400-digit integer). `raw` is
    /// already validated JSON; anything but a number gives `None`.
    pub fn from_number_text(raw: &str) -> Option<RequestId> {
        let raw = raw.trim();
        let number = raw.starts_with(|c: char| c == '-' || c.is_ascii_digit())
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
        number.then(|| RequestId(Arc::from(raw)))
    }
}

/// A message body: the JSON text of `data`, compact (it never holds a raw newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

/// Validated raw JSON as one line: borrowed as it is unless it spans lines.
pub(crate) fn compact(text: &str) -> Cow<'_, str> {
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
pub enum ReplayFrom {
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
        from: Option<ReplayFrom>,
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
        /// How long it may wait for a consumer before it is dead-lettered or dropped.
        ttl_ms: Option<u64>,
        confirm: Confirm,
    },
    Consume {
        queue: String,
        cid: String,
        prefetch: u32,
    },
    /// `consume` with a `webhook`: a consumer the broker runs, posting each job.
    Webhook {
        queue: String,
        spec: crate::webhook::WebhookSpec,
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
    Stats,
    Watch(WatchOptions),
    Unwatch,
    /// `tail`: an operator's live look at a topic pattern, as the console's tail.
    Tail {
        pattern: String,
        /// Only the messages this selects (filter and search).
        query: crate::command::MessageQuery,
    },
    Untail,
    /// `purge`, `peek`, `kick` and `requeue`: what the console does, run by
    /// [`crate::Broker::execute`] whether it comes from the wire or the dashboard.
    Command(Command),
}

/// What a `watch` sends, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Milliseconds between two frames (at least 100).
    pub interval_ms: u64,
    /// After the first frame, send only what changed since the frame before.
    pub changes: bool,
    /// At most this many in-flight jobs, the oldest first; all when `None`.
    pub inflight: Option<u64>,
    /// Only this client's in-flight jobs.
    pub client: Option<String>,
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
