//! What `peek` and `tail` select: a filter, a search text, or both
//! ([`MessageQuery`] on the wire), compiled once per request.

use serde_json::Value;

use super::{Filter, MessageView};
use crate::command::MessageQuery;
use crate::error::BrokerError;
use crate::protocol::Headers;

/// A [`MessageQuery`] ready to test messages: the filter parsed, the search kept.
#[derive(Debug, Clone, Default)]
pub struct Query {
    filter: Option<Filter>,
    search: Option<Box<str>>,
}

impl Query {
    /// Parses the query's filter (`bad_filter` with the parser's message).
    pub fn compile(query: &MessageQuery) -> Result<Query, BrokerError> {
        Ok(Query {
            filter: query.filter.as_deref().map(Filter::parse).transpose()?,
            search: query.search.as_deref().map(Box::from),
        })
    }

    /// Whether it selects every message.
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.search.is_none()
    }

    /// The search text, if any.
    pub fn search(&self) -> Option<&str> {
        self.search.as_deref()
    }

    /// Whether the message (in queue or topic `name`, its data as raw JSON text)
    /// passes the filter and holds the search text.
    pub fn matches(&self, name: &str, headers: Option<&Headers>, data_json: &str) -> bool {
        let view = MessageView::new(name, headers, data_json);
        if self.filter.as_ref().is_some_and(|f| !f.matches(&view)) {
            return false;
        }
        match &self.search {
            None => true,
            Some(needle) => {
                let data = serde_json::from_str(data_json).unwrap_or(Value::Null);
                holds(needle, &data, headers)
            }
        }
    }
}

/// Whether `needle` is a substring of `data` or of `headers`, each as compact
/// JSON (serde_json's encoding: no spaces, non-ASCII kept): so `"total":120`
/// finds a message whatever spacing it was sent with. Case counts.
pub fn holds(needle: &str, data: &Value, headers: Option<&Headers>) -> bool {
    let data = serde_json::to_string(data).unwrap_or_default();
    data.contains(needle)
        || headers.is_some_and(|h| {
            serde_json::to_string(h)
                .unwrap_or_default()
                .contains(needle)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HeaderValue;

    fn query(filter: Option<&str>, search: Option<&str>) -> Query {
        Query::compile(&MessageQuery {
            filter: filter.map(String::from),
            search: search.map(String::from),
        })
        .unwrap()
    }

    #[test]
    fn filter_and_search_both_hold() {
        let mut headers = Headers::new();
        headers.insert("trace".into(), HeaderValue::One("abc".into()));
        let h = Some(&headers);
        assert!(query(None, None).matches("q", None, "1"));
        assert!(query(Some("trace = 'abc'"), None).matches("q", h, "1"));
        assert!(!query(Some("trace = 'abd'"), None).matches("q", h, "1"));
        // Compact JSON whatever the spacing sent.
        assert!(query(None, Some(r#""total":120"#)).matches("q", None, r#"{"total": 120}"#));
        assert!(query(None, Some("\"trace\":\"abc\"")).matches("q", h, "1"));
        assert!(!query(None, Some("ABC")).matches("q", h, "1"));
        assert!(!query(Some("trace = 'abc'"), Some("zzz")).matches("q", h, "1"));
        let bad = Query::compile(&MessageQuery {
            filter: Some("a =".into()),
            search: None,
        })
        .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "bad_filter: expected a value after '=' at 3"
        );
    }
}
