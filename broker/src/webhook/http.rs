//! The little HTTP/1.1 a webhook needs: one `POST` per connection (`Connection:
//! close`), its answer's status and a bounded body. Plain `http://` only.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head read; a receiver sending more is answered as failed.
const MAX_HEAD: usize = 64 * 1024;

/// Where a webhook posts: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// As given, for operators to read.
    pub(crate) url: String,
    /// `host:port` to connect to (a host name is resolved at each connection).
    pub(crate) authority: String,
    /// What the `Host` header says: the URL's host and port as written.
    host_header: String,
    path: String,
}

impl Target {
    /// Parses a webhook URL; the error says what is wrong with it.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                format!("webhook url `{url}`: https is not supported; use http:// (a proxy or a service mesh adds TLS)")
            } else {
                format!("webhook url `{url}` must start with http://")
            });
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.is_empty()
            || authority.contains('@')
            || authority.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(format!(
                "webhook url `{url}` needs a host (and no user:password@)"
            ));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) || path.contains('#') {
            return Err(format!(
                "webhook url `{url}`: the path may not hold spaces, control characters or #"
            ));
        }
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let with_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let port_ok = with_port.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(format!("webhook url `{url}` has a bad port"));
        }
        Ok(Target {
            url: url.to_string(),
            authority: with_port,
            host_header: authority.to_string(),
            path,
        })
    }
}

/// A receiver's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Posts `body` (JSON) to `target` with `headers`, all within `timeout`. The body
/// of the answer is read up to `max_body` bytes; a longer one is an error.
pub(crate) async fn post(
    target: &Target,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
    max_body: usize,
) -> Result<Answer, String> {
    match tokio::time::timeout(timeout, exchange(target, headers, body, max_body)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer in {} ms", timeout.as_millis())),
    }
}

async fn exchange(
    target: &Target,
    headers: &[(&str, String)],
    body: &[u8],
    max_body: usize,
) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("connecting to {}: {e}", target.authority))?;
    let _ = stream.set_nodelay(true);
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: switchyard/{}\r\n",
        target.path,
        target.host_header,
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    read_answer(&mut stream, max_body).await
}

/// Reads one response (skipping `1xx` interim ones) from a connection the server
/// closes after it.
async fn read_answer(stream: &mut TcpStream, max_body: usize) -> Result<Answer, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let (status, head_len, length, chunked) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = response.code.unwrap_or(0);
                    let header = |name: &str| {
                        response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .and_then(|h| std::str::from_utf8(h.value).ok())
                    };
                    let length = match header("content-length") {
                        Some(v) => Some(
                            v.trim()
                                .parse::<usize>()
                                .map_err(|_| format!("bad Content-Length `{v}`"))?,
                        ),
                        None => None,
                    };
                    let chunked = header("transfer-encoding")
                        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                    break (status, n, length, chunked);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    if read_more(stream, &mut buf).await? == 0 {
                        return Err("the connection closed before an answer".into());
                    }
                }
                Ok(httparse::Status::Partial) => {
                    return Err(format!("answer head larger than {MAX_HEAD} bytes"))
                }
                Err(e) => return Err(format!("malformed answer: {e}")),
            }
        };
        buf.drain(..head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            read_chunked(stream, buf, max_body).await?
        } else if let Some(n) = length {
            if n > max_body {
                return Err(format!("answer body of {n} bytes is over {max_body}"));
            }
            while buf.len() < n {
                if read_more(stream, &mut buf).await? == 0 {
                    return Err("the connection closed inside the answer body".into());
                }
            }
            buf.truncate(n);
            buf
        } else {
            while read_more(stream, &mut buf).await? > 0 {
                if buf.len() > max_body {
                    return Err(format!("answer body is over {max_body} bytes"));
                }
            }
            buf
        };
        return Ok(Answer { status, body });
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 8192];
    let n = stream
        .read(&mut chunk)
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Decodes a chunked body whose first bytes are `buf`.
async fn read_chunked(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    max_body: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > 1024 || read_more(stream, &mut buf).await? == 0 {
                return Err("bad chunked answer".into());
            }
        };
        let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        buf.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        if size > max_body.saturating_sub(body.len()) {
            return Err(format!("answer body is over {max_body} bytes"));
        }
        let chunk_end = size + 2; // cannot overflow: size <= max_body
        while buf.len() < chunk_end {
            if read_more(stream, &mut buf).await? == 0 {
                return Err("the connection closed inside a chunk".into());
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..chunk_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_split() {
        let t = Target::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(
            (
                t.authority.as_str(),
                t.host_header.as_str(),
                t.path.as_str()
            ),
            ("127.0.0.1:9000", "127.0.0.1:9000", "/hook?x=1")
        );
        let t = Target::parse("http://example.com").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("example.com:80", "/")
        );
        let t = Target::parse("http://[::1]:81/h").unwrap();
        assert_eq!(t.authority, "[::1]:81");
        let t = Target::parse("http://[::1]/h").unwrap();
        assert_eq!(t.authority, "[::1]:80");
        for bad in [
            "https://example.com/",
            "ftp://example.com/",
            "http:///hook",
            "http://u:p@example.com/",
            "http://example.com:0/",
            "http://example.com:99999/",
            "http://example.com/a b",
            "http://example.com/a#frag",
            "http://exa mple.com/",
            "http://example.com\r\nX: y/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    async fn serve_once(answer: &'static [u8]) -> (Target, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while !request.ends_with(b"}") {
                let n = s.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
            }
            s.write_all(answer).await.unwrap();
            request
        });
        (Target::parse(&format!("http://{addr}/in")).unwrap(), got)
    }

    #[tokio::test]
    async fn posts_and_reads_length_chunked_and_closed_bodies() {
        for (answer, status, body) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"[..], 200, &b"ok"[..]),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
                201,
                b"abcde",
            ),
            (b"HTTP/1.0 500 Oops\r\n\r\nbroken", 500, b"broken"),
            (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
        ] {
            let (target, got) = serve_once(answer).await;
            let headers = [("X-Switchyard-Queue", "mail".to_string())];
            let a = post(&target, &headers, b"{}", Duration::from_secs(5), 1024)
                .await
                .unwrap();
            assert_eq!((a.status, &a.body[..]), (status, body));
            let request = String::from_utf8(got.await.unwrap()).unwrap();
            assert!(
                request.starts_with("POST /in HTTP/1.1\r\nHost: 127.0.0.1:"),
                "{request}"
            );
            assert!(request.contains("\r\nContent-Length: 2\r\n"), "{request}");
            assert!(request.contains("\r\nX-Switchyard-Queue: mail\r\n"), "{request}");
            assert!(request.ends_with("\r\n\r\n{}"), "{request}");
        }
    }

    #[tokio::test]
    async fn a_hostile_chunk_size_is_an_error_not_a_panic() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let (target, _got) = serve_once(answer).await;
            let e = post(&target, &[], b"{}", Duration::from_secs(5), 1024)
                .await
                .unwrap_err();
            assert!(
                e == "answer body is over 1024 bytes" || e == "bad chunk size",
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_and_a_refused_connection_are_errors() {
        let (target, _got) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n").await;
        let e = post(&target, &[], b"{}", Duration::from_secs(5), 1024)
            .await
            .unwrap_err();
        assert_eq!(e, "answer body of 5000 bytes is over 1024");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let target = Target::parse(&format!("http://{addr}/")).unwrap();
        let e = post(&target, &[], b"{}", Duration::from_secs(5), 1024)
            .await
            .unwrap_err();
        assert!(e.starts_with(&format!("connecting to {addr}: ")), "{e}");
    }
}
