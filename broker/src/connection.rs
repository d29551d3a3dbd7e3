//! One WebSocket connection: a single task that reads client frames, runs them
//! against the broker, and writes the connection's outbound buffer in batches.
//!
//! One task per socket (no split, no lock on the stream): it `select!`s over the
//! socket and its outbound buffer. Waiting frames are already one newline-separated
//! text; the writer sends it as text frames of up to [`PACK_BYTES`], straight from
//! that buffer to the socket.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::broker::{welcome, Broker, Later, Publisher};
use crate::error::{BrokerError, ErrorCode};
use crate::outbound::{Batch, OutItem};
use crate::protocol::{
    event, parse_frames, ClientFrame, Confirm, Headers, PeekOf, Request, RequestId,
};
use crate::queue::{Settle, Waiter};
use crate::session::Session;
use crate::store::Ticket;
use crate::topic::Done;

/// Largest frame the writer builds by packing waiting frames together.
const PACK_BYTES: usize = 64 * 1024;
/// How long a kicked or closing client gets to take its last frames.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);
/// Shortest interval a `watch` may ask for.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Serves one upgraded connection until it closes, is kicked, or the broker stops.
pub(crate) async fn serve<S>(broker: Broker, ws: WebSocketStream<S>, addr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session = broker.open_session(addr);
    let span = tracing::info_span!("conn", client = %session.name_id);
    run(broker, ws, session).instrument(span).await
}

async fn run<S>(broker: Broker, mut ws: WebSocketStream<S>, session: Arc<Session>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    session.send_text(welcome(&broker, &session));
    let mut shutdown = broker.shutdown_signal();
    let mut writer = Writer::default();
    let mut conn = ConnState::default();

    let why: String = loop {
        if let Some(reason) = session.outbound.kick_reason() {
            goodbye(
                &mut ws,
                &mut writer,
                Some(event::kicked(&reason)),
                CloseCode::Policy,
                &reason,
            )
            .await;
            break format!("kicked: {reason}");
        }
        if session.outbound.frames() > 0 {
            let written = tokio::select! {
                r = writer.write(&mut ws, &session) => r,
                _ = session.outbound.wait_kicked() => Ok(()),
                _ = shutdown.changed() => Ok(()),
            };
            if let Err(e) = written {
                break format!("write failed: {e}");
            }
            continue;
        }
        if *shutdown.borrow() {
            goodbye(
                &mut ws,
                &mut writer,
                None,
                CloseCode::Away,
                "broker shutting down",
            )
            .await;
            break "broker shutting down".into();
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = session.outbound.wait() => {}
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    handle_text(&broker, &session, text.as_str(), &mut conn);
                }
                Some(Ok(Message::Binary(_))) => {
                    session.send_text(event::error(None, &BrokerError::new(
                        ErrorCode::BadFrame,
                        "binary frames are not accepted: send JSON in text frames",
                    )));
                }
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite queued the pong; flushing sends it.
                    if ws.flush().await.is_err() {
                        break "write failed".into();
                    }
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => break "closed by client".into(),
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    let reason = format!("frame of {size} bytes is over max_payload {max_size}");
                    goodbye(&mut ws, &mut writer, None, CloseCode::Size, &reason).await;
                    break reason;
                }
                Some(Err(WsError::Utf8(_))) => {
                    goodbye(&mut ws, &mut writer, None, CloseCode::Invalid, "text frame is not valid UTF-8").await;
                    break "invalid UTF-8".into();
                }
                Some(Err(e)) => break format!("read failed: {e}"),
            },
        }
    };
    if let Some(task) = conn.watch {
        task.abort();
    }
    tracing::debug!("connection ends: {why}");
    broker.close_session(&session, &why);
}

/// Sends a last frame (best effort) and a close frame, waiting at most
/// [`GOODBYE_TIMEOUT`]. A frame the writer had begun is finished first; the rest of
/// its batch is dropped.
async fn goodbye<S>(
    ws: &mut WebSocketStream<S>,
    writer: &mut Writer,
    last: Option<String>,
    code: CloseCode,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reason: String = reason.chars().take(100).collect();
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        writer.finish_frame(ws.get_mut()).await?;
        if let Some(text) = last {
            ws.feed(Message::text(text)).await?;
        }
        ws.close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
        .await
    })
    .await;
}

/// Writes the outbound buffer to the socket. It takes all that is waiting as one
/// batch and sends it as text frames of up to [`PACK_BYTES`], split at line ends,
/// straight from the batch: no copy, no allocation. Its progress is kept here, not
/// in the future, so a write cut short by `select!` resumes where it stopped and a
/// frame is never left half-sent.
#[derive(Default)]
struct Writer {
    batch: Batch,
    /// Where the next frame starts in the batch.
    next: usize,
    /// The frame being sent, if one is.
    frame: Option<Frame>,
}

/// One text frame being sent: its header, its payload's span in the batch, and how
/// many bytes of the two have gone out.
struct Frame {
    header: [u8; 10],
    header_len: usize,
    start: usize,
    end: usize,
    sent: usize,
}

impl Writer {
    async fn write<S>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        session: &Session,
    ) -> Result<(), WsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.batch.is_empty() {
            session.outbound.take(&mut self.batch);
            if self.batch.is_empty() {
                return Ok(());
            }
            self.next = 0;
            // Anything tungstenite queued itself (a pong) goes first.
            ws.flush().await?;
        }
        loop {
            if self.frame.is_none() {
                if self.next >= self.batch.text.len() {
                    break;
                }
                self.frame = Some(frame_at(&self.batch.text, self.next));
            }
            self.finish_frame(ws.get_mut()).await?;
        }
        session.outbound.written(&self.batch);
        self.batch.clear();
        Ok(())
    }

    /// Sends the rest of the frame under way, if there is one.
    async fn finish_frame<W: AsyncWrite + Unpin>(&mut self, out: &mut W) -> std::io::Result<()> {
        let Some(f) = &mut self.frame else {
            return Ok(());
        };
        let payload = &self.batch.text.as_bytes()[f.start..f.end];
        while f.sent < f.header_len + payload.len() {
            let n = if f.sent < f.header_len {
                let parts = [
                    IoSlice::new(&f.header[f.sent..f.header_len]),
                    IoSlice::new(payload),
                ];
                out.write_vectored(&parts).await?
            } else {
                out.write(&payload[f.sent - f.header_len..]).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            f.sent += n;
        }
        self.next = f.end + 1;
        self.frame = None;
        Ok(())
    }
}

/// The text frame that starts at `start` in `text`: lines up to [`PACK_BYTES`] in
/// all (or one longer line on its own), with its RFC 6455 header (FIN, text, the
/// length; a server's frames are not masked).
fn frame_at(text: &str, start: usize) -> Frame {
    let rest = &text.as_bytes()[start..];
    let len = if rest.len() <= PACK_BYTES {
        rest.len()
    } else {
        memchr::memrchr(b'\n', &rest[..=PACK_BYTES])
            .or_else(|| memchr::memchr(b'\n', rest))
            .unwrap_or(rest.len())
    };
    let mut header = [0u8; 10];
    header[0] = 0x81;
    let header_len = if len < 126 {
        header[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        header[1] = 126;
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    Frame {
        header,
        header_len,
        start,
        end: start + len,
        sent: 0,
    }
}

/// What a connection keeps from one frame to the next.
#[derive(Default)]
struct ConnState {
    watch: Option<JoinHandle<()>>,
    publisher: Publisher,
    /// Queues this frame's sends and acks touched, to dispatch once.
    later: Later,
}

fn handle_text(broker: &Broker, session: &Arc<Session>, text: &str, conn: &mut ConnState) {
    // Parsed first, then run back to back: a frame of acks or sends then takes its
    // queue's lock in a tight run, instead of between parses, where a connection on
    // the other core keeps catching it held (a queue ran at 360k msgs/s handled
    // line by line, 470k this way). And consecutive pubs to one topic are seen
    // together, to be published with one lock and one push per subscriber.
    let mut requests = Vec::new();
    parse_frames(text, |parsed| requests.push(parsed));
    crate::outbound::holding_wakes(|| {
        let mut requests = requests.into_iter().peekable();
        while let Some(parsed) = requests.next() {
            match parsed {
                // Pubs without an id (nothing to confirm) to one topic, one after
                // another: published as one run.
                Ok(Request {
                    id: None,
                    frame:
                        ClientFrame::Pub {
                            topic,
                            data,
                            headers,
                        },
                }) => {
                    let mut run = vec![(data, headers)];
                    while let Some(Ok(Request {
                        id: None,
                        frame: ClientFrame::Pub { topic: next, .. },
                    })) = requests.peek()
                    {
                        if *next != topic {
                            break;
                        }
                        if let Some(Ok(Request {
                            frame: ClientFrame::Pub { data, headers, .. },
                            ..
                        })) = requests.next()
                        {
                            run.push((data, headers));
                        }
                    }
                    let msgs: Vec<(&str, Option<&Headers>)> =
                        run.iter().map(|(d, h)| (d.as_ref(), h.as_ref())).collect();
                    broker.publish_many(&mut conn.publisher, &topic, &msgs, |e| {
                        session.send_text(event::error(None, &e))
                    });
                }
                Ok(request) => {
                    let queue_work = matches!(
                        request.frame,
                        ClientFrame::Send { .. }
                            | ClientFrame::Ack { .. }
                            | ClientFrame::Nack { .. }
                            | ClientFrame::Reply { .. }
                    );
                    // Anything else sees the queues as if each send and ack had
                    // been dispatched at once.
                    if !queue_work && !conn.later.is_empty() {
                        broker.dispatch(&mut conn.later);
                    }
                    handle_request(broker, session, request, conn)
                }
                Err(e) => session.send_text(event::error(e.id.as_ref(), &e.error)),
            }
        }
        broker.dispatch(&mut conn.later);
    });
    broker.end_frame(&mut conn.publisher, Some(session));
}

/// Answers a request: `ok` (with fields) if it had an id, an error either way.
fn answer(
    session: &Session,
    id: Option<&RequestId>,
    result: Result<Vec<(&str, String)>, BrokerError>,
) {
    match (result, id) {
        (Ok(fields), Some(id)) => {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            session.send_text(event::ok(id, &fields));
        }
        (Ok(_), None) => {}
        (Err(e), id) => session.send_text(event::error(id, &e)),
    }
}

fn handle_request(
    broker: &Broker,
    session: &Arc<Session>,
    request: Request<'_>,
    conn: &mut ConnState,
) {
    let Request { id, frame } = request;
    let watch = &mut conn.watch;
    let id = id.as_ref();
    let none = || Ok(Vec::new());
    let result: Result<Vec<(&str, String)>, BrokerError> = match frame {
        ClientFrame::Hello { name, token: _ } => {
            if let Some(name) = name {
                let name: String = name.chars().take(128).collect();
                *session.hello_name.lock() = Some(name);
            }
            none()
        }
        ClientFrame::Ping => {
            session.send_text(event::pong(id));
            return;
        }
        ClientFrame::Pub {
            topic,
            data,
            headers,
        } => {
            // Answered when delivered (a retained topic: once on disk).
            let done = id.map(|id| -> Done {
                let (session, id) = (session.clone(), id.clone());
                Box::new(move |r: Result<u64, BrokerError>| {
                    answer(
                        &session,
                        Some(&id),
                        r.map(|seq| vec![("seq", seq.to_string())]),
                    )
                })
            });
            match broker.publish(&mut conn.publisher, &topic, &data, headers.as_ref(), done) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::Sub {
            topic,
            sid,
            filter,
            from,
        } => match broker.subscribe(session, sid, topic, filter, from, || {
            answer(session, id, none())
        }) {
            Ok(()) => return,
            Err(e) => Err(e),
        },
        ClientFrame::Unsub { sid } => broker.unsubscribe(session, &sid).and_then(|_| none()),
        ClientFrame::DeclareTopic { topic, retain } => broker
            .declare_topic(&topic, retain.as_ref())
            .and_then(|_| none()),
        ClientFrame::Seal { topic } => {
            let (s, rid) = (session.clone(), id.cloned());
            let done: Done = Box::new(move |r: Result<u64, BrokerError>| {
                answer(&s, rid.as_ref(), r.map(|_| Vec::new()))
            });
            match broker.seal(&topic, done) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::DeleteTopic { topic } => broker
            .delete_topic(&topic, &session.describe())
            .and_then(|_| none()),
        ClientFrame::DeclareQueue { queue, options } => {
            broker.declare_queue(&queue, &options).and_then(|_| none())
        }
        ClientFrame::DeleteQueue { queue } => broker
            .delete_queue(&queue, &session.describe())
            .and_then(|_| none()),
        ClientFrame::Send {
            queue,
            data,
            headers,
            confirm,
        } => match (confirm, id) {
            (Confirm::Done, Some(id)) => {
                let waiter = Waiter::new(session, id.clone(), false);
                match broker.send_later(
                    Some(session),
                    &queue,
                    data,
                    headers,
                    Some(waiter),
                    false,
                    |_, _| {},
                    &mut conn.later,
                ) {
                    Ok(_) => return,
                    Err(e) => Err(e),
                }
            }
            _ => {
                let stored = |msg: &str, ticket: Option<Ticket>| {
                    let fields = vec![("msg", json_string(msg))];
                    match ticket {
                        None => answer(session, id, Ok(fields)),
                        // A durable queue: confirm once the message is on disk.
                        Some(ticket) if id.is_some() => {
                            let (session, id) = (session.clone(), id.cloned());
                            broker.runtime().spawn(async move {
                                let result =
                                    ticket.await.map(|()| fields).map_err(BrokerError::from);
                                answer(&session, id.as_ref(), result);
                            });
                        }
                        Some(_) => {}
                    }
                };
                let later = &mut conn.later;
                match broker.send_later(
                    Some(session),
                    &queue,
                    data,
                    headers,
                    None,
                    false,
                    stored,
                    later,
                ) {
                    Ok(_) => return,
                    Err(e) => Err(e),
                }
            }
        },
        ClientFrame::Consume {
            queue,
            cid,
            prefetch,
        } => match broker.consume(session, &queue, &cid, prefetch, || {
            answer(session, id, none())
        }) {
            Ok(()) => return,
            Err(e) => Err(e),
        },
        ClientFrame::Cancel { cid } => broker.cancel(session, &cid).and_then(|_| none()),
        ClientFrame::Ack { tag } => {
            return settle(broker, session, id, tag, Settle::Ack, &mut conn.later)
        }
        ClientFrame::Nack { tag, requeue } => {
            let how = Settle::Nack { requeue };
            return settle(broker, session, id, tag, how, &mut conn.later);
        }
        ClientFrame::Reply { tag, data } => {
            let how = Settle::Reply(data);
            return settle(broker, session, id, tag, how, &mut conn.later);
        }
        ClientFrame::Request {
            queue,
            data,
            headers,
            timeout_ms,
        } => match id {
            Some(rid) => {
                let timeout = Duration::from_millis(timeout_ms);
                match broker.request(session, &queue, data, headers, rid.clone(), timeout) {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            None => Err(BrokerError::new(
                ErrorCode::BadFrame,
                "`request` needs an `id` to route the reply to",
            )),
        },
        ClientFrame::Purge { queue } => broker
            .purge(&queue, &session.describe())
            .map(|n| vec![("purged", n.to_string())]),
        ClientFrame::Stats => {
            session.send_text(event::stats(id, &broker.snapshot()));
            return;
        }
        ClientFrame::Watch { interval_ms } => {
            if let Some(task) = watch.take() {
                task.abort();
            }
            let interval = Duration::from_millis(interval_ms).max(MIN_WATCH_INTERVAL);
            *watch = Some(spawn_watch(
                broker.clone(),
                session.clone(),
                id.cloned(),
                interval,
            ));
            return;
        }
        ClientFrame::Unwatch => {
            if let Some(task) = watch.take() {
                task.abort();
            }
            none()
        }
        ClientFrame::Peek { of, n } => match of {
            PeekOf::Queue(q) => broker.peek_queue(&q, n).map(|messages| {
                let json = serde_json::to_string(&messages).unwrap_or_else(|_| "[]".into());
                vec![("messages", json)]
            }),
            PeekOf::Topic(t) => broker.peek_topic(&t, n).map(|messages| {
                let json = serde_json::to_string(&messages).unwrap_or_else(|_| "[]".into());
                vec![("messages", json)]
            }),
        },
        ClientFrame::Kick { client, reason } => broker
            .kick(
                &client,
                reason.as_deref().unwrap_or("kicked by operator"),
                &session.describe(),
            )
            .and_then(|_| none()),
    };
    answer(session, id, result);
}

/// Settles a job, answering before the room it frees is filled.
fn settle(
    broker: &Broker,
    session: &Arc<Session>,
    id: Option<&RequestId>,
    tag: u64,
    how: Settle,
    later: &mut Later,
) {
    let settled = || answer(session, id, Ok(Vec::new()));
    if let Err(e) = broker.settle(session, tag, how, settled, later) {
        answer(session, id, Err(e));
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::protocol::push_json_str(&mut out, s);
    out
}

/// Sends a `stats` frame every `interval` until aborted or the client goes away.
fn spawn_watch(
    broker: Broker,
    session: Arc<Session>,
    id: Option<RequestId>,
    interval: Duration,
) -> JoinHandle<()> {
    broker.runtime().clone().spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if session.outbound.is_closed() {
                return;
            }
            let frame = event::stats(id.as_ref(), &broker.snapshot());
            if session.push(OutItem::Text(&frame)).is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(sizes: &[usize]) -> String {
        let lines: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
        lines.join("\n")
    }

    /// Every frame a text is sent as: (payload length, header length).
    fn frames(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let f = frame_at(text, at);
            out.push((f.end - f.start, f.header_len));
            at = f.end + 1;
        }
        out
    }

    #[test]
    fn frames_pack_whole_lines_up_to_the_limit() {
        // Fits: one frame.
        assert_eq!(frames(&lines(&[10, 20])), vec![(31, 2)]);
        // Split at the last line end that fits.
        let half = PACK_BYTES / 2;
        assert_eq!(
            frames(&lines(&[half, half, 5])),
            vec![(half, 4), (half + 1 + 5, 4)]
        );
        // A line longer than the limit goes alone.
        assert_eq!(
            frames(&lines(&[PACK_BYTES + 10, 3])),
            vec![(PACK_BYTES + 10, 10), (3, 2)]
        );
    }

    #[test]
    fn headers_follow_rfc_6455_lengths() {
        for (len, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xff, 0xff]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let text = "x".repeat(len);
            let f = frame_at(&text, 0);
            assert_eq!(&f.header[..f.header_len], &header[..], "{len}");
            assert_eq!(f.end, len);
        }
    }

    #[tokio::test]
    async fn a_write_cut_short_resumes_where_it_stopped() {
        let mut writer = Writer::default();
        writer.batch.text = lines(&[300, 400]);
        writer.frame = Some(frame_at(&writer.batch.text, 0));
        // A socket that takes 7 bytes per write: the frame goes out in pieces.
        let (mut near, mut far) = tokio::io::duplex(7);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
                .await
                .unwrap();
            got
        });
        // Poll the write once and drop it, again and again, until the frame is out.
        let mut cuts = 0;
        while writer.frame.is_some() {
            if futures_util::FutureExt::now_or_never(writer.finish_frame(&mut near)).is_none() {
                cuts += 1;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            cuts >= 100,
            "the 7-byte pipe cut the write short {cuts} times"
        );
        drop(near);
        let got = reader.await.unwrap();
        // 300 + newline + 400 bytes: one frame of 701.
        let mut want = vec![0x81, 126, 2, 189];
        want.extend_from_slice(writer.batch.text.as_bytes());
        assert_eq!(got, want);
        assert_eq!(writer.next, 702);
    }
}
