//! One WebSocket connection: a single task that reads client frames, runs them
//! against the broker, and writes the connection's outbound buffer in batches.
//!
//! One task per socket (no split, no lock on the stream): it `select!`s over the
//! socket and its outbound buffer. Waiting frames are already one newline-separated
//! text; the writer sends it as text frames of up to [`PACK_BYTES`], straight from
//! that buffer to the socket.

mod access;
mod requests;
mod writer;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::broker::{welcome, Broker, Peer};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::event;
use crate::refusals::Refusal;
use access::Gate;
use requests::{handle_text, ConnState};
use std::sync::Arc;
use writer::Writer;

/// Pings in a row a client may leave unanswered before it is closed.
const UNANSWERED_PINGS: u32 = 2;
/// How long a kicked or closing client gets to take its last frames.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);

/// Serves one upgraded connection until it closes, is kicked, or the broker stops.
///
/// `token` is the one the upgrade request presented (`Authorization: Bearer` or
/// `?token=`), if any: taken as a `hello` with that token would be.
pub(crate) async fn serve<S>(
    broker: Broker,
    ws: WebSocketStream<S>,
    addr: SocketAddr,
    token: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = broker.open_session(addr);
    let span = tracing::info_span!("conn", client = %peer.session.name_id);
    run(broker, ws, peer, token).instrument(span).await
}

async fn run<S>(broker: Broker, mut ws: WebSocketStream<S>, peer: Arc<Peer>, token: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session = &peer.session;
    session.send_text(welcome(&broker, session));
    let mut shutdown = broker.shutdown_signal();
    let mut writer = Writer::default();
    let mut conn = ConnState::default();
    conn.gate = Gate::new(&broker);
    if let Some(token) = token {
        if let Err(e) = conn.gate.present(&broker, &peer, &token) {
            session.send_error(None, &e);
        }
    }

    // Pings find dead peers: a half-open TCP connection otherwise holds its slot
    // (and its buffers) for good. Anything the client sends counts as an answer.
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + broker.config().ping_interval,
        broker.config().ping_interval,
    );
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered = 0u32;

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
                r = writer.write(&mut ws, session) => r,
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
        // After what was waiting went out: the client sees why.
        if let Some(reason) = conn.gate.closing() {
            let reason = reason.to_string();
            goodbye(&mut ws, &mut writer, None, CloseCode::Policy, &reason).await;
            break reason;
        }
        let auth_deadline = conn.gate.deadline();
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = session.outbound.wait() => {}
            _ = sleep_until_some(auth_deadline) => conn.gate.expire(),
            _ = pings.tick() => {
                if unanswered >= UNANSWERED_PINGS {
                    session.refused(Refusal::PingTimeout);
                    let reason = format!("no answer to {unanswered} pings");
                    goodbye(&mut ws, &mut writer, None, CloseCode::Away, &reason).await;
                    break reason;
                }
                unanswered += 1;
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break "write failed".into();
                }
            }
            incoming = ws.next() => match incoming.inspect(|_| unanswered = 0) {
                Some(Ok(Message::Text(text))) => {
                    handle_text(&broker, &peer, text.as_str(), &mut conn);
                }
                Some(Ok(Message::Binary(_))) => {
                    session.send_error(None, &BrokerError::new(
                        ErrorCode::BadFrame,
                        "binary frames are not accepted: send JSON in text frames",
                    ));
                }
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite queued the pong; flushing sends it.
                    if ws.flush().await.is_err() {
                        break "write failed".into();
                    }
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    // tungstenite queued a Close with the client's code: send it and
                    // end the TCP connection cleanly, or the client sees 1006.
                    answer_close(&mut ws).await;
                    break "closed by client".into();
                }
                None => break "closed by client".into(),
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    session.refused(Refusal::FrameTooLarge);
                    let reason = format!("frame of {size} bytes is over max_payload {max_size}");
                    goodbye(&mut ws, &mut writer, None, CloseCode::Size, &reason).await;
                    break reason;
                }
                Some(Err(WsError::Utf8(_))) => {
                    session.refused(Refusal::InvalidUtf8);
                    goodbye(&mut ws, &mut writer, None, CloseCode::Invalid, "text frame is not valid UTF-8").await;
                    break "invalid UTF-8".into();
                }
                Some(Err(WsError::Protocol(violation))) => {
                    session.refused(Refusal::ProtocolViolation);
                    // RFC 6455 §7.4.1: a protocol error closes with 1002, saying which.
                    let reason = format!("protocol violation: {violation}");
                    goodbye(&mut ws, &mut writer, None, CloseCode::Protocol, &reason).await;
                    break reason;
                }
                Some(Err(e)) => break format!("read failed: {e}"),
            },
        }
    };
    if let Some(task) = conn.watch {
        task.abort();
    }
    tracing::debug!("connection ends: {why}");
    broker.close_session(&peer, &why);
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

/// Flushes the Close reply tungstenite queued when the client's Close arrived, then
/// shuts the stream down (a TLS close_notify, a FIN), within [`GOODBYE_TIMEOUT`].
async fn answer_close<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        // `ConnectionClosed` once the reply is out: the closing handshake is done.
        let _ = ws.flush().await;
        let _ = ws.get_mut().shutdown().await;
    })
    .await;
}

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
