//! # replay-tool
//!
//! `ledger-replay`, the auditor's command line: verifies the chain and reconstructs any
//! past instant or day, from an export file (offline, no trust in any server), a data
//! directory no server holds, or a running server (`--server URL`).
//!
//! - [`cli`]: the command line (clap);
//! - [`source`]: where the log comes from ([`source::Local`], [`source::Remote`]), behind
//!   one [`source::Source`] trait;
//! - [`commands`]: what each command asks its source and how it prints the answer;
//! - [`proofs`]: proof files (`prove`) and their offline check (`check-proof`);
//! - [`render`]: tables, JSON, CSV and the printable HTML page.

pub mod cli;
pub mod commands;
pub mod proofs;
pub mod render;
pub mod source;

pub use commands::run;
