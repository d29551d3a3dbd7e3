//! The config file (`--config FILE`, or `SWITCHYARD_CONFIG`): TOML whose keys are
//! the `serve` flags plus the security settings of PROTOCOL.md's Security section.
//! It is read whole and checked here (unknown keys, token digests, patterns), so a
//! broker never starts on a config it half understood; the command line wins over
//! it key by key (see `cli::broker_config`).

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchyard_broker::auth::{Grants, Security, TlsFiles, UserRules};
use switchyard_broker::names;
use switchyard_broker::store::FsyncPolicy;
use switchyard_broker::webhook::{self, ConfiguredWebhook, WebhookSpec};
use toml::Spanned;

/// The environment variable naming a config file when `--config` is not given.
pub const ENV: &str = "SWITCHYARD_CONFIG";

/// A config file that cannot be used; the message names the file, and the line
/// and key when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// What a config file sets: each `serve` flag it names, and the security settings.
#[derive(Debug, Default)]
pub struct FileSettings {
    /// `listen`.
    pub listen: Option<SocketAddr>,
    /// `data_dir`, relative to the config file's directory.
    pub data_dir: Option<PathBuf>,
    /// `max_payload`.
    pub max_payload: Option<usize>,
    /// `max_pending`.
    pub max_pending: Option<usize>,
    /// `max_outbound`.
    pub max_outbound: Option<usize>,
    /// `max_connections`.
    pub max_connections: Option<usize>,
    /// `fsync`.
    pub fsync: Option<FsyncPolicy>,
    /// `ping_interval`, in seconds.
    pub ping_interval: Option<u64>,
    /// `max_pause_ms`.
    pub max_pause_ms: Option<u64>,
    /// `slow_timeout`, in seconds.
    pub slow_timeout: Option<u64>,
    /// `frame_timeout`, in seconds.
    pub frame_timeout: Option<u64>,
    /// `max_inbound`, in bytes.
    pub max_inbound: Option<usize>,
    /// `handshake_timeout`, in seconds.
    pub handshake_timeout: Option<u64>,
    /// `auth_timeout`, in seconds.
    pub auth_timeout: Option<u64>,
    /// `max_topics`.
    pub max_topics: Option<usize>,
    /// `max_connections_per_ip` (0: no cap).
    pub max_connections_per_ip: Option<usize>,
    /// `max_open_files`.
    pub max_open_files: Option<usize>,
    /// `max_streams_per_user` (0: no cap).
    pub max_streams_per_user: Option<usize>,
    /// `max_http_requests`.
    pub max_http_requests: Option<usize>,
    /// `max_history` (0: none).
    pub max_history: Option<usize>,
    /// `nats`: the NATS servers' URLs (a string, comma-separated, or an array).
    pub nats: Option<Vec<String>>,
    /// `nats_creds`, relative to the config file's directory.
    pub nats_creds: Option<PathBuf>,
    /// `node`.
    pub node: Option<String>,
    /// Users, the JWT secret, Origins and TLS.
    pub security: Security,
    /// `[[webhooks]]`: webhook consumers started with the broker.
    pub webhooks: Vec<ConfiguredWebhook>,
}

/// The file as written: every key optional, none unknown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<Spanned<String>>,
    data_dir: Option<PathBuf>,
    max_payload: Option<usize>,
    max_pending: Option<usize>,
    max_outbound: Option<Spanned<usize>>,
    max_connections: Option<usize>,
    fsync: Option<Spanned<String>>,
    ping_interval: Option<Spanned<u64>>,
    max_pause_ms: Option<Spanned<u64>>,
    slow_timeout: Option<Spanned<u64>>,
    frame_timeout: Option<Spanned<u64>>,
    max_inbound: Option<usize>,
    handshake_timeout: Option<Spanned<u64>>,
    auth_timeout: Option<Spanned<u64>>,
    max_topics: Option<Spanned<usize>>,
    max_connections_per_ip: Option<usize>,
    max_open_files: Option<Spanned<usize>>,
    max_streams_per_user: Option<usize>,
    max_http_requests: Option<Spanned<usize>>,
    max_history: Option<usize>,
    nats: Option<Spanned<RawUrls>>,
    nats_creds: Option<PathBuf>,
    node: Option<Spanned<String>>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    tls_cert: Option<Spanned<PathBuf>>,
    tls_key: Option<Spanned<PathBuf>>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
    jwt: Option<RawJwt>,
    #[serde(default)]
    webhooks: Vec<Spanned<RawWebhook>>,
}

/// `nats` as written: `"nats://h1:4222,nats://h2:4222"` or `["nats://h1:4222", ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawUrls {
    One(String),
    Many(Vec<String>),
}

/// One `[[webhooks]]` entry as written: a queue and a `consume`'s `webhook` object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    queue: String,
    url: String,
    max_in_flight: Option<u64>,
    timeout_ms: Option<u64>,
}

/// One `[[users]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    token_sha256: Spanned<String>,
    #[serde(default)]
    publish: Vec<Spanned<String>>,
    #[serde(default)]
    subscribe: Vec<Spanned<String>>,
    #[serde(default)]
    send: Vec<Spanned<String>>,
    #[serde(default)]
    consume: Vec<Spanned<String>>,
    #[serde(default)]
    manage: Vec<Spanned<String>>,
    #[serde(default)]
    deny_publish: Vec<Spanned<String>>,
    #[serde(default)]
    deny_subscribe: Vec<Spanned<String>>,
    #[serde(default)]
    deny_send: Vec<Spanned<String>>,
    #[serde(default)]
    deny_consume: Vec<Spanned<String>>,
    #[serde(default)]
    deny_manage: Vec<Spanned<String>>,
    #[serde(default)]
    admin: bool,
    max_streams: Option<usize>,
}

/// The `[jwt]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    hs256_secret_file: Spanned<PathBuf>,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    let file = File { path, text: &text };
    let raw: Raw = toml::from_str(&text).map_err(|e| file.error(e.span(), e.message()))?;
    // Paths in the file are relative to the file, so a config works from any directory.
    let base = path.parent().unwrap_or(Path::new(""));
    // A host name as the flag takes it (`localhost:7400`), resolved once.
    let listen = match raw.listen {
        Some(l) => Some(
            crate::cli::parse_listen(l.get_ref())
                .map_err(|why| file.error(Some(l.span()), &why))?,
        ),
        None => None,
    };
    let fsync = match raw.fsync {
        Some(f) => Some(
            f.get_ref()
                .parse::<FsyncPolicy>()
                .map_err(|e| file.error(Some(f.span()), &e.to_string()))?,
        ),
        None => None,
    };
    let ping_interval = match raw.ping_interval {
        Some(p) if !(1..=3600).contains(p.get_ref()) => {
            return Err(file.error(
                Some(p.span()),
                "`ping_interval` must be from 1 to 3600 seconds",
            ));
        }
        p => p.map(Spanned::into_inner),
    };
    let max_pause_ms = match raw.max_pause_ms {
        Some(p) if *p.get_ref() > 1000 => {
            return Err(file.error(
                Some(p.span()),
                "`max_pause_ms` must be from 0 to 1000 milliseconds",
            ));
        }
        p => p.map(Spanned::into_inner),
    };
    let slow_timeout = match raw.slow_timeout {
        Some(p) if !(1..=3600).contains(p.get_ref()) => {
            return Err(file.error(
                Some(p.span()),
                "`slow_timeout` must be from 1 to 3600 seconds",
            ));
        }
        p => p.map(Spanned::into_inner),
    };
    let frame_timeout = match raw.frame_timeout {
        Some(p) if !(1..=3600).contains(p.get_ref()) => {
            return Err(file.error(
                Some(p.span()),
                "`frame_timeout` must be from 1 to 3600 seconds",
            ));
        }
        p => p.map(Spanned::into_inner),
    };
    let handshake_timeout = seconds(&file, raw.handshake_timeout, "handshake_timeout", 600)?;
    let auth_timeout = seconds(&file, raw.auth_timeout, "auth_timeout", 600)?;
    let max_topics = match raw.max_topics {
        Some(n) if *n.get_ref() == 0 => {
            return Err(file.error(Some(n.span()), "`max_topics` must be at least 1"));
        }
        n => n.map(Spanned::into_inner),
    };
    let max_http_requests = match raw.max_http_requests {
        Some(n) if *n.get_ref() == 0 => {
            return Err(file.error(Some(n.span()), "`max_http_requests` must be at least 1"));
        }
        n => n.map(Spanned::into_inner),
    };
    let max_outbound = match raw.max_outbound {
        Some(m) if *m.get_ref() == 0 => {
            return Err(file.error(Some(m.span()), "`max_outbound` must be at least 1 byte"));
        }
        m => m.map(Spanned::into_inner),
    };
    let max_open_files = match raw.max_open_files {
        Some(n) if *n.get_ref() == 0 => {
            return Err(file.error(Some(n.span()), "`max_open_files` must be at least 1"));
        }
        n => n.map(Spanned::into_inner),
    };
    let nats = match raw.nats {
        Some(urls) => {
            let span = urls.span();
            let text = match urls.into_inner() {
                RawUrls::One(s) => s,
                RawUrls::Many(v) => v.join(","),
            };
            let parsed = switchyard_broker::cluster::parse_urls(&text)
                .map_err(|why| file.error(Some(span), &why))?;
            Some(parsed)
        }
        None => None,
    };
    let node = match raw.node {
        Some(n) => {
            switchyard_broker::cluster::check_node(n.get_ref())
                .map_err(|why| file.error(Some(n.span()), &why))?;
            Some(n.into_inner())
        }
        None => None,
    };
    let tls = match (raw.tls_cert, raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: base.join(cert.into_inner()),
            key: base.join(key.into_inner()),
        }),
        (Some(cert), None) => {
            return Err(file.error(
                Some(cert.span()),
                "tls_cert is set but tls_key is not: set both or neither",
            ))
        }
        (None, Some(key)) => {
            return Err(file.error(
                Some(key.span()),
                "tls_key is set but tls_cert is not: set both or neither",
            ))
        }
    };
    let mut users: Vec<UserRules> = Vec::with_capacity(raw.users.len());
    for user in raw.users {
        let span = user.span();
        let user = user.into_inner();
        if users.iter().any(|u| u.name == user.name) {
            let why = format!("user `{}` is defined twice", user.name);
            return Err(file.error(Some(span), &why));
        }
        users.push(file.user(user)?);
    }
    let mut webhooks = Vec::with_capacity(raw.webhooks.len());
    for hook in raw.webhooks {
        let span = hook.span();
        let hook = hook.into_inner();
        let spec = WebhookSpec {
            url: hook.url,
            max_in_flight: hook.max_in_flight,
            timeout_ms: hook.timeout_ms,
        };
        names::check_queue(&hook.queue)
            .map_err(|e| e.message)
            .and_then(|()| webhook::check(&spec))
            .map_err(|why| file.error(Some(span.clone()), &why))?;
        webhooks.push(ConfiguredWebhook {
            queue: hook.queue,
            spec,
        });
    }
    let jwt_hs256_secret = match raw.jwt {
        Some(jwt) => Some(file.secret(base, jwt.hs256_secret_file)?),
        None => None,
    };
    Ok(FileSettings {
        listen,
        data_dir: raw.data_dir.map(|d| base.join(d)),
        max_payload: raw.max_payload,
        max_pending: raw.max_pending,
        max_outbound,
        max_connections: raw.max_connections,
        fsync,
        ping_interval,
        max_pause_ms,
        slow_timeout,
        frame_timeout,
        max_inbound: raw.max_inbound,
        handshake_timeout,
        auth_timeout,
        max_topics,
        max_connections_per_ip: raw.max_connections_per_ip,
        max_open_files,
        max_streams_per_user: raw.max_streams_per_user,
        max_http_requests,
        max_history: raw.max_history,
        nats,
        nats_creds: raw.nats_creds.map(|p| base.join(p)),
        node,
        security: Security {
            users,
            jwt_hs256_secret,
            allowed_origins: raw.allowed_origins,
            tls,
        },
        webhooks,
    })
}

/// A key of whole seconds, from 1 to `most`.
fn seconds(
    file: &File<'_>,
    value: Option<Spanned<u64>>,
    key: &str,
    most: u64,
) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(v) if !(1..=most).contains(v.get_ref()) => Err(file.error(
            Some(v.span()),
            &format!("`{key}` must be from 1 to {most} seconds"),
        )),
        v => Ok(v.map(Spanned::into_inner)),
    }
}

/// The file being read, for messages that point into it.
struct File<'a> {
    path: &'a Path,
    text: &'a str,
}

impl File<'_> {
    /// An error at `span` (a byte range of the text): names the file, the line, and
    /// the key on that line.
    fn error(&self, span: Option<Range<usize>>, message: &str) -> ConfigError {
        let file = self.path.display();
        let Some(span) = span else {
            return ConfigError(format!("config file {file}: {message}"));
        };
        let start = span.start.min(self.text.len());
        let line_no = self.text[..start].matches('\n').count() + 1;
        let line = self.text.lines().nth(line_no - 1).unwrap_or("").trim();
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|k| !k.is_empty() && !k.starts_with('['))
            .map(|k| format!(", key `{k}`"))
            .unwrap_or_default();
        ConfigError(format!(
            "config file {file}, line {line_no}{key}: {message}\n  {line_no} | {line}"
        ))
    }

    /// Checks one user's digest and patterns.
    fn user(&self, raw: RawUser) -> Result<UserRules, ConfigError> {
        let name = raw.name;
        let digest = raw.token_sha256.get_ref();
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            let why = format!(
                "user `{name}`: token_sha256 must be 64 hex digits, the SHA-256 of its token \
                 (`switchyard token` makes a pair)"
            );
            return Err(self.error(Some(raw.token_sha256.span()), &why));
        }
        let token_sha256 = digest.to_ascii_lowercase();
        let list = |key: &str, entries: Vec<Spanned<String>>| -> Result<Vec<String>, ConfigError> {
            entries
                .into_iter()
                .map(|entry| match names::check_pattern(entry.get_ref()) {
                    Ok(()) => Ok(entry.into_inner()),
                    Err(e) => {
                        let why = format!("user `{name}`, {key}: {}", e.message);
                        Err(self.error(Some(entry.span()), &why))
                    }
                })
                .collect()
        };
        let grants = Grants {
            publish: list("publish", raw.publish)?,
            subscribe: list("subscribe", raw.subscribe)?,
            send: list("send", raw.send)?,
            consume: list("consume", raw.consume)?,
            manage: list("manage", raw.manage)?,
            deny_publish: list("deny_publish", raw.deny_publish)?,
            deny_subscribe: list("deny_subscribe", raw.deny_subscribe)?,
            deny_send: list("deny_send", raw.deny_send)?,
            deny_consume: list("deny_consume", raw.deny_consume)?,
            deny_manage: list("deny_manage", raw.deny_manage)?,
            admin: raw.admin,
            max_streams: raw.max_streams,
        };
        Ok(UserRules {
            name,
            token_sha256,
            grants,
        })
    }

    /// Reads the JWT secret: the file's bytes, its trailing newline trimmed (an
    /// editor or `echo` adds one, and a secret that differs by it would reject
    /// every token the app server signs).
    fn secret(&self, base: &Path, file: Spanned<PathBuf>) -> Result<Vec<u8>, ConfigError> {
        let path = base.join(file.get_ref());
        let mut bytes = std::fs::read(&path).map_err(|e| {
            let why = format!("cannot read the JWT secret {}: {e}", path.display());
            self.error(Some(file.span()), &why)
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            let why = format!("the JWT secret {} is empty", path.display());
            return Err(self.error(Some(file.span()), &why));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<FileSettings, ConfigError> {
        let dir =
            std::env::temp_dir().join(format!("switchyard-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.toml",
            text.len() * 31 + text.bytes().map(usize::from).sum::<usize>()
        ));
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn listen_takes_a_host_name_as_the_flag_does() {
        let s = load_text("listen = \"localhost:7411\"\n").unwrap();
        assert_eq!(s.listen, Some("127.0.0.1:7411".parse().unwrap()));
        let e = load_text("listen = \"no port here\"\n").unwrap_err();
        assert!(e.0.contains("line 1, key `listen`"), "{e}");
    }

    #[test]
    fn an_error_names_the_line_and_key() {
        let e = load_text("listen = \"127.0.0.1:1\"\nmax_payload = \"big\"\n").unwrap_err();
        assert!(e.0.contains("line 2, key `max_payload`"), "{e}");
    }

    #[test]
    fn uppercase_digests_are_stored_lowercase() {
        let digest = "AB".repeat(32);
        let s = load_text(&format!(
            "[[users]]\nname = \"a\"\ntoken_sha256 = \"{digest}\"\n"
        ))
        .unwrap();
        assert_eq!(s.security.users[0].token_sha256, "ab".repeat(32));
    }

    #[test]
    fn tls_needs_both_files() {
        let e = load_text("tls_cert = \"c.pem\"\n").unwrap_err();
        assert!(e.0.contains("line 1, key `tls_cert`"), "{e}");
    }

    #[test]
    fn nats_takes_a_list_or_a_string_and_node_a_token() {
        let s = load_text(
            "nats = [\"nats://127.0.0.1:4222\", \"h2:4223\"]\nnats_creds = \"n.creds\"\nnode = \"web-1\"\n",
        )
        .unwrap();
        assert_eq!(
            s.nats,
            Some(vec!["nats://127.0.0.1:4222".into(), "h2:4223".into()])
        );
        assert!(s.nats_creds.unwrap().ends_with("n.creds"));
        assert_eq!(s.node.as_deref(), Some("web-1"));
        let s = load_text("nats = \"a:1,b:2\"\n").unwrap();
        assert_eq!(s.nats, Some(vec!["a:1".into(), "b:2".into()]));
        let e = load_text("node = \"a.b\"\n").unwrap_err();
        assert!(e.to_string().contains("no dots"), "{e}");
        let e = load_text("nats = \"\"\n").unwrap_err();
        assert!(e.to_string().contains("no NATS server URL"), "{e}");
    }
}
