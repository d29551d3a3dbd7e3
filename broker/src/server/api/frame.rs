//! What an HTTP API request makes: the message its body and headers carry, and
//! the WebSocket frame that does what the request asks, with `"id":1`.
//!
//! The body is any JSON value, the message's `data`; its headers come from
//! `X-Switchyard-Header-NAME: value` request headers. With
//! `Content-Type: application/vnd.switchyard+json` the body is an envelope
//! instead, `{"data":..., "headers":{...}, "ttl_ms":N}`, for headers HTTP cannot
//! carry (names that are not tokens, values that are not Latin-1 text).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::connection::EXCHANGE_ID;
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::{push_json_str, HeaderValue, Headers};

/// The media type of a body that is an envelope rather than the data itself.
pub(super) const ENVELOPE: &str = "application/vnd.switchyard+json";

/// Request headers whose rest of the name is a message header's name.
const HEADER_PREFIX: &str = "x-switchyard-header-";

/// A message as a frame carries it: raw JSON, validated.
pub(super) struct Message {
    data: String,
    /// A JSON object of headers; `None` for none.
    headers: Option<String>,
    /// Its time to live (queue sends only): the envelope's `ttl_ms`, or `?ttl=`.
    pub(super) ttl_ms: Option<u64>,
}

/// An envelope body; any other field (a typo) is refused rather than dropped unseen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(default)]
    ttl_ms: Option<u64>,
}

/// The message a request carries. `headers` are the request's, names as sent.
pub(super) fn message(
    body: &[u8],
    content_type: Option<&str>,
    headers: &[(String, Vec<u8>)],
) -> Result<Message, BrokerError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8 text"))?;
    let from_http = http_headers(headers)?;
    let envelope = content_type.is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case(ENVELOPE))
    });
    if !envelope {
        let data = serde_json::from_str::<&RawValue>(text)
            .map_err(|e| bad(format!("the body is not JSON: {e}")))?;
        return Ok(Message {
            data: data.get().to_string(),
            headers: from_http,
            ttl_ms: None,
        });
    }
    if from_http.is_some() {
        return Err(bad(format!(
            "headers come from the {ENVELOPE} envelope or from X-Switchyard-Header-* request headers, not both"
        )));
    }
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| bad(format!("the body is not a {ENVELOPE} envelope: {e}")))?;
    Ok(Message {
        data: envelope.data.get().to_string(),
        headers: envelope.headers.map(|h| h.get().to_string()),
        ttl_ms: envelope.ttl_ms,
    })
}

/// The message headers given as `X-Switchyard-Header-NAME` request headers, as a
/// JSON object: names lowercased (HTTP's are case-insensitive, and proxies
/// lowercase them), a name given twice multi-valued in the order given.
fn http_headers(headers: &[(String, Vec<u8>)]) -> Result<Option<String>, BrokerError> {
    let mut out = Headers::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let Some(header) = lower.strip_prefix(HEADER_PREFIX) else {
            continue;
        };
        if header.is_empty() {
            return Err(bad(format!("`{name}` names no header")));
        }
        let value = std::str::from_utf8(value)
            .map_err(|_| bad(format!("the value of `{name}` is not UTF-8")))?
            .to_string();
        match out.remove(header) {
            None => out.insert(header.to_string(), HeaderValue::One(value)),
            Some(HeaderValue::One(first)) => {
                out.insert(header.to_string(), HeaderValue::Many(vec![first, value]))
            }
            Some(HeaderValue::Many(mut values)) => {
                values.push(value);
                out.insert(header.to_string(), HeaderValue::Many(values))
            }
        };
    }
    if out.is_empty() {
        return Ok(None);
    }
    // Strings and arrays of strings: serializing them cannot fail.
    Ok(serde_json::to_string(&out).ok())
}

/// `{"op":"pub","id":1,"topic":...,"data":...,"headers":...}`; a time to live is
/// refused (a topic message is delivered at once or not at all).
pub(super) fn publish(topic: &str, message: &Message) -> Result<String, BrokerError> {
    if message.ttl_ms.is_some() {
        return Err(bad("`ttl_ms` is for queue sends: a topic delivers at once"));
    }
    let mut out = open("pub");
    field_str(&mut out, "topic", topic);
    push_message(&mut out, message);
    Ok(out)
}

/// `{"op":"send","id":1,"queue":...,"data":...,"headers":...,"confirm":...}`.
pub(super) fn send(queue: &str, message: &Message, confirm: &str) -> String {
    let mut out = open("send");
    field_str(&mut out, "queue", queue);
    field_str(&mut out, "confirm", confirm);
    push_message(&mut out, message);
    out
}

/// `{"op":"peek","id":1,"queue":...,"n":...}`, with `after`, `filter` and
/// `search` when asked for.
pub(super) fn peek(queue: &str, options: &super::Options) -> String {
    let mut out = open("peek");
    field_str(&mut out, "queue", queue);
    if let Some(filter) = &options.filter {
        field_str(&mut out, "filter", filter);
    }
    if let Some(search) = &options.search {
        field_str(&mut out, "search", search);
    }
    out.pop();
    out.push_str(&format!(",\"n\":{}", options.count));
    if let Some(after) = options.after {
        out.push_str(&format!(",\"after\":{after}"));
    }
    out.push('}');
    out
}

/// `{"op":"stats","id":1}`.
pub(super) fn stats() -> String {
    open("stats")
}

/// `{"op":"OP","id":1}`, to which fields are added before its `}`.
fn open(op: &str) -> String {
    format!("{{\"op\":\"{op}\",\"id\":{EXCHANGE_ID}}}")
}

fn field_str(out: &mut String, name: &str, value: &str) {
    out.pop();
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    push_json_str(out, value);
    out.push('}');
}

fn push_message(out: &mut String, message: &Message) {
    out.pop();
    out.push_str(",\"data\":");
    out.push_str(&message.data);
    if let Some(headers) = &message.headers {
        out.push_str(",\"headers\":");
        out.push_str(headers);
    }
    if let Some(ttl) = message.ttl_ms {
        out.push_str(",\"ttl_ms\":");
        out.push_str(itoa::Buffer::new().format(ttl));
    }
    out.push('}');
}

fn bad(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorCode::BadFrame, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, Vec<u8>) {
        (name.to_string(), value.as_bytes().to_vec())
    }

    #[test]
    fn a_body_is_the_data_and_header_requests_the_headers() {
        let headers = [
            h("X-Switchyard-Header-Region", "eu"),
            h("Content-Type", "application/json"),
            h("x-switchyard-header-tag", "a"),
            h("X-SWITCHYARD-HEADER-TAG", "b"),
        ];
        let m = message(br#" {"n": [1, 2]} "#, Some("application/json"), &headers).unwrap();
        assert_eq!(
            publish("orders.eu", &m).unwrap(),
            r#"{"op":"pub","id":1,"topic":"orders.eu","data":{"n": [1, 2]},"headers":{"region":"eu","tag":["a","b"]}}"#
        );
    }

    #[test]
    fn an_envelope_carries_data_and_headers_and_nothing_else() {
        let m = message(
            br#"{"data":"x","headers":{"k":["1","2"]}}"#,
            Some("Application/Vnd.Switchyard+JSON; charset=utf-8"),
            &[],
        )
        .unwrap();
        assert_eq!(
            send("jobs", &m, "done"),
            r#"{"op":"send","id":1,"queue":"jobs","confirm":"done","data":"x","headers":{"k":["1","2"]}}"#
        );
        let m = message(br#"{"data":1,"ttl_ms":5}"#, Some(ENVELOPE), &[]).unwrap();
        assert_eq!(
            send("jobs", &m, "stored"),
            r#"{"op":"send","id":1,"queue":"jobs","confirm":"stored","data":1,"ttl_ms":5}"#
        );
        let e = publish("news", &m).err().unwrap();
        assert!(
            e.message.contains("`ttl_ms` is for queue sends"),
            "{}",
            e.message
        );
        let e = message(br#"{"data":1,"tll_ms":5}"#, Some(ENVELOPE), &[])
            .err()
            .unwrap();
        assert!(
            e.message.contains("unknown field `tll_ms`"),
            "{}",
            e.message
        );
        let e = message(br#"{"headers":{}}"#, Some(ENVELOPE), &[])
            .err()
            .unwrap();
        assert!(e.message.contains("missing field `data`"), "{}", e.message);
        let both = message(
            br#"{"data":1}"#,
            Some(ENVELOPE),
            &[h("X-Switchyard-Header-A", "1")],
        );
        assert!(both.is_err());
    }

    #[test]
    fn what_is_not_json_is_bad_frame() {
        for body in [&b""[..], b"{", b"1 2", b"\xff", br#"1,"op":"stats""#] {
            let e = message(body, None, &[]).err().unwrap();
            assert_eq!(e.code, ErrorCode::BadFrame, "{body:?}");
        }
        let e = message(b"1", None, &[h("X-Switchyard-Header-", "v")])
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::BadFrame);
    }

    fn count(n: u64, after: Option<u64>, filter: Option<&str>) -> super::super::Options {
        super::super::Options {
            confirm: "stored",
            wait: std::time::Duration::from_secs(1),
            count: n,
            ttl_ms: None,
            after,
            filter: filter.map(String::from),
            search: None,
        }
    }

    #[test]
    fn names_are_escaped_into_the_frame() {
        assert_eq!(
            peek("a\"b", &count(3, None, None)),
            r#"{"op":"peek","id":1,"queue":"a\"b","n":3}"#
        );
        assert_eq!(
            peek("q", &count(3, Some(41), Some("k = 'v'"))),
            r#"{"op":"peek","id":1,"queue":"q","filter":"k = 'v'","n":3,"after":41}"#
        );
        assert_eq!(stats(), r#"{"op":"stats","id":1}"#);
    }
}
