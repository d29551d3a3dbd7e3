//! An HTTP API request served as a connection of one frame: the frame a
//! WebSocket client would send for it goes through the same parse, the same
//! permission check and the same broker call as on a WebSocket, and its answer
//! is read back from the session's outbound buffer. So an HTTP request can do
//! nothing, and get round no limit, that a WebSocket frame could not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::access::Gate;
use super::requests::{handle_text, ConnState};
use crate::broker::Broker;
use crate::protocol::RequestId;
use crate::session::Session;

/// The `id` every frame run here carries (`"id":1`): what tells its answer from
/// any other frame the session is sent.
pub(crate) const ID: u64 = 1;

/// How the one frame was answered.
pub(crate) enum Outcome {
    /// The frame that answered it (`ok`, `error` or `stats`), parsed.
    Answered(Value),
    /// No answer within the wait.
    TimedOut,
    /// The session ended first: kicked by an operator, or the broker stopping.
    Ended(String),
}

/// What running one frame came to.
pub(crate) struct Exchange {
    pub(crate) outcome: Outcome,
    /// The message a `send` put in its queue, if it got that far: named in a
    /// timeout's answer, since it stays in the queue.
    pub(crate) msg: Option<Arc<str>>,
}

/// Runs `frame` (one JSON object with `"id":1`) as a connection of its own from
/// `addr` would, `token` presented as an upgrade's `Authorization: Bearer` is,
/// and waits up to `wait` for its answer. `what` names the session in the
/// snapshot meanwhile (the request line).
pub(crate) async fn exchange(
    broker: &Broker,
    addr: SocketAddr,
    what: String,
    token: Option<&str>,
    frame: &str,
    wait: Duration,
) -> Exchange {
    let deadline = Instant::now() + wait;
    let peer = broker.open_http_session(addr, what);
    let session = &peer.session;
    let mut conn = ConnState::default();
    conn.gate = Gate::new(broker);
    let presented = match token {
        Some(token) => conn.gate.present(broker, &peer, token).map(|_| ()),
        None => Ok(()),
    };
    match presented {
        Ok(()) => handle_text(broker, &peer, frame, &mut conn),
        // A bad token answers the frame: nothing else would.
        Err(e) => session.send_error(RequestId::from_number_text("1").as_ref(), &e),
    }
    let mut shutdown = broker.shutdown_signal();
    let outcome = loop {
        if let Some(answer) = take_answer(session) {
            break Outcome::Answered(answer);
        }
        if let Some(reason) = session.outbound.kick_reason() {
            break Outcome::Ended(format!("kicked: {reason}"));
        }
        if *shutdown.borrow() {
            break Outcome::Ended("the broker is shutting down".into());
        }
        tokio::select! {
            _ = session.outbound.wait() => {}
            _ = session.outbound.wait_kicked() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break Outcome::TimedOut,
        }
    };
    let msg = conn.last_sent.take();
    drop(conn);
    broker.close_session(&peer, "HTTP request answered");
    Exchange { outcome, msg }
}

/// The answer to the frame, if it is among what the session was sent; the rest
/// is dropped (nothing but the answer is ever sent to such a session).
fn take_answer(session: &Session) -> Option<Value> {
    if session.outbound.frames() == 0 {
        return None;
    }
    let mut batch = crate::outbound::Batch::default();
    session.outbound.take(&mut batch);
    session.outbound.written(&batch);
    batch
        .text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|frame| frame.get("id").and_then(Value::as_u64) == Some(ID))
}
