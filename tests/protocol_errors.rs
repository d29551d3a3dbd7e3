//! Hostile and malformed input: every bad frame gets the error PROTOCOL.md names and
//! the connection stays usable; only the size limit and invalid UTF-8 close it.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
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
    assert_eq!(b.broker.snapshot().server.refusals["frame_too_large"], 1);
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
    s.write_all(UPGRADE_REQUEST).await.unwrap();
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

/// Declares queue `q{id}` with `field` set to `value`; the reply.
async fn declare_queue(c: &mut Raw, id: u64, field: &str, value: u64) -> Value {
    let mut frame = json!({"op":"declare","id":id,"queue":format!("q{id}"),"durable":false});
    frame[field] = json!(value);
    c.call(frame).await
}

#[tokio::test]
async fn numeric_options_are_checked_against_their_ranges() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    let cases: [(&str, u64, u64, &str); 4] = [
        ("ack_timeout_ms", 100, 99, "from 100 to 86400000"),
        (
            "ack_timeout_ms",
            86_400_000,
            86_400_001,
            "from 100 to 86400000",
        ),
        ("max_attempts", 1, 0, "at least 1"),
        ("max_attempts", u64::from(u32::MAX), 0, "at least 1"),
    ];
    let mut id = 0;
    for (field, inside, outside, range) in cases {
        id += 2;
        let accepted = declare_queue(&mut c, id, field, inside).await;
        assert_eq!(accepted, ok(id, json!({})), "{field}: {inside}");
        let refused = declare_queue(&mut c, id + 1, field, outside).await;
        assert_eq!(
            assert_error(&refused, Some(id + 1), "bad_frame"),
            format!("field `{field}` must be {range}")
        );
    }

    // `prefetch`: 1 and 10,000 consume; 0 and 10,001 do not.
    for (n, prefetch) in [(30, 1u64), (31, 10_000)] {
        let accepted = c
            .call(json!({"op":"consume","id":n,"queue":"rpc","cid":format!("w{n}"),"prefetch":prefetch}))
            .await;
        assert_eq!(accepted, ok(n, json!({})), "prefetch {prefetch}");
    }
    for (n, prefetch) in [(32, 0u64), (33, 10_001)] {
        let refused = c
            .call(json!({"op":"consume","id":n,"queue":"rpc","cid":format!("w{n}"),"prefetch":prefetch}))
            .await;
        assert_eq!(
            assert_error(&refused, Some(n), "bad_frame"),
            "field `prefetch` must be from 1 to 10000"
        );
    }

    // `timeout_ms` of a request: 1 ms and 10 minutes are taken, 0 and one more are not.
    let mut caller = b.raw().await;
    for (n, timeout) in [(40, 0u64), (41, 600_001)] {
        let refused = caller
            .call(json!({"op":"request","id":n,"queue":"rpc","data":1,"timeout_ms":timeout}))
            .await;
        assert_eq!(
            assert_error(&refused, Some(n), "bad_frame"),
            "field `timeout_ms` must be from 1 to 600000"
        );
    }
    let timeout = caller
        .call(json!({"op":"request","id":42,"queue":"nobody.home","data":1,"timeout_ms":1}))
        .await;
    assert_error(&timeout, Some(42), "timeout");
    caller
        .send(json!({"op":"request","id":43,"queue":"rpc","data":7,"timeout_ms":600_000}))
        .await;
    let job = c.recv_ev("job").await;
    assert_eq!(job["data"], 7);
    c.send(json!({"op":"reply","tag":job["tag"],"data":8}))
        .await;
    assert_eq!(caller.recv().await, json!({"ev":"reply","id":43,"data":8}));
    // Every refusal above is counted where an operator looks: 4 declares, 2
    // consumes and 2 requests answered bad_frame, and the one request that timed out.
    let metrics = http_get_with(b.addr, "/metrics", &[]).await;
    for line in [
        "switchyard_error_frames_total{code=\"bad_frame\"} 8",
        "switchyard_error_frames_total{code=\"timeout\"} 1",
        "switchyard_error_frames_total{code=\"limit\"} 0",
    ] {
        assert!(
            metrics.contains(&format!("\n{line}\n")),
            "{line}: {metrics}"
        );
    }
    b.stop().await;
}

/// `n` levels of arrays around a 1: `[[1]]` is 2.
fn nested(n: usize) -> String {
    format!("{}1{}", "[".repeat(n), "]".repeat(n))
}

#[tokio::test]
async fn data_and_headers_nest_at_most_64_levels() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    sub.call(json!({"op":"sub","id":1,"topic":"deep","sid":"s"}))
        .await;
    let mut worker = b.raw().await;
    worker
        .call(json!({"op":"consume","id":1,"queue":"deep","cid":"w"}))
        .await;
    let mut c = b.raw().await;
    let deep64: Value = serde_json::from_str(&nested(64)).unwrap();

    // 64 levels: accepted, delivered, and read back.
    c.send_text(format!(
        r#"{{"op":"pub","id":1,"topic":"deep","data":{}}}"#,
        nested(64)
    ))
    .await;
    assert_eq!(c.recv().await["ev"], "ok");
    assert_eq!(sub.recv_ev("msg").await["data"], deep64);
    c.send_text(format!(
        r#"{{"op":"send","id":2,"queue":"deep","data":{}}}"#,
        nested(64)
    ))
    .await;
    assert_eq!(c.recv().await["ev"], "ok");
    assert_eq!(worker.recv_ev("job").await["data"], deep64);

    // 65 levels: refused, whichever reader sees the frame (an escaped key sends
    // it to serde_json), and for objects as for arrays.
    let objects65 = format!("{}1{}", r#"{"k":"#.repeat(65), "}".repeat(65));
    for (id, frame) in [
        (
            3,
            format!(
                r#"{{"op":"pub","id":3,"topic":"deep","data":{}}}"#,
                nested(65)
            ),
        ),
        (
            4,
            format!(
                r#"{{"op":"send","id":4,"queue":"deep","data":{}}}"#,
                nested(65)
            ),
        ),
        (
            5,
            format!(
                r#"{{"o\u0070":"pub","id":5,"topic":"deep","data":{}}}"#,
                nested(65)
            ),
        ),
        (
            6,
            format!(r#"{{"op":"send","id":6,"queue":"deep","data":{objects65}}}"#),
        ),
        (
            7,
            format!(
                r#"{{"op":"pub","id":7,"topic":"deep","data":{}}}"#,
                nested(200)
            ),
        ),
    ] {
        c.send_text(frame).await;
        assert_eq!(
            assert_error(&c.recv().await, Some(id), "bad_frame"),
            "`data` nests deeper than 64 levels"
        );
    }
    for (id, frame) in [
        (
            8,
            format!(
                r#"{{"op":"pub","id":8,"topic":"deep","data":1,"headers":{{"h":{}}}}}"#,
                nested(64)
            ),
        ),
        (
            9,
            format!(
                r#"{{"op":"send","id":9,"queue":"deep","data":1,"headers":{{"h":{}}}}}"#,
                nested(64)
            ),
        ),
        (
            10,
            format!(
                r#"{{"op":"send","id":10,"qu\u0065ue":"deep","data":1,"headers":{{"h":{}}}}}"#,
                nested(64)
            ),
        ),
    ] {
        c.send_text(frame).await;
        assert_eq!(
            assert_error(&c.recv().await, Some(id), "bad_frame"),
            "`headers` nests deeper than 64 levels"
        );
    }
    // Nothing refused was delivered.
    sub.expect_silence(std::time::Duration::from_millis(100))
        .await;
    worker
        .expect_silence(std::time::Duration::from_millis(100))
        .await;
    b.stop().await;
}
