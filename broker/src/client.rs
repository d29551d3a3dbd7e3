//! An async Rust client for Switchyard: publish and subscribe (as a `Stream`), send,
//! consume with ack/nack, request/reply, and operator calls.
//!
//! One background task owns the socket. Calls that expect an answer carry an id and
//! wait on a oneshot; deliveries go to each subscription's or consumer's bounded
//! channel, so a reader that falls behind slows the socket (and, past the broker's
//! buffer, gets the connection kicked as a slow consumer) rather than growing memory.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::command::PeekedMessage;
use crate::protocol::Headers;
use crate::stats::Snapshot;

/// Deliveries buffered per subscription or consumer before the socket is slowed.
const CHANNEL: usize = 4096;

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error frame.
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    /// The connection is closed (the reason, if known).
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The broker sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The protocol error code, for a [`ClientError::Server`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A message delivered to a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub sid: String,
    pub topic: String,
    pub seq: u64,
    pub time: u64,
    pub data: Value,
    pub headers: Option<Headers>,
}

/// A job delivered to a queue consumer; settle it with [`Client::ack`], [`Client::nack`]
/// or [`Client::reply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub cid: String,
    pub queue: String,
    pub tag: u64,
    pub msg: String,
    pub attempt: u32,
    /// Whether the sender is waiting for a `reply`.
    pub reply: bool,
    pub data: Value,
    pub headers: Option<Headers>,
}

type Answer = Result<Value, ClientError>;

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, oneshot::Sender<Answer>>,
    subs: HashMap<String, mpsc::Sender<Message>>,
    consumers: HashMap<String, mpsc::Sender<Job>>,
    closed: Option<String>,
}

struct Shared {
    out: mpsc::UnboundedSender<String>,
    routes: Mutex<Routes>,
    next_id: AtomicU64,
    client_id: String,
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A connection to a broker. Clones share the connection.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

/// A subscription's deliveries. Ends when the topic ends, the subscription is
/// cancelled, or the connection closes.
pub struct Subscription {
    pub sid: String,
    rx: mpsc::Receiver<Message>,
}

impl Subscription {
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

/// A consumer's jobs. Ends when cancelled, the queue is deleted, or the connection closes.
pub struct Consumer {
    pub cid: String,
    rx: mpsc::Receiver<Job>,
}

impl Consumer {
    pub async fn next(&mut self) -> Option<Job> {
        self.rx.recv().await
    }
}

impl Stream for Consumer {
    type Item = Job;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Job>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Connects to `ws://HOST:PORT/ws` and waits for the broker's `welcome`.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let welcome = loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(t))) => break t.to_string(),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Connect(e.to_string())),
                None => return Err(ClientError::Connect("closed before welcome".into())),
            }
        };
        let welcome: Value = serde_json::from_str(welcome.lines().next().unwrap_or(""))
            .map_err(|e| ClientError::Protocol(format!("bad welcome: {e}")))?;
        if welcome["ev"] != "welcome" {
            return Err(ClientError::Protocol(format!(
                "expected welcome, got {welcome}"
            )));
        }
        let client_id = welcome["client"].as_str().unwrap_or_default().to_string();
        let (out, out_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            out,
            routes: Mutex::new(Routes::default()),
            next_id: AtomicU64::new(1),
            client_id,
            driver: Mutex::new(None),
        });
        let driver = tokio::spawn(drive(ws, out_rx, shared.clone()));
        *shared.driver.lock() = Some(driver);
        Ok(Client { shared })
    }

    /// Connects and introduces itself with a name shown in the dashboard.
    pub async fn connect_named(url: &str, name: &str) -> Result<Client, ClientError> {
        let client = Client::connect(url).await?;
        client.call(json!({"op": "hello", "name": name})).await?;
        Ok(client)
    }

    /// The id the broker gave this connection (`c42`).
    pub fn id(&self) -> &str {
        &self.shared.client_id
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared.routes.lock().closed.clone()
    }

    /// Sends a frame with a fresh id and waits for the frame that answers it
    /// (`ok`, `pong`, `stats`, `reply`), or its error.
    pub async fn call(&self, mut frame: Value) -> Result<Value, ClientError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        frame["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.shared.routes.lock();
            if let Some(why) = &routes.closed {
                return Err(ClientError::Closed(why.clone()));
            }
            routes.pending.insert(id, tx);
        }
        self.send_frame(frame.to_string())?;
        rx.await
            .unwrap_or_else(|_| Err(ClientError::Closed("connection task ended".into())))
    }

    /// Sends a frame without an id: no answer unless it fails.
    pub fn cast(&self, frame: Value) -> Result<(), ClientError> {
        self.send_frame(frame.to_string())
    }

    /// Sends raw text as one frame (for tests of what the broker does with odd input).
    pub fn send_frame(&self, text: String) -> Result<(), ClientError> {
        self.shared
            .out
            .send(text)
            .map_err(|_| ClientError::Closed("connection task ended".into()))
    }

    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(json!({"op": "ping"})).await.map(|_| ())
    }

    /// Publishes; returns the message's seq on its topic.
    pub async fn publish(&self, topic: &str, data: Value) -> Result<u64, ClientError> {
        self.publish_with_headers(topic, data, None).await
    }

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
        let sid = format!("s{}", self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(CHANNEL);
        self.shared.routes.lock().subs.insert(sid.clone(), tx);
        let mut frame = json!({"op": "sub", "topic": pattern, "sid": sid});
        merge(&mut frame, extra);
        if let Err(e) = self.call(frame).await {
            self.shared.routes.lock().subs.remove(&sid);
            return Err(e);
        }
        Ok(Subscription { sid, rx })
    }

    pub async fn unsubscribe(&self, sid: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "unsub", "sid": sid})).await?;
        self.shared.routes.lock().subs.remove(sid);
        Ok(())
    }

    /// Declares a queue with options (`durable`, `max_len`, `ack_timeout_ms`,
    /// `max_attempts`, `dead_letter`).
    pub async fn declare_queue(&self, queue: &str, options: Value) -> Result<(), ClientError> {
        let mut frame = json!({"op": "declare", "queue": queue});
        merge(&mut frame, options);
        self.call(frame).await.map(|_| ())
    }

    /// Sends to a queue, confirmed when stored; returns the message id.
    pub async fn send(&self, queue: &str, data: Value) -> Result<String, ClientError> {
        let ok = self
            .call(json!({"op": "send", "queue": queue, "data": data}))
            .await?;
        Ok(ok["msg"].as_str().unwrap_or_default().to_string())
    }

    /// Sends to a queue and waits until a consumer acked it; returns the reply's
    /// data if the consumer answered with `reply`.
    pub async fn send_done(&self, queue: &str, data: Value) -> Result<Option<Value>, ClientError> {
        let ok = self
            .call(json!({"op": "send", "queue": queue, "data": data, "confirm": "done"}))
            .await?;
        Ok(ok.get("data").cloned())
    }

    /// Starts consuming a queue with at most `prefetch` unacked jobs at a time.
    pub async fn consume(&self, queue: &str, prefetch: u32) -> Result<Consumer, ClientError> {
        let cid = format!("w{}", self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(CHANNEL);
        self.shared.routes.lock().consumers.insert(cid.clone(), tx);
        let frame = json!({"op": "consume", "queue": queue, "cid": cid, "prefetch": prefetch});
        if let Err(e) = self.call(frame).await {
            self.shared.routes.lock().consumers.remove(&cid);
            return Err(e);
        }
        Ok(Consumer { cid, rx })
    }

    /// Stops a consumer; its unacked jobs go back to the queue.
    pub async fn cancel(&self, cid: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "cancel", "cid": cid})).await?;
        self.shared.routes.lock().consumers.remove(cid);
        Ok(())
    }

    pub async fn ack(&self, tag: u64) -> Result<(), ClientError> {
        self.call(json!({"op": "ack", "tag": tag}))
            .await
            .map(|_| ())
    }

    pub async fn nack(&self, tag: u64, requeue: bool) -> Result<(), ClientError> {
        self.call(json!({"op": "nack", "tag": tag, "requeue": requeue}))
            .await
            .map(|_| ())
    }

    /// Answers a request (and acks its job).
    pub async fn reply(&self, tag: u64, data: Value) -> Result<(), ClientError> {
        self.call(json!({"op": "reply", "tag": tag, "data": data}))
            .await
            .map(|_| ())
    }

    /// Sends a request to a queue and waits for a consumer's reply.
    pub async fn request(
        &self,
        queue: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let reply = self
            .call(json!({"op": "request", "queue": queue, "data": data,
                         "timeout_ms": timeout.as_millis() as u64}))
            .await?;
        Ok(reply.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Removes a queue's ready messages; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<u64, ClientError> {
        let ok = self.call(json!({"op": "purge", "queue": queue})).await?;
        Ok(ok["purged"].as_u64().unwrap_or(0))
    }

    pub async fn delete_queue(&self, queue: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "delete", "queue": queue}))
            .await
            .map(|_| ())
    }

    /// The next `n` ready messages of a queue, not consumed.
    pub async fn peek(&self, queue: &str, n: usize) -> Result<Vec<PeekedMessage>, ClientError> {
        let ok = self
            .call(json!({"op": "peek", "queue": queue, "n": n}))
            .await?;
        serde_json::from_value(ok["messages"].clone())
            .map_err(|e| ClientError::Protocol(format!("bad peek answer: {e}")))
    }

    pub async fn kick(&self, client: &str, reason: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "kick", "client": client, "reason": reason}))
            .await
            .map(|_| ())
    }

    /// The broker's snapshot.
    pub async fn stats(&self) -> Result<Snapshot, ClientError> {
        let mut frame = self.call(json!({"op": "stats"})).await?;
        if let Some(map) = frame.as_object_mut() {
            map.remove("ev");
            map.remove("id");
        }
        serde_json::from_value(frame).map_err(|e| ClientError::Protocol(format!("bad stats: {e}")))
    }

    /// Closes the connection with a closing handshake, after every frame sent so far.
    pub async fn close(&self) {
        let _ = self.shared.out.send(String::new());
        let driver = self.shared.driver.lock().take();
        if let Some(driver) = driver {
            let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
        }
    }
}

fn merge(frame: &mut Value, extra: Value) {
    if let (Some(f), Value::Object(extra)) = (frame.as_object_mut(), extra) {
        f.extend(extra);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Owns the socket: writes queued frames (many per flush) and routes what arrives.
async fn drive(mut ws: Ws, mut out: mpsc::UnboundedReceiver<String>, shared: Arc<Shared>) {
    let why = loop {
        tokio::select! {
            frame = out.recv() => {
                let Some(frame) = frame else { break "client dropped".to_string() };
                if frame.is_empty() {
                    let _ = ws.close(None).await;
                    break "closed by client".to_string();
                }
                let mut result = ws.feed(WsMessage::text(frame)).await;
                while result.is_ok() {
                    match out.try_recv() {
                        Ok(more) if !more.is_empty() => result = ws.feed(WsMessage::text(more)).await,
                        _ => break,
                    }
                }
                if let Err(e) = result.and(ws.flush().await) {
                    break format!("write failed: {e}");
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
                        if let Err(why) = route(&shared, line).await {
                            tracing::warn!("client: {why}");
                        }
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    break match frame {
                        Some(f) => format!("closed by broker ({}): {}", u16::from(f.code), f.reason),
                        None => "closed by broker".to_string(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("read failed: {e}"),
                None => break "connection lost".to_string(),
            }
        }
    };
    let mut routes = shared.routes.lock();
    let why = match routes.closed.take() {
        Some(kicked) => kicked,
        None => why,
    };
    for (_, tx) in routes.pending.drain() {
        let _ = tx.send(Err(ClientError::Closed(why.clone())));
    }
    routes.subs.clear();
    routes.consumers.clear();
    routes.closed = Some(why);
}

fn headers_of(v: &Value) -> Option<Headers> {
    v.get("headers")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
}

/// Delivers one broker frame to whoever waits for it.
async fn route(shared: &Shared, line: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("bad frame from broker: {e}"))?;
    let ev = v["ev"].as_str().unwrap_or_default();
    match ev {
        "msg" => {
            let sid = v["sid"].as_str().unwrap_or_default();
            let tx = shared.routes.lock().subs.get(sid).cloned();
            if let Some(tx) = tx {
                let msg = Message {
                    sid: sid.to_string(),
                    topic: v["topic"].as_str().unwrap_or_default().to_string(),
                    seq: v["seq"].as_u64().unwrap_or(0),
                    time: v["time"].as_u64().unwrap_or(0),
                    headers: headers_of(&v),
                    data: v.get("data").cloned().unwrap_or(Value::Null),
                };
                let _ = tx.send(msg).await;
            }
        }
        "job" => {
            let cid = v["cid"].as_str().unwrap_or_default();
            let tx = shared.routes.lock().consumers.get(cid).cloned();
            if let Some(tx) = tx {
                let job = Job {
                    cid: cid.to_string(),
                    queue: v["queue"].as_str().unwrap_or_default().to_string(),
                    tag: v["tag"].as_u64().unwrap_or(0),
                    msg: v["msg"].as_str().unwrap_or_default().to_string(),
                    attempt: v["attempt"].as_u64().unwrap_or(0) as u32,
                    reply: v["reply"].as_bool().unwrap_or(false),
                    headers: headers_of(&v),
                    data: v.get("data").cloned().unwrap_or(Value::Null),
                };
                let _ = tx.send(job).await;
            }
        }
        "end" => {
            let sid = v["sid"].as_str().unwrap_or_default();
            shared.routes.lock().subs.remove(sid);
        }
        "cancelled" => {
            let cid = v["cid"].as_str().unwrap_or_default();
            shared.routes.lock().consumers.remove(cid);
        }
        "kicked" => {
            let reason = v["reason"].as_str().unwrap_or_default();
            shared.routes.lock().closed = Some(format!("kicked: {reason}"));
        }
        _ => {
            let Some(id) = v.get("id").and_then(Value::as_u64) else {
                if ev == "error" {
                    return Err(format!("broker error: {v}"));
                }
                return Ok(());
            };
            let tx = shared.routes.lock().pending.remove(&id);
            if let Some(tx) = tx {
                let answer = if ev == "error" {
                    Err(ClientError::Server {
                        code: v["code"].as_str().unwrap_or_default().to_string(),
                        message: v["message"].as_str().unwrap_or_default().to_string(),
                    })
                } else {
                    Ok(v)
                };
                let _ = tx.send(answer);
            }
        }
    }
    Ok(())
}
