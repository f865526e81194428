//! # projections
//!
//! Read models over the ledger: each class's current view, and point-in-time reads. This
//! crate is an empty shell until its issue ("Projections and time travel") fills it; it
//! only reads the ledger and never writes to it.
