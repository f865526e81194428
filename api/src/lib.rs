//! # api
//!
//! The audit-ledger server: a Parse-compatible HTTP API (SPEC §5.1) over the ledger and
//! its projections, with users, sessions and per-class role permissions (SPEC §6.1).
//!
//! - [`server`]: the axum router, metrics, graceful shutdown; `edge`: what every request
//!   passes through first (request id, span, request metrics, exposed headers);
//! - [`parse`]: the Parse REST surface (request normalisation, dispatch, handlers);
//! - [`native`]: the ledger's own API under `/ledger/{app}` (history, day, diff, verify,
//!   checkpoints and proofs…); [`esign`]: electronic signatures and audit-trail reviews;
//!   [`live`]: live changes over Server-Sent Events;
//! - [`accounts`]: creating users, logging in and out, resolving sessions;
//! - [`auth`]: password hashing, tokens, the credential store, roles and permissions;
//! - [`state`]: what requests share; [`config`]: what the server can be told;
//! - [`error`]: the one error type and its Parse codes; [`demo`]: `--demo` data.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod demo;
mod edge;
pub mod error;
pub mod esign;
pub mod live;
pub mod native;
pub mod openapi;
pub mod parse;
pub mod server;
pub mod state;

pub use config::{AppPolicy, PasswordCost, ServerConfig};
pub use error::{ApiError, ApiResult};
pub use server::{Server, StartError};
