//! An async Rust client for Switchyard: publish and subscribe (as a `Stream`), send,
//! consume with ack/nack, request/reply, and operator calls.
//!
//! It depends on the wire vocabulary (`switchyard-wire`), not on the broker, so an
//! application that only talks to Switchyard compiles neither the broker nor its
//! store and filters.
//!
//! One background task owns the socket (`connection.rs`). Calls that expect an
//! answer carry an id and wait on a oneshot. Both directions are bounded: frames
//! going out wait in a queue of at most 1024, so a caller faster than the socket
//! waits for room; deliveries go to each subscription's or consumer's bounded
//! channel, so a reader that falls behind slows the socket (and, past the broker's
//! buffer, gets the connection kicked as a slow consumer) rather than growing memory.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod client;
mod connection;
mod error;
mod frame;
mod operator;
mod options;
mod queues;
mod topics;

pub use client::Client;
pub use error::ClientError;
pub use frame::Undecoded;
pub use operator::{peek_frame, PeekPage, Watch, WatchOptions};
pub use options::ConnectOptions;
pub use queues::{Consumer, Job};
pub use topics::{Message, Subscription};

pub use switchyard_wire::{
    export, HeaderValue, Headers, MessageQuery, PeekTarget, PeekedMessage, Snapshot, TailMessage,
};
