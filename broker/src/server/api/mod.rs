//! The HTTP API under `/v1`, for systems that do not speak WebSocket: publish to
//! a topic, send to a queue (confirmed when stored or when done), peek a queue,
//! read the stats. docs/PROTOCOL.md's "HTTP" section is its contract.
//!
//! Each request becomes the WebSocket frame that does the same (`frame.rs`) and
//! runs as a connection of one frame (`crate::connection::exchange`): the same
//! parse, name rules, permission checks and limits as on a WebSocket, never a
//! second path. One request per connection, answered with `Connection: close`:
//! nothing to keep alive means nothing for an idle client to hold. A request
//! takes one of `max_http_requests` places from its head to its answer, apart
//! from the WebSockets' `max_connections`, and its connection counts against
//! `max_connections_per_ip` as any other.

mod body;
mod frame;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::connection::{exchange, Outcome};
use crate::error::{BrokerError, ErrorCode};
use crate::refusals::Refusal;
use body::BodyError;

/// How long a `pub` or `send` waits for its confirm without `?timeout=`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest `?timeout=` (a `request`'s longest `timeout_ms` too).
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How long a peek or the stats may take: answered at once, unless the broker
/// is stopping.
const READ_WAIT: Duration = Duration::from_secs(10);
/// How long a client gets to take its answer and close, once it is written.
const LINGER: Duration = Duration::from_millis(500);

/// Where the HTTP API lives; `/v1` and everything under it is routed here.
pub(super) fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// What an API path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// `POST /v1/topics/{topic}`
    Publish(String),
    /// `POST /v1/queues/{queue}`
    Send(String),
    /// `GET /v1/queues/{queue}/peek`
    Peek(String),
    /// `GET /v1/stats`
    Stats,
}

impl Endpoint {
    /// The endpoint `path` names, if any. A name is taken as it stands: names
    /// hold only characters a URL needs no escape for, and one with a `%` in it
    /// is refused as any bad name is (`bad_name`).
    fn of(path: &str) -> Option<Endpoint> {
        let rest = path.strip_prefix("/v1/")?;
        let named =
            |rest: &str| (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string());
        if rest == "stats" {
            return Some(Endpoint::Stats);
        }
        if let Some(topic) = rest.strip_prefix("topics/") {
            return named(topic).map(Endpoint::Publish);
        }
        let queue = rest.strip_prefix("queues/")?;
        match queue.strip_suffix("/peek") {
            Some(queue) => named(queue).map(Endpoint::Peek),
            None => named(queue).map(Endpoint::Send),
        }
    }

    /// The one method it answers.
    fn method(&self) -> &'static str {
        match self {
            Endpoint::Publish(_) | Endpoint::Send(_) => "POST",
            Endpoint::Peek(_) | Endpoint::Stats => "GET",
        }
    }

    /// The query parameters it takes (`token` is every endpoint's).
    fn parameters(&self) -> &'static [&'static str] {
        match self {
            Endpoint::Publish(_) => &["timeout", "token"],
            Endpoint::Send(_) => &["confirm", "timeout", "ttl", "token"],
            Endpoint::Peek(_) => &["count", "after", "filter", "search", "token"],
            Endpoint::Stats => &["token"],
        }
    }
}

/// An API request whose head was read and routed: what answering it needs.
pub(super) struct Call {
    endpoint: Endpoint,
    /// `POST /v1/queues/jobs`: the session's name in the snapshot meanwhile.
    line: String,
    query: String,
    /// Every request header, name as sent.
    headers: Vec<(String, Vec<u8>)>,
    /// Bytes that came after the head (the body's first, perhaps all of it).
    leftover: Vec<u8>,
    /// Its place among `max_http_requests`, taken by the server.
    place: Option<OwnedSemaphorePermit>,
}

impl Call {
    /// The call a request head makes, or the answer to a path or method that
    /// names nothing here (404, 405).
    pub(super) fn new(
        method: &str,
        path: &str,
        query: &str,
        headers: &[httparse::Header<'_>],
        leftover: Vec<u8>,
    ) -> Result<Call, Reply> {
        let Some(endpoint) = Endpoint::of(path) else {
            let shown: String = path.chars().take(200).collect();
            return Err(Reply::error(
                404,
                ErrorCode::NotFound,
                format!("no endpoint {shown}: the HTTP API has POST /v1/topics/{{topic}}, POST /v1/queues/{{queue}}, GET /v1/queues/{{queue}}/peek and GET /v1/stats"),
            ));
        };
        let allowed = endpoint.method();
        if method != allowed {
            let mut reply = Reply::error(
                405,
                ErrorCode::UnknownOp,
                format!("{path} takes {allowed}, not {method}"),
            );
            reply.allow = Some(allowed);
            return Err(reply);
        }
        Ok(Call {
            line: format!("{method} {path}"),
            endpoint,
            query: query.to_string(),
            headers: headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
            leftover,
            place: None,
        })
    }

    /// Gives the call its place among `max_http_requests`, held until answered.
    pub(super) fn hold(&mut self, place: OwnedSemaphorePermit) {
        self.place = Some(place);
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn headers_named(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// What the query string asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    confirm: &'static str,
    wait: Duration,
    count: u64,
    /// `?ttl=`: the sent message's time to live, in milliseconds.
    ttl_ms: Option<u64>,
    /// A peek's `?after=`, `?filter=` and `?search=` (percent-decoded).
    after: Option<u64>,
    filter: Option<String>,
    search: Option<String>,
}

/// The options of `query` for `endpoint`; a parameter it does not take, or a
/// value it cannot read, is refused (a typo'd `?confirm=` silently ignored would
/// confirm less than its writer thinks).
fn options(endpoint: &Endpoint, query: &str) -> Result<Options, BrokerError> {
    let mut options = Options {
        confirm: "stored",
        wait: DEFAULT_WAIT,
        count: 10,
        ttl_ms: None,
        after: None,
        filter: None,
        search: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !endpoint.parameters().contains(&key) {
            let shown: String = key.chars().take(64).collect();
            let takes = endpoint.parameters().join(", ");
            return Err(bad(format!(
                "unknown parameter `{shown}` (this endpoint takes {takes})"
            )));
        }
        match key {
            "confirm" => {
                options.confirm = match value {
                    "stored" => "stored",
                    "done" => "done",
                    _ => return Err(bad("`confirm` must be stored or done")),
                }
            }
            "timeout" => options.wait = parse_wait(value)?,
            "ttl" => options.ttl_ms = Some(parse_ttl(value)?),
            "count" => {
                options.count = value
                    .parse()
                    .map_err(|_| bad("`count` must be a non-negative integer"))?
            }
            "after" => {
                options.after = Some(
                    value
                        .parse()
                        .map_err(|_| bad("`after` must be a non-negative integer (a `next`)"))?,
                )
            }
            "filter" => options.filter = Some(percent_decoded("filter", value)?),
            "search" => options.search = Some(percent_decoded("search", value)?),
            _ => {}
        }
    }
    Ok(options)
}

/// A query value with its `%XX` escapes and `+` (a space) decoded; it must be
/// UTF-8.
fn percent_decoded(key: &str, value: &str) -> Result<String, BrokerError> {
    let invalid = || bad(format!("`{key}` is not valid percent-encoded UTF-8"));
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(invalid)?;
                let hex = std::str::from_utf8(hex).map_err(|_| invalid())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| invalid())
}

/// A `?ttl=` value: a whole number of `ms`, `s`, `m`, `h` or `d`, within a
/// `send`'s `ttl_ms` range (1 ms to 365 days); in milliseconds.
fn parse_ttl(text: &str) -> Result<u64, BrokerError> {
    const WHAT: &str =
        "`ttl` must be a duration such as 500ms, 30s, 5m, 2h or 7d, from 1ms to 365d";
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad(WHAT))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad(WHAT)),
    };
    let ms = n.checked_mul(scale).ok_or_else(|| bad(WHAT))?;
    if !crate::protocol::TTL_MS.contains(&ms) {
        return Err(bad(WHAT));
    }
    Ok(ms)
}

/// A `?timeout=` value: a whole number of `ms`, `s` or `m`, from 1 ms to 10 min.
fn parse_wait(text: &str) -> Result<Duration, BrokerError> {
    const WHAT: &str = "`timeout` must be a duration such as 500ms, 2s or 1m, from 1ms to 10m";
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad(WHAT))?;
    let wait = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad(WHAT)),
    };
    if wait.is_zero() || wait > MAX_WAIT {
        return Err(bad(WHAT));
    }
    Ok(wait)
}

/// Answers one API request and ends the connection.
pub(super) async fn serve<S>(broker: Broker, mut stream: S, addr: SocketAddr, call: Call)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reply = Box::pin(answer(&broker, &mut stream, addr, &call)).await;
    if let Some(reply) = reply {
        if let Some(code) = reply.code {
            broker.activity().refusals.count_error(code);
        }
        reply.send(&mut stream).await;
    }
    drop(call);
}

/// The answer to a call, reading its body as it needs; `None` when the client
/// went before there was anything to answer.
async fn answer<S>(broker: &Broker, stream: &mut S, addr: SocketAddr, call: &Call) -> Option<Reply>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let token = crate::auth::presented(call.header("authorization"), &call.query);
    // Refused before its body is read: with auth on, nothing is done without one.
    if broker.auth_on() && token.is_none() {
        return Some(Reply::error(
            401,
            ErrorCode::Unauthorized,
            "present a token: Authorization: Bearer TOKEN",
        ));
    }
    let options = match options(&call.endpoint, &call.query) {
        Ok(o) => o,
        Err(e) => return Some(Reply::from_error(&e)),
    };
    let (frame, wait) = match &call.endpoint {
        Endpoint::Publish(topic) => {
            let message = match message(broker, stream, call).await? {
                Ok(m) => m,
                Err(reply) => return Some(reply),
            };
            match frame::publish(topic, &message) {
                Ok(frame) => (frame, options.wait),
                Err(e) => return Some(Reply::from_error(&e)),
            }
        }
        Endpoint::Send(queue) => {
            let mut message = match message(broker, stream, call).await? {
                Ok(m) => m,
                Err(reply) => return Some(reply),
            };
            if options.ttl_ms.is_some() {
                if message.ttl_ms.is_some() {
                    let e = bad(
                        "the time to live comes from `?ttl=` or the envelope's `ttl_ms`, not both",
                    );
                    return Some(Reply::from_error(&e));
                }
                message.ttl_ms = options.ttl_ms;
            }
            (frame::send(queue, &message, options.confirm), options.wait)
        }
        Endpoint::Peek(queue) => (frame::peek(queue, &options), READ_WAIT),
        Endpoint::Stats => (frame::stats(), READ_WAIT),
    };
    // The frame a WebSocket client would send is held to the WebSocket's limit:
    // topic, headers and all.
    let max = broker.config().max_payload;
    if frame.len() > max {
        broker.refused(Refusal::BodyTooLarge);
        return Some(Reply::error(
            413,
            ErrorCode::TooLarge,
            format!(
                "the message makes a frame of {} bytes, over max_payload {max}",
                frame.len()
            ),
        ));
    }
    let done = exchange(
        broker,
        addr,
        call.line.clone(),
        token.as_deref(),
        &frame,
        wait,
    )
    .await;
    let msg = done.msg.as_deref();
    Some(match done.outcome {
        Outcome::Answered(answer) => Reply::of_answer(&call.endpoint, answer, options.confirm, msg),
        Outcome::TimedOut => Reply::timed_out(&call.endpoint, wait, msg),
        Outcome::Ended(why) => Reply::error(503, ErrorCode::Internal, why),
    })
}

/// Reads the body and takes the message out of it: `None` if the client went,
/// else the message or the answer refusing it (each refusal counted).
async fn message<S>(
    broker: &Broker,
    stream: &mut S,
    call: &Call,
) -> Option<Result<frame::Message, Reply>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = broker.config();
    let read = async {
        let length = body::length(
            !call.headers_named("transfer-encoding").is_empty(),
            &call.headers_named("content-length"),
            config.max_payload,
        )?;
        let expect_continue = call
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        let deadline = Instant::now() + config.frame_timeout;
        body::read(
            stream,
            call.leftover.clone(),
            length,
            expect_continue,
            deadline,
        )
        .await
    };
    let refused = match read.await {
        Ok(body) => {
            let message = frame::message(&body, call.header("content-type"), &call.headers);
            return Some(message.map_err(|e| Reply::from_error(&e)));
        }
        Err(BodyError::Gone) => return None,
        Err(BodyError::LengthRequired(why)) => {
            broker.refused(Refusal::LengthRequired);
            Reply::error(411, ErrorCode::BadFrame, why)
        }
        Err(BodyError::BadLength) => Reply::error(
            400,
            ErrorCode::BadFrame,
            "Content-Length must be one non-negative integer",
        ),
        Err(BodyError::TooLarge { size, max }) => {
            broker.refused(Refusal::BodyTooLarge);
            Reply::error(
                413,
                ErrorCode::TooLarge,
                format!("a body of {size} bytes is over max_payload {max}"),
            )
        }
        Err(BodyError::Timeout) => {
            broker.refused(Refusal::BodyTimeout);
            Reply::error(
                408,
                ErrorCode::Timeout,
                format!(
                    "the body was not all in within frame_timeout ({:?})",
                    config.frame_timeout
                ),
            )
        }
    };
    Some(Err(refused))
}

/// An HTTP answer with a JSON body, then the end of the connection.
pub(super) struct Reply {
    status: u16,
    body: Value,
    /// The error code it carries, counted as an `error` frame's would be; `None`
    /// for success, or for an error the exchange's session counted already.
    code: Option<ErrorCode>,
    /// `Allow`, on a 405.
    allow: Option<&'static str>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            code: None,
            allow: None,
        }
    }

    /// `{"error":{"code":...,"message":...}}` with `status`, to be counted.
    fn error(status: u16, code: ErrorCode, message: impl Into<String>) -> Reply {
        let message: String = message.into();
        Reply {
            status,
            body: json!({"error": {"code": code.as_str(), "message": message}}),
            code: Some(code),
            allow: None,
        }
    }

    /// 503: `max_http_requests` requests are being answered already.
    pub(super) fn busy() -> Reply {
        Reply::error(
            503,
            ErrorCode::Limit,
            "too many HTTP requests being answered (max_http_requests)",
        )
    }

    /// A broker error, with the status its code has over HTTP.
    fn from_error(e: &BrokerError) -> Reply {
        Reply::error(status_of(e.code), e.code, e.message.clone())
    }

    /// The answer the exchange's frame got, as an HTTP answer.
    fn of_answer(endpoint: &Endpoint, answer: Value, confirm: &str, msg: Option<&str>) -> Reply {
        let Value::Object(mut fields) = answer else {
            return Reply::error(500, ErrorCode::Internal, "an answer that is not an object");
        };
        if fields.get("ev").and_then(Value::as_str) == Some("error") {
            let code = fields.get("code").cloned().unwrap_or(Value::Null);
            let message = fields.get("message").cloned().unwrap_or(Value::Null);
            let status = serde_json::from_value::<ErrorCode>(code.clone()).map_or(500, status_of);
            let mut body = Map::new();
            body.insert("error".into(), json!({"code": code, "message": message}));
            // A send that got as far as its queue says which message it made.
            if let (Endpoint::Send(queue), Some(msg)) = (endpoint, msg) {
                body.insert("queue".into(), json!(queue));
                body.insert("msg".into(), json!(msg));
            }
            return Reply {
                status,
                body: Value::Object(body),
                // Counted when the session was sent it.
                code: None,
                allow: None,
            };
        }
        fields.remove("ev");
        fields.remove("id");
        let body = match endpoint {
            Endpoint::Publish(topic) => {
                json!({"topic": topic, "seq": fields.get("seq").cloned().unwrap_or(Value::Null)})
            }
            Endpoint::Send(queue) => {
                let mut body = json!({
                    "queue": queue,
                    "msg": fields.get("msg").cloned().unwrap_or(Value::Null),
                    "confirm": confirm,
                });
                if let Some(data) = fields.remove("data") {
                    body["data"] = data;
                }
                body
            }
            Endpoint::Peek(queue) => {
                let mut body = Map::new();
                body.insert("queue".into(), json!(queue));
                body.append(&mut fields);
                Value::Object(body)
            }
            Endpoint::Stats => Value::Object(fields),
        };
        Reply::ok(body)
    }

    /// 504: no confirm within `wait`. A send's message stays in its queue.
    fn timed_out(endpoint: &Endpoint, wait: Duration, msg: Option<&str>) -> Reply {
        match (endpoint, msg) {
            (Endpoint::Send(queue), Some(msg)) => {
                let mut reply = Reply::error(
                    504,
                    ErrorCode::Timeout,
                    format!("message {msg} was not confirmed within {wait:?}; it is still in queue {queue}"),
                );
                reply.body["queue"] = json!(queue);
                reply.body["msg"] = json!(msg);
                reply
            }
            _ => Reply::error(
                504,
                ErrorCode::Timeout,
                format!("not answered within {wait:?}"),
            ),
        }
    }

    /// Writes the answer, then ends the connection: the write side first, then
    /// what the client still sends is read (a body not read, above all) until it
    /// closes, since closing on unread bytes would reset the connection, and a
    /// reset can destroy the answer before the client reads it.
    pub(super) async fn send<S: AsyncRead + AsyncWrite + Unpin>(self, stream: &mut S) {
        let body = self.body.to_string();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            body.len() + 1
        );
        if let Some(allow) = self.allow {
            head.push_str(&format!("Allow: {allow}\r\n"));
        }
        if self.status == 401 {
            head.push_str("WWW-Authenticate: Bearer\r\n");
        }
        head.push_str("\r\n");
        let _ = tokio::time::timeout(LINGER, async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.write_all(b"\n").await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    }
}

/// The HTTP status an error code answers with.
fn status_of(code: ErrorCode) -> u16 {
    use ErrorCode as C;
    match code {
        C::BadFrame | C::UnknownOp | C::BadName | C::BadFilter => 400,
        C::Unauthorized => 401,
        C::Forbidden => 403,
        C::NotFound => 404,
        C::AlreadySubscribed | C::NotRetained | C::Sealed | C::UnknownTag | C::Dead => 409,
        C::TooLarge => 413,
        C::Limit | C::Unavailable => 503,
        C::Timeout => 504,
        C::Internal => 500,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn bad(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorCode::BadFrame, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_endpoints_and_nothing_else() {
        let e = |p| Endpoint::of(p);
        assert_eq!(
            e("/v1/topics/orders.eu"),
            Some(Endpoint::Publish("orders.eu".into()))
        );
        assert_eq!(e("/v1/queues/jobs"), Some(Endpoint::Send("jobs".into())));
        assert_eq!(
            e("/v1/queues/jobs/peek"),
            Some(Endpoint::Peek("jobs".into()))
        );
        assert_eq!(e("/v1/stats"), Some(Endpoint::Stats));
        for none in [
            "/v1",
            "/v1/",
            "/v1/topics/",
            "/v1/topics/a/b",
            "/v1/queues//peek",
            "/v1/queues/a/b/peek",
            "/v1/stats/x",
            "/v2/stats",
        ] {
            assert_eq!(e(none), None, "{none}");
        }
    }

    #[test]
    fn the_query_is_read_strictly() {
        let send = Endpoint::Send("q".into());
        let o = options(&send, "confirm=done&timeout=250ms&token=x").unwrap();
        assert_eq!((o.confirm, o.wait), ("done", Duration::from_millis(250)));
        assert_eq!(options(&send, "").unwrap().wait, DEFAULT_WAIT);
        assert_eq!(parse_wait("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_wait("10m").unwrap(), MAX_WAIT);
        for bad in ["", "2", "0s", "11m", "1.5s", "-1s", "2 s", "2h"] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
        assert!(options(&send, "confim=done").is_err());
        assert!(options(&send, "confirm=later").is_err());
        assert!(options(&Endpoint::Stats, "count=3").is_err());
        assert_eq!(
            options(&Endpoint::Peek("q".into()), "count=3")
                .unwrap()
                .count,
            3
        );
        let peek = options(
            &Endpoint::Peek("q".into()),
            "after=41&filter=data.total+%3E+100&search=%22a%C3%A9%22",
        )
        .unwrap();
        assert_eq!(
            (peek.after, peek.filter.as_deref(), peek.search.as_deref()),
            (Some(41), Some("data.total > 100"), Some("\"aé\""))
        );
        for bad in ["after=x", "filter=%4", "filter=%zz", "search=%FF"] {
            assert!(options(&Endpoint::Peek("q".into()), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_error_code_has_a_status_with_a_reason() {
        for code in ErrorCode::ALL {
            assert!(!reason(status_of(code)).is_empty(), "{code:?}");
        }
    }
}
