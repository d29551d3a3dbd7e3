//! The fast path for reading a client frame: one pass over a JSON object that
//! checks it is valid JSON and hands over each top-level field's raw value, without
//! building anything.
//!
//! It accepts only what serde_json accepts, and reads it the same way (a property
//! test holds it to that). What it does not accept goes to serde_json, which gives
//! the error or reads the rare frame this leaves out: a key with an escape, a
//! repeated key, a field nested deeper than [`MAX_NESTING`] (which it names, as
//! it finds it in the same pass).

use super::MAX_NESTING;

/// What a scan found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan<'a> {
    /// One valid object, every field handed over.
    Read,
    /// Left to serde_json: not valid, an escaped key, or `field` returned false.
    Left,
    /// The value of this key nests deeper than [`MAX_NESTING`]; the scan stopped there.
    TooDeep(&'a str),
}

/// Scans `text` as one JSON object (whitespace around it allowed), calling `field`
/// with each key and the raw text of its value, in order. A field's value counts
/// its own levels: `[[1]]` nests 2 deep, a scalar 0.
pub(crate) fn object<'a>(
    text: &'a str,
    mut field: impl FnMut(&'a str, &'a str) -> bool,
) -> Scan<'a> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        deep: false,
        too_deep: None,
    };
    match s.top(&mut field) {
        Some(()) => Scan::Read,
        None => s.too_deep.map_or(Scan::Left, Scan::TooDeep),
    }
}

/// Whether valid JSON `text` nests deeper than `max` levels: for what the
/// scanner leaves to serde_json, never on the scanner's path.
pub(crate) fn nests_deeper(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether any of eight bytes may be a quote, a backslash or a control character
/// (never false when one is; sometimes true when none is).
fn may_hold_special(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let q = word ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = word ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGH != 0
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Set when a value nests deeper than [`MAX_NESTING`].
    deep: bool,
    /// The key whose value did.
    too_deep: Option<&'a str>,
}

impl<'a> Scanner<'a> {
    fn top(&mut self, field: &mut impl FnMut(&'a str, &'a str) -> bool) -> Option<()> {
        self.space();
        self.eat(b'{')?;
        self.space();
        if self.eat(b'}').is_none() {
            loop {
                let key_start = self.at + 1;
                if self.string()? {
                    return None; // an escaped key: serde_json unescapes it
                }
                let key = self.text.get(key_start..self.at - 1)?;
                self.space();
                self.eat(b':')?;
                self.space();
                let start = self.at;
                if self.value(0).is_none() {
                    if self.deep {
                        self.too_deep = Some(key);
                    }
                    return None;
                }
                if !field(key, self.text.get(start..self.at)?) {
                    return None;
                }
                self.space();
                match self.next()? {
                    b',' => self.space(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.space();
        (self.at == self.bytes.len()).then_some(())
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match *self.bytes.get(self.at)? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_NESTING {
            self.deep = true;
            return None;
        }
        self.eat(b'{')?;
        self.space();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.string()?;
            self.space();
            self.eat(b':')?;
            self.space();
            self.value(depth)?;
            self.space();
            match self.next()? {
                b',' => self.space(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_NESTING {
            self.deep = true;
            return None;
        }
        self.eat(b'[')?;
        self.space();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.space();
            match self.next()? {
                b',' => self.space(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string, from its opening quote to past its closing one; whether it held an escape.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            // Eight ordinary bytes at a time, then byte by byte near anything else.
            while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                if may_hold_special(word) {
                    break;
                }
                self.at += 8;
            }
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.bytes.get(self.at..self.at + 4)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 4;
                        }
                        _ => return None,
                    }
                }
                // Control characters must be escaped inside a string.
                0..0x20 => return None,
                _ => {}
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.digit()?;
            self.digits();
        }
        if self.eat(b'e').or_else(|| self.eat(b'E')).is_some() {
            if self.eat(b'+').is_none() {
                self.eat(b'-');
            }
            self.digit()?;
            self.digits();
        }
        // What follows must end the number: `01` and `1x` are not numbers.
        match self.bytes.get(self.at) {
            Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+') => None,
            _ => Some(()),
        }
    }

    fn digit(&mut self) -> Option<()> {
        match self.next()? {
            b'0'..=b'9' => Some(()),
            _ => None,
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.bytes.get(self.at) == Some(&b)).then(|| self.at += 1)
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::*;

    /// The fields as the scanner reads them, or None if it leaves the text to serde.
    fn scanned(text: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let scan = object(text, |k, v| {
            out.push((k.to_string(), v.to_string()));
            true
        });
        (scan == Scan::Read).then_some(out)
    }

    /// The same, read by serde_json (None if it rejects the text).
    fn by_serde(text: &str) -> Option<Vec<(String, String)>> {
        let map: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
        let mut out: Vec<(String, String)> = map
            .into_iter()
            .map(|(k, v)| (k, v.get().to_string()))
            .collect();
        out.sort();
        Some(out)
    }

    fn agree(text: &str) {
        if let Some(mut fields) = scanned(text) {
            fields.sort();
            assert_eq!(Some(fields), by_serde(text), "scanner accepted {text:?}");
        }
    }

    #[test]
    fn reads_fields_as_serde_does() {
        let text =
            r#" {"op":"pub","topic":"a.b","data":{"x":[1,-2.5e+3,true,null,"\u00e9\n"]},"n":0} "#;
        assert_eq!(
            scanned(text).unwrap(),
            vec![
                ("op".to_string(), "\"pub\"".to_string()),
                ("topic".to_string(), "\"a.b\"".to_string()),
                (
                    "data".to_string(),
                    r#"{"x":[1,-2.5e+3,true,null,"\u00e9\n"]}"#.to_string()
                ),
                ("n".to_string(), "0".to_string()),
            ]
        );
        agree(text);
        assert_eq!(scanned("{}").unwrap(), vec![]);
        assert_eq!(
            scanned("{ \"a\" : [ ] , \"b\" : { } }").unwrap(),
            vec![
                ("a".to_string(), "[ ]".to_string()),
                ("b".to_string(), "{ }".to_string())
            ]
        );
    }

    #[test]
    fn rejects_what_is_not_json() {
        for bad in [
            "",
            "[1]",
            "{",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":.5}",
            "{\"a\":+1}",
            "{\"a\":1x}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"open}",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
            "{\"a\":1}x",
            "{\"a\":[1,]}",
            "{\"a\":{\"b\"}}",
            "{\"a\":NaN}",
        ] {
            assert_eq!(scanned(bad), None, "{bad:?}");
            agree(bad);
        }
    }

    #[test]
    fn leaves_escaped_keys_to_serde_and_names_deep_fields() {
        assert_eq!(object(r#"{"o\u0070":"pub"}"#, |_, _| true), Scan::Left);
        let nested = |n: usize| format!("{{\"a\":1,\"b\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(scanned(&nested(MAX_NESTING)).is_some());
        assert_eq!(
            object(&nested(MAX_NESTING + 1), |_, _| true),
            Scan::TooDeep("b")
        );
        assert!(by_serde(&nested(MAX_NESTING + 1)).is_some());
        let objects = |n: usize| format!("{{\"b\":{}1{}}}", "{\"k\":".repeat(n), "}".repeat(n));
        assert!(scanned(&objects(MAX_NESTING)).is_some());
        assert_eq!(
            object(&objects(MAX_NESTING + 1), |_, _| true),
            Scan::TooDeep("b")
        );
    }

    #[test]
    fn nests_deeper_counts_levels_outside_strings() {
        assert!(!nests_deeper("1", 0));
        assert!(nests_deeper("[1]", 0));
        assert!(!nests_deeper(r#"[{"a":[]}]"#, 3));
        assert!(nests_deeper(r#"[{"a":[]}]"#, 2));
        assert!(!nests_deeper(r#"["[[[\"[[", {"}}{{": "\\"}]"#, 2));
    }

    /// JSON-ish text: mostly valid pieces, with the mistakes people make.
    fn jsonish() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("1".to_string()),
            Just("-0.5e-3".to_string()),
            Just("01".to_string()),
            Just("1.".to_string()),
            Just("true".to_string()),
            Just("nul".to_string()),
            Just("\"x\\\"y\"".to_string()),
            Just("\"\\u00e9\"".to_string()),
            Just("\"\\q\"".to_string()),
            Just("\"a\tb\"".to_string()),
            "\"[a-z ]{0,5}\"",
        ];
        let value = atom.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..4).prop_map(|kv| {
                    let fields: Vec<String> =
                        kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        });
        (
            prop::collection::vec(("[a-c]{1,2}", value), 0..5),
            prop_oneof![Just(""), Just(" "), Just(","), Just("x")],
        )
            .prop_map(|(kv, tail)| {
                let fields: Vec<String> =
                    kv.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                format!("{{{}}}{tail}", fields.join(","))
            })
    }

    proptest! {
        #[test]
        fn accepts_only_what_serde_accepts_and_reads_it_alike(text in jsonish()) {
            // Repeated keys: serde's map keeps the last; the broker refuses them anyway.
            let distinct = scanned(&text).is_none_or(|f| {
                let mut keys: Vec<&String> = f.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.windows(2).all(|w| w[0] != w[1])
            });
            if distinct {
                agree(&text);
            }
        }

        #[test]
        fn valid_json_objects_are_accepted(v in prop::collection::btree_map("[a-z]{1,4}", any::<(i64, String, bool)>(), 0..5)) {
            let text = serde_json::to_string(&v).unwrap();
            prop_assert!(scanned(&text).is_some(), "{}", text);
            agree(&text);
        }

        #[test]
        fn never_panics(text in ".{0,100}") {
            agree(&text);
        }
    }
}
