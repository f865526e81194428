//! # projections
//!
//! Read models over the ledger: each class's current view, point-in-time reads, a day's
//! events and the changes between two instants. Everything here is derived from the log and
//! can be rebuilt from it; this crate only reads the ledger and never writes to it.
//!
//! - [`apply`]: how one event changes one record (the one fold everything shares);
//! - `layout`: the sled trees and keys of the projection store;
//! - `page`: a page of records with their versions, as stored;
//! - [`projector`]: [`Projections`]: incremental catch-up and rebuilds;
//! - [`read`]: current and past reads, Parse queries ([`query`]);
//! - [`report`]: a record's history, a day's events, a diff between two points;
//! - [`table`]: reports as rows of text (CSV, terminal tables, HTML);
//! - [`when`]: time expressions (`yesterday`, `last tuesday`, RFC 3339…) and days in a zone.

#![deny(missing_docs)]

pub mod apply;
mod layout;
mod page;
pub mod projector;
pub mod query;
pub mod read;
pub mod record;
pub mod report;
pub mod table;
pub mod when;

pub use projector::{ProjectionError, Projections, RebuildStats};
pub use read::{Answer, At, Versioned};
pub use record::Record;
