//! Who may do what: the security settings a config file gives (users with their
//! token digests and permission lists, an optional JWT secret, the browser
//! Origins let in, TLS files), as PROTOCOL.md's Security section defines them.
//!
//! With no users and no JWT secret, auth is off: every client may do everything.
//! The rest of the folder puts the settings to work: `permissions.rs` compiles a
//! user's lists, `token.rs` recognises tokens, `users.rs` maps one to its user.

use std::path::PathBuf;

mod permissions;
mod token;
mod users;

pub use permissions::{Patterns, Permissions, SubscribeRule, Verb};
pub use token::{bearer, digest, parse_digest, presented, same_digest};
pub use users::{Authenticator, Refused};

/// The allow and deny lists of one user (or of one JWT's `switchyard` claim).
/// Each entry is a name or a topic pattern (`*`, `>`); deny wins over allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Topics it may `pub` to.
    pub publish: Vec<String>,
    /// Patterns it may `sub` to.
    pub subscribe: Vec<String>,
    /// Queues it may `send` and `request` to.
    pub send: Vec<String>,
    /// Queues it may `consume`, and ack, nack and reply on.
    pub consume: Vec<String>,
    /// Names it may `declare`, `purge`, `seal` and `delete`.
    pub manage: Vec<String>,
    /// Topics it may not publish to, whatever `publish` says.
    pub deny_publish: Vec<String>,
    /// Topics whose messages it never gets, whatever `subscribe` says.
    pub deny_subscribe: Vec<String>,
    /// Queues it may not send to.
    pub deny_send: Vec<String>,
    /// Queues it may not consume.
    pub deny_consume: Vec<String>,
    /// Names it may not manage.
    pub deny_manage: Vec<String>,
    /// Operator frames (stats, watch, peek, kick, requeue) and `manage` on every name.
    pub admin: bool,
    /// Queues and retained topics it may create and hold at once (`None`: the
    /// broker's `max_streams_per_user`, admins included; 0: no cap).
    pub max_streams: Option<usize>,
}

/// One `[[users]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRules {
    /// The user's name, shown beside its clients and in the event log.
    pub name: String,
    /// Lowercase hex SHA-256 of the user's token (`switchyard token` makes a pair).
    pub token_sha256: String,
    /// What it may do.
    pub grants: Grants,
}

/// The certificate chain and private key, PEM files, that turn on `wss://` and
/// `https://` on the listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf certificate.
    pub key: PathBuf,
}

/// Everything about who may connect and do what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// The users; auth is on when there is at least one (or a JWT secret).
    pub users: Vec<UserRules>,
    /// The HS256 secret application servers sign JWTs with, if they may.
    pub jwt_hs256_secret: Option<Vec<u8>>,
    /// Browser Origins let in besides the broker's own (same host and port).
    pub allowed_origins: Vec<String>,
    /// TLS on the listening port, if set.
    pub tls: Option<TlsFiles>,
}

impl Security {
    /// Whether clients must present a token.
    pub fn auth_on(&self) -> bool {
        !self.users.is_empty() || self.jwt_hs256_secret.is_some()
    }
}
