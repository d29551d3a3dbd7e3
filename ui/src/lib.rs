//! Switchyard's dashboard: draws broker state and sends operator commands.

#![warn(missing_docs)]

pub mod fixture;
pub mod source;

pub use fixture::FixtureSource;
pub use source::Source;
