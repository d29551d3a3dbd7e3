//! Reading a broker frame field by field, so that one field the client cannot
//! decode spoils only itself and never the whole frame.
//!
//! The broker forwards `data` as the JSON text it was given, and valid JSON is more
//! than `serde_json::Value` holds: a number beyond f64 (`1e400`) or a lone
//! surrogate escape (`"\ud800"`) makes a whole-frame parse fail. A frame that
//! fails whole cannot even be routed (its `sid`, `cid` or `id` is lost with it),
//! so a subscriber would drop the message and a consumer would hold the job
//! unacked for good. Read field by field, the frame is still routed, and what
//! could not be decoded travels with it as the text the broker sent.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use switchyard_wire::Headers;

/// What of a delivery the client could not decode, kept as the broker sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undecoded {
    /// The JSON text of `data`, when it could not be decoded (`data` is then `Null`).
    pub data: Option<String>,
    /// The JSON text of `headers`, when they are not an object of strings or string
    /// arrays (`headers` is then `None`).
    pub headers: Option<String>,
    /// What could not be decoded and why, one entry per field.
    pub problems: Vec<String>,
}

/// One broker frame's top-level fields, each still the JSON text the broker sent,
/// and the problems met decoding them.
pub(crate) struct Fields<'a> {
    raw: BTreeMap<String, &'a RawValue>,
    problems: Vec<String>,
    data: Option<String>,
    headers: Option<String>,
}

impl<'a> Fields<'a> {
    /// Splits a frame into its fields; only a line that is not a JSON object fails.
    pub(crate) fn parse(line: &'a str) -> Result<Fields<'a>, String> {
        let raw = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        Ok(Fields {
            raw,
            problems: Vec::new(),
            data: None,
            headers: None,
        })
    }

    /// Field `name` as a `T`: `None` if absent; `None` and a problem noted if it is
    /// not a `T`.
    pub(crate) fn get<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let raw = self.raw.get(name)?;
        match serde_json::from_str(raw.get()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("field `{name}`: {e}"));
                None
            }
        }
    }

    /// The frame's `ev`, or `""` when it has none (or not a string).
    pub(crate) fn ev(&mut self) -> String {
        self.get("ev").unwrap_or_default()
    }

    /// Its `data`: `Null` when absent, and `Null` with the text kept when undecodable.
    pub(crate) fn data(&mut self) -> Value {
        let text = self.raw.get("data").map(|r| r.get().to_string());
        let value = self.get("data");
        if value.is_none() {
            self.data = text;
        }
        value.unwrap_or(Value::Null)
    }

    /// Its `headers`, if any: `None` with the text kept when they are malformed.
    pub(crate) fn headers(&mut self) -> Option<Headers> {
        let text = self.raw.get("headers").map(|r| r.get().to_string());
        let headers = self.get("headers");
        if headers.is_none() {
            self.headers = text;
        }
        headers
    }

    /// What could not be decoded so far, if anything.
    pub(crate) fn undecoded(&mut self) -> Option<Undecoded> {
        if self.problems.is_empty() {
            return None;
        }
        Some(Undecoded {
            data: self.data.take(),
            headers: self.headers.take(),
            problems: std::mem::take(&mut self.problems),
        })
    }

    /// The problems noted so far, in words.
    pub(crate) fn problems(&self) -> String {
        self.problems.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_field_spoils_only_itself() {
        let line = r#"{"ev":"msg","sid":"s1","seq":"x","data":[1e400,"\ud800"],"headers":{"h":1}}"#;
        let mut f = Fields::parse(line).unwrap();
        assert_eq!(f.ev(), "msg");
        assert_eq!(f.get::<String>("sid").as_deref(), Some("s1"));
        assert_eq!(f.get::<u64>("seq"), None);
        assert_eq!(f.data(), Value::Null);
        assert_eq!(f.headers(), None);
        assert_eq!(f.get::<u64>("absent"), None);
        let undecoded = f.undecoded().unwrap();
        assert_eq!(undecoded.data.as_deref(), Some(r#"[1e400,"\ud800"]"#));
        assert_eq!(undecoded.headers.as_deref(), Some(r#"{"h":1}"#));
        assert_eq!(undecoded.problems.len(), 3, "{:?}", undecoded.problems);
        assert!(undecoded.problems[0].starts_with("field `seq`"));
    }

    #[test]
    fn a_decodable_frame_has_nothing_undecoded() {
        let mut f = Fields::parse(r#"{"ev":"msg","data":{"n":1}}"#).unwrap();
        assert_eq!(f.data(), serde_json::json!({"n": 1}));
        assert_eq!(f.headers(), None);
        assert_eq!(f.undecoded(), None);
        assert!(Fields::parse("[1]").is_err());
        assert!(Fields::parse("nope").is_err());
    }
}
