//! What can go wrong with a call, as one error type for the whole client.

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error frame.
    #[error("{code}: {message}")]
    Server {
        /// The protocol's error code (`unknown_tag`, `bad_frame`, ...).
        code: String,
        /// The broker's explanation, for people.
        message: String,
    },
    /// The connection is closed (the reason, if known).
    #[error("connection closed: {0}")]
    Closed(String),
    /// The WebSocket could not be opened, or closed before the broker's `welcome`.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A CA file or certificate could not be used (the TLS handshake's own
    /// failures are [`ClientError::Connect`]).
    #[error("TLS: {0}")]
    Tls(String),
    /// The broker sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The protocol error code, for a [`ClientError::Server`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}
