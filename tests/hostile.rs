//! Clients that close, crowd or speak garbage: the broker answers each properly
//! (issue 11: Close frames, `/healthz` at the cap, HTTP garbage, odd ids).

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_clients_close_is_answered_with_the_same_code() {
    let b = TestBroker::start().await;
    for code in [CloseCode::Normal, CloseCode::Away, CloseCode::Library(4000)] {
        let mut c = b.raw().await;
        c.ws.send(Message::Close(Some(CloseFrame {
            code,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        // The answer is a Close frame (not a reset, which a client reports as 1006).
        assert_eq!(c.recv_close().await, Some(u16::from(code)));
        // And then the TCP connection ends cleanly.
        let end = tokio::time::timeout(WAIT, c.ws.next()).await.unwrap();
        assert!(end.is_none(), "{end:?}");
    }
    b.stop().await;
}
