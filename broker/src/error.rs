//! The broker's error type and its mapping to the protocol's error codes.

use crate::protocol::ErrorCode;

/// An operation the broker refused, with the protocol code a client will see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BrokerError {
    pub code: ErrorCode,
    pub message: String,
}

impl BrokerError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BrokerError {
            code,
            message: message.into(),
        }
    }
}
