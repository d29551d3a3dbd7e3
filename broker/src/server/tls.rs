//! TLS on the listening port (`tls_cert` + `tls_key`): the same port then serves
//! `wss://` and `https://`. rustls on the ring provider; the certificate chain and
//! key are PEM files, read once at start so a bad file stops the broker before it
//! serves anyone.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::auth::TlsFiles;
use crate::broker::Broker;

/// The acceptor for the certificate chain and key in `files`; the error names the
/// file at fault.
pub(crate) fn acceptor(files: &TlsFiles) -> std::io::Result<TlsAcceptor> {
    let cert_pem = read(&files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&files.cert, &format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(&files.cert, "holds no CERTIFICATE"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| invalid(&files.key, &format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                &files.key,
                &format!("does not go with {}: {e}", files.cert.display()),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS handshake of one connection, by `deadline` (the handshake timeout, which
/// the HTTP head then shares). A failure (a plain `ws://` or `http://` client, a
/// client that does not trust the certificate, a stall) is counted and logged at
/// `debug`, once, and the connection dropped: rustls has already sent its alert.
pub(crate) async fn accept(
    acceptor: &TlsAcceptor,
    broker: &Broker,
    stream: TcpStream,
    addr: SocketAddr,
    deadline: Instant,
) -> Option<TlsStream<TcpStream>> {
    let why = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_string(),
    };
    broker
        .activity()
        .tls_failures
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!("TLS handshake with {addr} failed: {why}");
    None
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn invalid(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}
