//! Message headers: string names to one string or several.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A header value: one string, or several for a multi-valued header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    /// A single-valued header.
    One(String),
    /// A multi-valued header, in the order given.
    Many(Vec<String>),
}

impl HeaderValue {
    /// Every value of the header, one for a single-valued header.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            HeaderValue::One(v) => std::slice::from_ref(v),
            HeaderValue::Many(vs) => vs,
        };
        slice.iter().map(String::as_str)
    }
}

/// Message headers: name → value(s), in name order.
pub type Headers = BTreeMap<String, HeaderValue>;
