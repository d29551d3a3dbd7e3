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
/// Where a retained topic's stream republishes each message it stored, with
/// its seq (`cluster/retained.rs`): `switchyard.rlive.<name>`.
pub const LIVE_PREFIX: &str = "switchyard.rlive.";

/// Every retained topic's republished messages (and nodes' notices of them).
pub(crate) const LIVE_ALL: &str = "switchyard.rlive.>";

/// The subject a retained topic's messages are republished on.
pub(crate) fn live_subject(name: &str) -> String {
    format!("{LIVE_PREFIX}{name}")
}

/// The retained topic a republished message is of; None if not a topic name.
pub(crate) fn live_topic(subject: &str) -> Option<&str> {
    let name = subject.strip_prefix(LIVE_PREFIX)?;
    crate::names::check_topic(name).ok()?;
    Some(name)
}

pub const QUEUE_PREFIX: &str = "switchyard.queue.";

/// The NATS subject of a queue (a checked name: no wildcard).
pub(crate) fn queue_subject(name: &str) -> String {
    format!("{QUEUE_PREFIX}{name}")
}

/// The JetStream stream of a queue (see [`stream_name`]): `jobs.eu` is
/// `SY_Q_jobs_deu`.
pub(crate) fn queue_stream(name: &str) -> String {
    stream_name(QUEUE_STREAM_PREFIX, name)
}

/// The topic name of a subject, if it is a topic's and a legal name.
pub(crate) fn subject_topic(subject: &str) -> Option<&str> {
    let name = subject.strip_prefix(TOPIC_PREFIX)?;
    crate::names::check_topic(name).ok()?;
    Some(name)
}

/// The prefix of a retained topic's JetStream stream name: topic `orders.eu` is
/// stream `SY_T_orders_deu`.
pub const TOPIC_STREAM_PREFIX: &str = "SY_T_";
/// The prefix of a queue's JetStream stream name.
pub const QUEUE_STREAM_PREFIX: &str = "SY_Q_";

/// Longest stream name made: a stream is a directory in each server's store, and
/// file systems take 255 bytes at most.
pub(crate) const MAX_STREAM_NAME: usize = 200;

/// The JetStream stream name of a Switchyard name (topic or queue, already
/// checked as one): `prefix` then the name with letters, digits and `-` as they
/// are, `_` as `__`, `.` as `_d`, `:` as `_c` (a stream name may not hold `.`,
/// `*`, `>`, whitespace, `/` or `\`). Every `_` of the result starts a pair, so
/// two names never give one stream name. A result past [`MAX_STREAM_NAME`] is
/// cut (between pairs) and ends in `_h` and the name's SHA-256 in hex, a pair no
/// name escapes to: still one stream per name. The name itself is kept in the
/// stream's description, so nothing reads it back from the stream name.
pub(crate) fn stream_name(prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + name.len() + 8);
    out.push_str(prefix);
    let mut cuts = Vec::new();
    for c in name.chars() {
        cuts.push(out.len());
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            ':' => out.push_str("_c"),
            c if c.is_ascii_alphanumeric() || c == '-' => out.push(c),
            // Not in a valid name; kept distinct all the same.
            c => {
                out.push_str("_u");
                out.push_str(&format!("{:x}_", c as u32));
            }
        }
    }
    if out.len() <= MAX_STREAM_NAME {
        return out;
    }
    use sha2::Digest;
    let hash = sha2::Sha256::digest(name.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let room = MAX_STREAM_NAME - 2 - hex.len();
    let cut = cuts
        .into_iter()
        .rev()
        .find(|&at| at <= room)
        .unwrap_or(prefix.len());
    out.truncate(cut);
    out.push_str("_h");
    out.push_str(&hex);
    out
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
    fn stream_names_are_legal_and_distinct() {
        assert_eq!(
            stream_name(TOPIC_STREAM_PREFIX, "orders.eu"),
            "SY_T_orders_deu"
        );
        assert_eq!(
            stream_name(QUEUE_STREAM_PREFIX, "a_b:c-D9"),
            "SY_Q_a__b_cc-D9"
        );
        assert_eq!(queue_stream("jobs.eu"), "SY_Q_jobs_deu");
        assert_eq!(queue_subject("jobs.eu"), "switchyard.queue.jobs.eu");
        // Names that differ only where escaping happens stay apart.
        let names = [
            "a.b", "a_db", "a_b", "a__b", "a:b", "a_cb", "ab", "a.b.c", "a_d.b",
        ];
        let streams: std::collections::HashSet<String> = names
            .iter()
            .map(|n| stream_name(TOPIC_STREAM_PREFIX, n))
            .collect();
        assert_eq!(streams.len(), names.len());
        for s in &streams {
            assert!(!s.contains(['.', '*', '>', ' ', '/', '\\']), "{s}");
        }
        // Long names are cut and hashed, still distinct and legal.
        let long1 = format!("{}.x", "a.".repeat(120));
        let long2 = format!("{}.y", "a.".repeat(120));
        let (s1, s2) = (
            stream_name(TOPIC_STREAM_PREFIX, &long1),
            stream_name(TOPIC_STREAM_PREFIX, &long2),
        );
        assert!(s1.len() <= MAX_STREAM_NAME && s2.len() <= MAX_STREAM_NAME);
        assert_ne!(s1, s2);
        assert!(s1.starts_with("SY_T_a_da_d") && s1.contains("_h"), "{s1}");
        assert!(!s1.contains('.'));
        let at_limit = "b".repeat(MAX_STREAM_NAME - TOPIC_STREAM_PREFIX.len());
        assert_eq!(
            stream_name(TOPIC_STREAM_PREFIX, &at_limit),
            format!("SY_T_{at_limit}")
        );
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
