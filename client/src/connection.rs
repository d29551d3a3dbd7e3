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
use crate::frame::Fields;
use crate::queues::Job;
use crate::topics::Message;
use switchyard_wire::{Snapshot, TailMessage};

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
    /// The open `watch`: the id its frames carry, and the snapshot they update.
    pub(crate) watch: Option<(u64, Arc<WatchState>)>,
    /// The open `tail`: where its messages go.
    pub(crate) tail: Option<TailRoute>,
    /// Set once the connection has closed (or the broker said it kicks us).
    pub(crate) closed: Option<String>,
}

/// A watch's snapshot as its frames arrive, kept by the socket task itself: it
/// never waits for the reader (which takes the latest), so a reader that falls
/// behind costs frames it skips, never a stalled socket.
#[derive(Default)]
pub(crate) struct WatchState {
    pub(crate) latest: Mutex<WatchLatest>,
    pub(crate) changed: tokio::sync::Notify,
}

/// What a watch has received so far.
#[derive(Default)]
pub(crate) struct WatchLatest {
    pub(crate) snapshot: Snapshot,
    /// Frames taken in; the reader remembers how many it has seen.
    pub(crate) frames: u64,
    /// Whether the watch has ended (refused, or the connection closed).
    pub(crate) over: bool,
    /// Why, until the reader has been told.
    pub(crate) ended: Option<ClientError>,
}

impl WatchState {
    fn end(&self, why: ClientError) {
        let mut latest = self.latest.lock();
        if !latest.over {
            latest.over = true;
            latest.ended = Some(why);
        }
        drop(latest);
        self.changed.notify_one();
    }
}

/// Where the open tail's messages go. Until the broker's `ok` to the `tail`
/// that opened it (`call`), what arrives is an earlier tail's and is dropped:
/// the broker sends nothing of a tail before its `ok`.
pub(crate) struct TailRoute {
    pub(crate) tx: mpsc::Sender<TailMessage>,
    pub(crate) call: u64,
    pub(crate) armed: bool,
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
    if let Some((_, watch)) = routes.watch.take() {
        watch.end(ClientError::Closed(why.clone()));
    }
    routes.tail = None;
    routes.closed = Some(why);
}

/// Delivers one broker frame to whoever waits for it. Read field by field
/// ([`Fields`]): a field the client cannot decode travels with the delivery as the
/// text the broker sent instead of losing the delivery. What cannot be delivered
/// at all is an `Err` saying why and naming the frame, never a silent drop.
async fn route(conn: &Connection, line: &str) -> Result<(), String> {
    let mut f = Fields::parse(line).map_err(|e| format!("bad frame from broker ({e}): {line}"))?;
    match f.ev().as_str() {
        "msg" => route_msg(conn, f, line).await,
        "job" => route_job(conn, f, line).await,
        "end" => {
            let sid: String = f.get("sid").unwrap_or_default();
            conn.routes.lock().subs.remove(&sid);
            Ok(())
        }
        "cancelled" => {
            let cid: String = f.get("cid").unwrap_or_default();
            conn.routes.lock().consumers.remove(&cid);
            Ok(())
        }
        "tail" => route_tail(conn, line),
        "stats" | "error" if is_watch(conn, &mut f) => route_watch(conn, &mut f, line),
        "kicked" => {
            let reason: String = f.get("reason").unwrap_or_default();
            conn.routes.lock().closed = Some(format!("kicked: {reason}"));
            Ok(())
        }
        ev => route_answer(conn, &mut f, ev, line),
    }
}

/// Whether the frame carries the open watch's id: a frame of the watch, or the
/// error that refused it.
fn is_watch(conn: &Connection, f: &mut Fields<'_>) -> bool {
    let watching = conn.routes.lock().watch.as_ref().map(|(id, _)| *id);
    watching.is_some() && f.get::<u64>("id") == watching
}

/// A frame of the open watch, taken into its snapshot; or the error that refused
/// the watch, which ends it. Checked against the watch open now, under one lock:
/// a frame of a watch replaced meanwhile is dropped.
fn route_watch(conn: &Connection, f: &mut Fields<'_>, line: &str) -> Result<(), String> {
    let id = f.get::<u64>("id");
    let mut routes = conn.routes.lock();
    let Some((watching, state)) = routes.watch.as_ref() else {
        return Ok(());
    };
    if Some(*watching) != id {
        return Ok(());
    }
    let state = Arc::clone(state);
    if f.ev() == "error" {
        routes.watch = None;
        drop(routes);
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        state.end(ClientError::Server {
            code: v["code"].as_str().unwrap_or_default().to_string(),
            message: v["message"].as_str().unwrap_or_default().to_string(),
        });
        return Ok(());
    }
    drop(routes);
    match serde_json::from_str::<Snapshot>(line) {
        Ok(frame) => {
            let mut latest = state.latest.lock();
            latest.snapshot.apply(frame);
            latest.frames += 1;
            drop(latest);
            state.changed.notify_one();
            Ok(())
        }
        // A frame of changes that cannot be read leaves the snapshot unknown: the
        // watch ends, and the reader watches again for a whole one.
        Err(e) => {
            let why = format!("bad stats frame ({e}): {line}");
            state.end(ClientError::Protocol(why.clone()));
            Err(why)
        }
    }
}

/// A message of the open tail, to its reader, once the tail's `ok` has come. A
/// reader that falls [`crate::operator::TAIL_CHANNEL`] messages behind loses the
/// newest, as the broker's own tail drops what its reader cannot take: a tail is
/// a look, and it must never stall the socket.
fn route_tail(conn: &Connection, line: &str) -> Result<(), String> {
    let tx = match &conn.routes.lock().tail {
        Some(route) if route.armed => route.tx.clone(),
        // An earlier tail's message, or one crossing an `untail`.
        _ => return Ok(()),
    };
    let message: TailMessage = serde_json::from_str(line)
        .map_err(|e| format!("a tail message this client cannot decode ({e}): {line}"))?;
    let _ = tx.try_send(message);
    Ok(())
}

async fn route_msg(conn: &Connection, mut f: Fields<'_>, line: &str) -> Result<(), String> {
    let Some(sid) = f.get::<String>("sid") else {
        return Err(format!(
            "a message with no usable sid ({}): {line}",
            f.problems()
        ));
    };
    let tx = conn.routes.lock().subs.get(&sid).cloned();
    // A message for a subscription just ended (its `end` or `unsub` crossed it) has
    // no one left to read it.
    let Some(tx) = tx else {
        tracing::debug!("client: a message for the ended subscription {sid}");
        return Ok(());
    };
    let msg = Message {
        sid,
        topic: f.get("topic").unwrap_or_default(),
        seq: f.get("seq").unwrap_or(0),
        time: f.get("time").unwrap_or(0),
        headers: f.headers(),
        data: f.data(),
        undecoded: f.undecoded(),
    };
    let _ = tx.send(msg).await;
    Ok(())
}

async fn route_job(conn: &Connection, mut f: Fields<'_>, line: &str) -> Result<(), String> {
    let (Some(cid), Some(tag)) = (f.get::<String>("cid"), f.get::<u64>("tag")) else {
        // Without its tag no one can settle it: the broker redelivers it once its
        // ack timeout passes.
        return Err(format!(
            "a job that cannot be settled, its cid or tag unreadable ({}): {line}",
            f.problems()
        ));
    };
    let tx = conn.routes.lock().consumers.get(&cid).cloned();
    let job = Job {
        cid: cid.clone(),
        queue: f.get("queue").unwrap_or_default(),
        tag,
        msg: f.get("msg").unwrap_or_default(),
        attempt: f.get("attempt").unwrap_or(0),
        reply: f.get("reply").unwrap_or(false),
        headers: f.headers(),
        data: f.data(),
        undecoded: f.undecoded(),
    };
    let delivered = match tx {
        Some(tx) => tx.send(job).await.is_ok(),
        None => false,
    };
    if delivered {
        return Ok(());
    }
    // Its consumer was dropped without a cancel: cancelling it gives this job and
    // every other one it holds back to the queue, instead of holding them unacked
    // until the connection closes.
    conn.routes.lock().consumers.remove(&cid);
    let cancel = serde_json::json!({"op": "cancel", "cid": cid}).to_string();
    match conn.out.try_send(cancel) {
        Ok(()) => Err(format!(
            "a job for the dropped consumer {cid}: cancelled it, its jobs go back to the queue"
        )),
        Err(_) => Err(format!(
            "a job for the dropped consumer {cid}, which cannot be cancelled now: {line}"
        )),
    }
}

/// An answer to a call (by its `id`), or an event no call waits for.
fn route_answer(conn: &Connection, f: &mut Fields<'_>, ev: &str, line: &str) -> Result<(), String> {
    let Some(id) = f.get::<u64>("id") else {
        return match ev {
            // Answers whose call has no id: nothing waits for them.
            "ok" | "pong" | "stats" | "reply" => Ok(()),
            "error" => Err(format!("broker error: {line}")),
            _ => Err(format!("an event this client does not know: {line}")),
        };
    };
    let tx = {
        let mut routes = conn.routes.lock();
        if let Some(tail) = routes.tail.as_mut().filter(|t| t.call == id) {
            // The tail's `ok` (or its refusal): what follows is this tail's.
            tail.armed = true;
        }
        routes.pending.remove(&id)
    };
    let Some(tx) = tx else {
        // A call given up on, or a `watch`'s later frames.
        return Ok(());
    };
    let answer = match serde_json::from_str::<Value>(line) {
        Ok(v) if ev == "error" => Err(ClientError::Server {
            code: v["code"].as_str().unwrap_or_default().to_string(),
            message: v["message"].as_str().unwrap_or_default().to_string(),
        }),
        Ok(v) => Ok(v),
        // The call still ends: with the frame as the broker sent it.
        Err(e) => Err(ClientError::Protocol(format!(
            "an answer this client cannot decode ({e}): {line}"
        ))),
    };
    let _ = tx.send(answer);
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
