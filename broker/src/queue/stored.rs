//! How a queue message is kept in its store.

use crate::protocol::{Headers, Payload};

/// How a queue message is kept in its store: `{"d":data,"h":headers,"r":true}`.
pub(super) struct StoredJob {
    pub(super) data: Payload,
    pub(super) headers: Option<Headers>,
    pub(super) reply: bool,
}

impl StoredJob {
    pub(super) fn encode(data: &Payload, headers: Option<&Headers>, reply: bool) -> String {
        let mut out = String::with_capacity(data.len() + 32);
        out.push_str("{\"d\":");
        out.push_str(data.as_json());
        if let Some(h) = headers {
            out.push_str(",\"h\":");
            out.push_str(&serde_json::to_string(h).unwrap_or_else(|_| "{}".into()));
        }
        if reply {
            out.push_str(",\"r\":true");
        }
        out.push('}');
        out
    }

    pub(super) fn decode(body: &[u8]) -> Option<StoredJob> {
        #[derive(serde::Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            d: &'a serde_json::value::RawValue,
            #[serde(default)]
            h: Option<Headers>,
            #[serde(default)]
            r: bool,
        }
        let raw: Raw = serde_json::from_slice(body).ok()?;
        Some(StoredJob {
            data: Payload::from_raw(raw.d),
            headers: raw.h,
            reply: raw.r,
        })
    }
}
