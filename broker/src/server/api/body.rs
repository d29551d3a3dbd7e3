//! Reading an HTTP API request's body: its `Content-Length` bytes, no more than
//! `max_payload`, within `frame_timeout` of the head's end. A body must say its
//! length: chunked transfer coding is refused (411), since a length known up
//! front is what lets an oversized body be refused before a byte of it is read.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyError {
    /// No `Content-Length` (or a `Transfer-Encoding`): 411, saying which.
    LengthRequired(&'static str),
    /// A `Content-Length` that is not one number: 400.
    BadLength,
    /// Longer than `max`: 413, before it is read.
    TooLarge { size: u64, max: usize },
    /// Not all in by the deadline: 408.
    Timeout,
    /// The client went before sending it all: nobody to answer.
    Gone,
}

/// The length a request's headers give its body. `transfer_encoding` and
/// `lengths` are every value of those headers.
pub(super) fn length(
    transfer_encoding: bool,
    lengths: &[&[u8]],
    max: usize,
) -> Result<usize, BodyError> {
    if transfer_encoding {
        return Err(BodyError::LengthRequired(
            "Transfer-Encoding is not accepted: send the body with a Content-Length",
        ));
    }
    let Some((first, rest)) = lengths.split_first() else {
        return Err(BodyError::LengthRequired(
            "a body needs a Content-Length header",
        ));
    };
    // Several Content-Length headers are accepted only if they agree (RFC 9110
    // §8.6): two that differ are how requests are smuggled past proxies.
    if rest.iter().any(|l| l != first) {
        return Err(BodyError::BadLength);
    }
    let size: u64 = std::str::from_utf8(first)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or(BodyError::BadLength)?;
    if size > max as u64 {
        return Err(BodyError::TooLarge { size, max });
    }
    Ok(size as usize)
}

/// Reads the body of `length` bytes, starting with `leftover` (what came after
/// the head in its read). Bytes past `length` are ignored: one request per
/// connection. With `expect_continue`, a client waiting for leave to send its
/// body (`Expect: 100-continue`, as curl sends for bodies over 1 KiB) is told
/// to go ahead.
pub(super) async fn read<S>(
    stream: &mut S,
    mut leftover: Vec<u8>,
    length: usize,
    expect_continue: bool,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    leftover.truncate(length);
    let mut body = leftover;
    if body.len() == length {
        return Ok(body);
    }
    body.reserve_exact(length - body.len());
    let reading = async {
        if expect_continue {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| BodyError::Gone)?;
        }
        while body.len() < length {
            let want = length - body.len();
            let n = (&mut *stream)
                .take(want as u64)
                .read_buf(&mut body)
                .await
                .map_err(|_| BodyError::Gone)?;
            if n == 0 {
                return Err(BodyError::Gone);
            }
        }
        Ok(())
    };
    match tokio::time::timeout_at(deadline, reading).await {
        Ok(Ok(())) => Ok(body),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_length_is_one_number_within_the_limit() {
        assert_eq!(length(false, &[b"12"], 100), Ok(12));
        assert_eq!(length(false, &[b"12", b"12"], 100), Ok(12));
        assert_eq!(
            length(false, &[b"12", b"13"], 100),
            Err(BodyError::BadLength)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1 2",
            b"0x10",
            b"99999999999999999999999",
        ] {
            assert_eq!(
                length(false, &[bad], 100),
                Err(BodyError::BadLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            length(false, &[b"101"], 100),
            Err(BodyError::TooLarge {
                size: 101,
                max: 100
            })
        );
        assert!(matches!(
            length(false, &[], 100),
            Err(BodyError::LengthRequired(_))
        ));
        assert!(matches!(
            length(true, &[b"5"], 100),
            Err(BodyError::LengthRequired(_))
        ));
    }

    #[tokio::test]
    async fn a_body_is_read_to_its_length_from_the_leftover_on() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(b"lo, world!and more").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let body = read(&mut far, b"hel".to_vec(), 12, false, deadline).await;
        assert_eq!(body.unwrap(), b"hello, world");
        let body = read(&mut far, b"abcdef".to_vec(), 2, false, deadline).await;
        assert_eq!(body.unwrap(), b"ab");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_not_in_by_the_deadline_is_a_timeout_and_one_cut_short_is_gone() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(b"abc").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let body = read(&mut far, Vec::new(), 10, true, deadline).await;
        assert_eq!(body, Err(BodyError::Timeout));
        let mut said = [0u8; 25];
        near.read_exact(&mut said).await.unwrap();
        assert_eq!(&said, b"HTTP/1.1 100 Continue\r\n\r\n");
        drop(near);
        let deadline = Instant::now() + Duration::from_secs(3);
        let body = read(&mut far, Vec::new(), 10, false, deadline).await;
        assert_eq!(body, Err(BodyError::Gone));
    }
}
