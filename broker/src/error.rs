//! The broker's error type and its mapping to the protocol's error codes
//! ([`ErrorCode`], defined with the rest of the wire vocabulary).

pub use switchyard_wire::ErrorCode;

/// An operation the broker refused, with the protocol code a client will see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BrokerError {
    /// The code a client sees.
    pub code: ErrorCode,
    /// What was refused and why, in words.
    pub message: String,
}

impl BrokerError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BrokerError {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for BrokerError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        let code = match &e {
            StoreError::Backlog { .. } => ErrorCode::Limit,
            StoreError::Sealed { .. } => ErrorCode::Sealed,
            StoreError::TooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::Internal,
        };
        tracing::error!("storage: {e}");
        BrokerError::new(code, format!("storage: {e}"))
    }
}
