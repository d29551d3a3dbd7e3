//! Query filters on subscriptions (`data.amount > 5 AND region = 'eu'`).
//!
//! A filter is parsed and compiled once per subscription ([`Filter::parse`]) and
//! then evaluated against each message ([`Filter::matches`]) through a
//! [`MessageView`], which parses the message's JSON `data` at most once however
//! many filters look at it.
//!
//! # Grammar
//!
//! ```text
//! filter     := or END
//! or         := and ( OR and )*
//! and        := unary ( AND unary )*
//! unary      := NOT unary | '(' or ')' | predicate
//! predicate  := key ( cmp value | CONTAINS value | EXISTS | IN '(' value ( ',' value )* ')' )
//! cmp        := '=' | '!=' | '<' | '<=' | '>' | '>='
//! value      := string | number | TRUE | FALSE | DATE yyyy-mm-dd | TIME rfc3339
//! string     := "'" ( any character except "'" | "''" )* "'"
//! number     := '-'? digit+ ( '.' digit+ )?
//! key        := ( letter | '_' ) ( letter | digit | '_' | '-' | ':' | '.' )*
//! ```
//!
//! - Precedence: `NOT` binds tighter than `AND`, which binds tighter than `OR`.
//! - Keywords (`AND OR NOT CONTAINS EXISTS IN TRUE FALSE DATE TIME`) are
//!   case-insensitive. `AND`, `OR` and `NOT` cannot be used as keys; the others can
//!   (a header called `time` is written `time`).
//! - A quote inside a string is written twice, SQL style: `'O''Brien'`. A
//!   backslash is an ordinary character.
//! - Keys are case-sensitive. `topic` is the topic name; a key starting with
//!   `data.` is a path into the JSON `data`, split on `.` (each part is an object
//!   key, and a part made of digits also indexes arrays); any other key is a
//!   header name, dots and all (`account.name`).
//! - `DATE 2026-01-01` is midnight UTC of that day; `TIME` takes an RFC 3339
//!   timestamp with a `T` separator. Both compare as instants (milliseconds).
//!
//! # Meaning
//!
//! A comparison on a missing key, or between mismatched types, is false, never
//! an error; `NOT` of it is true. So `x != 5` is false when `x` is missing.
//!
//! - Strings compare in byte order; numbers as f64; booleans with `=` and `!=`
//!   only; `DATE`/`TIME` as instants.
//! - Header values and the topic are strings. Compared with a number they are
//!   parsed as a number, with `DATE`/`TIME` as an RFC 3339 time or a date, with
//!   `true`/`false` as exactly `true` or `false`. A multi-valued header matches
//!   when any of its values does (so `tags != 'a'` holds if some tag is not `a`).
//! - JSON values keep their type: a JSON number compares only with numbers, a
//!   JSON bool only with `true`/`false`, a JSON string with strings or, parsed as
//!   RFC 3339 or a date, with `DATE`/`TIME`. Objects, arrays and `null` equal
//!   nothing.
//! - `CONTAINS` is a substring test on strings, or on a JSON array "some element
//!   equals the value". `IN` is "equals one of the values". `EXISTS` is true when
//!   the header or path is present (a JSON `null` is present).

mod ast;
mod eval;
mod lexer;
mod parser;
mod query;

use std::fmt;
use std::str::FromStr;

use crate::error::BrokerError;
use crate::error::ErrorCode;

pub use eval::MessageView;
pub use query::{holds, Query};

/// A compiled subscription filter and the text it was parsed from.
#[derive(Debug, Clone)]
pub struct Filter {
    source: Box<str>,
    expr: ast::Expr,
    uses_data: bool,
}

impl Filter {
    /// Parses and compiles a filter, or says where and what was expected.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        let expr = parser::parse(src)?;
        Ok(Filter {
            source: src.into(),
            uses_data: expr.uses_data(),
            expr,
        })
    }

    /// The text the filter was parsed from, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the message passes the filter.
    pub fn matches(&self, msg: &MessageView<'_>) -> bool {
        self.expr.matches(msg)
    }

    /// Whether any key is a `data.` path, so that evaluating the filter parses the
    /// message's JSON payload.
    pub fn uses_data(&self) -> bool {
        self.uses_data
    }
}

/// The canonical text: keywords in capitals, single spaces, only the parentheses
/// precedence needs. Parsing it gives the same compiled filter.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

/// Why a filter did not parse: what was expected, at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} at {pos}")]
pub struct FilterError {
    /// Byte offset into the filter text.
    pub pos: usize,
    /// What the parser wanted there, e.g. `a value after '='`.
    pub expected: String,
}

impl FilterError {
    fn new(pos: usize, expected: impl Into<String>) -> FilterError {
        FilterError {
            pos,
            expected: expected.into(),
        }
    }
}

impl From<FilterError> for BrokerError {
    fn from(e: FilterError) -> BrokerError {
        BrokerError::new(ErrorCode::BadFilter, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_source_and_prints_canonically() {
        let f = Filter::parse("  region='eu'  or(NOT data.x exists)").unwrap();
        assert_eq!(f.source(), "  region='eu'  or(NOT data.x exists)");
        assert_eq!(f.to_string(), "region = 'eu' OR NOT data.x EXISTS");
        let g: Filter = f.to_string().parse().unwrap();
        assert_eq!(g.expr, f.expr);
    }

    #[test]
    fn knows_whether_it_reads_the_payload() {
        assert!(!Filter::parse("region = 'eu' AND topic CONTAINS 'x'")
            .unwrap()
            .uses_data());
        assert!(Filter::parse("region = 'eu' OR NOT (data.a EXISTS)")
            .unwrap()
            .uses_data());
        // A header whose name merely starts with `data` is not the payload.
        assert!(!Filter::parse("database = 'pg'").unwrap().uses_data());
    }

    #[test]
    fn becomes_a_bad_filter_broker_error() {
        let e: BrokerError = Filter::parse("account.name = ").unwrap_err().into();
        assert_eq!(e.code, ErrorCode::BadFilter);
        assert_eq!(e.message, "expected a value after '=' at 15");
        assert_eq!(
            e.to_string(),
            "bad_filter: expected a value after '=' at 15"
        );
    }
}
