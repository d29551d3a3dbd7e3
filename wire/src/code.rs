//! The error codes a client can receive, as PROTOCOL.md lists them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The error codes a client can receive, as PROTOCOL.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A frame that is not valid JSON, lacks a field, or has a field of the wrong type.
    BadFrame,
    /// An `op` the broker does not know.
    UnknownOp,
    /// A topic, pattern or queue name that breaks the naming rules.
    BadName,
    /// A `filter` that does not parse.
    BadFilter,
    /// No such queue, topic, subscription, consumer or client.
    NotFound,
    /// The `sid` or `cid` is already in use on this connection.
    AlreadySubscribed,
    /// The operation needs a retained topic.
    NotRetained,
    /// The topic is sealed: it takes no more messages.
    Sealed,
    /// The job tag is unknown to this connection, or already settled.
    UnknownTag,
    /// A frame or message over a size limit.
    TooLarge,
    /// Nothing answered in time.
    Timeout,
    /// The message was dead-lettered or dropped after its last attempt.
    Dead,
    /// No valid token was presented.
    Unauthorized,
    /// The user may not do this.
    Forbidden,
    /// A limit of the broker was reached.
    Limit,
    /// The broker failed (storage, for one); the message says how.
    Internal,
    /// This node cannot serve that now: its NATS link is down, or `--nats` does
    /// not serve it yet. The message says which.
    Unavailable,
}

impl ErrorCode {
    /// Every code, in declaration order (`ALL[c as usize] == c`).
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::BadFrame,
        ErrorCode::UnknownOp,
        ErrorCode::BadName,
        ErrorCode::BadFilter,
        ErrorCode::NotFound,
        ErrorCode::AlreadySubscribed,
        ErrorCode::NotRetained,
        ErrorCode::Sealed,
        ErrorCode::UnknownTag,
        ErrorCode::TooLarge,
        ErrorCode::Timeout,
        ErrorCode::Dead,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::Limit,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    /// The code as PROTOCOL.md spells it, e.g. `bad_frame`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadName => "bad_name",
            ErrorCode::BadFilter => "bad_filter",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadySubscribed => "already_subscribed",
            ErrorCode::NotRetained => "not_retained",
            ErrorCode::Sealed => "sealed",
            ErrorCode::UnknownTag => "unknown_tag",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Dead => "dead",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Limit => "limit",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
