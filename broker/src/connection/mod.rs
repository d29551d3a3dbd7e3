//! One WebSocket connection: a single task that reads client frames, runs them
//! against the broker, and writes the connection's outbound buffer in batches.
//!
//! One task per socket (no split, no lock on the stream): it `select!`s over the
//! socket and its outbound buffer. Frames are read by the broker's own reader
//! (`frames.rs`), which knows when an unfinished frame began and what every
//! connection holds; waiting frames are already one newline-separated text, which
//! the writer sends as text frames of up to [`PACK_BYTES`], straight from that
//! buffer to the socket.

mod access;
mod exchange;
mod frames;
mod requests;
mod watching;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::broker::{welcome, Broker, Peer};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::event;
use crate::refusals::Refusal;
use access::Gate;
pub(crate) use exchange::{exchange, Outcome, ID as EXCHANGE_ID};
pub(crate) use frames::ReadBudget;
use frames::{FrameReader, Incoming, ReadError};
use requests::{handle_text, ConnState};
use writer::Writer;

/// Frames handled, at most, before what they caused is written.
const BATCH_FRAMES: usize = 64;

/// Pings in a row a client may leave unanswered before it is closed.
const UNANSWERED_PINGS: u32 = 2;
/// How long a ping or a pong may take to be written.
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kicked or closing client gets to take its last frames.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);

/// Close codes the broker sends (RFC 6455 §7.4.1).
mod close {
    pub(super) const NORMAL: u16 = 1000;
    pub(super) const AWAY: u16 = 1001;
    pub(super) const PROTOCOL: u16 = 1002;
    pub(super) const INVALID: u16 = 1007;
    pub(super) const POLICY: u16 = 1008;
    pub(super) const SIZE: u16 = 1009;
    pub(super) const AGAIN: u16 = 1013;
}

/// Serves one upgraded connection until it closes, is kicked, or the broker stops.
///
/// `leftover` is what followed the HTTP head in its read; `token` is the one the
/// upgrade request presented (`Authorization: Bearer` or `?token=`), if any: taken
/// as a `hello` with that token would be.
pub(crate) async fn serve<S>(
    broker: Broker,
    stream: S,
    leftover: Vec<u8>,
    addr: SocketAddr,
    token: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = broker.open_session(addr);
    let span = tracing::info_span!("conn", client = %peer.session.name_id);
    let config = broker.config();
    let reader = FrameReader::new(
        leftover,
        config.max_payload,
        config.frame_timeout,
        broker.read_budget(),
        broker.activity().traffic.clone(),
    );
    run(broker, stream, reader, peer, token)
        .instrument(span)
        .await
}

async fn run<S>(
    broker: Broker,
    mut stream: S,
    mut reader: FrameReader,
    peer: Arc<Peer>,
    token: Option<String>,
) where
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
    let mut batched = 0usize;

    let why: String = loop {
        if let Some(reason) = session.outbound.kick_reason() {
            let last = event::kicked(&reason);
            goodbye(
                &mut stream,
                &mut writer,
                Some(&last),
                close::POLICY,
                &reason,
            )
            .await;
            break format!("kicked: {reason}");
        }
        // Frames a read brought are handled before what they caused is written
        // (a client sending one message or ack per frame then costs one write per
        // read, not per frame), up to BATCH_FRAMES, so a flood still gets answers.
        let batching = batched < BATCH_FRAMES && reader.holds_frame();
        if session.outbound.frames() > 0 && !batching {
            batched = 0;
            let writing = tokio::time::Instant::now();
            let written = tokio::select! {
                r = writer.write(&mut stream, session) => r,
                _ = session.outbound.wait_kicked() => Ok(()),
                _ = shutdown.changed() => Ok(()),
            };
            // The broker did not read meanwhile: a frame under way is not
            // charged for that time.
            reader.excuse(writing.elapsed());
            if let Err(e) = written {
                break format!("write failed: {e}");
            }
            continue;
        }
        if *shutdown.borrow() {
            let reason = "broker shutting down";
            goodbye(&mut stream, &mut writer, None, close::AWAY, reason).await;
            break reason.into();
        }
        // After what was waiting went out: the client sees why.
        if let Some(reason) = conn.gate.closing() {
            let reason = reason.to_string();
            goodbye(&mut stream, &mut writer, None, close::POLICY, &reason).await;
            break reason;
        }
        let auth_deadline = conn.gate.deadline();
        tokio::select! {
            incoming = reader.next(&mut stream) => {
                unanswered = 0;
                batched += 1;
                let closed = match incoming {
                    Ok(Incoming::Text(text)) => {
                        // Wake-ups held over every frame this read brought: a
                        // publisher sending one message per frame wakes each
                        // subscriber's writer once per read, not per message.
                        // Subscribers past their slow mark that are reading
                        // are listed, and waited for after (pacing.rs).
                        let listing = crate::pacing::listing();
                        let stopped = {
                            let _held = crate::outbound::hold_wakes();
                            handle_text(&broker, &peer, text, &mut conn);
                            handle_buffered(&broker, &peer, &mut reader, &mut conn, &mut batched)
                        };
                        let slow = listing.take();
                        if !slow.is_empty() {
                            broker.pace(session, slow).await;
                        }
                        match stopped {
                            Some(e) => Some(refuse(&mut stream, &mut writer, session, broker.config().frame_timeout, e).await),
                            None => None,
                        }
                    }
                    Ok(Incoming::Binary) => {
                        session.send_error(None, &BrokerError::new(
                            ErrorCode::BadFrame,
                            "binary frames are not accepted: send JSON in text frames",
                        ));
                        None
                    }
                    Ok(Incoming::Ping(payload)) => {
                        let pong = payload.to_vec();
                        control_within(&mut stream, 0xa, &pong).await.err()
                    }
                    Ok(Incoming::Pong) => None,
                    Ok(Incoming::Close(code)) => {
                        // Answered with the client's code, then the TCP connection
                        // ends cleanly, or the client sees 1006.
                        let code = code.map_or(close::NORMAL, |(code, _)| code);
                        answer_close(&mut stream, code).await;
                        Some("closed by client".into())
                    }
                    Err(e) => Some(refuse(&mut stream, &mut writer, session, broker.config().frame_timeout, e).await),
                };
                if let Some(why) = closed {
                    break why;
                }
            }
            _ = shutdown.changed() => {}
            _ = session.outbound.wait(), if !batching => {}
            _ = sleep_until_some(auth_deadline) => conn.gate.expire(),
            _ = pings.tick() => {
                reader.release_if_idle();
                if unanswered >= UNANSWERED_PINGS {
                    session.refused(Refusal::PingTimeout);
                    let reason = format!("no answer to {unanswered} pings");
                    goodbye(&mut stream, &mut writer, None, close::AWAY, &reason).await;
                    break reason;
                }
                unanswered += 1;
                if let Err(why) = control_within(&mut stream, 0x9, &[]).await {
                    break why;
                }
            }
        }
    };
    // Its watch and tail stop with it.
    drop(conn);
    drop(reader);
    tracing::debug!("connection ends: {why}");
    broker.close_session(&peer, &why);
}

/// Handles every whole text frame already in the reader's buffer, up to
/// [`BATCH_FRAMES`] in all, without reading; stops early if the connection is
/// closing or kicked, or once a frame filled a slow reader's buffer (its
/// publisher is paced before the next: `pacing.rs`). A bad frame among them is returned, to end the connection
/// as it would alone.
fn handle_buffered(
    broker: &Broker,
    peer: &Arc<Peer>,
    reader: &mut FrameReader,
    conn: &mut ConnState,
    batched: &mut usize,
) -> Option<ReadError> {
    while *batched < BATCH_FRAMES
        && conn.gate.closing().is_none()
        && peer.session.outbound.kick_reason().is_none()
        && !crate::pacing::listed_any()
    {
        match reader.next_buffered_text()? {
            Ok(text) => handle_text(broker, peer, text, conn),
            Err(e) => return Some(e),
        }
        *batched += 1;
    }
    None
}

/// Writes a ping or a pong, within [`CONTROL_WRITE_TIMEOUT`]: a client that
/// sends pings and never reads must not hold its task (and slot) in a write.
async fn control_within<S>(stream: &mut S, opcode: u8, payload: &[u8]) -> Result<(), String>
where
    S: AsyncWrite + Unpin,
{
    match tokio::time::timeout(
        CONTROL_WRITE_TIMEOUT,
        writer::control(stream, opcode, payload),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!(
            "a control frame not written within {CONTROL_WRITE_TIMEOUT:?}"
        )),
    }
}

/// Ends a connection whose reading failed: the Close code that says why (RFC
/// 6455 §7.4.1), counted; returns the reason for the log.
async fn refuse<S>(
    stream: &mut S,
    writer: &mut Writer,
    session: &crate::session::Session,
    timeout: Duration,
    e: ReadError,
) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (refusal, code, reason) = match e {
        ReadError::Eof => return "closed by client".into(),
        ReadError::Io(e) => return format!("read failed: {e}"),
        ReadError::TooLong { size, max } => (
            Refusal::FrameTooLarge,
            close::SIZE,
            format!("frame of {size} bytes is over max_payload {max}"),
        ),
        ReadError::Utf8 => (
            Refusal::InvalidUtf8,
            close::INVALID,
            "text frame is not valid UTF-8".to_string(),
        ),
        ReadError::Protocol(rule) => (
            Refusal::ProtocolViolation,
            close::PROTOCOL,
            format!("protocol violation: {rule}"),
        ),
        ReadError::Timeout => (
            Refusal::FrameTimeout,
            close::POLICY,
            format!("a frame begun was not complete within frame_timeout ({timeout:?})"),
        ),
        ReadError::Busy { needed, max } => (
            Refusal::InboundBudget,
            close::AGAIN,
            format!("broker busy: {needed} more bytes of unfinished frames would pass max_inbound {max}"),
        ),
    };
    session.refused(refusal);
    // The answers to frames read before the bad one go out first: frames read
    // together are handled before anything is written, and each was answered.
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        while session.outbound.frames() > 0 {
            writer.write(stream, session).await?;
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    goodbye(stream, writer, None, code, &reason).await;
    reason
}

/// Sends a last frame (best effort) and a close frame, then ends the TCP
/// connection, all within [`GOODBYE_TIMEOUT`]. A frame the writer had begun is
/// finished first; the rest of its batch is dropped.
async fn goodbye<S>(
    stream: &mut S,
    writer: &mut Writer,
    last: Option<&str>,
    code: u16,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        writer.finish_frame(stream).await?;
        if let Some(text) = last {
            writer::text(stream, text).await?;
        }
        writer::control(stream, 0x8, &writer::close_payload(code, reason)).await?;
        linger(stream).await;
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Answers a client's Close with the same code, then ends the TCP connection,
/// within [`GOODBYE_TIMEOUT`].
async fn answer_close<S>(stream: &mut S, code: u16)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        if writer::control(stream, 0x8, &code.to_be_bytes())
            .await
            .is_ok()
        {
            linger(stream).await;
        }
    })
    .await;
}

/// Ends the write side (a TLS close_notify, a FIN) and reads what the client
/// still sends until it closes too: closing with unread bytes would reset the
/// connection, and a reset can destroy the Close frame before the client reads
/// it. The caller's timeout bounds the wait.
async fn linger<S>(stream: &mut S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
