//! How a topic message travels in NATS: topic names as NATS subjects, and the
//! message (its time, headers and data) as a NATS payload.
//!
//! Topic names (`A-Z a-z 0-9 _ - :` and `.`, tokens split by `.`) are all legal
//! NATS subject tokens as they are, and so are our patterns: `*` and `>` mean
//! what they mean in NATS. Nothing needs escaping; a prefix keeps our subjects
//! apart from anything else in the NATS account (and `$JS.` / `$SYS.` never
//! clash: a topic cannot start with `$`).
//!
//! The payload is `TIME\nHEADERS\nDATA`: the publishing node's accept time in
//! Unix ms, the headers as compact JSON (empty when there are none) and the
//! data as compact JSON. Compact JSON never holds a raw newline, so the split is
//! exact, and nothing depends on what NATS headers can carry (our header names
//! and values are any strings).

use bytes::Bytes;

use crate::protocol::{compact, Headers, MAX_NESTING};

/// The prefix of every topic's subject: topic `orders.eu` is `switchyard.topic.orders.eu`.
pub const TOPIC_PREFIX: &str = "switchyard.topic.";

/// The NATS subject of a topic name or pattern (already checked as one).
pub(crate) fn topic_subject(name: &str) -> String {
    let mut s = String::with_capacity(TOPIC_PREFIX.len() + name.len());
    s.push_str(TOPIC_PREFIX);
    s.push_str(name);
    s
}

/// The prefix of every queue's subject: queue `jobs.eu` is `switchyard.queue.jobs.eu`.
pub const QUEUE_PREFIX: &str = "switchyard.queue.";

/// The NATS subject of a queue (a checked name: no wildcard).
pub(crate) fn queue_subject(name: &str) -> String {
    format!("{QUEUE_PREFIX}{name}")
}

/// The JetStream stream of a queue: `SY_Q_` and the name escaped, so that every
/// valid name gives a valid stream name (no `.`) and two names never the same
/// one: `_` is written `__` and `.` is written `_d`.
pub(crate) fn queue_stream(name: &str) -> String {
    format!("SY_Q_{}", escape(name))
}

/// A queue or topic name as part of a stream name (see [`queue_stream`]).
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            c => out.push(c),
        }
    }
    out
}

/// The topic name of a subject, if it is a topic's and a legal name.
pub(crate) fn subject_topic(subject: &str) -> Option<&str> {
    let name = subject.strip_prefix(TOPIC_PREFIX)?;
    crate::names::check_topic(name).ok()?;
    Some(name)
}

/// The payload of one message.
pub(crate) fn encode(time: u64, data: &str, headers: Option<&Headers>) -> Bytes {
    let headers = headers
        .filter(|h| !h.is_empty())
        .and_then(|h| serde_json::to_string(h).ok())
        .unwrap_or_default();
    let mut n = itoa::Buffer::new();
    let time = n.format(time);
    let mut out = Vec::with_capacity(time.len() + headers.len() + data.len() + 2);
    out.extend_from_slice(time.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(data.as_bytes());
    Bytes::from(out)
}

/// A message read back from a payload: checked as a client's `pub` would be.
#[derive(Debug, PartialEq)]
pub(crate) struct Remote {
    pub(crate) time: u64,
    pub(crate) headers: Option<Headers>,
    /// Compact JSON.
    pub(crate) data: String,
}

/// Reads a payload; None if it is not one of ours (whoever else publishes on our
/// subjects gets nothing delivered: the data goes raw into clients' frames).
pub(crate) fn decode(payload: &[u8]) -> Option<Remote> {
    let text = std::str::from_utf8(payload).ok()?;
    let (time, rest) = text.split_once('\n')?;
    let (headers, data) = rest.split_once('\n')?;
    let time = time.parse().ok()?;
    let headers = match headers {
        "" => None,
        h => Some(serde_json::from_str::<Headers>(h).ok()?),
    };
    serde_json::from_str::<&serde_json::value::RawValue>(data).ok()?;
    if crate::protocol::scan::nests_deeper(data, MAX_NESTING) {
        return None;
    }
    Some(Remote {
        time,
        headers,
        data: compact(data).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HeaderValue;

    #[test]
    fn a_message_survives_the_trip_headers_and_all() {
        let mut headers = Headers::new();
        headers.insert("Region: x\r\n".into(), HeaderValue::One("eu\nwest".into()));
        headers.insert(
            "tags".into(),
            HeaderValue::Many(vec!["a".into(), "b".into()]),
        );
        let payload = encode(1764000000123, r#"{"id":1,"s":"a\nb"}"#, Some(&headers));
        let back = decode(&payload).unwrap();
        assert_eq!(
            back,
            Remote {
                time: 1764000000123,
                headers: Some(headers),
                data: r#"{"id":1,"s":"a\nb"}"#.into(),
            }
        );
        let plain = decode(&encode(5, "null", None)).unwrap();
        assert_eq!(
            (plain.time, plain.headers, plain.data.as_str()),
            (5, None, "null")
        );
    }

    #[test]
    fn what_is_not_ours_is_refused() {
        for bad in [
            &b"hello"[..],
            b"1\n\n{not json",
            b"x\n\n1",
            b"1\n[1]\n1",
            b"1\n\n1 2",
            b"\xff\n\n1",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("1\n\n{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(decode(deep.as_bytes()), None);
        // Valid JSON over several lines is made compact.
        assert_eq!(decode(b"1\n\n[1,\r\n2]").unwrap().data, "[1,2]");
    }

    #[test]
    fn queue_streams_are_valid_and_distinct() {
        assert_eq!(queue_stream("jobs.eu"), "SY_Q_jobs_deu");
        assert_eq!(queue_stream("a_d"), "SY_Q_a__d");
        let names = ["a.d", "a_d", "a__d", "a_.d", "a._d", "ad", "a:b-c"];
        let streams: std::collections::HashSet<String> =
            names.iter().map(|n| queue_stream(n)).collect();
        assert_eq!(streams.len(), names.len());
        for s in &streams {
            assert!(!s.contains(['.', '*', '>', ' ', '/', '\\']), "{s}");
        }
        assert_eq!(queue_subject("jobs.eu"), "switchyard.queue.jobs.eu");
    }

    #[test]
    fn subjects_are_prefixed_topics() {
        assert_eq!(topic_subject("orders.>"), "switchyard.topic.orders.>");
        assert_eq!(
            subject_topic("switchyard.topic.a-b:c_d.e"),
            Some("a-b:c_d.e")
        );
        assert_eq!(subject_topic("switchyard.topic.a.*"), None);
        assert_eq!(subject_topic("other.a"), None);
    }
}
