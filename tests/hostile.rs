//! Clients that close, crowd or speak garbage: the broker answers each properly
//! (issue 11: Close frames, `/healthz` at the cap, HTTP garbage, odd ids).

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use switchyard_broker::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Writes `bytes` and reads the whole answer, failing if it takes over `within`.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8], within: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

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

#[tokio::test]
async fn healthz_and_metrics_are_answered_at_max_connections() {
    let b = TestBroker::with(Config {
        max_connections: 2,
        // Every test client is on 127.0.0.1: this is about the broker-wide cap.
        max_connections_per_ip: Some(0),
        ..Config::default()
    })
    .await;
    let _one = b.raw().await;
    let _two = b.raw().await;
    eventually(&b.broker, "two connections", |s| s.server.connections == 2).await;
    // A third WebSocket is turned away...
    let third = tokio_tungstenite::connect_async(&b.url).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    // ...but the health check and the metrics are still answered.
    for _ in 0..5 {
        let health = http_get_with(b.addr, "/healthz", &[]).await;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    }
    let metrics = http_get_with(b.addr, "/metrics", &[]).await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("\nswitchyard_connections 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nswitchyard_refusals_total{reason=\"connections_full\"} 1\n"),
        "{metrics}"
    );
    b.stop().await;
}

#[tokio::test]
async fn healthz_fails_when_storage_is_not_writable() {
    let b = TestBroker::start().await;
    let dir = b.broker.config().data_dir.clone();
    let health = http_get_with(b.addr, "/healthz", &[]).await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    std::fs::remove_dir_all(&dir).unwrap();
    let health = http_get_with(b.addr, "/healthz", &[]).await;
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("storage"), "{health}");
    b.stop().await;
}

#[tokio::test]
async fn http_garbage_gets_an_immediate_400() {
    let b = TestBroker::with(Config {
        handshake_timeout: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    // The start of a TLS ClientHello, as a TLS client sends to a plain port.
    let client_hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03, 0x5a, 0x1b,
    ];
    let random: Vec<u8> = (0u32..64).map(|i| (i * 97 + 13) as u8).collect();
    let cases: [&[u8]; 4] = [
        client_hello,
        &random,
        b"GET /healthz HTTP/9 x\r\n",
        b"G\x01T / HTTP/1.1\r\n",
    ];
    for bytes in cases {
        let out = exchange(b.addr, bytes, Duration::from_secs(2)).await;
        assert!(
            out.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{bytes:?}: {out}"
        );
    }
    let metrics = http_get_with(b.addr, "/metrics", &[]).await;
    assert!(
        metrics.contains("\nswitchyard_refusals_total{reason=\"http_malformed\"} 4\n"),
        "{metrics}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_query_without_a_token_still_upgrades() {
    let b = TestBroker::start().await;
    let mut c = Raw::connect(&format!("{}?x=1", b.url)).await;
    let pong = c.call(serde_json::json!({"op":"ping","id":1})).await;
    assert_eq!(pong["ev"], "pong", "{pong}");
    b.stop().await;
}

/// The next text frame as it was sent (serde_json cannot read `1e400` into a Value).
async fn next_text(c: &mut Raw) -> String {
    loop {
        match tokio::time::timeout(WAIT, c.ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(_)) => continue,
            other => panic!("no text frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_numeric_id_too_big_for_an_f64_is_echoed_as_sent() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    let long = format!("1{}", "0".repeat(399));
    for id in ["1e400", "-1E+999", long.as_str(), "12345678901234567890123"] {
        c.send_text(format!(r#"{{"op":"ping","id":{id}}}"#)).await;
        let answer = next_text(&mut c).await;
        assert_eq!(answer, format!(r#"{{"ev":"pong","id":{id}}}"#));
        // An error names it too.
        c.send_text(format!(r#"{{"op":"nope","id":{id}}}"#)).await;
        let answer = next_text(&mut c).await;
        assert!(
            answer.starts_with(&format!(r#"{{"ev":"error","id":{id},"#)),
            "{answer}"
        );
    }
    b.stop().await;
}

/// Frames that break RFC 6455 end the connection with a Close of 1002 (protocol
/// error), not a dropped TCP connection: reserved bits, a reserved opcode, an
/// unmasked client frame, a control frame over 125 bytes.
#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let b = TestBroker::start().await;
    let mask = [1u8, 2, 3, 4];
    let masked = |first: u8, payload: &[u8]| -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    };
    let cases: [(&str, Vec<u8>); 4] = [
        ("reserved bits", masked(0x80 | 0x40 | 0x1, b"{}")),
        ("reserved opcode", masked(0x80 | 0x3, b"{}")),
        ("unmasked client frame", vec![0x81, 0x02, b'{', b'}']),
        (
            "control frame over 125 bytes",
            masked(0x80 | 0x9, &[0u8; 126]),
        ),
    ];
    for (what, bytes) in cases {
        let mut c = b.raw().await;
        let tcp = c.tcp();
        tcp.write_all(&bytes).await.unwrap();
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(2), c.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame,
                Ok(Some(Ok(_))) => continue,
                other => panic!("{what}: expected a Close frame, got {other:?}"),
            }
        };
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Protocol), "{what}");
    }
    b.stop().await;
}

/// The broker pings every client; one that answers nothing for two pings (a dead
/// peer, a half-open connection) is closed and its slot freed, while a client
/// that reads (and so answers) stays.
#[tokio::test]
async fn a_client_that_answers_no_ping_is_closed() {
    let b = TestBroker::with(Config {
        ping_interval: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let mut silent = b.raw().await;
    let mut alive = b.raw().await;
    // The live one reads (tungstenite answers each ping as it reads) for 0.8 s;
    // the silent one reads nothing meanwhile.
    let reading = tokio::time::timeout(Duration::from_millis(800), async {
        loop {
            alive.ws.next().await;
        }
    })
    .await;
    assert!(reading.is_err(), "the live client's connection ended");
    eventually(&b.broker, "the silent client to be closed", |s| {
        s.server.connections == 1
    })
    .await;
    // Read what the silent client was sent, as raw frames (reading through
    // tungstenite would answer the pings first): empty pings, then Close(1001).
    let tcp = silent.tcp();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut raw))
        .await
        .expect("the broker ends the connection")
        .unwrap();
    let pings = raw.windows(2).filter(|w| w == &[0x89, 0x00]).count();
    assert!(pings >= 2, "{pings} pings in {raw:x?}");
    let close_at = raw
        .windows(2)
        .position(|w| w[0] == 0x88)
        .expect("a Close frame");
    assert_eq!(
        &raw[close_at + 2..close_at + 4],
        &[0x03, 0xe9],
        "code 1001 in {raw:x?}"
    );
    assert_eq!(
        alive.call(serde_json::json!({"op":"ping","id":1})).await["ev"],
        "pong"
    );
    b.stop().await;
}

/// A broker started with a low soft limit on open files (a distribution's 1,024,
/// here 256) raises it to the hard limit, so connections and logs do not run out
/// of descriptors long before `max_connections`.
#[test]
fn the_broker_raises_its_open_files_limit_to_the_hard_one() {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if hard.is_some_and(|h| h <= 256) {
        eprintln!("skipped: the hard limit here is {hard:?}, nothing to raise to");
        return;
    }
    let dir = temp_data_dir();
    let mut cmd = serve_command("127.0.0.1:0", &dir, &[]);
    limit_open_files(&mut cmd, 256, None);
    let (mut child, _url) = start_serve(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    // "Max open files  SOFT  HARD  files"
    assert_eq!(open_files[3], open_files[4], "{limits}");
    assert_ne!(open_files[3], "256");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes an upgrade request on `s` and reads the answer's status line.
async fn upgrade_status(s: &mut TcpStream) -> String {
    s.write_all(UPGRADE_REQUEST).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match tokio::time::timeout(WAIT, s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!("no status line: {other:?} after {head:?}"),
        }
    }
    String::from_utf8_lossy(&head).trim_end().to_string()
}

/// A TCP connection to `addr` from the loopback address `from` (every 127.x.y.z
/// is this machine's), so one test can be several hosts.
async fn connect_from(from: [u8; 4], addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let b = TestBroker::with(Config {
        max_connections: 100,
        max_connections_per_ip: Some(2),
        ..Config::default()
    })
    .await;
    let host = [127, 0, 0, 2];
    let mut first = connect_from(host, b.addr).await;
    assert_eq!(
        upgrade_status(&mut first).await,
        "HTTP/1.1 101 Switching Protocols"
    );
    // A silent socket (no request yet) counts as well: 100 of them must not take
    // a broker's 100 slots.
    let _silent = connect_from(host, b.addr).await;
    let mut third = connect_from(host, b.addr).await;
    let refused = exchange_on(&mut third).await;
    assert!(
        refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refused}"
    );
    assert!(
        refused.ends_with("too many connections from your address (max_connections_per_ip)\n"),
        "{refused}"
    );
    // Another host is let in.
    let mut other = connect_from([127, 0, 0, 3], b.addr).await;
    assert_eq!(
        upgrade_status(&mut other).await,
        "HTTP/1.1 101 Switching Protocols"
    );
    // A place given back is taken again.
    drop(first);
    let mut again = None;
    let mut refused_meanwhile = 0;
    for _ in 0..100 {
        let mut s = connect_from(host, b.addr).await;
        let status = upgrade_status(&mut s).await;
        if status == "HTTP/1.1 101 Switching Protocols" {
            again = Some(s);
            break;
        }
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        refused_meanwhile += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the address never got its place back");
    // The third connection, and each try before the place was given back.
    let refusals = &b.broker.snapshot().server.refusals;
    assert_eq!(
        refusals["per_ip_full"],
        1 + refused_meanwhile,
        "{refusals:?}"
    );
    b.stop().await;
}

/// Reads what the broker answers on `s` until it closes.
async fn exchange_on(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A masked client frame announcing `len` payload bytes, with only `sent` of them.
fn partial_frame(len: u16, sent: usize) -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | 126];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend(std::iter::repeat_n(b' ', sent));
    f
}

#[tokio::test]
async fn a_frame_begun_must_end_within_frame_timeout() {
    let b = TestBroker::with(Config {
        frame_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut slow = b.raw().await;
    let mut fine = b.raw().await;
    let tcp = slow.tcp();
    let started = std::time::Instant::now();
    tcp.write_all(&partial_frame(1000, 10)).await.unwrap();
    assert_eq!(slow.recv_close().await, Some(1008));
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A client that sends nothing is not timed out (the pings see to it), and
    // whole frames go on being read.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        fine.call(serde_json::json!({"op":"ping","id":1})).await,
        serde_json::json!({"ev":"pong","id":1})
    );
    assert_eq!(b.broker.snapshot().server.refusals["frame_timeout"], 1);
    b.stop().await;
}

#[tokio::test]
async fn unfinished_frames_share_one_budget() {
    let b = TestBroker::with(Config {
        max_inbound: 100_000,
        ..Config::default()
    })
    .await;
    // Headers alone hold nothing: 3 clients announce 40 kB frames, and stall.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = b.raw().await;
        let tcp = c.tcp();
        tcp.write_all(&partial_frame(40_000, 0)).await.unwrap();
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = b.broker.snapshot().server.inbound_bytes;
    assert!(held <= 3 * 4096, "{held}");
    // Bytes that arrive do: 35 kB of each, two fit in 100 kB, the third does not.
    for c in &mut clients {
        let tcp = c.tcp();
        tcp.write_all(&[b' '; 35_000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut last = clients.pop().unwrap();
    assert_eq!(last.recv_close().await, Some(1013));
    let snap = b.broker.snapshot();
    assert_eq!(snap.server.refusals["inbound_budget"], 1);
    assert!(
        snap.server.inbound_bytes >= 70_000,
        "{}",
        snap.server.inbound_bytes
    );
    assert!(
        snap.server.inbound_bytes <= 100_000,
        "{}",
        snap.server.inbound_bytes
    );
    // The first two finish their frames and are served.
    for (i, c) in clients.iter_mut().enumerate() {
        let tcp = c.tcp();
        // The rest of the 40,000 bytes: a ping, padded with spaces.
        let mut rest = format!("{{\"op\":\"ping\",\"id\":{i}}}").into_bytes();
        rest.resize(40_000 - 35_000, b' ');
        tcp.write_all(&rest).await.unwrap();
        assert_eq!(c.recv().await, serde_json::json!({"ev":"pong","id":i}));
    }
    b.stop().await;
}

/// A broker out of file descriptors answers 503 at once (a spare descriptor is
/// given up to say so) instead of leaving connections hanging in the backlog,
/// logs that at most once a second, and serves again once descriptors free up.
#[test]
fn out_of_file_descriptors_is_a_503_not_a_hang() {
    use std::io::{Read, Write};
    let dir = temp_data_dir();
    let mut cmd = serve_command("127.0.0.1:0", &dir, &[]);
    cmd.stderr(std::process::Stdio::piped());
    limit_open_files(&mut cmd, 64, Some(64));
    let (mut child, url) = start_serve(cmd);
    let addr: std::net::SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|a| a.strip_suffix("/ws"))
        .unwrap_or_else(|| panic!("{url}"))
        .parse()
        .unwrap();
    let status = |s: &mut std::net::TcpStream| -> String {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(UPGRADE_REQUEST).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                other => panic!("no answer (a hang?): {other:?} after {head:?}"),
            }
        }
        String::from_utf8_lossy(&head).trim_end().to_string()
    };
    let started = std::time::Instant::now();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        match status(&mut s).as_str() {
            "HTTP/1.1 101 Switching Protocols" => open.push(s),
            "HTTP/1.1 503 Service Unavailable" => {
                let mut rest = String::new();
                let _ = s.read_to_string(&mut rest);
                assert!(
                    rest.ends_with("the broker is out of file descriptors\n"),
                    "{rest}"
                );
                refused += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert!(
        open.len() > 20,
        "{} connections before running out",
        open.len()
    );
    assert!(refused >= 30, "{refused} refused");
    let elapsed = started.elapsed();
    // Free descriptors: served again.
    drop(open);
    let mut served = false;
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        if status(&mut s) == "HTTP/1.1 101 Switching Protocols" {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served, "never served again");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let warnings = log.lines().filter(|l| l.contains("accept failed")).count();
    let most = elapsed.as_secs() as usize + 2;
    assert!(
        (1..=most).contains(&warnings),
        "{warnings} warnings in {elapsed:?}:\n{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Frames that arrive in one read are handled together, in order, each
/// answered as if alone; a bad frame among them ends the connection there, after
/// the answers to the frames before it and with nothing of those after it done.
#[tokio::test]
async fn frames_read_together_are_handled_in_order_up_to_a_bad_one() {
    let b = TestBroker::start().await;
    let mask = [9u8, 8, 7, 6];
    let masked = |payload: &[u8]| -> Vec<u8> {
        let mut f = vec![0x81, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    };
    let mut c = b.raw().await;
    let mut bytes = Vec::new();
    for id in 1..=5 {
        bytes.extend(masked(
            serde_json::json!({"op":"ping","id":id})
                .to_string()
                .as_bytes(),
        ));
    }
    bytes.extend(masked(&[0xff, 0xfe]));
    bytes.extend(masked(
        serde_json::json!({"op":"send","id":7,"queue":"q","data":7})
            .to_string()
            .as_bytes(),
    ));
    c.tcp().write_all(&bytes).await.unwrap();
    let mut ids = Vec::new();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), c.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                for line in t.as_str().lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    ids.push(v["id"].as_u64().unwrap());
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("expected answers then a Close, got {other:?}"),
        }
    };
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(close, Some(1007));
    let q = b.broker.snapshot().queues;
    assert!(
        q.is_empty(),
        "the frame after the bad one was not run: {q:?}"
    );
    b.stop().await;
}
