//! [`ConnectOptions`]: how a [`Client`](crate::Client) connects beyond its URL:
//! which certificate authorities a `wss://` broker's certificate may come from,
//! and the token and name it introduces itself with.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_tungstenite::Connector;

use crate::error::ClientError;

/// How to connect. The default trusts the system's root certificates for `wss://`.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Private CAs trusted instead of the system's roots; empty: the system's.
    ca: Vec<CertificateDer<'static>>,
    /// The token presented in `hello`, if any.
    pub(crate) token: Option<String>,
    /// The name given in `hello`, shown in the dashboard, if any.
    pub(crate) name: Option<String>,
}

impl ConnectOptions {
    /// Options that trust the system's root certificates.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Presents `token` in the `hello` that follows `welcome`; connecting fails
    /// if the broker refuses it.
    pub fn token(mut self, token: impl Into<String>) -> ConnectOptions {
        self.token = Some(token.into());
        self
    }

    /// Gives `name` in that `hello`: the dashboard and the event log show it.
    pub fn name(mut self, name: impl Into<String>) -> ConnectOptions {
        self.name = Some(name.into());
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks)
    /// instead of the system's roots: the way to reach a broker whose certificate a
    /// private CA signed.
    pub fn ca_pem(mut self, pem: &[u8]) -> Result<ConnectOptions, ClientError> {
        let before = self.ca.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            self.ca
                .push(cert.map_err(|e| ClientError::Tls(format!("bad CA PEM: {e}")))?);
        }
        if self.ca.len() == before {
            return Err(ClientError::Tls("no CERTIFICATE in the CA PEM".into()));
        }
        Ok(self)
    }

    /// [`ConnectOptions::ca_pem`] with the contents of a file.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<ConnectOptions, ClientError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?;
        self.ca_pem(&pem)
            .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))
    }

    /// The TLS connector for these options; `None` lets tokio-tungstenite use the
    /// system's roots (and costs nothing for `ws://`).
    pub(crate) fn connector(&self) -> Result<Option<Connector>, ClientError> {
        if self.ca.is_empty() {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in &self.ca {
            roots
                .add(cert.clone())
                .map_err(|e| ClientError::Tls(format!("unusable CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Connector::Rustls(Arc::new(config))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_pem_is_read_and_junk_is_refused() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let options = ConnectOptions::new()
            .ca_pem(ca.cert.pem().as_bytes())
            .unwrap();
        assert!(options.connector().unwrap().is_some());
        assert!(ConnectOptions::new().connector().unwrap().is_none());
        assert!(matches!(
            ConnectOptions::new().ca_pem(b"not a pem"),
            Err(ClientError::Tls(_))
        ));
        assert!(matches!(
            ConnectOptions::new().ca_file("/nonexistent/ca.pem"),
            Err(ClientError::Tls(m)) if m.contains("/nonexistent/ca.pem")
        ));
    }
}
