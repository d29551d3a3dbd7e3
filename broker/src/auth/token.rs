//! Tokens as clients present them: where they come from (the upgrade request's
//! `Authorization: Bearer` header or `?token=` query, or `hello`), and how a
//! user's is recognised: its SHA-256 against the configured digest, compared in
//! constant time so the time an answer takes says nothing about how close a
//! guess was.

use sha2::{Digest, Sha256};

/// The SHA-256 of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A `token_sha256` value (64 hex digits, either case) as bytes.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Whether two digests are equal, looking at every byte whatever the first
/// difference (no early exit for a timing side channel to measure).
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Read through black_box so the compiler cannot turn the fold back into a
    // comparison that stops early.
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The `token` parameter of a URL's query string, percent-decoded.
pub fn from_query(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .and_then(|(_, v)| percent_decode(v))
        .filter(|t| !t.is_empty())
}

/// The token an upgrade request presents, if any: the header first, then the URL.
pub fn presented(authorization: Option<&str>, query: &str) -> Option<String> {
    bearer(authorization)
        .map(str::to_string)
        .or_else(|| from_query(query))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_by_every_byte() {
        let d = digest("test");
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_digest(hex), Some(d));
        assert_eq!(parse_digest(&hex.to_uppercase()), Some(d));
        assert!(same_digest(&d, &d));
        for at in [0, 17, 31] {
            let mut other = d;
            other[at] ^= 1;
            assert!(!same_digest(&d, &other), "a difference at byte {at}");
        }
        assert_eq!(parse_digest("9f86"), None);
        assert_eq!(parse_digest(&"zz".repeat(32)), None);
    }

    #[test]
    fn tokens_come_from_the_header_or_the_url() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(from_query("a=1&token=x%2By+z"), Some("x+y z".into()));
        assert_eq!(from_query("tokens=1"), None);
        assert_eq!(presented(Some("Bearer h"), "token=q"), Some("h".into()));
        assert_eq!(presented(None, "token=q"), Some("q".into()));
        assert_eq!(presented(None, ""), None);
    }
}
