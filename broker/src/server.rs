//! The listener: accepts TCP connections, answers plain HTTP (`/healthz`, `/metrics`)
//! and upgrades `/ws` to a WebSocket, all on one port; with TLS set, the same over
//! TLS (`tls.rs`). Browsers' upgrades pass the Origin rule (`origin.rs`).
//!
//! The HTTP request head is read here (bounded in size and time) so that one port
//! serves both; the upgrade then hands the already-read bytes to tungstenite. The
//! WebSocket is configured from the broker's limits, not tungstenite's defaults
//! (unbounded write buffer, 64 MiB messages, 128 KiB read buffer per connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::broker::{Broker, Config};
use crate::refusals::Refusal;

mod origin;
mod tls;

use origin::OriginRule;

/// Largest HTTP request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Per-connection read buffer: small, so idle connections cost little.
const READ_BUFFER: usize = 16 * 1024;
/// How long shutdown waits for connections to say goodbye.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound, not yet running, broker server.
pub struct Server {
    broker: Broker,
    listener: TcpListener,
    door: Arc<Door>,
}

/// What every connection passes through before it is served: TLS, if set, and
/// the Origin rule.
struct Door {
    origins: OriginRule,
    tls: Option<TlsAcceptor>,
    /// One permit per open WebSocket (`max_connections`), taken at the upgrade:
    /// short HTTP requests (`/healthz`, `/metrics`) never count against it, so a
    /// broker at the cap still answers its health checks.
    websockets: Arc<Semaphore>,
}

impl Server {
    /// Binds the listen address and creates the broker. Call from a tokio runtime.
    pub async fn bind(config: Config) -> std::io::Result<Server> {
        // Before the port and the data directory: a bad certificate touches neither.
        let tls = config
            .security
            .tls
            .as_ref()
            .map(tls::acceptor)
            .transpose()?;
        // Each error names what failed and where, so an operator is never told the
        // port is the problem when it is the data directory (or the reverse).
        let listen = config.listen;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        // Its errors name their file or the data directory already.
        let broker = tokio::task::spawn_blocking(move || Broker::open(config))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(e.message))?;
        broker.set_listen(listener.local_addr()?);
        let door = Arc::new(Door {
            origins: OriginRule::new(&broker.config().security.allowed_origins),
            tls,
            websockets: Arc::new(Semaphore::new(broker.config().max_connections)),
        });
        Ok(Server {
            broker,
            listener,
            door,
        })
    }

    /// The address it listens on (with the port picked, for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The WebSocket URL clients connect to: `wss://` when TLS is on.
    pub fn url(&self) -> String {
        let scheme = if self.door.tls.is_some() { "wss" } else { "ws" };
        match self.listener.local_addr() {
            Ok(addr) => format!("{scheme}://{addr}/ws"),
            Err(_) => format!("{scheme}://?/ws"),
        }
    }

    /// The broker it serves.
    pub fn broker(&self) -> Broker {
        self.broker.clone()
    }

    /// Serves until [`Broker::shutdown`] is called, then closes every connection
    /// (each is told and flushed) and returns.
    pub async fn run(self) {
        let Server {
            broker,
            listener,
            door,
        } = self;
        let config = broker.config().clone();
        // Connections still in their TLS handshake or HTTP request head: as many
        // again as `max_connections`, apart from the WebSocket permits.
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let mut shutdown = broker.shutdown_signal();
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    let (stream, addr) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, don't spin.
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let permit = permits.clone().try_acquire_owned().ok();
                    let broker = broker.clone();
                    let door = door.clone();
                    tasks.spawn(async move {
                        // The TLS handshake and the HTTP head share the handshake
                        // timeout; each runs in this task, never in the accept loop.
                        let deadline = Instant::now() + broker.config().handshake_timeout;
                        match (permit, &door.tls) {
                            (Some(permit), None) => handle(broker, &door, stream, addr, deadline, permit).await,
                            (Some(permit), Some(acceptor)) => {
                                if let Some(stream) = tls::accept(acceptor, &broker, stream, addr, deadline).await {
                                    handle(broker, &door, stream, addr, deadline, permit).await
                                }
                            }
                            (None, None) => {
                                broker.refused(Refusal::ConnectionsFull);
                                refuse(stream, 503, "Service Unavailable", "too many connections\n").await
                            }
                            // Full: a TLS handshake just to say so would cost the
                            // most exactly when there is least to spare. Dropped.
                            (None, Some(_)) => broker.refused(Refusal::ConnectionsFull),
                        }
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        tracing::info!("shutting down: telling {} connections", tasks.len());
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
        }
        let closing = broker.clone();
        let _ = tokio::task::spawn_blocking(move || closing.close_storage()).await;
    }
}

/// tungstenite configuration from the broker's limits.
pub(crate) fn ws_config(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(config.max_payload))
        .max_frame_size(Some(config.max_payload))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(config.max_pending.max(1024 * 1024))
}

/// Serves one connection: plain TCP or TLS, each its own instance, so the plain
/// path pays nothing for TLS.
async fn handle<S>(
    broker: Broker,
    door: &Door,
    mut stream: S,
    addr: SocketAddr,
    deadline: Instant,
    entry: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = tokio::time::timeout_at(deadline, read_head(&mut stream)).await;
    // The head is in: this connection no longer waits at the door.
    drop(entry);
    let head = match head {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::TooLarge)) => {
            broker.refused(Refusal::HeadTooLarge);
            return refuse(
                stream,
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
            )
            .await;
        }
        Ok(Err(HeadError::Malformed)) => {
            broker.refused(Refusal::HttpMalformed);
            return refuse(stream, 400, "Bad Request", "malformed HTTP request\n").await;
        }
        Ok(Err(HeadError::Io)) => return,
        Err(_) => {
            broker.refused(Refusal::HeadTimeout);
            return refuse(
                stream,
                408,
                "Request Timeout",
                "request head not received in time\n",
            )
            .await;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let body_at = match request.parse(&head) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            broker.refused(Refusal::HttpMalformed);
            return refuse(stream, 400, "Bad Request", "malformed HTTP request\n").await;
        }
    };
    let (path, query) = request
        .path
        .unwrap_or("")
        .split_once('?')
        .unwrap_or((request.path.unwrap_or(""), ""));
    let method = request.method.unwrap_or("");
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    match (method, path) {
        ("GET", "/healthz") => match health(&broker).await {
            Ok(()) => respond(stream, 200, "OK", "text/plain", "ok\n").await,
            Err(why) => refuse(stream, 503, "Service Unavailable", &format!("{why}\n")).await,
        },
        ("GET", "/metrics") => {
            if let Some((code, status)) = broker.metrics_refusal(header("authorization")) {
                return refuse(
                    stream,
                    code,
                    status,
                    "/metrics needs an admin's Bearer token\n",
                )
                .await;
            }
            let body = broker.metrics();
            respond(stream, 200, "OK", "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/ws") => {
            let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let key = header("sec-websocket-key");
            let version_ok = header("sec-websocket-version") == Some("13");
            let (true, Some(key), true) = (upgrade, key, version_ok) else {
                return refuse(
                    stream,
                    426,
                    "Upgrade Required",
                    "this is a WebSocket endpoint: upgrade with Sec-WebSocket-Version 13\n",
                )
                .await;
            };
            // Every Origin header must pass: a browser sends one, and a second is
            // not a way around the first.
            let host = header("host");
            let refused = request
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("origin"))
                .find(|h| {
                    !std::str::from_utf8(h.value)
                        .is_ok_and(|o| door.origins.admits(o, host, door.tls.is_some()))
                });
            if let Some(origin) = refused {
                door.origins.record_refusal(&broker, origin.value, addr);
                return refuse(
                    stream,
                    403,
                    "Forbidden",
                    "this Origin may not open a WebSocket here (see allowed_origins)\n",
                )
                .await;
            }
            let Ok(_permit) = door.websockets.clone().try_acquire_owned() else {
                broker.refused(Refusal::ConnectionsFull);
                return refuse(stream, 503, "Service Unavailable", "too many connections\n").await;
            };
            let accept = derive_accept_key(key.as_bytes());
            let leftover = head[body_at..].to_vec();
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            let config = ws_config(broker.config());
            let ws =
                WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config))
                    .await;
            let token = crate::auth::presented(header("authorization"), query);
            crate::connection::serve(broker, ws, addr, token).await;
        }
        (_, "/healthz" | "/metrics" | "/ws") => {
            refuse(
                stream,
                405,
                "Method Not Allowed",
                "only GET is allowed here\n",
            )
            .await
        }
        _ => {
            refuse(
                stream,
                404,
                "Not Found",
                "not found: try /ws, /healthz or /metrics\n",
            )
            .await
        }
    }
}

/// Whether the broker is healthy: accepting (not shutting down) and its data
/// directory writable, tried by writing and removing a small file there (no fsync:
/// it finds a full disk, a read-only or vanished directory, not a slow one).
async fn health(broker: &Broker) -> Result<(), String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if *broker.shutdown_signal().borrow() {
        return Err("not accepting: shutting down".into());
    }
    let probe = broker
        .config()
        .data_dir
        .join(format!(".healthz-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    let tried = tokio::task::spawn_blocking(move || {
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("storage not writable: {}: {e}", probe.display()))
    });
    match tokio::time::timeout(Duration::from_secs(2), tried).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("storage check failed: {e}")),
        Err(_) => Err("storage not writable: a write took over 2 s".into()),
    }
}

enum HeadError {
    TooLarge,
    /// Not HTTP (a TLS ClientHello, random bytes) or a request line httparse rejects.
    Malformed,
    Io,
}

/// Reads until the end of the HTTP request head (`\r\n\r\n`), keeping what follows.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Io);
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[scan_from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
        // What can never become a request is refused now, not at the timeout.
        let mut headers = [httparse::EMPTY_HEADER; 64];
        match httparse::Request::new(&mut headers).parse(&buf) {
            Ok(_) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    mut stream: S,
    code: u16,
    status: &str,
    content_type: &str,
    body: &str,
) {
    let head = format!(
        "HTTP/1.1 {code} {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn refuse<S: AsyncWrite + Unpin>(stream: S, code: u16, status: &str, body: &str) {
    respond(stream, code, status, "text/plain", body).await
}
