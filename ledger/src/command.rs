//! What a caller asks the ledger to record, and the errors an append can meet.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Actor, Event};
use crate::keys::KeyStoreError;
use crate::schema::validate::ValidationError;
use crate::schema::{SchemaChange, SchemaError};
use crate::store::StoreError;

/// Longest reason for change, in bytes.
pub const MAX_REASON: usize = 4096;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;
/// Longest actor field (user id, username, role), in bytes.
pub const MAX_ACTOR_FIELD: usize = 256;
/// Largest payload, in bytes (Parse's own object limit is 128 KiB).
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// One thing to record, by whom, and why.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The app (tenant).
    pub app: String,
    /// Who asks.
    pub actor: Actor,
    /// A key that makes a retried request return the first event instead of a new one.
    pub idempotency_key: Option<String>,
    /// The reason for change, if given.
    pub reason: Option<String>,
    /// What to record.
    pub command: Command,
}

/// The meaning of an electronic signature (21 CFR 11.50(a)(3)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMeaning {
    /// "I wrote this."
    Authorship,
    /// "I reviewed this."
    Review,
    /// "I approve this."
    Approval,
    /// "I take responsibility for this."
    Responsibility,
}

/// What an audit-trail review covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewScope {
    /// One record's history, up to the review's `through_seq`.
    Record {
        /// The class.
        class: String,
        /// The record.
        object_id: String,
    },
    /// Everything recorded on one calendar day of a time zone.
    Day {
        /// The day, `YYYY-MM-DD`.
        date: String,
        /// The IANA time zone the day is read in.
        tz: String,
        /// The day's first event (`None`: nothing happened that day).
        first_seq: Option<u64>,
    },
}

/// What to record. Records of class `_User` become `user.*` events; all others `record.*`.
#[derive(Clone, Debug)]
pub enum Command {
    /// Create a record with all its fields. The ledger makes an objectId if none is given.
    CreateRecord {
        /// The class.
        class: String,
        /// The objectId to use, if the caller chose one.
        object_id: Option<String>,
        /// Its fields, in Parse JSON encodings.
        fields: Map<String, Value>,
    },
    /// Change some fields of a record.
    UpdateRecord {
        /// The class.
        class: String,
        /// The record.
        object_id: String,
        /// New values (null unsets).
        set: Map<String, Value>,
        /// Fields to remove.
        unset: Vec<String>,
    },
    /// Delete a record (a tombstone; history stays).
    DeleteRecord {
        /// The class.
        class: String,
        /// The record.
        object_id: String,
    },
    /// Sign one version of a record.
    SignRecord {
        /// The class.
        class: String,
        /// The record.
        object_id: String,
        /// The sequence number of the version signed; must be the latest.
        version_seq: u64,
        /// What the signature means.
        meaning: SignatureMeaning,
        /// The signer's printed name.
        printed_name: String,
    },
    /// Change the schema.
    ChangeSchema(SchemaChange),
    /// Grant or revoke a role.
    ChangeRole {
        /// The user's objectId.
        user_id: String,
        /// The role.
        role: String,
        /// Granted (true) or revoked (false).
        granted: bool,
    },
    /// A login succeeded.
    Login {
        /// The user's objectId.
        user_id: String,
    },
    /// A login failed.
    LoginFailed {
        /// The username tried.
        username: String,
        /// Why it failed.
        detail: String,
    },
    /// A logout.
    Logout {
        /// The user's objectId.
        user_id: String,
    },
    /// A request refused for lack of permission.
    AccessDenied {
        /// What was attempted (`create`, `update`, `read`…).
        operation: String,
        /// On which class, if any.
        class: Option<String>,
        /// On which record, if any.
        object_id: Option<String>,
    },
    /// An account locked after failed attempts.
    AccountLocked {
        /// The user's objectId.
        user_id: String,
        /// How many failed attempts led to it.
        failed_attempts: u32,
    },
    /// A signed audit-trail review: the actor examined the trail in `scope` up to and
    /// including event `through_seq` (0 only for an empty day); the event binds that
    /// event's hash.
    ReviewAuditTrail {
        /// What was reviewed.
        scope: ReviewScope,
        /// The last event examined.
        through_seq: u64,
        /// The reviewer's printed name.
        printed_name: String,
    },
}

/// An acknowledged append: the event is durable.
#[derive(Clone, Debug)]
pub struct Appended {
    /// The event (for a repeated idempotency key: the first one).
    pub event: Event,
    /// Whether this was a repeat of an earlier request with the same idempotency key.
    pub duplicate: bool,
}

/// Why an append was refused or failed. Refusals write nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// No such app.
    #[error("app {0:?} does not exist")]
    UnknownApp(String),
    /// An app of that name exists already.
    #[error("app {0:?} already exists")]
    AppExists(String),
    /// Record values break the schema.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A schema change breaks the schema rules.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The record does not exist.
    #[error("{class} {object_id} does not exist")]
    NotFound {
        /// The class.
        class: String,
        /// The objectId.
        object_id: String,
    },
    /// The record was deleted.
    #[error("{class} {object_id} was deleted")]
    Deleted {
        /// The class.
        class: String,
        /// The objectId.
        object_id: String,
    },
    /// A record with that objectId exists already.
    #[error("{class} {object_id} already exists")]
    AlreadyExists {
        /// The class.
        class: String,
        /// The objectId.
        object_id: String,
    },
    /// A pointer names a record that does not exist (or was deleted).
    #[error("{class}.{field}: points to {target_class} {object_id}, which does not exist")]
    PointerTargetMissing {
        /// The class.
        class: String,
        /// The field.
        field: String,
        /// The class pointed to.
        target_class: String,
        /// The objectId pointed to.
        object_id: String,
    },
    /// A signature on a version that is not the record's latest.
    #[error("{class} {object_id}: version {given} is not the latest ({latest}); sign the current version")]
    OutdatedVersion {
        /// The class.
        class: String,
        /// The objectId.
        object_id: String,
        /// The version given.
        given: u64,
        /// The latest version.
        latest: u64,
    },
    /// A malformed request field.
    #[error("{field}: {why}")]
    BadRequest {
        /// The field of the request.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Reading the store failed while checking the request; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the group this append was part of failed; nothing was acknowledged.
    #[error("writing to the store failed, nothing was recorded: {0}")]
    WriteFailed(String),
    /// The data directory's file system has less room than the reserve, or is read-only:
    /// nothing was recorded, and writes resume by themselves once it has room again.
    #[error("{0}: nothing was recorded; writes resume by themselves once the data directory has room and is writable")]
    StorageUnavailable(String),
    /// Making the write durable failed; the ledger refuses writes until it is reopened.
    #[error("durability failure, the ledger refuses writes until restarted: {0}")]
    Durability(String),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// The ledger is shutting down.
    #[error("the ledger is closed")]
    Closed,
    /// The ledger was opened read-only (an auditor's copy): it never appends.
    #[error("the ledger was opened read-only: nothing can be appended")]
    ReadOnly,
}
