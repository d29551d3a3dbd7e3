//! The Origin rule (PROTOCOL.md, Security, "Browsers"): a WebSocket upgrade that
//! carries an `Origin` is let in only from an allowed Origin or from the broker's
//! own (the request's `Host`), so that no web page the operator opens can drive a
//! broker on their machine. Browsers always send `Origin` on a WebSocket upgrade and
//! a page cannot forge it; other clients send none and are let in.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::stats::EventKind;

/// At most one event-log line per this long for refused Origins: a page that
/// retries in a loop must not flush the operator's event log (each is counted).
const EVENT_EVERY: Duration = Duration::from_secs(1);
/// How much of a refused Origin the event log shows.
const SHOWN_CHARS: usize = 120;

/// Which Origins are let in besides the broker's own, normalised once at start.
pub(crate) struct OriginRule {
    allowed: HashSet<String>,
    /// When a refusal was last written to the event log, and how many since were not.
    logged: Mutex<(Option<Instant>, u64)>,
}

impl OriginRule {
    /// The rule for `allowed_origins` (entries as `scheme://host[:port]`).
    pub(crate) fn new(allowed: &[String]) -> OriginRule {
        let allowed = allowed
            .iter()
            .map(|a| match Origin::parse(a) {
                Some(o) => o.canonical(),
                None => {
                    // Kept as written: it can still match a browser's exact bytes.
                    tracing::warn!("allowed_origins: `{a}` is not scheme://host[:port]");
                    a.to_ascii_lowercase()
                }
            })
            .collect();
        OriginRule {
            allowed,
            logged: Mutex::new((None, 0)),
        }
    }

    /// Whether an upgrade with this `Origin` value is let in. `host` is the request's
    /// `Host` header; `tls` says which default port a `Host` without one means.
    pub(crate) fn admits(&self, origin: &str, host: Option<&str>, tls: bool) -> bool {
        let Some(origin) = Origin::parse(origin) else {
            // `null` (a sandboxed page, a file://) and anything malformed.
            return false;
        };
        if self.allowed.contains(&origin.canonical()) {
            return true;
        }
        let Some((host, port)) = host.and_then(authority) else {
            return false;
        };
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        origin.host == host.to_ascii_lowercase() && origin.port() == Some(port)
    }

    /// Counts a refused upgrade and shows it in the event log (at most one line per
    /// [`EVENT_EVERY`], saying how many it stands for).
    pub(crate) fn record_refusal(&self, broker: &Broker, origin: &[u8], addr: SocketAddr) {
        broker
            .activity()
            .refused_origin
            .fetch_add(1, Ordering::Relaxed);
        if let Some(skipped) = self.log_refusal(Instant::now()) {
            let more = match skipped {
                0 => String::new(),
                n => format!(" ({n} more refused since the last line)"),
            };
            broker.activity().record(
                EventKind::Refused,
                format!(
                    "refused a WebSocket upgrade from {addr}: Origin {} is not allowed{more}",
                    shown(origin)
                ),
            );
        }
    }

    /// Whether this refusal goes to the event log, and how many refusals before it
    /// did not; `None` while the last line is under [`EVENT_EVERY`] old.
    pub(crate) fn log_refusal(&self, now: Instant) -> Option<u64> {
        let mut logged = self.logged.lock();
        match logged.0 {
            Some(at) if now.duration_since(at) < EVENT_EVERY => {
                logged.1 += 1;
                None
            }
            _ => {
                let skipped = logged.1;
                *logged = (Some(now), 0);
                Some(skipped)
            }
        }
    }
}

/// An Origin as a browser sends it: `scheme://host[:port]`.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.trim().split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority(rest)?;
        Some(Origin {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn default_port(&self) -> Option<u16> {
        match self.scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        }
    }

    /// The port it names, written or implied by the scheme.
    fn port(&self) -> Option<u16> {
        self.port.or_else(|| self.default_port())
    }

    /// `scheme://host[:port]`, lowercase, with the scheme's default port left out.
    fn canonical(&self) -> String {
        match self.port {
            Some(p) if Some(p) != self.default_port() => {
                format!("{}://{}:{p}", self.scheme, self.host)
            }
            _ => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// Splits `host[:port]` (a `Host` header, or an Origin after its scheme), IPv6
/// literals in brackets. `None` for anything else: a path, user info, a bad port.
fn authority(text: &str) -> Option<(&str, Option<u16>)> {
    if text.is_empty()
        || text
            .bytes()
            .any(|b| b"/?#@ \t".contains(&b) || b.is_ascii_control())
    {
        return None;
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let host = &text[..inside.len() + 2];
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// An Origin as the event log may show it: control characters (a forged header can
/// carry escape sequences meant for the operator's terminal) replaced, and cut short.
pub(crate) fn shown(origin: &[u8]) -> String {
    let text = String::from_utf8_lossy(origin);
    let mut out: String = text
        .chars()
        .take(SHOWN_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > SHOWN_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allowed: &[&str]) -> OriginRule {
        OriginRule::new(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn same_host_and_port_is_let_in() {
        let r = rule(&[]);
        assert!(r.admits("http://127.0.0.1:7400", Some("127.0.0.1:7400"), false));
        assert!(r.admits("HTTP://LocalHost:7400", Some("localhost:7400"), false));
        assert!(r.admits("http://example.com", Some("example.com"), false));
        assert!(r.admits("https://example.com", Some("example.com"), true));
        assert!(r.admits("https://example.com:443", Some("example.com"), true));
        assert!(r.admits("http://[::1]:7400", Some("[::1]:7400"), false));
    }

    #[test]
    fn other_hosts_and_ports_are_refused() {
        let r = rule(&[]);
        assert!(!r.admits("http://evil.example", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("http://127.0.0.1:8080", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("http://127.0.0.1", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("https://example.com", Some("example.com"), false));
        assert!(!r.admits("null", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("http://127.0.0.1:7400", None, false));
        assert!(!r.admits("http://a@127.0.0.1:7400", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("http://127.0.0.1:7400/x", Some("127.0.0.1:7400"), false));
    }

    #[test]
    fn allowed_origins_match_normalised() {
        let r = rule(&["https://App.Example.com:443/", "http://dev.local:3000"]);
        assert!(r.admits("https://app.example.com", Some("127.0.0.1:7400"), false));
        assert!(r.admits("http://DEV.local:3000", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("http://dev.local", Some("127.0.0.1:7400"), false));
        assert!(!r.admits("http://app.example.com", Some("127.0.0.1:7400"), false));
    }

    #[test]
    fn refusals_are_logged_once_a_second() {
        let r = rule(&[]);
        let t = Instant::now();
        assert_eq!(r.log_refusal(t), Some(0));
        assert_eq!(r.log_refusal(t + Duration::from_millis(10)), None);
        assert_eq!(r.log_refusal(t + Duration::from_millis(20)), None);
        assert_eq!(r.log_refusal(t + Duration::from_secs(2)), Some(2));
    }

    #[test]
    fn shown_origins_carry_no_control_characters() {
        assert_eq!(shown(b"http://e\x1b[2Jvil\n"), "http://e?[2Jvil?");
        assert!(shown("x".repeat(500).as_bytes()).ends_with('…'));
    }
}
