//! The connection every clone of a [`Client`](crate::Client) shares, and the task
//! that owns its socket: it writes queued frames (many per flush) and routes what
//! arrives to the call, subscription or consumer waiting for it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::ClientError;
use crate::queues::Job;
use crate::topics::Message;
use switchyard_wire::Headers;

/// What a call waits for: the frame that answers it, or why none will come.
pub(crate) type Answer = Result<Value, ClientError>;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Most frames queued for the socket. The queue is bounded so that a caller faster
/// than the socket cannot grow memory without limit: when it is full, `call` (every
/// async verb) and `send_frame` wait for room, which hands the socket's back-pressure
/// to the caller the way a full TCP buffer would. They wait rather than fail because
/// the verbs are async already and a full queue is a normal, passing state (a burst),
/// not a fault: an error would only make every caller write a retry loop. 1024 frames
/// leave the task plenty to feed per flush (it feeds every waiting frame, then
/// flushes once) while holding at most 1024 frames: most are well under a KiB, and
/// the broker refuses any over its `--max-payload` (1 MiB by default).
pub(crate) const OUTBOUND_FRAMES: usize = 1024;

/// Who waits for what arrives: calls by id, subscriptions by sid, consumers by cid.
#[derive(Default)]
pub(crate) struct Routes {
    pub(crate) pending: HashMap<u64, oneshot::Sender<Answer>>,
    pub(crate) subs: HashMap<String, mpsc::Sender<Message>>,
    pub(crate) consumers: HashMap<String, mpsc::Sender<Job>>,
    /// Set once the connection has closed (or the broker said it kicks us).
    pub(crate) closed: Option<String>,
}

/// One connection's state, shared by the [`Client`](crate::Client) handles and the
/// task that owns the socket. `routes` is locked only for map edits, never across
/// an `.await`.
pub(crate) struct Connection {
    /// Frames for the socket, at most [`OUTBOUND_FRAMES`]; an empty string asks the
    /// task to close it.
    pub(crate) out: mpsc::Sender<String>,
    pub(crate) routes: Mutex<Routes>,
    /// Numbers call ids, sids and cids, so none repeats on this connection.
    pub(crate) next_id: AtomicU64,
    /// The id the broker gave this connection (`c42`).
    pub(crate) client_id: String,
    pub(crate) driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Owns the socket: writes queued frames (many per flush) and routes what arrives.
/// When it ends, every waiting call gets the reason and every subscription and
/// consumer ends.
pub(crate) async fn drive(mut ws: Ws, mut out: mpsc::Receiver<String>, conn: Arc<Connection>) {
    let why = loop {
        tokio::select! {
            frame = out.recv() => {
                let Some(frame) = frame else { break "client dropped".to_string() };
                // Feed every waiting frame, flush once; a close request among them
                // closes after the frames before it.
                let mut closing = frame.is_empty();
                let mut result = Ok(());
                if !closing {
                    result = ws.feed(WsMessage::text(frame)).await;
                }
                while result.is_ok() && !closing {
                    match out.try_recv() {
                        Ok(more) if more.is_empty() => closing = true,
                        Ok(more) => result = ws.feed(WsMessage::text(more)).await,
                        Err(_) => break,
                    }
                }
                if let Err(e) = result.and(ws.flush().await) {
                    break format!("write failed: {e}");
                }
                if closing {
                    let _ = ws.close(None).await;
                    break "closed by client".to_string();
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
                        if let Err(why) = route(&conn, line).await {
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
    let mut routes = conn.routes.lock();
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
async fn route(conn: &Connection, line: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("bad frame from broker: {e}"))?;
    let ev = v["ev"].as_str().unwrap_or_default();
    match ev {
        "msg" => {
            let sid = v["sid"].as_str().unwrap_or_default();
            let tx = conn.routes.lock().subs.get(sid).cloned();
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
            let tx = conn.routes.lock().consumers.get(cid).cloned();
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
            conn.routes.lock().subs.remove(sid);
        }
        "cancelled" => {
            let cid = v["cid"].as_str().unwrap_or_default();
            conn.routes.lock().consumers.remove(cid);
        }
        "kicked" => {
            let reason = v["reason"].as_str().unwrap_or_default();
            conn.routes.lock().closed = Some(format!("kicked: {reason}"));
        }
        _ => {
            let Some(id) = v.get("id").and_then(Value::as_u64) else {
                if ev == "error" {
                    return Err(format!("broker error: {v}"));
                }
                return Ok(());
            };
            let tx = conn.routes.lock().pending.remove(&id);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Client;

    /// A broker stand-in on a loopback port: it says welcome, reads nothing until
    /// `hold` fires (if given), then counts the text frames it reads until a Close
    /// frame (true) or the socket's end (false). Its receive buffer is small, so a
    /// stand-in that does not read fills the socket soon.
    async fn stand_in(
        hold: Option<oneshot::Receiver<()>>,
    ) -> (String, tokio::task::JoinHandle<(usize, bool)>) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(WsMessage::text(r#"{"ev":"welcome","client":"c1"}"#))
                .await
                .unwrap();
            if let Some(hold) = hold {
                let _ = hold.await;
            }
            let mut frames = 0;
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Text(_))) => frames += 1,
                    Some(Ok(WsMessage::Close(_))) => return (frames, true),
                    Some(Ok(_)) => {}
                    _ => return (frames, false),
                }
            }
        });
        (url, server)
    }

    #[tokio::test]
    async fn close_after_a_burst_closes_the_socket_after_the_burst() {
        let (url, server) = stand_in(None).await;
        let client = Client::connect(&url).await.unwrap();
        for n in 0..100 {
            client.send_frame(n.to_string()).await.unwrap();
        }
        client.close().await;
        let seen = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the stand-in saw the socket end")
            .unwrap();
        assert_eq!(seen, (100, true), "every frame, then the closing handshake");
    }

    /// Frames the fast caller below stops at, far past the bound: a broken bound
    /// fails the test here instead of filling memory.
    const LIMIT: usize = 2 * OUTBOUND_FRAMES;

    #[tokio::test]
    async fn a_caller_faster_than_the_socket_waits_instead_of_queueing_without_bound() {
        let (drain, hold) = oneshot::channel();
        let (url, server) = stand_in(Some(hold)).await;
        let client = Client::connect(&url).await.unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let producer = tokio::spawn({
            let client = client.clone();
            let accepted = accepted.clone();
            let frame = "x".repeat(16 * 1024);
            async move {
                while accepted.load(Ordering::Relaxed) < LIMIT {
                    client.send_frame(frame.clone()).await.unwrap();
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });

        // Wait until the caller is held: the queue full and no progress for a while.
        let queued = || client.conn.out.max_capacity() - client.conn.out.capacity();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut before = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = accepted.load(Ordering::Relaxed);
            let held = now == before && queued() == OUTBOUND_FRAMES;
            if held || now >= LIMIT || Instant::now() > deadline {
                break;
            }
            before = now;
        }
        let taken = accepted.load(Ordering::Relaxed);
        assert_eq!(
            queued(),
            OUTBOUND_FRAMES,
            "the queue is full, and no fuller"
        );
        // What left the queue sits in the socket's buffers (a few MiB on loopback).
        assert!(
            taken < OUTBOUND_FRAMES + 512,
            "{taken} frames of 16 KiB taken from a caller while the socket takes none"
        );
        assert!(!producer.is_finished(), "the caller waits for room");

        // Once the socket drains, the caller goes on to the end; a close asked for
        // while the queue may still be full closes the socket after every frame.
        drain.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), producer)
            .await
            .expect("the caller finishes once the socket drains")
            .unwrap();
        client.close().await;
        let seen = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the stand-in saw the socket end")
            .unwrap();
        assert_eq!(
            seen,
            (LIMIT, true),
            "every frame, then the closing handshake"
        );
    }
}
