//! Just enough of the NATS text protocol over WebSocket to load nats-server the way
//! the Switchyard scenarios load Switchyard: the handshake, and a streaming parser of
//! what the server sends.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::broker::Ws;
use crate::error::BenchError;
use crate::measure::stamp_after;

/// Reads the server's `INFO`, then sends `CONNECT` (without verbose acks) and waits
/// for the `PONG` that answers its `PING`.
pub(crate) async fn handshake(ws: &mut Ws) -> Result<(), BenchError> {
    match ws.next().await {
        Some(Ok(Message::Binary(b))) if b.starts_with(b"INFO") => {}
        Some(Ok(Message::Text(t))) if t.as_str().starts_with("INFO") => {}
        other => {
            return Err(BenchError::Nats(format!(
                "expected INFO from nats-server, got {other:?}"
            )))
        }
    }
    let connect = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n";
    ws.send(Message::binary(connect.as_bytes().to_vec()))
        .await?;
    wait_pong(ws).await
}

/// Reads until a `PONG`; fails on `-ERR`.
pub(crate) async fn wait_pong(ws: &mut Ws) -> Result<(), BenchError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.windows(4).any(|w| w == b"PONG") => return Ok(()),
            Some(Ok(Message::Binary(b))) if b.starts_with(b"-ERR") => {
                return Err(BenchError::Nats(format!(
                    "nats-server: {}",
                    String::from_utf8_lossy(&b)
                )))
            }
            Some(Ok(_)) => continue,
            other => {
                return Err(BenchError::Nats(format!(
                    "expected PONG from nats-server, got {other:?}"
                )))
            }
        }
    }
}

/// A streaming parser of what nats-server sends: `MSG subj sid [reply] len\r\npayload\r\n`,
/// `PING`, `PONG`, `+OK`, `-ERR`, `INFO`; messages may be split across frames.
#[derive(Default)]
pub(crate) struct NatsParser {
    buf: Vec<u8>,
}

impl NatsParser {
    /// Feeds bytes; returns (messages, pings to answer).
    pub(crate) fn feed(&mut self, bytes: &[u8], record: &mut impl FnMut(u64)) -> (u64, u32) {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        let mut msgs = 0;
        let mut pings = 0;
        while let Some(eol) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
            let line = &self.buf[at..at + eol];
            if line.starts_with(b"MSG ") {
                let len: usize = line
                    .rsplit(|&b| b == b' ')
                    .next()
                    .and_then(|l| std::str::from_utf8(l).ok())
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let start = at + eol + 2;
                if self.buf.len() < start + len + 2 {
                    break;
                }
                if let Some(t) = stamp_after(&self.buf[start..start + len], 0) {
                    record(t);
                }
                msgs += 1;
                at = start + len + 2;
            } else {
                if line == b"PING" {
                    pings += 1;
                }
                at += eol + 2;
            }
        }
        self.buf.drain(..at);
        (msgs, pings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_parser_handles_split_messages_and_pings() {
        let mut p = NatsParser::default();
        let mut seen = Vec::new();
        let a = b"MSG a 1 13\r\n{\"t\":42,\"p\":";
        let b = b"}\r\nPING\r\nMSG a 1 reply 7\r\n{\"t\":7}\r\n";
        let (n, pings) = p.feed(a, &mut |t| seen.push(t));
        assert_eq!((n, pings), (0, 0));
        let (n, pings) = p.feed(b, &mut |t| seen.push(t));
        assert_eq!((n, pings), (2, 1));
        assert_eq!(seen, vec![42, 7]);
        assert!(p.buf.is_empty());
    }
}
