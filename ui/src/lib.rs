//! Switchyard's dashboard: draws broker state and sends operator commands.

#![warn(missing_docs)]

pub mod fixture;
#[allow(dead_code)] // Used by the views, added next.
mod format;
pub mod rates;
pub mod source;

pub use fixture::FixtureSource;
pub use source::Source;
