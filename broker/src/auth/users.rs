//! Recognising a presented token: one of the configured users' (by digest), or
//! a JWT signed with the configured HS256 secret, whose claims carry the user's
//! name and rules. Compiled once at start; a user's rules are shared by all its
//! connections.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::permissions::Permissions;
use super::token::{digest, parse_digest, same_digest};
use super::{Grants, Security};
use crate::error::{BrokerError, ErrorCode};

/// How long past `exp` (or before `nbf`) a JWT is still taken: clocks differ.
const JWT_LEEWAY_S: u64 = 30;

/// Why a token was refused: for the event log only. The client is told
/// [`Authenticator::refusal`], the same words whatever the reason, so an answer
/// never says whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The configured users and JWT secret, ready to check tokens against.
pub struct Authenticator {
    on: bool,
    users: Vec<([u8; 32], Arc<Permissions>)>,
    jwt: Option<DecodingKey>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("on", &self.on)
            .field("users", &self.users.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

/// The `switchyard` claim of a JWT: the keys of a `[[users]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GrantsClaim {
    publish: Vec<String>,
    subscribe: Vec<String>,
    send: Vec<String>,
    consume: Vec<String>,
    manage: Vec<String>,
    deny_publish: Vec<String>,
    deny_subscribe: Vec<String>,
    deny_send: Vec<String>,
    deny_consume: Vec<String>,
    deny_manage: Vec<String>,
    admin: bool,
    max_streams: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    switchyard: GrantsClaim,
}

impl Authenticator {
    /// Compiles the users' rules and digests; a bad digest or pattern is an error
    /// naming the user.
    pub fn new(security: &Security) -> Result<Authenticator, BrokerError> {
        let mut users = Vec::with_capacity(security.users.len());
        for user in &security.users {
            let bad = |why: String| {
                BrokerError::new(ErrorCode::BadFrame, format!("user `{}`: {why}", user.name))
            };
            let digest = parse_digest(&user.token_sha256)
                .ok_or_else(|| bad("token_sha256 must be 64 hex digits".into()))?;
            let permissions =
                Permissions::compile(&user.name, &user.grants).map_err(|e| bad(e.message))?;
            users.push((digest, Arc::new(permissions)));
        }
        Ok(Authenticator {
            on: security.auth_on(),
            users,
            jwt: security
                .jwt_hs256_secret
                .as_deref()
                .map(DecodingKey::from_secret),
        })
    }

    /// Whether clients must present a token.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// What a client whose token was refused is told.
    pub fn refusal() -> BrokerError {
        BrokerError::new(ErrorCode::Unauthorized, "token not accepted")
    }

    /// The rules of the user a token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Arc<Permissions>, Refused> {
        let presented = digest(token);
        // Every digest is compared, so the time taken does not say which matched.
        let mut found = None;
        for (d, permissions) in &self.users {
            if same_digest(d, &presented) && found.is_none() {
                found = Some(permissions.clone());
            }
        }
        if let Some(permissions) = found {
            return Ok(permissions);
        }
        match &self.jwt {
            Some(key) if token.split('.').count() == 3 => verify_jwt(key, token),
            _ => Err(Refused("unknown token".into())),
        }
    }
}

fn verify_jwt(key: &DecodingKey, token: &str) -> Result<Arc<Permissions>, Refused> {
    // HS256 only: a token whose header names another algorithm (or `none`, which
    // the crate does not even parse) is refused before its signature is looked at.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = JWT_LEEWAY_S;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|e| Refused(format!("JWT refused: {e}")))?;
    let Claims { sub, switchyard: c } = data.claims;
    let grants = Grants {
        publish: c.publish,
        subscribe: c.subscribe,
        send: c.send,
        consume: c.consume,
        manage: c.manage,
        deny_publish: c.deny_publish,
        deny_subscribe: c.deny_subscribe,
        deny_send: c.deny_send,
        deny_consume: c.deny_consume,
        deny_manage: c.deny_manage,
        admin: c.admin,
        max_streams: c.max_streams,
    };
    Permissions::compile(&sub, &grants)
        .map(Arc::new)
        .map_err(|e| Refused(format!("JWT claims refused: {}", e.message)))
}
