//! Shared test support: a real broker on port 0, and a raw WebSocket client that
//! speaks the protocol as literal JSON, independent of the broker's client library.

#![allow(dead_code)]

pub mod nats;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchyard_broker::{Broker, Config, Server};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The real `switchyard` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Starts `switchyard serve` on `listen` with `data_dir`; returns the process and
/// the URL it prints.
pub fn serve_process(listen: &str, data_dir: &std::path::Path) -> (std::process::Child, String) {
    serve_process_with(listen, data_dir, &[])
}

/// [`serve_process`] with more flags for `serve`.
pub fn serve_process_with(
    listen: &str,
    data_dir: &std::path::Path,
    flags: &[&str],
) -> (std::process::Child, String) {
    start_serve(serve_command(listen, data_dir, flags))
}

/// The `switchyard serve` command [`serve_process_with`] runs, to adjust first
/// (its stderr, its open-files limit) and then start with [`start_serve`].
pub fn serve_command(
    listen: &str,
    data_dir: &std::path::Path,
    flags: &[&str],
) -> std::process::Command {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(flags)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Sets the open-files limit `cmd`'s process starts under: soft `soft`, hard
/// `hard` (`None`: the hard limit stays as it is).
pub fn limit_open_files(cmd: &mut std::process::Command, soft: u64, hard: Option<u64>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getrlimit and setrlimit are plain system calls, safe between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            limit.current = Some(soft);
            if hard.is_some() {
                limit.maximum = hard;
            }
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)?;
            Ok(())
        });
    }
}

/// Starts a `serve` command and reads the URL it prints first.
pub fn start_serve(mut cmd: std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd.spawn().expect("start switchyard serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the first line");
    let url = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, url)
}

/// An HTTP request that upgrades to a WebSocket, as a client writes it by hand.
pub const UPGRADE_REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker serving on a free loopback port.
pub struct TestBroker {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub broker: Broker,
    task: tokio::task::JoinHandle<()>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::with(Config::default()).await
    }

    pub async fn with(mut config: Config) -> TestBroker {
        config.listen = "127.0.0.1:0".parse().unwrap();
        if config.data_dir == Config::default().data_dir {
            config.data_dir = temp_data_dir();
        }
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr().unwrap();
        let url = server.url();
        let broker = server.broker();
        let task = tokio::spawn(server.run());
        TestBroker {
            url,
            addr,
            broker,
            task,
        }
    }

    pub async fn raw(&self) -> Raw {
        Raw::connect(&self.url).await
    }

    /// Stops the broker and waits for it to finish.
    pub async fn stop(self) {
        self.broker.shutdown();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

/// A fresh, empty data directory for one broker.
pub fn temp_data_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("switchyard-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A WebSocket client that sends and reads raw JSON frames.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub welcome: Value,
    /// Frames already read but not yet taken (a text frame may hold several).
    backlog: std::collections::VecDeque<Value>,
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Raw::welcomed(ws).await
    }

    /// The client on an upgraded socket, once its `welcome` arrived.
    async fn welcomed(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Raw {
        let mut raw = Raw {
            ws,
            welcome: Value::Null,
            backlog: Default::default(),
        };
        raw.welcome = raw.recv().await;
        assert_eq!(raw.welcome["ev"], "welcome");
        raw
    }

    pub fn id(&self) -> String {
        self.welcome["client"].as_str().unwrap().to_string()
    }

    /// Sends a JSON value as one text frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next broker frame (one JSON object), or a panic after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.try_recv(WAIT).await {
            Some(v) => v,
            None => panic!("no frame from the broker within {WAIT:?}"),
        }
    }

    /// The next broker frame, or `None` if none arrives in `wait` or the socket closes.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Text(t)) => {
                    for line in t.as_str().split('\n') {
                        self.backlog
                            .push_back(serde_json::from_str(line).expect("broker frames are JSON"));
                    }
                    return self.backlog.pop_front();
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Asserts that nothing arrives for a while.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(v) = self.try_recv(wait).await {
            panic!("expected no frame, got {v}");
        }
    }

    /// Sends a frame and returns the next frame (its answer, in tests that expect one).
    pub async fn call(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.recv().await
    }

    /// Reads frames until one has `ev` == `ev`, returning it; other frames are dropped.
    pub async fn recv_ev(&mut self, ev: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["ev"] == ev {
                return v;
            }
        }
    }

    /// The TCP socket under the WebSocket, for writing raw bytes (hand-made frames).
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self.ws.get_mut() {
            MaybeTlsStream::Plain(tcp) => tcp,
            _ => panic!("a plain socket"),
        }
    }

    /// Reads until the socket closes, returning the close code if one came.
    pub async fn recv_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("socket did not close within {WAIT:?}"),
                Ok(None) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) => return None,
            }
        }
    }
}

/// `{"ev":"ok","id":id}` plus the given fields.
pub fn ok(id: u64, fields: Value) -> Value {
    let mut v = json!({"ev": "ok", "id": id});
    if let (Some(m), Value::Object(extra)) = (v.as_object_mut(), fields) {
        m.extend(extra);
    }
    v
}

/// Asserts an error frame with this id and code; returns its message.
pub fn assert_error(frame: &Value, id: Option<u64>, code: &str) -> String {
    assert_eq!(frame["ev"], "error", "expected an error, got {frame}");
    assert_eq!(frame["code"], code, "wrong code in {frame}");
    match id {
        Some(id) => assert_eq!(frame["id"], json!(id), "wrong id in {frame}"),
        None => assert!(frame.get("id").is_none(), "unexpected id in {frame}"),
    }
    frame["message"]
        .as_str()
        .expect("error message")
        .to_string()
}

/// Polls a condition on the broker's snapshot until it holds.
pub async fn eventually(
    broker: &Broker,
    what: &str,
    cond: impl Fn(&switchyard_broker::Snapshot) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if cond(&broker.snapshot()) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}: {:#?}",
                broker.snapshot().server
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Raw {
    /// Connects with one extra header on the upgrade request (`Authorization`, say).
    pub async fn connect_with_header(url: &str, name: &str, value: &str) -> Raw {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("a WebSocket URL");
        request.headers_mut().insert(
            name.to_string()
                .parse::<tokio_tungstenite::tungstenite::http::HeaderName>()
                .expect("header name"),
            value.parse().expect("header value"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        Raw::welcomed(ws).await
    }
}

/// A plain HTTP GET with extra header lines (each `Name: value`); the whole response.
pub async fn http_get_with(addr: std::net::SocketAddr, path: &str, headers: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// Stops a broker process as a service manager would (SIGTERM), and waits for it.
pub fn stop(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let _ = child.wait();
}
