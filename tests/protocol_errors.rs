//! Hostile and malformed input: every bad frame gets the error PROTOCOL.md names and
//! the connection stays usable; only the size limit and invalid UTF-8 close it.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use switchyard_broker::Config;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_stays_usable() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    assert_eq!(c.welcome["protocol"], 1);
    assert_eq!(c.welcome["max_payload"], 1048576);
    assert!(c.welcome["server"]
        .as_str()
        .unwrap()
        .starts_with("switchyard/"));

    c.send_text("{not json".into()).await;
    let m = assert_error(&c.recv().await, None, "bad_frame");
    assert!(m.starts_with("malformed JSON"), "{m}");

    c.send_text("[1,2,3]".into()).await;
    assert_eq!(
        assert_error(&c.recv().await, None, "bad_frame"),
        "expected a JSON object"
    );

    let e = c.call(json!({"op":"teleport","id":1})).await;
    assert_eq!(
        assert_error(&e, Some(1), "unknown_op"),
        "unknown op `teleport`"
    );

    let e = c.call(json!({"id":2})).await;
    assert_eq!(assert_error(&e, Some(2), "bad_frame"), "missing field `op`");

    let e = c.call(json!({"op":"pub","id":3,"data":1})).await;
    assert_eq!(
        assert_error(&e, Some(3), "bad_frame"),
        "missing field `topic`"
    );

    let e = c.call(json!({"op":"pub","id":4,"topic":"t"})).await;
    assert_eq!(
        assert_error(&e, Some(4), "bad_frame"),
        "missing field `data`"
    );

    let e = c.call(json!({"op":"ack","id":5,"tag":"seven"})).await;
    assert_eq!(
        assert_error(&e, Some(5), "bad_frame"),
        "field `tag` must be a non-negative integer"
    );

    let e = c
        .call(json!({"op":"pub","id":6,"topic":"a..b","data":1}))
        .await;
    assert_eq!(
        assert_error(&e, Some(6), "bad_name"),
        "topic `a..b`: has an empty token"
    );

    let e = c
        .call(json!({"op":"sub","id":7,"topic":"a.>.b","sid":"s"}))
        .await;
    assert_error(&e, Some(7), "bad_name");

    let e = c
        .call(json!({"op":"send","id":8,"queue":"q*","data":1}))
        .await;
    assert_error(&e, Some(8), "bad_name");

    let e = c
        .call(json!({"op":"pub","id":9,"topic":"x".repeat(256),"data":1}))
        .await;
    assert_error(&e, Some(9), "bad_name");

    let e = c
        .call(json!({"op":"consume","id":10,"queue":"q","cid":"w","prefetch":0}))
        .await;
    assert_error(&e, Some(10), "bad_frame");

    let e = c.call(json!({"op":"ping","id":{"an":"object"}})).await;
    assert_eq!(
        assert_error(&e, None, "bad_frame"),
        "field `id` must be a number or a string"
    );

    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let m = assert_error(&c.recv().await, None, "bad_frame");
    assert!(m.contains("binary"), "{m}");

    // A pub without id that fails still reports, without an id.
    c.send(json!({"op":"pub","topic":"","data":1})).await;
    assert_error(&c.recv().await, None, "bad_name");

    // Unknown fields are ignored; the connection still works.
    assert_eq!(
        c.call(json!({"op":"ping","id":"p","extra":[1,{"x":2}]}))
            .await,
        json!({"ev":"pong","id":"p"})
    );
    b.stop().await;
}

#[tokio::test]
async fn several_objects_in_one_frame_and_a_bad_line_among_them() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.send_text(
        "{\"op\":\"ping\",\"id\":1}\n{\"op\":\"ping\",\"id\":\n{\"op\":\"ping\",\"id\":3}".into(),
    )
    .await;
    assert_eq!(c.recv().await, json!({"ev":"pong","id":1}));
    assert_error(&c.recv().await, None, "bad_frame");
    assert_eq!(c.recv().await, json!({"ev":"pong","id":3}));
    // A pretty-printed object spanning lines is one frame, not three bad ones.
    c.send_text("{\n  \"op\": \"ping\",\n  \"id\": 4\n}".into())
        .await;
    assert_eq!(c.recv().await, json!({"ev":"pong","id":4}));
    b.stop().await;
}

#[tokio::test]
async fn a_frame_over_max_payload_closes_with_1009() {
    let b = TestBroker::with(Config {
        max_payload: 4096,
        ..Config::default()
    })
    .await;
    let mut c = b.raw().await;
    assert_eq!(c.welcome["max_payload"], 4096);
    let big = json!({"op":"pub","topic":"t","data":"x".repeat(5000)});
    c.send(big).await;
    assert_eq!(c.recv_close().await, Some(1009));
    // The broker is fine.
    let mut d = b.raw().await;
    assert_eq!(
        d.call(json!({"op":"ping","id":1})).await,
        json!({"ev":"pong","id":1})
    );
    b.stop().await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = TestBroker::start().await;
    // Hand-made WebSocket: a masked text frame whose payload is not UTF-8.
    let mut s = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    let payload = [0xffu8, 0xfe, 0xfd];
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).await.unwrap();
    // Read frames until the close frame; its code is in its first two payload bytes.
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let mut at = 0;
    let mut close_code = None;
    while at + 2 <= all.len() {
        let opcode = all[at] & 0x0f;
        let len = (all[at + 1] & 0x7f) as usize;
        let (len, start) = match len {
            126 => (
                u16::from_be_bytes([all[at + 2], all[at + 3]]) as usize,
                at + 4,
            ),
            _ => (len, at + 2),
        };
        if opcode == 0x8 {
            close_code = Some(u16::from_be_bytes([all[start], all[start + 1]]));
        }
        at = start + len;
    }
    assert_eq!(close_code, Some(1007));
    b.stop().await;
}
