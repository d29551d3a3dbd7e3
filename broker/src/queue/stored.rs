//! How a queue message is kept in its store.

use crate::protocol::{Headers, Payload};

/// How a queue message is kept in its store:
/// `{"d":data,"h":headers,"r":true,"x":ms,"f":["queue",id]}`, where `x` is when its
/// time to live runs out (Unix milliseconds; records written before messages had
/// one have none, and never expire) and `f` the durable queue and id it was moved
/// from, for recovery to settle a move a crash cut short.
pub(crate) struct StoredJob {
    pub(crate) data: Payload,
    pub(crate) headers: Option<Headers>,
    pub(crate) reply: bool,
    pub(crate) expires: Option<u64>,
    pub(crate) moved_from: Option<(String, u64)>,
}

impl StoredJob {
    pub(crate) fn encode(
        data: &Payload,
        headers: Option<&Headers>,
        reply: bool,
        expires: Option<u64>,
        moved_from: Option<&(String, u64)>,
    ) -> String {
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
        if let Some(at) = expires {
            out.push_str(",\"x\":");
            out.push_str(itoa::Buffer::new().format(at));
        }
        if let Some((queue, id)) = moved_from {
            out.push_str(",\"f\":");
            out.push_str(&serde_json::json!([queue, id]).to_string());
        }
        out.push('}');
        out
    }

    pub(crate) fn decode(body: &[u8]) -> Option<StoredJob> {
        #[derive(serde::Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            d: &'a serde_json::value::RawValue,
            #[serde(default)]
            h: Option<Headers>,
            #[serde(default)]
            r: bool,
            #[serde(default)]
            x: Option<u64>,
            #[serde(default)]
            f: Option<(String, u64)>,
        }
        let raw: Raw = serde_json::from_slice(body).ok()?;
        Some(StoredJob {
            data: Payload::from_raw(raw.d),
            headers: raw.h,
            reply: raw.r,
            expires: raw.x,
            moved_from: raw.f,
        })
    }
}
