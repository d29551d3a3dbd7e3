//! The broker under test: a `switchyard serve` process started here, connections
//! to a broker's WebSocket, and waiting for a Switchyard `ok`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::error::BenchError;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Starts `switchyard serve` on a free port in a temporary data dir, with `fsync`.
/// The executable is this process's own: the `switchyard` binary, whose `bench`
/// subcommand runs this crate. Returns the process, its URL and its data dir.
pub(crate) fn start_broker(fsync: &str) -> Result<(Child, String, PathBuf), BenchError> {
    let exe = std::env::current_exe()?;
    let data = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-pending",
            "67108864",
            // Every bench connection is from this host.
            "--max-connections-per-ip",
            "0",
            "--max-connections",
            "100000",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--fsync")
        .arg(fsync)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(BenchError::StartBroker)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::BrokerOutput(String::new()))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .ok_or_else(|| BenchError::BrokerOutput(line.clone()))?
        .to_string();
    Ok((child, url, data))
}

/// The TLS trust `--ca` gives every connection of this run. Set once, before any
/// connection, from `run`: the scenarios then pass only a URL around, as they do
/// for `ws://`. Unset: `wss://` trusts the system's roots.
static TRUST: OnceLock<Connector> = OnceLock::new();

/// Trusts the CA certificates in the PEM file `path` (instead of the system's roots)
/// for every `wss://` connection from now on.
pub(crate) fn trust_ca(path: &Path) -> Result<(), BenchError> {
    use rustls_pki_types::pem::PemObject;
    let bad = |why: String| BenchError::Ca {
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE in it".to_string()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // A second call (never made by `run`) keeps the first trust.
    let _ = TRUST.set(Connector::Rustls(Arc::new(config)));
    Ok(())
}

/// Opens a WebSocket to `url`, taking messages of up to 64 MiB.
pub(crate) async fn connect(url: &str) -> Result<Ws, BenchError> {
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    let connector = TRUST.get().cloned();
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector)
            .await
            .map_err(|source| BenchError::Connect {
                url: url.to_string(),
                source,
            })?;
    Ok(ws)
}

/// How long a setup frame (`sub`, `declare`, `consume`, a confirmed `send`) may
/// wait for its answer: a broker that never answers stops the run instead of
/// hanging it.
pub(crate) const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads until the broker's `ok` (skipping other frames); fails on an `error`,
/// or when nothing answers within [`ANSWER_WITHIN`].
pub(crate) async fn until_ok(ws: &mut Ws, what: &'static str) -> Result<(), BenchError> {
    let no_answer = BenchError::NoAnswer {
        what,
        secs: ANSWER_WITHIN.as_secs(),
    };
    tokio::time::timeout(ANSWER_WITHIN, until_ok_unbounded(ws, what))
        .await
        .unwrap_or(Err(no_answer))
}

async fn until_ok_unbounded(ws: &mut Ws, what: &'static str) -> Result<(), BenchError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"ev\":\"ok\"") => return Ok(()),
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"ev\":\"error\"") => {
                return Err(BenchError::Refused {
                    what,
                    frame: t.as_str().to_string(),
                })
            }
            Some(Ok(_)) => continue,
            _ => return Err(BenchError::Closed),
        }
    }
}
