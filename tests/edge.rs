//! The broker's front door over real sockets: the browser Origin rule on the
//! WebSocket upgrade, and TLS (`wss://`, `https://`) with a CA made at run time.

mod common;

use std::net::SocketAddr;

use common::TestBroker;
use switchyard_broker::stats::EventKind;
use switchyard_broker::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` and reads the response until the server closes or the head ends.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            // A 101 keeps the socket open: its head is all there is to read.
            if buf.starts_with(b"HTTP/1.1 101") && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(common::WAIT, read)
        .await
        .expect("an answer in time");
    String::from_utf8_lossy(&buf).into_owned()
}

fn upgrade_request(host: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    )
}

/// The status code the broker answers a WebSocket upgrade with.
async fn upgrade_status(addr: SocketAddr, origin: Option<&str>) -> u16 {
    let stream = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(stream, &upgrade_request(&addr.to_string(), origin)).await;
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

async fn get<S: AsyncRead + AsyncWrite + Unpin>(stream: S, host: &str, path: &str) -> String {
    exchange(
        stream,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

fn with_origins(allowed: &[&str]) -> Config {
    let mut config = Config::default();
    config.security.allowed_origins = allowed.iter().map(|s| s.to_string()).collect();
    config
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_shown() {
    let b = TestBroker::with(with_origins(&["https://app.example.com"])).await;
    let answer = exchange(
        TcpStream::connect(b.addr).await.unwrap(),
        &upgrade_request(&b.addr.to_string(), Some("http://evil.example")),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(answer.contains("Origin"), "a short body says why: {answer}");

    let metrics = get(TcpStream::connect(b.addr).await.unwrap(), "x", "/metrics").await;
    assert!(
        metrics.contains("switchyard_refused_upgrades_total{reason=\"origin\"} 1\n"),
        "{metrics}"
    );
    let events = b.broker.snapshot().events;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Refused)
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert!(
        refused[0].text.contains("http://evil.example"),
        "{refused:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn same_origin_no_origin_and_allowed_origins_are_let_in() {
    let b = TestBroker::with(with_origins(&["https://App.Example.com:443"])).await;
    let port = b.addr.port();
    assert_eq!(upgrade_status(b.addr, None).await, 101);
    assert_eq!(
        upgrade_status(b.addr, Some(&format!("http://127.0.0.1:{port}"))).await,
        101
    );
    assert_eq!(
        upgrade_status(b.addr, Some("https://app.example.com")).await,
        101
    );
    // Same host, another port: another origin.
    assert_eq!(
        upgrade_status(b.addr, Some(&format!("http://127.0.0.1:{}", port + 1))).await,
        403
    );
    assert_eq!(upgrade_status(b.addr, Some("null")).await, 403);
    b.stop().await;
}

#[tokio::test]
async fn control_characters_in_a_refused_origin_stay_out_of_the_event_log() {
    let b = TestBroker::start().await;
    assert_eq!(
        // httparse refuses ESC itself; a C1 CSI (U+009B) or a tab gets through.
        upgrade_status(b.addr, Some("http://e\u{9b}31m\tvil.example")).await,
        403
    );
    let events = b.broker.snapshot().events;
    let line = events
        .iter()
        .find(|e| e.kind == EventKind::Refused)
        .expect("the refusal is an event");
    assert!(!line.text.chars().any(|c| c.is_control()), "{line:?}");
    // Later refusals within the second are counted, not each written.
    for _ in 0..3 {
        assert_eq!(
            upgrade_status(b.addr, Some("http://evil.example")).await,
            403
        );
    }
    let snap = b.broker.snapshot();
    assert_eq!(snap.server.refused_origin, 4);
    assert!(
        snap.events
            .iter()
            .filter(|e| e.kind == EventKind::Refused)
            .count()
            < 4
    );
    b.stop().await;
}
