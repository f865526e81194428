//! # projections
//!
//! Read models over the ledger: each class's current view, point-in-time reads, a day's
//! events and the changes between two instants. Everything here is derived from the log and
//! can be rebuilt from it; this crate only reads the ledger and never writes to it.

#![deny(missing_docs)]

pub mod record;

pub use record::Record;
pub mod query;
pub mod when;
