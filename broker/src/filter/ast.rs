//! The compiled form of a filter, built once per subscription, and its canonical text.

use std::fmt;

/// A filter expression in normal form: `And`/`Or` hold at least two items and
/// never directly hold another of their own kind (`a AND (b AND c)` is one `And`
/// of three), so printing with only the parentheses precedence needs and parsing
/// again gives the same tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Pred(Predicate),
    Not(Box<Expr>),
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
}

/// One test on one key: `data.amount > 5`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Predicate {
    pub key: Key,
    pub test: Test,
}

/// Where a predicate looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    /// The message's topic name.
    Topic,
    /// A header, by its full name.
    Header(Box<str>),
    /// A path into the JSON `data`, without the leading `data`.
    Data(Box<[Segment]>),
}

/// One step of a `data.` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    /// The object key.
    pub name: Box<str>,
    /// The array index, when the step is all digits.
    pub index: Option<usize>,
}

impl Segment {
    pub fn new(name: &str) -> Segment {
        let index = if name.bytes().all(|b| b.is_ascii_digit()) {
            name.parse().ok()
        } else {
            None
        };
        Segment {
            name: name.into(),
            index,
        }
    }
}

/// What a predicate asks of the value it finds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Test {
    Exists,
    Compare(CmpOp, Literal),
    Contains(Literal),
    In(Box<[Literal]>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn from_symbol(s: &str) -> Option<CmpOp> {
        Some(match s {
            "=" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A value written in the filter, already converted for comparison.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    /// Unescaped text.
    Str(Box<str>),
    /// Always finite.
    Num(f64),
    Bool(bool),
    /// Midnight UTC in unix milliseconds; `text` is the literal as written.
    Date {
        ms: i64,
        text: Box<str>,
    },
    /// Unix milliseconds; `text` is the literal as written (its offset is kept).
    Time {
        ms: i64,
        text: Box<str>,
    },
}

impl Expr {
    /// All of `items`, in normal form: nested `And`s are spliced in, and a single
    /// item stands alone.
    pub fn all(items: Vec<Expr>) -> Expr {
        Expr::join(items, true)
    }

    /// Any of `items`, in normal form (see [`Expr::all`]).
    pub fn any(items: Vec<Expr>) -> Expr {
        Expr::join(items, false)
    }

    fn join(items: Vec<Expr>, and: bool) -> Expr {
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Expr::And(inner) if and => flat.extend(inner.into_vec()),
                Expr::Or(inner) if !and => flat.extend(inner.into_vec()),
                other => flat.push(other),
            }
        }
        match <[Expr; 1]>::try_from(flat) {
            Ok([only]) => only,
            Err(flat) if and => Expr::And(flat.into()),
            Err(flat) => Expr::Or(flat.into()),
        }
    }

    /// Whether any predicate reads the JSON `data`.
    pub fn uses_data(&self) -> bool {
        match self {
            Expr::Pred(p) => matches!(p.key, Key::Data(_)),
            Expr::Not(e) => e.uses_data(),
            Expr::And(items) | Expr::Or(items) => items.iter().any(Expr::uses_data),
        }
    }

    /// Binding strength, for deciding where printing needs parentheses.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            Expr::Not(_) => 3,
            Expr::Pred(_) => 4,
        }
    }

    /// Prints `self` as an operand of an operator of precedence `outer`.
    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, outer: u8) -> fmt::Result {
        if self.precedence() < outer {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }

    fn fmt_joined(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, prec: u8) -> fmt::Result {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            // Operands of the same precedence get parentheses too: an `Or` built
            // by hand inside an `Or` prints as written, and parsing flattens it.
            item.fmt_operand(f, prec + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Pred(p) => p.fmt(f),
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                // `NOT NOT x` needs no parentheses; `NOT (a AND b)` does.
                e.fmt_operand(f, 3)
            }
            Expr::And(items) => Expr::fmt_joined(f, items, " AND ", 2),
            Expr::Or(items) => Expr::fmt_joined(f, items, " OR ", 1),
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        match &self.test {
            Test::Exists => f.write_str(" EXISTS"),
            Test::Compare(op, lit) => write!(f, " {} {lit}", op.symbol()),
            Test::Contains(lit) => write!(f, " CONTAINS {lit}"),
            Test::In(list) => {
                f.write_str(" IN (")?;
                for (i, lit) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{lit}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Topic => f.write_str("topic"),
            Key::Header(name) => f.write_str(name),
            Key::Data(path) => {
                f.write_str("data")?;
                for seg in path.iter() {
                    write!(f, ".{}", seg.name)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => {
                f.write_str("'")?;
                for (i, part) in s.split('\'').enumerate() {
                    if i > 0 {
                        f.write_str("''")?;
                    }
                    f.write_str(part)?;
                }
                f.write_str("'")
            }
            // f64's Display is the shortest text that reads back to the same
            // value, and never uses an exponent, so it fits the number grammar.
            Literal::Num(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Date { text, .. } => write!(f, "DATE {text}"),
            Literal::Time { text, .. } => write!(f, "TIME {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::parser::parse;
    use super::*;
    use crate::time::{parse_date_ms, parse_rfc3339_signed_ms};

    #[test]
    fn prints_only_the_parentheses_precedence_needs() {
        let cases = [
            ("a=1 and b=2 or c=3", "a = 1 AND b = 2 OR c = 3"),
            ("a=1 and (b=2 or c=3)", "a = 1 AND (b = 2 OR c = 3)"),
            (
                "(a=1 and b=2) and (c=3 and d=4)",
                "a = 1 AND b = 2 AND c = 3 AND d = 4",
            ),
            ("a=1 or (b=2 or c=3)", "a = 1 OR b = 2 OR c = 3"),
            ("not (a=1)", "NOT a = 1"),
            ("not not a exists", "NOT NOT a EXISTS"),
            (
                "not (a=1 or b=2) and not (c=1 and d=2)",
                "NOT (a = 1 OR b = 2) AND NOT (c = 1 AND d = 2)",
            ),
            ("((((a=1))))", "a = 1"),
            (
                "x in('a',2 ,true,DATE 2026-01-01)",
                "x IN ('a', 2, true, DATE 2026-01-01)",
            ),
            ("s CONTAINS 'it''s \\ fine'", "s CONTAINS 'it''s \\ fine'"),
            (
                "n>=-007.50 AND m<1.0 AND z=-0",
                "n >= -7.5 AND m < 1 AND z = -0",
            ),
            (
                "t < time 2026-01-01t10:00:00.5+02:00",
                "t < TIME 2026-01-01t10:00:00.5+02:00",
            ),
            ("data.items.0.id != FALSE", "data.items.0.id != false"),
        ];
        for (src, printed) in cases {
            let expr = parse(src).unwrap();
            assert_eq!(expr.to_string(), printed, "printing {src:?}");
            assert_eq!(parse(printed).unwrap(), expr, "reparsing {printed:?}");
        }
    }

    #[test]
    fn or_inside_or_built_by_hand_still_prints_what_it_means() {
        let p = |name: &str| {
            Expr::Pred(Predicate {
                key: Key::Header(name.into()),
                test: Test::Exists,
            })
        };
        let nested = Expr::Or(vec![p("a"), Expr::Or(vec![p("b"), p("c")].into())].into());
        assert_eq!(nested.to_string(), "a EXISTS OR (b EXISTS OR c EXISTS)");
        let flat = Expr::Or(vec![p("a"), p("b"), p("c")].into());
        assert_eq!(parse(&nested.to_string()).unwrap(), flat);
    }

    // ---- generated trees -------------------------------------------------------

    fn is_reserved(word: &str) -> bool {
        ["and", "or", "not"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k))
    }

    fn key() -> impl Strategy<Value = Key> {
        let header = "[A-Za-z_][A-Za-z0-9_.:-]{0,10}".prop_filter("a plain header name", |s| {
            !is_reserved(s) && s != "topic" && !s.starts_with("data.")
        });
        let segment = "[A-Za-z0-9_:-]{1,6}|[0-9]{1,3}";
        prop_oneof![
            Just(Key::Topic),
            header.prop_map(|s| Key::Header(s.into())),
            prop::collection::vec(segment, 1..4)
                .prop_map(|segs| { Key::Data(segs.iter().map(|s| Segment::new(s)).collect()) }),
        ]
    }

    fn date_text() -> impl Strategy<Value = String> {
        (0u32..=9999, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
    }

    fn time_text() -> impl Strategy<Value = String> {
        let offset = prop_oneof![
            Just("Z".to_string()),
            Just("z".to_string()),
            (prop::bool::ANY, 0u32..=23, 0u32..=59).prop_map(|(plus, h, m)| {
                format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' })
            }),
        ];
        let frac = prop_oneof![Just(String::new()), "\\.[0-9]{1,9}"];
        (
            date_text(),
            "[Tt]",
            0u32..=23,
            0u32..=59,
            0u32..=60,
            frac,
            offset,
        )
            .prop_map(|(date, sep, h, mi, s, frac, offset)| {
                format!("{date}{sep}{h:02}:{mi:02}:{s:02}{frac}{offset}")
            })
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            any::<String>().prop_map(|s| Literal::Str(s.into())),
            "[a-z' ]{0,8}".prop_map(|s| Literal::Str(s.into())),
            any::<f64>()
                .prop_filter("finite", |n| n.is_finite())
                .prop_map(Literal::Num),
            (-1_000_000i64..1_000_000).prop_map(|n| Literal::Num(n as f64 / 100.0)),
            any::<bool>().prop_map(Literal::Bool),
            date_text().prop_map(|text| Literal::Date {
                ms: parse_date_ms(&text).unwrap(),
                text: text.into(),
            }),
            time_text().prop_map(|text| Literal::Time {
                ms: parse_rfc3339_signed_ms(&text).unwrap(),
                text: text.into(),
            }),
        ]
    }

    fn op() -> impl Strategy<Value = CmpOp> {
        prop::sample::select(vec![
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ])
    }

    fn test() -> impl Strategy<Value = Test> {
        prop_oneof![
            Just(Test::Exists),
            (op(), literal()).prop_map(|(op, lit)| Test::Compare(op, lit)),
            literal().prop_map(Test::Contains),
            prop::collection::vec(literal(), 1..4).prop_map(|l| Test::In(l.into())),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = (key(), test()).prop_map(|(key, test)| Expr::Pred(Predicate { key, test }));
        leaf.prop_recursive(5, 32, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::all),
                prop::collection::vec(inner, 2..4).prop_map(Expr::any),
            ]
        })
    }

    // ---- generated text ----------------------------------------------------------

    /// Randomly cased keyword.
    fn keyword(word: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
            word.chars()
                .zip(upper)
                .map(|(c, up)| {
                    if up {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        })
    }

    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![" ", "  ", "\t", "\n ", " \u{a0}"])
    }

    fn value_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "'([a-zé\\\\ ]|'')*'",
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
            keyword("true"),
            keyword("false"),
            (keyword("date"), space(), date_text()).prop_map(|(k, s, d)| format!("{k}{s}{d}")),
            (keyword("time"), space(), time_text()).prop_map(|(k, s, t)| format!("{k}{s}{t}")),
        ]
    }

    fn predicate_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("topic".to_string()),
            "[a-z][a-z.]{0,5}[a-z]".prop_filter("a header name", |s| {
                !is_reserved(s) && !s.starts_with("data.")
            }),
            "data(\\.[a-z0-9]{1,3}){1,3}",
        ];
        let op = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]);
        let test = prop_oneof![
            (op, space(), value_text()).prop_map(|(op, s, v)| format!("{op}{s}{v}")),
            keyword("exists"),
            (keyword("contains"), space(), value_text()).prop_map(|(k, s, v)| format!("{k}{s}{v}")),
            (keyword("in"), prop::collection::vec(value_text(), 1..4))
                .prop_map(|(k, vs)| format!("{k}({})", vs.join(" ,"))),
        ];
        (key, space(), test).prop_map(|(k, s, t)| format!("{k}{s}{t}"))
    }

    fn query_text() -> impl Strategy<Value = String> {
        predicate_text().prop_recursive(5, 32, 4, |inner| {
            prop_oneof![
                (keyword("not"), space(), inner.clone()).prop_map(|(k, s, e)| format!("{k}{s}{e}")),
                inner.clone().prop_map(|e| format!("( {e})")),
                (inner.clone(), keyword("and"), inner.clone())
                    .prop_map(|(a, k, b)| format!("{a} {k} {b}")),
                (inner.clone(), keyword("or"), inner)
                    .prop_map(|(a, k, b)| format!("{a}\t{k}\n{b}")),
            ]
        })
    }

    proptest! {
        #[test]
        fn printed_trees_parse_back_to_the_same_tree(expr in expr()) {
            let text = expr.to_string();
            prop_assert_eq!(parse(&text), Ok(expr), "text: {}", text);
        }

        #[test]
        fn canonical_text_of_a_query_means_the_same(src in query_text()) {
            let parsed = parse(&src);
            prop_assert!(parsed.is_ok(), "{src:?}: {parsed:?}");
            let parsed = parsed.unwrap();
            let printed = parsed.to_string();
            prop_assert_eq!(parse(&printed), Ok(parsed), "printed: {}", printed);
        }
    }
}
