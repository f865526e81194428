//! Events: what one entry of an app's chain holds, and the kinds of change it records.
//!
//! An [`Event`] is stored and exported whole; its [`hash`](Event::hash) covers every field
//! but the hash itself and the signature (see [`crate::canonical`]), and the signature covers
//! the hash. Payloads are JSON text, kept as the exact bytes that were digested, so verifying
//! never re-serialises anything.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Who caused an event: the user's id, name and role at that moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's objectId (`_system` for events the ledger writes itself).
    pub user_id: String,
    /// The username at the time.
    pub username: String,
    /// The role the user acted in at the time.
    pub role: String,
}

impl Actor {
    /// The actor of events the ledger writes on its own behalf (genesis, schema import).
    pub fn system() -> Self {
        Actor {
            user_id: "_system".into(),
            username: "_system".into(),
            role: "system".into(),
        }
    }
}

/// The record an event is about: a class and an objectId.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subject {
    /// Class name, e.g. `ValidationLog` or `_User`.
    pub class: String,
    /// The record's objectId.
    pub object_id: String,
}

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal; )*) => {
        /// What kind of change an event records. The name is what is hashed and exported.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )*
        }

        impl EventKind {
            /// Every kind, in code order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The kind's name, as hashed and exported (`record.created`…).
            pub fn name(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }

            /// A one-byte code used in internal indexes (never hashed).
            pub fn code(self) -> u8 {
                match self { $(EventKind::$variant => $code,)* }
            }

            /// The kind with this name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(EventKind::$variant),)* _ => None }
            }

            /// The kind with this index code.
            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some(EventKind::$variant),)* _ => None }
            }
        }
    };
}

event_kinds! {
    /// Genesis: the app exists and declares its first signing key.
    AppCreated = 1, "app.created";
    /// The schema changed (a whole definition imported, a class or a field added).
    SchemaChanged = 2, "schema.changed";
    /// A record was created with all its fields.
    RecordCreated = 3, "record.created";
    /// A record changed: only the changed fields, with their new values.
    RecordUpdated = 4, "record.updated";
    /// A record was deleted: a tombstone; its history stays.
    RecordDeleted = 5, "record.deleted";
    /// An electronic signature was applied to one version of a record.
    RecordSigned = 6, "record.signed";
    /// A user account was created (never with a password or its hash).
    UserCreated = 7, "user.created";
    /// A user account changed.
    UserUpdated = 8, "user.updated";
    /// A user account was deleted or disabled.
    UserDeleted = 9, "user.deleted";
    /// A role was granted to or revoked from a user.
    RoleChanged = 10, "role.changed";
    /// A successful login.
    LoginSucceeded = 11, "session.login";
    /// A failed login attempt.
    LoginFailed = 12, "session.login_failed";
    /// A logout.
    Logout = 13, "session.logout";
    /// The signing key was rotated; signed by the old key, naming the new one.
    KeyRotated = 14, "key.rotated";
    /// A request was refused for lack of permission.
    AccessDenied = 15, "access.denied";
    /// An account was locked after failed attempts.
    AccountLocked = 16, "account.locked";
    /// A reviewer examined an audit trail (a record's history, or a day) and signed that
    /// they did (FDA data-integrity guidance: audit-trail review is itself recorded).
    AuditTrailReviewed = 17, "audit_trail.reviewed";
}

impl EventKind {
    /// Kinds whose subject is a record of the app's schema and which change its state.
    pub fn is_record_change(self) -> bool {
        matches!(
            self,
            EventKind::RecordCreated | EventKind::RecordUpdated | EventKind::RecordDeleted
        )
    }

    /// Kinds that make a new version of their subject's data (what a signature signs).
    pub fn is_data_change(self) -> bool {
        matches!(
            self,
            EventKind::RecordCreated
                | EventKind::RecordUpdated
                | EventKind::UserCreated
                | EventKind::UserUpdated
        )
    }

    /// Kinds that leave their subject deleted.
    pub fn deletes_subject(self) -> bool {
        matches!(self, EventKind::RecordDeleted | EventKind::UserDeleted)
    }

    /// Kinds that join their subject's version index (a record's history): data changes,
    /// deletions, signatures, role changes and audit-trail reviews of one record. Logins,
    /// refusals and app-level events are found by scanning, not through a record.
    pub fn in_version_index(self) -> bool {
        matches!(
            self,
            EventKind::RecordCreated
                | EventKind::RecordUpdated
                | EventKind::RecordDeleted
                | EventKind::RecordSigned
                | EventKind::UserCreated
                | EventKind::UserUpdated
                | EventKind::UserDeleted
                | EventKind::RoleChanged
                | EventKind::AuditTrailReviewed
        )
    }

    /// The list of events the store keeps for this kind, so that the ledger finds schema
    /// and key events without a scan.
    pub(crate) fn mark(self) -> Option<crate::store::Mark> {
        match self {
            EventKind::SchemaChanged => Some(crate::store::Mark::Schema),
            EventKind::AppCreated | EventKind::KeyRotated => Some(crate::store::Mark::Key),
            _ => None,
        }
    }

    /// The record-state entry an event of this kind writes, if any: deleted, on deletion.
    /// A creation writes none: a record with versions and no state entry is live since its
    /// first version ([`crate::store::layout::state_of`]), which spares every create an
    /// index entry.
    pub(crate) fn sets_state(self, seq: u64) -> Option<crate::store::RecordState> {
        match self {
            EventKind::RecordDeleted | EventKind::UserDeleted => Some(crate::store::RecordState {
                deleted: true,
                since: seq,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A 32-byte blake3 digest.
pub type Hash32 = [u8; 32];

/// The short id of a public key: the first 8 bytes of its keyed digest (see docs/FORMAT.md).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", hex::encode(self.0))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// One entry of an app's chain, as stored and exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The app (tenant) whose chain this is.
    pub app: String,
    /// Position in the app's chain: 1, 2, 3… with no gaps.
    pub seq: u64,
    /// A unique id (16 random bytes).
    pub id: [u8; 16],
    /// When the ledger recorded it (UTC, never decreasing along the chain).
    pub recorded_at: Timestamp,
    /// Who caused it.
    pub actor: Actor,
    /// The request's idempotency key, if it had one.
    pub idempotency_key: Option<String>,
    /// The reason for change, if one was given.
    pub reason: Option<String>,
    /// What kind of change this is.
    pub kind: EventKind,
    /// The record it is about, if any.
    pub subject: Option<Subject>,
    /// The payload: JSON text. `None` once lawfully redacted (the digest stays).
    /// (Stored as a byte string: postcard writes it exactly as a sequence of bytes, but it
    /// is read in one copy instead of byte by byte.)
    #[serde(with = "serde_bytes")]
    pub payload: Option<Vec<u8>>,
    /// blake3 digest of the payload bytes (see [`crate::canonical::payload_digest`]).
    pub payload_digest: Hash32,
    /// The previous event's hash (32 zero bytes for event 1).
    pub prev_hash: Hash32,
    /// Id of the key that signed this event.
    pub key_id: KeyId,
    /// blake3 over the canonical encoding (see [`crate::canonical::event_hash`]).
    pub hash: Hash32,
    /// ed25519 signature over the domain-separated hash.
    #[serde(with = "sig_bytes")]
    pub signature: [u8; 64],
}

impl Event {
    /// The payload parsed as JSON (`None` if redacted).
    pub fn payload_json(&self) -> Option<Result<serde_json::Value, serde_json::Error>> {
        self.payload.as_deref().map(serde_json::from_slice)
    }

    /// The id as 32 lowercase hex digits.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

mod sig_bytes {
    //! serde for `[u8; 64]` (serde derives arrays only up to 32).
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: &[u8] = <&[u8]>::deserialize(d)?;
        v.try_into()
            .map_err(|_| D::Error::invalid_length(v.len(), &"64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_and_codes_round_trip_and_are_unique() {
        let mut names = std::collections::HashSet::new();
        let mut codes = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(*k));
            assert_eq!(EventKind::from_code(k.code()), Some(*k));
            assert!(names.insert(k.name()));
            assert!(codes.insert(k.code()));
        }
        assert_eq!(EventKind::from_name("record.exploded"), None);
    }
}
