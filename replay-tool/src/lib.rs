//! # replay-tool
//!
//! `ledger-replay`, the auditor's command line (verify an export, reconstruct a day). An
//! empty shell until its issue ("The replay tool") fills it; `audit-ledger verify` and
//! `export` cover the data-directory side today.
