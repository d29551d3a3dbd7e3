//! Evaluating a compiled filter against one message. Nothing here allocates
//! except the one lazy parse of the message's JSON `data`, shared by every
//! filter that looks at the same [`MessageView`].

use std::cell::OnceCell;
use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{CmpOp, Expr, Key, Literal, Predicate, Segment, Test};
use crate::protocol::Headers;
use crate::time::{parse_date_ms, parse_rfc3339_signed_ms};

/// One message as filters see it. Build one per message and evaluate every
/// candidate filter against it: the JSON `data` is parsed on first use, at most
/// once, and only if some filter has a `data.` key.
#[derive(Debug)]
pub struct MessageView<'a> {
    topic: &'a str,
    headers: Option<&'a Headers>,
    data_json: &'a str,
    /// `Some(None)` once parsed when the text is not JSON: every path is missing.
    data: OnceCell<Option<Value>>,
}

impl<'a> MessageView<'a> {
    /// A view of a message on `topic`, with its headers and the raw JSON text of
    /// its `data` (`Payload::as_json`).
    pub fn new(topic: &'a str, headers: Option<&'a Headers>, data_json: &'a str) -> Self {
        MessageView {
            topic,
            headers,
            data_json,
            data: OnceCell::new(),
        }
    }

    fn data(&self) -> Option<&Value> {
        self.data
            .get_or_init(|| serde_json::from_str(self.data_json).ok())
            .as_ref()
    }
}

impl Expr {
    /// Whether the message passes this expression.
    pub(super) fn matches(&self, msg: &MessageView<'_>) -> bool {
        match self {
            Expr::Pred(p) => p.matches(msg),
            Expr::Not(e) => !e.matches(msg),
            Expr::And(items) => items.iter().all(|e| e.matches(msg)),
            Expr::Or(items) => items.iter().any(|e| e.matches(msg)),
        }
    }
}

impl Predicate {
    fn matches(&self, msg: &MessageView<'_>) -> bool {
        match &self.key {
            Key::Topic => text_passes(msg.topic, &self.test),
            Key::Header(name) => match msg.headers.and_then(|h| h.get(&**name)) {
                None => false,
                // A header sent with an empty list of values is still there.
                Some(_) if matches!(self.test, Test::Exists) => true,
                Some(v) => v.values().any(|s| text_passes(s, &self.test)),
            },
            Key::Data(path) => msg
                .data()
                .and_then(|data| lookup(data, path))
                .is_some_and(|v| json_passes(v, &self.test)),
        }
    }
}

/// The value at `path` inside `data`: object keys by name, array elements by index.
fn lookup<'v>(data: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    path.iter().try_fold(data, |v, seg| match v {
        Value::Object(map) => map.get(&*seg.name),
        Value::Array(items) => items.get(seg.index?),
        _ => None,
    })
}

impl CmpOp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord.is_eq(),
            CmpOp::Ne => ord.is_ne(),
            CmpOp::Lt => ord.is_lt(),
            CmpOp::Le => ord.is_le(),
            CmpOp::Gt => ord.is_gt(),
            CmpOp::Ge => ord.is_ge(),
        }
    }

    /// For floats: operands without an order (a NaN) match nothing.
    fn holds_partial(self, ord: Option<Ordering>) -> bool {
        ord.is_some_and(|o| self.holds(o))
    }

    /// Booleans have no order: only `=` and `!=` can hold.
    fn holds_bool(self, a: bool, b: bool) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            _ => false,
        }
    }
}

/// Parses text as an instant: an RFC 3339 time, or a date at midnight UTC.
fn instant(s: &str) -> Option<i64> {
    parse_rfc3339_signed_ms(s).or_else(|| parse_date_ms(s))
}

/// Compares text (a header value, the topic, a JSON string) with a literal,
/// reading the text as the literal's type.
fn text_compare(s: &str, op: CmpOp, lit: &Literal) -> bool {
    match lit {
        Literal::Str(t) => op.holds(s.cmp(t)),
        Literal::Num(n) => s
            .parse::<f64>()
            .is_ok_and(|x| x.is_finite() && op.holds_partial(x.partial_cmp(n))),
        Literal::Bool(b) => match s {
            "true" => op.holds_bool(true, *b),
            "false" => op.holds_bool(false, *b),
            _ => false,
        },
        Literal::Date { ms, .. } | Literal::Time { ms, .. } => {
            instant(s).is_some_and(|t| op.holds(t.cmp(ms)))
        }
    }
}

fn text_passes(s: &str, test: &Test) -> bool {
    match test {
        Test::Exists => true,
        Test::Compare(op, lit) => text_compare(s, *op, lit),
        Test::Contains(Literal::Str(t)) => s.contains(&**t),
        Test::Contains(_) => false,
        Test::In(list) => list.iter().any(|lit| text_compare(s, CmpOp::Eq, lit)),
    }
}

/// Compares a JSON value with a literal; JSON keeps its types, except that a
/// string is read as an instant when compared with `DATE`/`TIME`.
fn json_compare(v: &Value, op: CmpOp, lit: &Literal) -> bool {
    match (v, lit) {
        (Value::String(s), Literal::Str(_) | Literal::Date { .. } | Literal::Time { .. }) => {
            text_compare(s, op, lit)
        }
        (Value::Number(n), Literal::Num(x)) => {
            op.holds_partial(n.as_f64().and_then(|n| n.partial_cmp(x)))
        }
        (Value::Bool(a), Literal::Bool(b)) => op.holds_bool(*a, *b),
        _ => false,
    }
}

fn json_passes(v: &Value, test: &Test) -> bool {
    match test {
        Test::Exists => true,
        Test::Compare(op, lit) => json_compare(v, *op, lit),
        Test::Contains(lit) => match (v, lit) {
            (Value::String(s), Literal::Str(t)) => s.contains(&**t),
            (Value::Array(items), _) => items.iter().any(|e| json_compare(e, CmpOp::Eq, lit)),
            _ => false,
        },
        Test::In(list) => list.iter().any(|lit| json_compare(v, CmpOp::Eq, lit)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Filter;
    use super::*;
    use crate::protocol::HeaderValue;

    fn headers() -> Headers {
        let one = |v: &str| HeaderValue::One(v.into());
        Headers::from([
            ("account.name".into(), one("John")),
            ("region".into(), one("eu")),
            ("status".into(), one("paid")),
            ("amount".into(), one("42")),
            ("ratio".into(), one("0.5")),
            ("flag".into(), one("true")),
            ("day".into(), one("2026-03-01")),
            ("at".into(), one("2026-03-01T10:00:00+02:00")),
            ("time".into(), one("noon")),
            ("empty".into(), one("")),
            (
                "tags".into(),
                HeaderValue::Many(vec!["urgent".into(), "vip".into(), "7".into()]),
            ),
            ("none".into(), HeaderValue::Many(vec![])),
        ])
    }

    const DATA: &str = r#"{"amount":12.5,"total":0,"neg":-3,"big":1e20,
        "name":"Widget 'Pro'","tags":["urgent","x",3,true,"2026-01-01"],
        "at":"2026-02-01T12:00:00+01:00","day":"2026-01-15","ok":true,"off":false,
        "debug":null,"count":"5","obj":{},"empty":[],
        "nested":{"items":[{"id":7},{"id":8,"tags":["a"]}],"0":"zero-key"}}"#;

    /// (query, expected) against a message on `orders.eu.created` with the
    /// headers above and `DATA`.
    const FULL_MESSAGE: &[(&str, bool)] = &[
        // the examples of PROTOCOL.md
        ("account.name = 'John' AND data.amount > 5", true),
        (
            "(region = 'eu' OR region = 'uk') AND NOT data.test EXISTS",
            true,
        ),
        (
            "data.tags CONTAINS 'urgent' AND data.at >= TIME 2026-01-01T00:00:00Z",
            true,
        ),
        ("status IN ('new', 'paid') AND data.total != 0", false),
        ("status IN ('new', 'paid') AND data.amount != 0", true),
        // topic
        ("topic = 'orders.eu.created'", true),
        ("topic != 'orders.eu.created'", false),
        ("topic CONTAINS '.eu.'", true),
        ("topic CONTAINS 'us'", false),
        ("topic IN ('a', 'orders.eu.created')", true),
        ("topic < 'p'", true),
        ("topic > 'p'", false),
        ("topic EXISTS", true),
        ("topic = 5", false),
        // header strings
        ("region = 'eu'", true),
        ("region = 'EU'", false),
        ("region != 'eu'", false),
        ("region != 'uk'", true),
        ("region >= 'eu'", true),
        ("region < 'eu'", false),
        ("region <= 'eu'", true),
        ("region > 'e'", true),
        ("account.name CONTAINS 'oh'", true),
        ("account.name CONTAINS ''", true),
        ("account.name CONTAINS 'john'", false),
        ("empty = ''", true),
        ("empty EXISTS", true),
        ("time = 'noon'", true),
        // header numbers: the value is parsed
        ("amount = 42", true),
        ("amount = 42.0", true),
        ("amount > 41.5", true),
        ("amount >= 43", false),
        ("amount < 100", true),
        ("amount <= -1", false),
        ("amount != 42", false),
        ("amount = '42'", true),
        ("amount = '42.0'", false),
        ("ratio = 0.5", true),
        ("region = 0", false),
        ("region != 0", false),
        ("amount IN (1, 42)", true),
        ("amount CONTAINS 4", false),
        ("amount CONTAINS '4'", true),
        // header booleans, dates and times
        ("flag = true", true),
        ("flag != false", true),
        ("flag = FALSE", false),
        ("flag > false", false),
        ("region = true", false),
        ("region != true", false),
        ("day = DATE 2026-03-01", true),
        ("day < DATE 2026-03-02", true),
        ("day > TIME 2026-02-28T23:59:59Z", true),
        ("at = TIME 2026-03-01T08:00:00Z", true),
        ("at < DATE 2026-03-01", false),
        ("at > DATE 2026-03-01", true),
        ("region < DATE 2030-01-01", false),
        ("region != DATE 2030-01-01", false),
        // multi-valued headers: any value
        ("tags = 'vip'", true),
        ("tags = 'urgent'", true),
        ("tags = 'other'", false),
        ("tags != 'vip'", true),
        ("tags = 7", true),
        ("tags > 6", true),
        ("tags > 7", false),
        ("tags CONTAINS 'rge'", true),
        ("tags IN ('x', 'vip')", true),
        ("NOT tags = 'vip'", false),
        ("none EXISTS", true),
        ("none = ''", false),
        ("NOT none = ''", true),
        // missing headers
        ("missing = 'x'", false),
        ("missing != 'x'", false),
        ("missing < 5", false),
        ("missing CONTAINS 'x'", false),
        ("missing IN ('x')", false),
        ("missing EXISTS", false),
        ("NOT missing EXISTS", true),
        ("NOT missing = 'x'", true),
        ("Region = 'eu'", false),
        // data numbers
        ("data.amount = 12.5", true),
        ("data.amount > 12", true),
        ("data.amount >= 12.5", true),
        ("data.amount < 12.5", false),
        ("data.amount <= 12.5", true),
        ("data.amount != 12.5", false),
        ("data.total = 0", true),
        ("data.total = -0", true),
        ("data.neg < -2.5", true),
        ("data.big > 99999999999999999999", false),
        ("data.big = 100000000000000000000", true),
        ("data.amount IN (1, 12.5)", true),
        ("data.amount IN (1, 2)", false),
        // data numbers vs other types: JSON keeps its types
        ("data.amount = '12.5'", false),
        ("data.count = 5", false),
        ("data.count = '5'", true),
        ("data.amount = true", false),
        ("data.amount > DATE 1970-01-01", false),
        ("data.amount CONTAINS '1'", false),
        // data strings
        ("data.name = 'Widget ''Pro'''", true),
        ("data.name CONTAINS '''Pro'", true),
        ("data.name CONTAINS 'pro'", false),
        ("data.name > 'W'", true),
        ("data.name IN ('a', 'Widget ''Pro''')", true),
        ("data.name = 5", false),
        ("data.name != 5", false),
        // data dates and times: strings read as instants
        ("data.at = TIME 2026-02-01T11:00:00Z", true),
        ("data.at >= TIME 2026-01-01T00:00:00Z", true),
        ("data.at < DATE 2026-02-01", false),
        ("data.at > DATE 2026-02-01", true),
        ("data.day = DATE 2026-01-15", true),
        ("data.day < TIME 2026-01-15T00:00:01Z", true),
        ("data.day IN (DATE 2026-01-14, DATE 2026-01-15)", true),
        ("data.name < DATE 2030-01-01", false),
        ("data.total < DATE 2030-01-01", false),
        // data booleans and null
        ("data.ok = true", true),
        ("data.ok != false", true),
        ("data.ok = false", false),
        ("data.off = false", true),
        ("data.ok >= true", false),
        ("data.ok = 'true'", false),
        ("data.ok IN (false, true)", true),
        ("data.debug EXISTS", true),
        ("data.debug = 'null'", false),
        ("data.debug != 'x'", false),
        // data arrays and objects
        ("data.tags CONTAINS 'urgent'", true),
        ("data.tags CONTAINS 'urg'", false),
        ("data.tags CONTAINS 3", true),
        ("data.tags CONTAINS 3.0", true),
        ("data.tags CONTAINS true", true),
        ("data.tags CONTAINS false", false),
        ("data.tags CONTAINS DATE 2026-01-01", true),
        ("data.tags = 'urgent'", false),
        ("data.empty CONTAINS 'x'", false),
        ("data.empty EXISTS", true),
        ("data.obj EXISTS", true),
        ("data.obj = 'x'", false),
        ("data.obj CONTAINS 'x'", false),
        // data paths: nesting and array indexes
        ("data.nested.items.0.id = 7", true),
        ("data.nested.items.1.id = 8", true),
        ("data.nested.items.01.id = 8", true),
        ("data.nested.items.2.id EXISTS", false),
        ("data.nested.items.1.tags.0 = 'a'", true),
        ("data.nested.items.x EXISTS", false),
        ("data.nested.0 = 'zero-key'", true),
        ("data.tags.1 = 'x'", true),
        ("data.amount.x EXISTS", false),
        ("data.name.0 EXISTS", false),
        // missing data keys
        ("data.missing = 1", false),
        ("data.missing != 1", false),
        ("data.missing EXISTS", false),
        ("NOT data.missing EXISTS", true),
        ("NOT data.missing = 1", true),
        ("data.Amount = 12.5", false),
        // NOT / AND / OR precedence and parentheses
        ("region = 'uk' OR region = 'eu' AND status = 'paid'", true),
        ("region = 'eu' OR region = 'uk' AND status = 'new'", true),
        ("(region = 'eu' OR region = 'uk') AND status = 'new'", false),
        ("NOT region = 'uk' AND status = 'paid'", true),
        ("NOT (region = 'eu' AND status = 'new')", true),
        ("NOT region = 'eu' AND status = 'paid'", false),
        ("NOT region = 'eu' OR status = 'paid'", true),
        ("NOT region = 'uk' AND status = 'new'", false),
        ("NOT (region = 'eu' OR status = 'new')", false),
        ("NOT NOT region = 'eu'", true),
        (
            "region = 'uk' OR status = 'new' OR topic CONTAINS 'eu'",
            true,
        ),
        (
            "region = 'eu' AND status = 'paid' AND data.ok = true AND flag = false",
            false,
        ),
        ("((region = 'eu'))", true),
        // keywords in any case; keys as written
        ("region = 'eu' and not data.missing exists", true),
        ("Region = 'eu' oR region = 'eu'", true),
        (
            "flag = TrUe AND data.tags contains 'x' AND status in ('paid')",
            true,
        ),
        (
            "day = date 2026-03-01 AND at = time 2026-03-01t08:00:00z",
            true,
        ),
    ];

    #[test]
    fn queries_against_a_full_message() {
        let headers = headers();
        let msg = MessageView::new("orders.eu.created", Some(&headers), DATA);
        for &(query, expected) in FULL_MESSAGE {
            let filter = Filter::parse(query).unwrap_or_else(|e| panic!("{query:?}: {e}"));
            assert_eq!(filter.matches(&msg), expected, "{query:?}");
        }
    }

    #[test]
    fn a_message_without_headers_or_object_data() {
        let cases: &[(&str, &str, bool)] = &[
            ("[1,2,\"x\"]", "data.0 = 1", true),
            ("[1,2,\"x\"]", "data.2 = 'x'", true),
            ("[1,2,\"x\"]", "data.3 EXISTS", false),
            ("[1,2,\"x\"]", "region EXISTS", false),
            ("[1,2,\"x\"]", "NOT region = 'eu'", true),
            ("5", "data.x EXISTS", false),
            ("5", "data = 5", false),
            ("\"text\"", "data.0 EXISTS", false),
            ("null", "NOT data.x EXISTS", true),
            ("not json", "data.x EXISTS", false),
            ("not json", "NOT data.x = 1", true),
            ("not json", "topic = 't'", true),
            ("{}", "topic = 't' AND NOT data.a EXISTS", true),
        ];
        for &(data, query, expected) in cases {
            let msg = MessageView::new("t", None, data);
            let filter = Filter::parse(query).unwrap();
            assert_eq!(filter.matches(&msg), expected, "{query:?} on {data}");
        }
    }

    #[test]
    fn the_payload_is_parsed_once_and_only_when_needed() {
        let headers = headers();
        let msg = MessageView::new("orders.eu.created", Some(&headers), DATA);
        let header_only = Filter::parse("region = 'eu' AND NOT tags = 'x'").unwrap();
        assert!(header_only.matches(&msg));
        assert!(msg.data.get().is_none(), "no data key, no parse");

        // Short-circuit: the data predicate after a false header one is not reached.
        let short = Filter::parse("region = 'uk' AND data.amount > 5").unwrap();
        assert!(!short.matches(&msg));
        assert!(msg.data.get().is_none());

        let uses_data = Filter::parse("data.amount > 5").unwrap();
        assert!(uses_data.matches(&msg));
        assert!(msg.data.get().is_some_and(Option::is_some));
    }
}
