//! Switchyard's broker: topics with fan-out, work queues with acknowledgements,
//! request/reply, storage, and the WebSocket + JSON wire protocol. Clients use
//! `switchyard-client`, which does not depend on this crate. docs/ARCHITECTURE.md
//! walks through the modules.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod activity;
pub mod auth;
mod broker;
pub mod cluster;
mod connection;
mod dirlock;
pub mod error;
pub mod filter;
pub mod history;
mod memory;
pub mod metrics;
pub mod names;
mod outbound;
mod outbound_budget;
mod pacing;
mod process;
mod protocol;
mod queue;
mod refusals;
pub mod server;
mod session;
pub mod store;
pub mod time;
mod topic;
pub mod webhook;

pub use switchyard_wire::{command, export, page, stats};

pub use broker::{Broker, Config, Tail, SERVER};
pub use command::{Command, CommandOutcome, MessageQuery, PeekTarget, PeekedMessage, TailMessage};
pub use error::{BrokerError, ErrorCode};
pub use server::Server;
pub use stats::Snapshot;
pub use switchyard_wire::{HeaderValue, Headers};
pub use topic::MAX_TOPICS;
