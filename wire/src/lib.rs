//! Switchyard's wire vocabulary: the types that a broker, a client and a console
//! all speak, and nothing that moves or stores messages. An application that only
//! talks to Switchyard depends on this crate (through `switchyard-client`), not on
//! the broker.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod code;
pub mod command;
pub mod export;
mod headers;
pub mod page;
pub mod stats;

pub use code::ErrorCode;
pub use command::{Command, CommandOutcome, MessageQuery, PeekTarget, PeekedMessage, TailMessage};
pub use headers::{HeaderValue, Headers};
pub use stats::{Gone, Snapshot};
