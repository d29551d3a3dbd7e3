//! The listener: accepts TCP connections, answers plain HTTP (`/healthz`, `/metrics`,
//! the HTTP API under `/v1` in `api/`) and upgrades `/ws` to a WebSocket, all on
//! one port; with TLS set, the same over TLS (`tls.rs`). Browsers' upgrades pass
//! the Origin rule (`origin.rs`).
//!
//! The HTTP request head is read here (bounded in size and time) so that one port
//! serves both; the upgrade then hands the socket, and any bytes read past the
//! head, to the connection, which reads and writes its frames itself.
//!
//! Who gets in: at most `max_connections` WebSockets, at most as many again still
//! sending their request head, and at most `max_connections_per_ip` of both from
//! one address. When accept fails for want of file descriptors, a spare one is
//! given up to answer the waiting connection 503 rather than leave it hanging.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::broker::{Broker, Config};
use crate::refusals::Refusal;

mod api;
mod origin;
mod page;
mod tls;

use origin::OriginRule;

/// Largest HTTP request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How often a failing accept is logged (and how long the loop waits between tries).
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(1);
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
    /// Connections open per address, against `max_connections_per_ip`.
    per_ip: Arc<PerIp>,
    /// One permit per HTTP API request being answered (`max_http_requests`):
    /// apart from the WebSockets', so neither kind can crowd out the other, and
    /// a `confirm=done` waiting for its consumer is not a free connection.
    http_requests: Arc<Semaphore>,
}

/// How many connections each IP address has open (from accept to close, the
/// request head and the WebSocket alike), against a cap.
struct PerIp {
    cap: Option<usize>,
    open: parking_lot::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One connection's place in [`PerIp`], given back when it is dropped.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn new(cap: Option<usize>) -> Arc<PerIp> {
        Arc::new(PerIp {
            cap,
            open: Default::default(),
        })
    }

    /// A place for one more connection from `ip`, unless it has its cap's worth.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let Some(cap) = self.cap else {
            return Some(IpSlot {
                per_ip: self.clone(),
                ip,
            });
        };
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if self.per_ip.cap.is_none() {
            return;
        }
        let mut open = self.per_ip.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A file descriptor kept in reserve: given up when accept fails for want of
/// descriptors, so the connection waiting in the backlog can be accepted and told
/// 503 instead of hanging there; taken back once that is done.
struct SpareFile(parking_lot::Mutex<Option<std::fs::File>>);

impl SpareFile {
    fn open() -> SpareFile {
        SpareFile(parking_lot::Mutex::new(
            std::fs::File::open("/dev/null").ok(),
        ))
    }

    /// Closes the spare; false if there was none to give.
    fn give_up(&self) -> bool {
        self.0.lock().take().is_some()
    }

    fn restore(&self) {
        let mut spare = self.0.lock();
        if spare.is_none() {
            *spare = std::fs::File::open("/dev/null").ok();
        }
    }
}

/// Whether accept failed for want of file descriptors (the process's or the
/// system's).
fn is_out_of_files(e: &std::io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::MFILE.raw_os_error())
        || code == Some(rustix::io::Errno::NFILE.raw_os_error())
}

/// A warning logged at most once per [`ACCEPT_LOG_EVERY`], counting the ones
/// it stood for.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    since: u64,
}

impl RateLimited {
    fn warn(&mut self, text: impl FnOnce(u64) -> String) {
        self.since += 1;
        let now = Instant::now();
        if self.last.is_some_and(|at| now - at < ACCEPT_LOG_EVERY) {
            return;
        }
        tracing::warn!("{}", text(self.since));
        self.last = Some(now);
        self.since = 0;
    }
}

/// Answers a connection accepted on the spare descriptor with 503, then gives
/// the descriptor back to the spare.
async fn refuse_for_want_of_files(stream: tokio::net::TcpStream, spare: Arc<SpareFile>) {
    let mut stream = stream;
    // Its request is read first (briefly): closing on unread bytes would reset
    // the connection, and the reset could destroy the answer.
    let _ = tokio::time::timeout(Duration::from_millis(500), read_head(&mut stream)).await;
    refuse(
        stream,
        503,
        "Service Unavailable",
        "the broker is out of file descriptors\n",
    )
    .await;
    spare.restore();
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
            per_ip: PerIp::new(broker.config().per_ip_cap()),
            http_requests: Arc::new(Semaphore::new(broker.config().max_http_requests)),
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
        let spare = Arc::new(SpareFile::open());
        let mut accept_errors = RateLimited::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    let (stream, addr) = match accepted {
                        Ok(a) => a,
                        Err(e) if is_out_of_files(&e) => {
                            broker.refused(Refusal::NoDescriptors);
                            accept_errors.warn(|n| format!("accept failed ({n} times in the last second): {e}; answering 503"));
                            if spare.give_up() {
                                if let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::from_millis(10), listener.accept()).await {
                                    tasks.spawn(refuse_for_want_of_files(stream, spare.clone()));
                                    continue;
                                }
                                spare.restore();
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Err(e) => {
                            accept_errors.warn(|n| format!("accept failed ({n} times in the last second): {e}"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    // A spare lost to a race for descriptors is taken again as
                    // soon as one frees up.
                    spare.restore();
                    let Some(slot) = door.per_ip.take(addr.ip()) else {
                        broker.refused(Refusal::PerIpFull);
                        if door.tls.is_none() {
                            tasks.spawn(refuse(stream, 503, "Service Unavailable", "too many connections from your address (max_connections_per_ip)\n"));
                        }
                        continue;
                    };
                    let permit = permits.clone().try_acquire_owned().ok();
                    let broker = broker.clone();
                    let door = door.clone();
                    // Plain and TLS connections are tasks of their own types, so a
                    // plain one does not carry the room a TLS stream needs.
                    match door.tls.clone() {
                        None => tasks.spawn(async move {
                            let _slot = slot;
                            let deadline = Instant::now() + broker.config().handshake_timeout;
                            match permit {
                                Some(permit) => handle(broker, &door, stream, addr, deadline, permit).await,
                                None => {
                                    broker.refused(Refusal::ConnectionsFull);
                                    refuse(stream, 503, "Service Unavailable", "too many connections\n").await
                                }
                            }
                        }),
                        Some(acceptor) => tasks.spawn(async move {
                            let _slot = slot;
                            // Full: a TLS handshake just to say so would cost the
                            // most exactly when there is least to spare. Dropped.
                            let Some(permit) = permit else {
                                return broker.refused(Refusal::ConnectionsFull);
                            };
                            // The TLS handshake and the HTTP head share the handshake
                            // timeout; each runs in this task, never in the accept loop.
                            let deadline = Instant::now() + broker.config().handshake_timeout;
                            let tls = Box::pin(tls::accept(&acceptor, &broker, stream, addr, deadline)).await;
                            if let Some(stream) = tls {
                                handle(broker, &door, stream, addr, deadline, permit).await
                            }
                        }),
                    };
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

/// Serves one connection: plain TCP or TLS, each its own instance, so the plain
/// path pays nothing for TLS. Its request head is read and routed first, in a
/// boxed future of its own: the buffers that takes are gone before the
/// connection is served, so an idle WebSocket costs only what serving it needs.
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
    let route = Box::pin(route(&broker, door, &mut stream, addr, deadline)).await;
    // The head is in: this connection no longer waits at the door.
    drop(entry);
    match route {
        Route::Answer(answer) => answer.send(stream).await,
        Route::Gone => {}
        Route::ApiAnswer(reply) => reply.send(&mut stream).await,
        Route::Api(call) => api::serve(broker, stream, addr, *call).await,
        Route::Health => match health(&broker).await {
            Ok(()) => respond(stream, 200, "OK", "text/plain", "ok\n").await,
            Err(why) => refuse(stream, 503, "Service Unavailable", &format!("{why}\n")).await,
        },
        Route::Upgrade(upgrade) => {
            let Upgrade {
                accept,
                leftover,
                token,
                permit,
            } = *upgrade;
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            drop(accept);
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            drop(response);
            let _permit = permit;
            crate::connection::serve(broker, stream, leftover, addr, token).await;
        }
    }
}

/// What a request asks for, decided from its head.
enum Route {
    /// An answer that ends the connection.
    Answer(Answer),
    /// `GET /healthz`: checked (it touches the disk) then answered.
    Health,
    /// `GET /ws` that may open a WebSocket.
    Upgrade(Box<Upgrade>),
    /// A request of the HTTP API, holding its place among `max_http_requests`.
    Api(Box<api::Call>),
    /// The HTTP API's answer to a request it can decide from the head (404, 405, 503).
    ApiAnswer(api::Reply),
    /// The client went before its head was whole: nobody to answer.
    Gone,
}

/// A WebSocket let in: what serving it needs from its request.
struct Upgrade {
    /// The `Sec-WebSocket-Accept` value.
    accept: String,
    /// Bytes that came after the head (a first frame, perhaps).
    leftover: Vec<u8>,
    /// The token in `Authorization: Bearer` or `?token=`.
    token: Option<String>,
    /// Its place among `max_connections`.
    permit: OwnedSemaphorePermit,
}

/// An HTTP answer, then the end of the connection.
struct Answer {
    code: u16,
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn text(code: u16, status: &'static str, body: &str) -> Route {
        Route::Answer(Answer {
            code,
            status,
            content_type: "text/plain",
            body: body.to_string(),
        })
    }

    async fn send<S: AsyncWrite + Unpin>(self, stream: S) {
        respond(
            stream,
            self.code,
            self.status,
            self.content_type,
            &self.body,
        )
        .await
    }
}

/// Reads the request head (by the handshake deadline) and decides what it asks
/// for: every refusal at the door is decided, and counted, here.
async fn route<S>(
    broker: &Broker,
    door: &Door,
    stream: &mut S,
    addr: SocketAddr,
    deadline: Instant,
) -> Route
where
    S: AsyncRead + Unpin,
{
    let head = match tokio::time::timeout_at(deadline, read_head(stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::TooLarge)) => {
            broker.refused(Refusal::HeadTooLarge);
            return Answer::text(
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
            );
        }
        Ok(Err(HeadError::Malformed)) => {
            broker.refused(Refusal::HttpMalformed);
            return Answer::text(400, "Bad Request", "malformed HTTP request\n");
        }
        Ok(Err(HeadError::Io)) => return Route::Gone,
        Err(_) => {
            broker.refused(Refusal::HeadTimeout);
            return Answer::text(
                408,
                "Request Timeout",
                "request head not received in time\n",
            );
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let body_at = match request.parse(&head) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            broker.refused(Refusal::HttpMalformed);
            return Answer::text(400, "Bad Request", "malformed HTTP request\n");
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
        ("GET", "/") => page::index(),
        ("GET", "/switchyard.js") => page::module(),
        ("GET", "/healthz") => Route::Health,
        ("GET", "/metrics") => {
            if let Some((code, status)) = broker.metrics_refusal(header("authorization")) {
                return Answer::text(code, status, "/metrics needs an admin's Bearer token\n");
            }
            Route::Answer(Answer {
                code: 200,
                status: "OK",
                content_type: "text/plain; version=0.0.4",
                body: broker.metrics(),
            })
        }
        ("GET", "/ws") => {
            let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let key = header("sec-websocket-key");
            let version_ok = header("sec-websocket-version") == Some("13");
            let (true, Some(key), true) = (upgrade, key, version_ok) else {
                return Answer::text(
                    426,
                    "Upgrade Required",
                    "this is a WebSocket endpoint: upgrade with Sec-WebSocket-Version 13\n",
                );
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
                door.origins.record_refusal(broker, origin.value, addr);
                return Answer::text(
                    403,
                    "Forbidden",
                    "this Origin may not open a WebSocket here (see allowed_origins)\n",
                );
            }
            let Ok(permit) = door.websockets.clone().try_acquire_owned() else {
                broker.refused(Refusal::ConnectionsFull);
                return Answer::text(503, "Service Unavailable", "too many connections\n");
            };
            Route::Upgrade(Box::new(Upgrade {
                accept: derive_accept_key(key.as_bytes()),
                leftover: head[body_at..].to_vec(),
                token: crate::auth::presented(header("authorization"), query),
                permit,
            }))
        }
        (_, "/healthz" | "/metrics" | "/ws") => {
            Answer::text(405, "Method Not Allowed", "only GET is allowed here\n")
        }
        (_, path) if api::is_api_path(path) => {
            let leftover = head[body_at..].to_vec();
            let mut call = match api::Call::new(method, path, query, request.headers, leftover) {
                Ok(call) => call,
                Err(reply) => return Route::ApiAnswer(reply),
            };
            let Ok(place) = door.http_requests.clone().try_acquire_owned() else {
                broker.refused(Refusal::HttpRequestsFull);
                return Route::ApiAnswer(api::Reply::busy());
            };
            call.hold(place);
            Route::Api(Box::new(call))
        }
        _ => Answer::text(
            404,
            "Not Found",
            "not found: try / (an example page), /ws, /healthz, /metrics or the HTTP API under /v1 (docs/PROTOCOL.md, \"HTTP\")\n",
        ),
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
    if let Some(why) = broker.cluster_down() {
        return Err(why);
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
