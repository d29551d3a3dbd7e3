//! Switchyard's broker: topics with fan-out, work queues with acknowledgements,
//! request/reply, the WebSocket + JSON wire protocol, and an async client.

pub mod command;
pub mod error;
pub mod filter;
pub mod names;
pub mod protocol;
pub mod stats;
pub mod store;
pub mod time;

pub use command::{Command, CommandOutcome, PeekTarget, PeekedMessage, TailMessage};
pub use error::BrokerError;
pub use protocol::ErrorCode;
pub use stats::Snapshot;
