//! What the client verbs read from their arguments: data, headers, durations,
//! the `{{Count}}` template of `pub --count`, and where `sub --from` starts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchyard_broker::{HeaderValue, Headers};

/// JSON if it parses, else the text as a JSON string: `pub t hello` needs no quotes.
pub fn parse_data(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// `-H` values as headers: `name:value` (as `nats` and `curl` write them) or
/// `name=value`, split at whichever comes first, so a value may hold the other
/// (`-H url=http://x`). A repeated name becomes multi-valued.
pub fn parse_headers(raw: &[String]) -> Result<Option<Headers>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut headers = Headers::new();
    for h in raw {
        let Some(at) = h.find([':', '=']) else {
            return Err(format!("header `{h}` is not NAME:VALUE (or NAME=VALUE)"));
        };
        let (name, value) = (h[..at].trim(), h[at + 1..].trim_start().to_string());
        if name.is_empty() {
            return Err(format!("header `{h}` has no name"));
        }
        match headers.remove(name) {
            None => headers.insert(name.to_string(), HeaderValue::One(value)),
            Some(HeaderValue::One(first)) => {
                headers.insert(name.to_string(), HeaderValue::Many(vec![first, value]))
            }
            Some(HeaderValue::Many(mut all)) => {
                all.push(value);
                headers.insert(name.to_string(), HeaderValue::Many(all))
            }
        };
    }
    Ok(Some(headers))
}

/// A duration as `nats` writes one: a number and a unit, `500ms`, `2s`, `1.5m`,
/// `1h`. A bare number is refused rather than guessed: `--timeout 2` could mean
/// 2 s or 2 ms, and the old flag was in milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 2s, 1m"))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "" => return Err(format!("`{text}` has no unit: write {text}ms or {text}s")),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// `text` with each `{{Count}}` (or `{{ Count }}`) replaced by `count`, the
/// 1-based number of the message in a `pub --count` run, as `nats pub` does.
/// Other `{{...}}` are left as written: data may hold braces of its own.
pub fn fill_template(text: &str, count: u64) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        let inner = &rest[open + 2..open + close];
        out.push_str(&rest[..open]);
        if inner.trim() == "Count" {
            out.push_str(&count.to_string());
        } else {
            out.push_str(&rest[open..open + close + 2]);
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// `sub --from`: `first`, `new`, a seq (`42`), a time (RFC 3339,
/// `2026-01-01T00:00:00Z`) or a duration back from now (`10m`), as the `sub`
/// frame's `from` field.
pub fn parse_from(text: &str) -> Result<Value, String> {
    if text == "first" || text == "new" {
        return Ok(json!(text));
    }
    if let Ok(seq) = text.parse::<u64>() {
        return Ok(json!({ "seq": seq }));
    }
    if let Ok(ago) = parse_duration(text) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let at = now.saturating_sub(ago).as_millis() as u64;
        return Ok(json!({ "time": at }));
    }
    if text.contains('T') && text.len() >= 20 {
        return Ok(json!({ "time": text }));
    }
    Err(format!(
        "`{text}` is not first, new, a seq, an RFC 3339 time or a duration back (10m)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_at_the_first_colon_or_equals_and_repeat_into_many() {
        let raw = ["a:b", "url=http://x", "a = c", "k: v"].map(String::from);
        let h = parse_headers(&raw).unwrap().unwrap();
        assert_eq!(
            json!(h),
            json!({"a": ["b", "c"], "url": "http://x", "k": "v"})
        );
        assert_eq!(
            parse_headers(&["nope".to_string()]).unwrap_err(),
            "header `nope` is not NAME:VALUE (or NAME=VALUE)"
        );
        assert_eq!(parse_headers(&[]).unwrap(), None);
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("200"),
            Err("`200` has no unit: write 200ms or 200s".to_string())
        );
        assert_eq!(
            parse_duration("3d"),
            Err("unknown unit `d` in `3d` (ms, s, m or h)".to_string())
        );
    }

    #[test]
    fn count_is_filled_in_and_other_braces_are_left() {
        assert_eq!(
            fill_template(r#"{"n":{{Count}},"m":"{{ Count }}","x":"{{Other}}"}"#, 3),
            r#"{"n":3,"m":"3","x":"{{Other}}"}"#
        );
        assert_eq!(fill_template("no braces {{", 1), "no braces {{");
    }

    #[test]
    fn from_reads_first_a_seq_a_time_or_a_duration_back() {
        assert_eq!(parse_from("first"), Ok(json!("first")));
        assert_eq!(parse_from("17"), Ok(json!({"seq": 17})));
        assert_eq!(
            parse_from("2026-01-01T00:00:00Z"),
            Ok(json!({"time": "2026-01-01T00:00:00Z"}))
        );
        let back = parse_from("10m").unwrap()["time"].as_u64().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!((now - back).abs_diff(600_000) < 5_000, "{}", now - back);
        assert!(parse_from("soon").is_err());
    }
}
