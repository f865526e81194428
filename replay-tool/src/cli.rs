//! The command line: one source (`--export`, `--data-dir` or `--server`), options that
//! apply to every command, and the commands.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

use crate::render::Format;

/// The auditor's tool: verify an audit-ledger chain and reconstruct any past instant or
/// day, from an export, a data directory or a server.
///
/// Time expressions (WHEN, T1, T2): `now`, RFC 3339 (`2026-11-17T09:30:00Z`), a local
/// date-time (`2026-11-17T09:30`, in --tz), a date (`2026-11-17`), `today`, `yesterday`,
/// `last tuesday`, `3 days ago`. A date used as an instant means the end of that day.
#[derive(Parser, Debug)]
#[command(name = "ledger-replay", version, about, long_about = None)]
#[command(group(ArgGroup::new("source").args(["export", "data_dir", "server"])))]
pub struct Args {
    /// Read an export file (NDJSON, docs/FORMAT.md §4): the auditor's own copy.
    #[arg(long, value_name = "FILE", global = true)]
    pub export: Option<PathBuf>,
    /// Read a data directory that no running server holds.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Ask a running server (http://host:port) through its HTTP API.
    #[arg(long, value_name = "URL", global = true)]
    pub server: Option<String>,
    /// With --server: the username to sign in with (an auditor, QA reviewer, manager
    /// or admin of each app asked).
    #[arg(long, value_name = "NAME", global = true)]
    pub user: Option<String>,
    /// With --server: the password (or set LEDGER_REPLAY_PASSWORD).
    #[arg(long, value_name = "PASSWORD", global = true)]
    pub password: Option<String>,
    /// With --server: a session token to use instead of signing in.
    #[arg(long, value_name = "TOKEN", global = true)]
    pub token: Option<String>,
    /// With --server: records per page of a class read (at most 10000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        global = true,
        hide = true
    )]
    pub page_size: usize,
    /// Only this app (default: every app of the source; required by `history`).
    #[arg(long, global = true)]
    pub app: Option<String>,
    /// The time zone of dates and local times (IANA name).
    #[arg(long, value_name = "ZONE", default_value = "UTC", global = true)]
    pub tz: String,
    /// Resolve relative times (`yesterday`, `3 days ago`) against this instant instead
    /// of the clock: makes a report repeatable.
    #[arg(long, value_name = "RFC3339", global = true)]
    pub now: Option<String>,
    /// Output format (html: `day` and `at` only).
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: Format,
    /// Write the output to this file instead of standard output.
    #[arg(long, short, value_name = "FILE", global = true)]
    pub output: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Verify each app's chain: hashes, links, signatures and keys (exit 1 if it fails).
    Verify {
        /// Check order, links, hashes and payload digests but not signatures (faster).
        #[arg(long)]
        links_only: bool,
        /// Require the genesis key to be this one (hex public key, repeatable): pins
        /// the key you obtained out of band, so a re-signed copy is caught.
        #[arg(long, value_name = "HEX")]
        trusted_key: Vec<String>,
    },
    /// Every record (or one class, or those matching a filter) as it stood at WHEN.
    At {
        /// The instant.
        when: String,
        /// Only this class.
        #[arg(long)]
        class: Option<String>,
        /// Only records matching this Parse `where` (JSON); needs --class.
        #[arg(long = "where", value_name = "JSON")]
        where_: Option<String>,
    },
    /// Everything recorded on a calendar day (in --tz): a summary, then each record's
    /// events with time, actor, reason and before → after.
    Day {
        /// The day.
        when: String,
    },
    /// What changed between two instants: records created, updated (with field
    /// diffs) and deleted.
    Diff {
        /// The first instant (exclusive).
        t1: String,
        /// The second instant (inclusive).
        t2: String,
        /// Only this class.
        #[arg(long)]
        class: Option<String>,
    },
    /// A record's full history: every event with its diffs, signatures and reviews.
    History {
        /// The class.
        class: String,
        /// The record's objectId.
        object_id: String,
    },
    /// Write an export (NDJSON) of every app, or of --app.
    Export,
    /// The signing keys each chain declares, with the events each signed.
    Keys,
    /// Write a proof file (JSON, docs/FORMAT.md §8.7) that `check-proof` checks offline
    /// with the app's public key alone: that events are in the log a signed checkpoint
    /// covers, or that a log extends an older one. Needs --app.
    Prove {
        /// What to prove.
        #[command(subcommand)]
        what: ProveWhat,
        /// Prove against this checkpoint (a C2SP text file you hold) instead of the
        /// latest one the source keeps.
        #[arg(long, value_name = "FILE", global = true)]
        checkpoint: Option<PathBuf>,
    },
    /// Check a proof file offline (no source needed): exit 0 if it holds, 1 if not.
    CheckProof {
        /// The proof file (from `prove`, or a proof route of the server).
        file: PathBuf,
        /// The app's public key (hex, from `keys` or a channel of your own); repeat for
        /// several (after a rotation).
        #[arg(long = "key", value_name = "HEX", required = true)]
        keys: Vec<String>,
        /// For a consistency proof: the older checkpoint you kept (C2SP text file),
        /// checked instead of the one in the file.
        #[arg(long, value_name = "FILE")]
        old_checkpoint: Option<PathBuf>,
    },
}

/// What `prove` proves.
#[derive(Subcommand, Debug, Clone)]
pub enum ProveWhat {
    /// Event SEQ is in the log.
    Inclusion {
        /// The event's sequence number.
        seq: u64,
        /// The tree size to prove it in (default: the checkpoint's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Every event of one record's history is in the log.
    Record {
        /// The class.
        class: String,
        /// The record's objectId.
        object_id: String,
        /// The tree size to prove them in (default: the checkpoint's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// The log of the newer checkpoint extends the log of FROM events.
    Consistency {
        /// The older log's size (the size of a checkpoint you kept).
        from: u64,
        /// The newer size (default: the checkpoint's).
        #[arg(long)]
        to: Option<u64>,
    },
}
