//! Who a connection is, on the broker handle: checking a presented token, the
//! admin check of `/metrics`, and recording refusals in the event log at most
//! once a second per connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Broker, Peer};
use crate::auth::{bearer, Authenticator, Permissions};
use crate::error::BrokerError;
use crate::stats::EventKind;

/// Shortest time between two refusal lines one connection puts in the event log.
const REFUSAL_EVERY: Duration = Duration::from_secs(1);

/// One connection's share of the event log for refusals: a client hammering bad
/// tokens or forbidden ops makes one line a second, which counts what it held back.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    last: Option<Instant>,
    held: u64,
}

impl Broker {
    /// Whether clients must present a token.
    pub(crate) fn auth_on(&self) -> bool {
        self.inner.auth.is_on()
    }

    /// Checks a token a client presented; on success the peer is that user's.
    /// A refusal is logged (rate-limited) and answered with words that never say
    /// whether the user exists.
    pub(crate) fn authenticate(
        &self,
        peer: &Peer,
        token: &str,
        log: &mut RefusalLog,
    ) -> Result<Arc<Permissions>, BrokerError> {
        match self.inner.auth.authenticate(token) {
            Ok(permissions) => {
                *peer.user.lock() = Some(permissions.user().clone());
                Ok(permissions)
            }
            Err(why) => {
                self.record_refusal(peer, log, &format!("token refused ({})", why.0));
                Err(Authenticator::refusal())
            }
        }
    }

    /// Records that a peer was refused something, at most once a second per
    /// connection (the lines held back are counted in the next one).
    pub(crate) fn record_refusal(&self, peer: &Peer, log: &mut RefusalLog, what: &str) {
        let now = Instant::now();
        if log
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_EVERY)
        {
            log.held += 1;
            return;
        }
        let held = std::mem::take(&mut log.held);
        log.last = Some(now);
        let more = if held > 0 {
            format!(" (and {held} more refused since the last line)")
        } else {
            String::new()
        };
        self.inner.activity.record(
            EventKind::Refused,
            format!(
                "{} from {}: {what}{more}",
                peer.describe(),
                peer.session.addr
            ),
        );
    }

    /// Whether `/metrics` may be read with this `Authorization` header: `None`
    /// when it may, else the HTTP status and reason. Open while auth is off; with
    /// it on it needs an admin's Bearer token.
    pub fn metrics_refusal(&self, authorization: Option<&str>) -> Option<(u16, &'static str)> {
        if !self.auth_on() {
            return None;
        }
        let Some(token) = bearer(authorization) else {
            return Some((401, "Unauthorized"));
        };
        match self.inner.auth.authenticate(token) {
            Ok(p) if p.is_admin() => None,
            Ok(_) => Some((403, "Forbidden")),
            Err(_) => Some((401, "Unauthorized")),
        }
    }
}
