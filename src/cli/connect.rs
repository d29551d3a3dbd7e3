//! How every client verb reaches the broker: `-s`/`--server` (or `--url`, or
//! `SWITCHYARD_URL`), `--token` (or `SWITCHYARD_TOKEN`) and `--ca`, as the
//! `nats` CLI spells them.

use std::path::PathBuf;

use anyhow::Context;
use switchyard_client::{Client, ConnectOptions};

/// Where a client verb connects when nothing says otherwise.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:7400/ws";

/// The connection flags every client verb takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnArgs {
    /// The broker: ws://HOST:PORT or wss://HOST:PORT (`/ws` is added when the URL has no path).
    #[arg(
        short = 's',
        long = "server",
        visible_alias = "url",
        value_name = "URL",
        env = "SWITCHYARD_URL",
        default_value = DEFAULT_URL
    )]
    pub server: String,
    /// The token to present (with auth on); the environment variable keeps it out of the process list.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SWITCHYARD_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl ConnArgs {
    /// The URL to dial: [`with_ws_path`] of what was given.
    pub fn url(&self) -> String {
        with_ws_path(&self.server)
    }

    /// The token, unless it is empty (`SWITCHYARD_TOKEN=` unsets it in effect).
    pub fn token(&self) -> Option<String> {
        self.token.clone().filter(|t| !t.is_empty())
    }

    /// Connects, presenting the token if there is one.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let url = self.url();
        let mut options = ConnectOptions::new();
        if let Some(ca) = &self.ca {
            options = options.ca_file(ca)?;
        }
        if let Some(token) = self.token() {
            options = options.token(token);
        }
        Client::connect_with(&url, &options)
            .await
            .with_context(|| format!("connecting to {url}"))
    }
}

/// `url` with the broker's `/ws` path when it has none (`ws://host:7400`,
/// `ws://host:7400/`, `ws://host:7400?token=x`), and `ws://` when it has no
/// scheme (`localhost:7400`): the broker answers WebSockets only at `/ws`, and
/// a user who types the address the broker printed minus its path means it.
pub fn with_ws_path(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("ws", url),
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(host_end);
    let tail = match tail.strip_prefix('/') {
        Some(after) if after.is_empty() || after.starts_with(['?', '#']) => after,
        Some(_) => return format!("{scheme}://{rest}"),
        None => tail,
    };
    format!("{scheme}://{host}/ws{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_path_gets_ws_and_one_with_a_path_is_kept() {
        let cases = [
            ("ws://127.0.0.1:7400/ws", "ws://127.0.0.1:7400/ws"),
            ("ws://host:7400", "ws://host:7400/ws"),
            ("ws://host:7400/", "ws://host:7400/ws"),
            ("wss://host:7400?token=t", "wss://host:7400/ws?token=t"),
            ("ws://host:7400/?token=t", "ws://host:7400/ws?token=t"),
            ("localhost:7400", "ws://localhost:7400/ws"),
            ("ws://proxy/switchyard/ws", "ws://proxy/switchyard/ws"),
        ];
        for (given, dialed) in cases {
            assert_eq!(with_ws_path(given), dialed, "{given}");
        }
    }
}
