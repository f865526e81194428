//! # ledger
//!
//! The hash-chained, signed, durable event log of audit-ledger: one chain per app, every
//! event hashed with blake3 over a canonical encoding that includes the previous hash,
//! signed with the app's ed25519 key, and acknowledged only once fsynced. A Merkle tree
//! over each app's event hashes ([`merkle`]) backs signed checkpoints ([`checkpoint`]) and
//! inclusion and consistency proofs ([`Ledger::checkpoint`], [`Ledger::inclusion_proof`],
//! [`Ledger::consistency_proof`]) that auditors verify offline.
//!
//! ```
//! use std::sync::Arc;
//! use ledger::{Actor, AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp, VerifyMode};
//! use serde_json::json;
//!
//! let clock = Arc::new(ManualClock::new(Timestamp(1_795_435_200_000_000)));
//! let ledger = Ledger::open(LedgerConfig::in_memory([1; 32], clock)).unwrap();
//! ledger.ensure_builtin_apps().unwrap();
//! let fields = json!({"username": "qa.lead", "role": "qa_reviewer"});
//! let created = ledger.append(AppendRequest {
//!     app: "gxp".into(),
//!     actor: Actor::system(),
//!     idempotency_key: None,
//!     reason: None,
//!     command: Command::CreateRecord {
//!         class: "_User".into(),
//!         object_id: None,
//!         fields: fields.as_object().unwrap().clone(),
//!     },
//! }).unwrap();
//! assert_eq!(created.event.seq, 3);
//! assert!(ledger.verify("gxp", VerifyMode::Full, Default::default()).unwrap().ok());
//! ```

#![deny(missing_docs)]

pub mod canonical;
pub mod checkpoint;
mod codec;
mod command;
mod commit;
mod event;
pub mod export;
mod export_line;
pub mod import;
mod keys;
mod ledger;
pub mod merkle;
pub mod schema;
pub mod store;
mod time;
mod transparency;
pub mod verify;
mod verify_store;

pub use checkpoint::{Checkpoint, CheckpointConfig, CheckpointError};
pub use command::{
    AppendError, AppendRequest, Appended, Command, ReviewScope, SignatureMeaning, MAX_ACTOR_FIELD,
    MAX_IDEMPOTENCY_KEY, MAX_PAYLOAD, MAX_REASON,
};
pub use event::{Actor, Event, EventKind, Hash32, KeyId, Subject};
pub use keys::{AppKey, FileKeyStore, KeyStore, KeyStoreError, MemoryKeyStore, PublicKey};
pub use ledger::{
    Head, Ledger, LedgerConfig, OpenError, Pending, ReadError, DEFAULT_MIN_FREE_BYTES,
};
pub use merkle::{ConsistencyProof, InclusionProof, ProofFailure, TreeError};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use verify::{Failure, FailureKind, VerifyMode, VerifyPolicy, VerifyReport};
pub use verify_store::{verify_raw, verify_store};

/// Encodes and decodes the internal stored form of events (for tools that read raw stores).
pub mod stored {
    pub use crate::codec::{decode, encode};
}
