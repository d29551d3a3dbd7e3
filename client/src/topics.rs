//! Topics: publishing, subscriptions whose messages arrive as a `Stream`, and
//! declaring (retained), sealing and deleting a topic.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::client::{merge, Client};
use crate::error::ClientError;
use crate::frame::Undecoded;
use switchyard_wire::Headers;

/// Messages buffered per subscription before the socket is slowed.
pub(crate) const SUBSCRIPTION_BUFFER: usize = 4096;

/// A message delivered to a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The subscription it was delivered to.
    pub sid: String,
    /// The topic it was published on (a subscription's pattern may match many).
    pub topic: String,
    /// Its sequence number on its topic, from 1.
    pub seq: u64,
    /// When the broker accepted it, in milliseconds since the Unix epoch.
    pub time: u64,
    /// Its JSON data.
    pub data: Value,
    /// Its headers, if it had any.
    pub headers: Option<Headers>,
    /// What of it this client could not decode (a number beyond f64 such as
    /// `1e400`, a lone surrogate escape), kept as the broker sent it; `None` when
    /// all of it decoded. Shown raw, never dropped.
    pub undecoded: Option<Undecoded>,
}

/// A subscription's deliveries. Ends when the topic ends, the subscription is
/// cancelled, or the connection closes.
pub struct Subscription {
    /// The subscription's id on this connection, for [`Client::unsubscribe`].
    pub sid: String,
    pub(crate) rx: mpsc::Receiver<Message>,
}

impl Subscription {
    /// The next message, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Stream for Subscription {
    type Item = Message;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Publishes; returns the message's seq on its topic.
    pub async fn publish(&self, topic: &str, data: Value) -> Result<u64, ClientError> {
        self.publish_with_headers(topic, data, None).await
    }

    /// Publishes with headers (which filters can match on); returns the seq.
    pub async fn publish_with_headers(
        &self,
        topic: &str,
        data: Value,
        headers: Option<Headers>,
    ) -> Result<u64, ClientError> {
        let mut frame = json!({"op": "pub", "topic": topic, "data": data});
        if let Some(h) = headers {
            frame["headers"] = json!(h);
        }
        let ok = self.call(frame).await?;
        ok["seq"]
            .as_u64()
            .ok_or_else(|| ClientError::Protocol(format!("pub ok without seq: {ok}")))
    }

    /// Subscribes to a pattern (`orders.*`, `orders.>`).
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, ClientError> {
        self.subscribe_with(pattern, json!({})).await
    }

    /// Subscribes with extra fields (`filter`, `from`) merged into the `sub` frame.
    pub async fn subscribe_with(
        &self,
        pattern: &str,
        extra: Value,
    ) -> Result<Subscription, ClientError> {
        let sid = format!("s{}", self.next_id());
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        self.conn.routes.lock().subs.insert(sid.clone(), tx);
        let mut frame = json!({"op": "sub", "topic": pattern, "sid": sid});
        merge(&mut frame, extra);
        if let Err(e) = self.call(frame).await {
            self.conn.routes.lock().subs.remove(&sid);
            return Err(e);
        }
        Ok(Subscription { sid, rx })
    }

    /// Declares a retained topic (stored, replayable with `from`) with `retain`'s
    /// limits (`max_messages`, `max_bytes`, `max_age_s`; `{}` for none). On a
    /// topic already retained, replaces its limits.
    pub async fn declare_topic(&self, topic: &str, retain: Value) -> Result<(), ClientError> {
        self.call(json!({"op": "declare", "topic": topic, "retain": retain}))
            .await
            .map(|_| ())
    }

    /// Seals a topic: its subscribers get what was published before, then the
    /// end of their subscription; a later publish is refused `sealed`.
    pub async fn seal(&self, topic: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "seal", "topic": topic}))
            .await
            .map(|_| ())
    }

    /// Deletes a topic and its stored messages; its subscriptions end.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "delete", "topic": topic}))
            .await
            .map(|_| ())
    }

    /// Ends a subscription; its [`Subscription`] stream ends too.
    pub async fn unsubscribe(&self, sid: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "unsub", "sid": sid})).await?;
        self.conn.routes.lock().subs.remove(sid);
        Ok(())
    }
}
