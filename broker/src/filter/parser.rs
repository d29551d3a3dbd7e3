//! Recursive-descent parser from filter text to the compiled [`Expr`], with errors
//! that say where and what was expected.

use super::ast::{CmpOp, Expr, Key, Literal, Predicate, Segment, Test};
use super::lexer::{Lexer, Tok, Token};
use super::FilterError;
use crate::time::{parse_date_ms, parse_rfc3339_signed_ms};

/// How deep parentheses and `NOT`s may nest. Parsing, printing, evaluating and
/// dropping a filter all recurse this deep, so a client must not choose it.
const MAX_NESTING: usize = 64;

const AFTER_KEY: &str = "an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS)";
const CONDITION: &str = "a key, NOT or '('";

/// Parses a whole filter.
pub(super) fn parse(src: &str) -> Result<Expr, FilterError> {
    let mut parser = Parser {
        lexer: Lexer::new(src),
        nesting: 0,
    };
    let expr = parser.or()?;
    let end = parser.lexer.next_token();
    if end.tok != Tok::End {
        return Err(FilterError::new(
            end.pos,
            "AND, OR or the end of the filter",
        ));
    }
    Ok(expr)
}

fn is_keyword(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    nesting: usize,
}

impl<'a> Parser<'a> {
    /// Consumes the next token if it is the keyword.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let next = self.lexer.peek();
        if matches!(next.tok, Tok::Word(w) if is_keyword(w, keyword)) {
            self.lexer.next_token();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.and()?];
        while self.eat_keyword("OR") {
            items.push(self.and()?);
        }
        Ok(Expr::any(items))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary()?];
        while self.eat_keyword("AND") {
            items.push(self.unary()?);
        }
        Ok(Expr::all(items))
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let token = self.lexer.next_token();
        match token.tok {
            Tok::Word(w) if is_keyword(w, "NOT") => {
                self.nest(token.pos)?;
                let inner = self.unary()?;
                self.nesting -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.nest(token.pos)?;
                let inner = self.or()?;
                let close = self.lexer.next_token();
                if close.tok != Tok::RParen {
                    return Err(FilterError::new(close.pos, "AND, OR or ')'"));
                }
                self.nesting -= 1;
                Ok(inner)
            }
            Tok::Word(w) if !is_keyword(w, "AND") && !is_keyword(w, "OR") => {
                self.predicate(w, token.pos)
            }
            _ => Err(FilterError::new(token.pos, CONDITION)),
        }
    }

    fn nest(&mut self, pos: usize) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(FilterError::new(
                pos,
                format!("at most {MAX_NESTING} nested parentheses and NOTs"),
            ));
        }
        Ok(())
    }

    fn predicate(&mut self, word: &str, pos: usize) -> Result<Expr, FilterError> {
        let key = key(word, pos)?;
        let token = self.lexer.next_token();
        let test = match token.tok {
            Tok::Op(symbol) => {
                let op = CmpOp::from_symbol(symbol)
                    .ok_or_else(|| FilterError::new(token.pos, AFTER_KEY))?;
                let value = self.value(|| format!("a value after '{symbol}'"))?;
                Test::Compare(op, value)
            }
            Tok::Word(w) if is_keyword(w, "EXISTS") => Test::Exists,
            Tok::Word(w) if is_keyword(w, "CONTAINS") => {
                Test::Contains(self.value(|| "a value after CONTAINS".into())?)
            }
            Tok::Word(w) if is_keyword(w, "IN") => self.in_list()?,
            _ => return Err(FilterError::new(token.pos, AFTER_KEY)),
        };
        Ok(Expr::Pred(Predicate { key, test }))
    }

    fn in_list(&mut self) -> Result<Test, FilterError> {
        let open = self.lexer.next_token();
        if open.tok != Tok::LParen {
            return Err(FilterError::new(open.pos, "'(' after IN"));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.value(|| "a value in the IN list".into())?);
            let next = self.lexer.next_token();
            match next.tok {
                Tok::Comma => {}
                Tok::RParen => return Ok(Test::In(values.into())),
                _ => return Err(FilterError::new(next.pos, "',' or ')' in the IN list")),
            }
        }
    }

    /// A value; `wanted` says what was expected when the next token is none.
    fn value(&mut self, wanted: impl FnOnce() -> String) -> Result<Literal, FilterError> {
        let Token { tok, pos } = self.lexer.next_token();
        match tok {
            Tok::Quoted {
                inner,
                closed: true,
            } => Ok(Literal::Str(inner.replace("''", "'").into())),
            Tok::Quoted { closed: false, .. } => {
                Err(FilterError::new(pos, "a closing quote for the string"))
            }
            Tok::Number(text) => number(text)
                .map(Literal::Num)
                .ok_or_else(|| FilterError::new(pos, "a number like 5, -2 or 3.25")),
            Tok::Word(w) if is_keyword(w, "TRUE") => Ok(Literal::Bool(true)),
            Tok::Word(w) if is_keyword(w, "FALSE") => Ok(Literal::Bool(false)),
            Tok::Word(w) if is_keyword(w, "DATE") => {
                let (pos, text) = self.lexer.literal();
                match parse_date_ms(text) {
                    Some(ms) => Ok(Literal::Date {
                        ms,
                        text: text.into(),
                    }),
                    None => Err(FilterError::new(pos, "a date YYYY-MM-DD after DATE")),
                }
            }
            Tok::Word(w) if is_keyword(w, "TIME") => {
                let (pos, text) = self.lexer.literal();
                match parse_rfc3339_signed_ms(text) {
                    Some(ms) => Ok(Literal::Time {
                        ms,
                        text: text.into(),
                    }),
                    None => Err(FilterError::new(
                        pos,
                        "an RFC 3339 time like 2026-01-01T00:00:00Z after TIME",
                    )),
                }
            }
            _ => Err(FilterError::new(pos, wanted())),
        }
    }
}

/// `topic`, a `data.` path, or a header name.
fn key(word: &str, pos: usize) -> Result<Key, FilterError> {
    if word == "topic" {
        return Ok(Key::Topic);
    }
    let Some(path) = word.strip_prefix("data.") else {
        return Ok(Key::Header(word.into()));
    };
    let mut segments = Vec::new();
    let mut at = pos + "data.".len();
    for part in path.split('.') {
        if part.is_empty() {
            return Err(FilterError::new(at, "a name or index after '.'"));
        }
        segments.push(Segment::new(part));
        at += part.len() + 1;
    }
    Ok(Key::Data(segments.into()))
}

/// `-? digit+ ( . digit+ )?`, finite as an f64.
fn number(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_error_says_where_and_what() {
        let cases = [
            // empty, or nothing where a condition should be
            ("", "expected a key, NOT or '(' at 0"),
            ("   ", "expected a key, NOT or '(' at 3"),
            ("()", "expected a key, NOT or '(' at 1"),
            ("a = 1 AND", "expected a key, NOT or '(' at 9"),
            ("a = 1 OR or b = 1", "expected a key, NOT or '(' at 9"),
            ("NOT", "expected a key, NOT or '(' at 3"),
            ("and = 1", "expected a key, NOT or '(' at 0"),
            ("= 1", "expected a key, NOT or '(' at 0"),
            ("'a' = 1", "expected a key, NOT or '(' at 0"),
            ("5 = a", "expected a key, NOT or '(' at 0"),
            ("é = 1", "expected a key, NOT or '(' at 0"),
            // missing or wrong value
            ("account.name = ", "expected a value after '=' at 15"),
            (
                "account.name = 'John' AND age >",
                "expected a value after '>' at 31",
            ),
            ("a != AND b = 1", "expected a value after '!=' at 5"),
            ("a <= john", "expected a value after '<=' at 5"),
            ("a = = 1", "expected a value after '=' at 4"),
            ("a = +1", "expected a value after '=' at 4"),
            ("a CONTAINS", "expected a value after CONTAINS at 10"),
            ("a contains (1)", "expected a value after CONTAINS at 11"),
            // unterminated string
            (
                "name = 'John",
                "expected a closing quote for the string at 7",
            ),
            (
                "name = 'it''s",
                "expected a closing quote for the string at 7",
            ),
            (
                "name IN ('a', 'b)",
                "expected a closing quote for the string at 14",
            ),
            // bad numbers
            ("a = 1.2.3", "expected a number like 5, -2 or 3.25 at 4"),
            ("a = 1.", "expected a number like 5, -2 or 3.25 at 4"),
            ("a = -", "expected a number like 5, -2 or 3.25 at 4"),
            ("a = - 1", "expected a number like 5, -2 or 3.25 at 4"),
            ("a = 1e5", "expected a number like 5, -2 or 3.25 at 4"),
            (
                "a = 5AND b = 1",
                "expected a number like 5, -2 or 3.25 at 4",
            ),
            ("a = 0x10", "expected a number like 5, -2 or 3.25 at 4"),
            // unknown or missing operator
            (
                "a == 1",
                "expected an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS) at 2",
            ),
            (
                "a <> 1",
                "expected an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS) at 2",
            ),
            (
                "a ! 1",
                "expected an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS) at 2",
            ),
            (
                "a LIKE 'x'",
                "expected an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS) at 2",
            ),
            (
                "region",
                "expected an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS) at 6",
            ),
            (
                "a 'x'",
                "expected an operator (=, !=, <, <=, >, >=, CONTAINS, IN, EXISTS) at 2",
            ),
            // unbalanced parentheses
            ("(a = 1", "expected AND, OR or ')' at 6"),
            ("((a = 1) OR b = 2", "expected AND, OR or ')' at 17"),
            ("(a = 1 b = 2)", "expected AND, OR or ')' at 7"),
            ("a = 1)", "expected AND, OR or the end of the filter at 5"),
            ("(a = 1))", "expected AND, OR or the end of the filter at 7"),
            // trailing garbage
            (
                "a = 1 b = 2",
                "expected AND, OR or the end of the filter at 6",
            ),
            (
                "a = 1 && b = 2",
                "expected AND, OR or the end of the filter at 6",
            ),
            (
                "a EXISTS 1",
                "expected AND, OR or the end of the filter at 9",
            ),
            (
                "a = 'x' 'y'",
                "expected AND, OR or the end of the filter at 8",
            ),
            // DATE and TIME literals
            (
                "d = DATE 2026-13-01",
                "expected a date YYYY-MM-DD after DATE at 9",
            ),
            (
                "d = DATE 2026-02-30",
                "expected a date YYYY-MM-DD after DATE at 9",
            ),
            (
                "d = DATE 26-01-01",
                "expected a date YYYY-MM-DD after DATE at 9",
            ),
            ("d = DATE", "expected a date YYYY-MM-DD after DATE at 8"),
            ("d IN (DATE)", "expected a date YYYY-MM-DD after DATE at 10"),
            (
                "d = DATE 2026-01-01T00:00:00Z",
                "expected a date YYYY-MM-DD after DATE at 9",
            ),
            (
                "t > TIME 2026-01-01",
                "expected an RFC 3339 time like 2026-01-01T00:00:00Z after TIME at 9",
            ),
            (
                "t > TIME 2026-01-01 00:00:00Z",
                "expected an RFC 3339 time like 2026-01-01T00:00:00Z after TIME at 9",
            ),
            (
                "t > TIME 2026-01-01T25:00:00Z",
                "expected an RFC 3339 time like 2026-01-01T00:00:00Z after TIME at 9",
            ),
            (
                "t > TIME 'now'",
                "expected an RFC 3339 time like 2026-01-01T00:00:00Z after TIME at 9",
            ),
            // IN lists
            ("s IN ()", "expected a value in the IN list at 6"),
            ("s IN ('a',)", "expected a value in the IN list at 10"),
            ("s IN (,'a')", "expected a value in the IN list at 6"),
            ("s IN 'a'", "expected '(' after IN at 5"),
            ("s IN", "expected '(' after IN at 4"),
            ("s IN ('a' 'b')", "expected ',' or ')' in the IN list at 10"),
            ("s IN ('a'", "expected ',' or ')' in the IN list at 9"),
            // data paths
            ("data. = 1", "expected a name or index after '.' at 5"),
            ("data..x = 1", "expected a name or index after '.' at 5"),
            ("data.x. EXISTS", "expected a name or index after '.' at 7"),
            (
                "a = 1 OR data.a..b = 1",
                "expected a name or index after '.' at 16",
            ),
        ];
        for (src, message) in cases {
            let err = parse(src).expect_err(src);
            assert_eq!(err.to_string(), message, "for {src:?}");
        }
    }

    #[test]
    fn error_fields_hold_the_position_and_the_expectation() {
        assert_eq!(
            parse("account.name = 'John' AND data.amount >"),
            Err(FilterError {
                pos: 39,
                expected: "a value after '>'".into()
            })
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep_ok = format!("{}a = 1{}", "(".repeat(64), ")".repeat(64));
        assert!(parse(&deep_ok).is_ok());
        let too_deep = format!("{}a = 1{}", "(".repeat(65), ")".repeat(65));
        assert_eq!(
            parse(&too_deep).unwrap_err().to_string(),
            "expected at most 64 nested parentheses and NOTs at 64"
        );
        let nots = "NOT ".repeat(100_000) + "a EXISTS";
        assert_eq!(
            parse(&nots).unwrap_err().to_string(),
            "expected at most 64 nested parentheses and NOTs at 256"
        );
        // Long flat chains are not nesting.
        let wide = vec!["a = 1"; 10_000].join(" OR ");
        assert!(parse(&wide).is_ok());
    }

    #[test]
    fn numbers_keep_their_value() {
        assert_eq!(number("0"), Some(0.0));
        assert_eq!(number("-2"), Some(-2.0));
        assert_eq!(number("3.25"), Some(3.25));
        assert_eq!(number("007.50"), Some(7.5));
        assert_eq!(number(&"9".repeat(400)), None);
        assert_eq!(number("-.5"), None);
        assert_eq!(number("1_000"), None);
    }

    /// Fragments of the language, so generated text reaches deep into the parser.
    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a",
            "data.",
            "data.x",
            ".",
            "0",
            "-",
            "-1.5",
            "1.",
            "'",
            "''",
            "'x'",
            "(",
            ")",
            ",",
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "!",
            " ",
            "\t",
            "\u{a0}",
            "é",
            "\u{1F600}",
            "AND",
            "or",
            "Not",
            "IN",
            "contains",
            "EXISTS",
            "true",
            "FALSE",
            "DATE",
            "TIME",
            "2026-01-01",
            "2026-01-01T00:00:00Z",
            "+02:00",
            "\\",
            "\u{0}",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(src in any::<String>()) {
            if let Err(e) = parse(&src) {
                prop_assert!(e.pos <= src.len() && src.is_char_boundary(e.pos));
            }
        }

        #[test]
        fn never_panics_on_language_fragments(parts in prop::collection::vec(fragment(), 0..24)) {
            let src = parts.concat();
            if let Err(e) = parse(&src) {
                prop_assert!(e.pos <= src.len() && src.is_char_boundary(e.pos));
            }
        }

        #[test]
        fn never_panics_on_bytes_read_lossily(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let src = String::from_utf8_lossy(&bytes);
            if let Err(e) = parse(&src) {
                prop_assert!(e.pos <= src.len() && src.is_char_boundary(e.pos));
            }
        }
    }
}
