//! The broker's front door over real sockets: the browser Origin rule on the
//! WebSocket upgrade, and TLS (`wss://`, `https://`) with a CA made at run time.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestBroker;
use switchyard_broker::auth::TlsFiles;
use switchyard_broker::stats::EventKind;
use switchyard_broker::Config;
use switchyard_client::{Client, ConnectOptions};
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

/// A throw-away CA and a certificate it signed for `localhost` and 127.0.0.1, made
/// at run time (no key is ever committed), written where a broker can read them.
struct Pki {
    ca_pem: String,
    files: TlsFiles,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Switchyard test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let dir = common::temp_data_dir().with_extension("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        files,
    }
}

fn tls_config(pki: &Pki) -> Config {
    let mut config = Config::default();
    config.security.tls = Some(pki.files.clone());
    config
}

/// A TLS connection to the broker trusting only the test CA, as an HTTPS client.
async fn tls_connect(pki: &Pki, addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn a_wss_session_runs_end_to_end_with_a_private_ca() {
    let pki = make_pki();
    let b = TestBroker::with(tls_config(&pki)).await;
    assert!(b.url.starts_with("wss://"), "{}", b.url);

    let options = ConnectOptions::new().ca_pem(pki.ca_pem.as_bytes()).unwrap();
    let subscriber = Client::connect_with(&b.url, &options).await.unwrap();
    let mut sub = subscriber.subscribe("orders.>").await.unwrap();
    let publisher = Client::connect_with(&b.url, &options).await.unwrap();
    publisher
        .publish("orders.eu", serde_json::json!({"n": 1}))
        .await
        .unwrap();
    let m = tokio::time::timeout(common::WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.topic.as_str(), m.data["n"].as_i64()),
        ("orders.eu", Some(1))
    );

    let health = get(tls_connect(&pki, b.addr).await, "localhost", "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let metrics = get(tls_connect(&pki, b.addr).await, "localhost", "/metrics").await;
    assert!(metrics.contains("switchyard_connections 2\n"), "{metrics}");

    // A same-origin browser page over https is let in: its Host has no port when
    // the port is 443, and here names the port.
    let upgrade = exchange(
        tls_connect(&pki, b.addr).await,
        &upgrade_request(
            &format!("localhost:{}", b.addr.port()),
            Some(&format!("https://localhost:{}", b.addr.port())),
        ),
    )
    .await;
    assert!(upgrade.starts_with("HTTP/1.1 101"), "{upgrade}");

    // Without the CA, the broker's certificate is not trusted.
    assert!(Client::connect(&b.url).await.is_err());
    subscriber.close().await;
    publisher.close().await;
    b.stop().await;
}

#[tokio::test]
async fn plain_ws_and_http_to_a_tls_port_fail_within_a_second() {
    let pki = make_pki();
    let b = TestBroker::with(tls_config(&pki)).await;
    let plain_url = b.url.replacen("wss://", "ws://", 1);

    let started = Instant::now();
    let attempt = tokio::time::timeout(Duration::from_secs(1), Client::connect(&plain_url)).await;
    assert!(
        matches!(attempt, Ok(Err(_))),
        "a ws:// client must get an error at once, not a hang"
    );
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        get(TcpStream::connect(b.addr).await.unwrap(), "x", "/healthz"),
    )
    .await
    .expect("the broker closes a plain HTTP request on its TLS port");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    assert_eq!(b.broker.snapshot().server.tls_failures, 2);
    // And it goes on serving TLS.
    let options = ConnectOptions::new().ca_pem(pki.ca_pem.as_bytes()).unwrap();
    let client = Client::connect_with(&b.url, &options).await.unwrap();
    client.ping().await.unwrap();
    client.close().await;
    b.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_holds_up_nobody_and_times_out() {
    let pki = make_pki();
    let mut config = tls_config(&pki);
    config.handshake_timeout = Duration::from_millis(300);
    let b = TestBroker::with(config).await;
    // Connects and says nothing.
    let mut silent = TcpStream::connect(b.addr).await.unwrap();

    let options = ConnectOptions::new().ca_pem(pki.ca_pem.as_bytes()).unwrap();
    let client = Client::connect_with(&b.url, &options).await.unwrap();
    client.ping().await.unwrap();

    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection is closed after the handshake timeout"
    );
    assert_eq!(b.broker.snapshot().server.tls_failures, 1);
    client.close().await;
    b.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_broker_at_start_naming_it() {
    let pki = make_pki();
    std::fs::write(&pki.files.cert, "not a certificate").unwrap();
    let mut config = tls_config(&pki);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = common::temp_data_dir();
    let err = switchyard_broker::Server::bind(config)
        .await
        .err()
        .expect("a bad certificate is an error");
    assert!(
        err.to_string()
            .contains(&pki.files.cert.display().to_string()),
        "{err}"
    );
}

/// Runs the `switchyard` binary with `args`, off the runtime; returns its status
/// and output.
async fn run_cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::BIN)
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_cli_and_bench_reach_a_wss_broker_with_ca() {
    let pki = make_pki();
    let b = TestBroker::with(tls_config(&pki)).await;
    let ca = pki.files.cert.with_file_name("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.display().to_string();

    let out = run_cli(
        ["pub", "t.cli", "{\"x\":1}", "--url", &b.url, "--ca", &ca]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"seq\":1"));

    let out = run_cli(["stats", "--url", &b.url].map(String::from).to_vec()).await;
    assert!(!out.status.success(), "no CA, no trust: {out:?}");

    let out = run_cli(
        [
            "bench",
            "--url",
            &b.url,
            "--ca",
            &ca,
            "--seconds",
            "1",
            "--scenarios",
            "pubsub:1",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pubsub"),
        "{out:?}"
    );
    b.stop().await;
}
