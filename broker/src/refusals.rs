//! What the broker turned away because a limit was reached or a rule broken,
//! counted by reason: one place, so every limit's refusals reach `/metrics`
//! (`switchyard_refusals_total{reason=…}`) and the snapshot under one name each.
//!
//! A new limit adds a variant here, with its label and what a refusal means;
//! docs/OPERATIONS.md lists the same labels beside each limit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ErrorCode;

/// One reason the broker refuses or closes a connection, or drops a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// HTTP 503: `max_connections` WebSockets are open already.
    ConnectionsFull,
    /// HTTP 400: the request head is not HTTP (a TLS ClientHello, random bytes).
    HttpMalformed,
    /// HTTP 431: the request head is over 16 KiB or 64 headers.
    HeadTooLarge,
    /// HTTP 408: the request head did not arrive within `handshake_timeout`.
    HeadTimeout,
    /// Close 1009: a frame or message over `max_payload`.
    FrameTooLarge,
    /// Close 1002: a WebSocket protocol violation.
    ProtocolViolation,
    /// Close 1007: a text frame that is not UTF-8.
    InvalidUtf8,
    /// Close 1001: two pings in a row went unanswered.
    PingTimeout,
    /// HTTP 503: this address has `max_connections_per_ip` connections open.
    PerIpFull,
    /// HTTP 503: accept failed for want of file descriptors.
    NoDescriptors,
    /// Close 1008: a frame (or fragmented message) not whole within `frame_timeout`.
    FrameTimeout,
    /// Close 1013: unfinished frames of every connection would pass `max_inbound`.
    InboundBudget,
    /// Close 1008 after `{"ev":"kicked","reason":"outbound_budget"}`: all outbound
    /// buffers together passed `max_outbound`, and this client held the most.
    OutboundBudget,
    /// Error `limit`: a `declare`, `send`, `consume` or `request` would create a
    /// queue or retained topic past its user's `max_streams` (or the broker's
    /// `max_streams_per_user`).
    StreamsLimit,
    /// HTTP 413: an HTTP API request body (or the message it makes) over `max_payload`.
    BodyTooLarge,
    /// HTTP 408: an HTTP API request body not all in within `frame_timeout`.
    BodyTimeout,
    /// HTTP 411: an HTTP API request with a body but no `Content-Length` (a
    /// chunked one among them).
    LengthRequired,
    /// HTTP 503: `max_http_requests` HTTP API requests are being answered already.
    HttpRequestsFull,
}

impl Refusal {
    /// Every reason, in the order `/metrics` lists them.
    pub(crate) const ALL: [Refusal; 18] = [
        Refusal::ConnectionsFull,
        Refusal::HttpMalformed,
        Refusal::HeadTooLarge,
        Refusal::HeadTimeout,
        Refusal::FrameTooLarge,
        Refusal::ProtocolViolation,
        Refusal::InvalidUtf8,
        Refusal::PingTimeout,
        Refusal::PerIpFull,
        Refusal::NoDescriptors,
        Refusal::FrameTimeout,
        Refusal::InboundBudget,
        Refusal::OutboundBudget,
        Refusal::StreamsLimit,
        Refusal::BodyTooLarge,
        Refusal::BodyTimeout,
        Refusal::LengthRequired,
        Refusal::HttpRequestsFull,
    ];

    /// The `reason` label in `/metrics` and the key in the snapshot.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::ConnectionsFull => "connections_full",
            Refusal::HttpMalformed => "http_malformed",
            Refusal::HeadTooLarge => "head_too_large",
            Refusal::HeadTimeout => "head_timeout",
            Refusal::FrameTooLarge => "frame_too_large",
            Refusal::ProtocolViolation => "protocol_violation",
            Refusal::InvalidUtf8 => "invalid_utf8",
            Refusal::PingTimeout => "ping_timeout",
            Refusal::PerIpFull => "per_ip_full",
            Refusal::NoDescriptors => "no_descriptors",
            Refusal::FrameTimeout => "frame_timeout",
            Refusal::InboundBudget => "inbound_budget",
            Refusal::OutboundBudget => "outbound_budget",
            Refusal::StreamsLimit => "streams_limit",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::LengthRequired => "length_required",
            Refusal::HttpRequestsFull => "http_requests_full",
        }
    }
}

/// The counters, one per [`Refusal`] and one per [`ErrorCode`] sent in an `error`
/// event.
pub(crate) struct Refusals {
    by_reason: [AtomicU64; Refusal::ALL.len()],
    by_code: [AtomicU64; ErrorCode::ALL.len()],
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            by_reason: std::array::from_fn(|_| AtomicU64::new(0)),
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Refusals {
    /// Counts one refusal.
    pub(crate) fn count(&self, reason: Refusal) {
        self.by_reason[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one `error` event sent to a client.
    pub(crate) fn count_error(&self, code: ErrorCode) {
        self.by_code[code as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its count, zeros included (a metric that exists only once
    /// it is non-zero cannot be alerted on).
    pub(crate) fn reasons(&self) -> BTreeMap<String, u64> {
        Refusal::ALL
            .iter()
            .map(|r| {
                (
                    r.label().to_string(),
                    self.by_reason[*r as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Every error code with how many `error` events carried it.
    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        ErrorCode::ALL
            .iter()
            .map(|c| {
                (
                    c.as_str().to_string(),
                    self.by_code[*c as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_and_code_is_listed_once_in_its_own_slot() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
        let counts = Refusals::default();
        counts.count(Refusal::PingTimeout);
        counts.count(Refusal::PingTimeout);
        counts.count_error(ErrorCode::Limit);
        assert_eq!(counts.reasons().len(), Refusal::ALL.len());
        assert_eq!(counts.reasons()["ping_timeout"], 2);
        assert_eq!(counts.reasons()["connections_full"], 0);
        assert_eq!(counts.errors()["limit"], 1);
        assert_eq!(counts.errors()["bad_frame"], 0);
    }
}
