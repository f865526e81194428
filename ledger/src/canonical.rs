//! The canonical byte encoding of an event, its hash, its payload digest and its signature
//! input. This is the public contract that docs/FORMAT.md specifies byte for byte; change
//! nothing here without a new format version and new test vectors.

use crate::event::{Event, Hash32, KeyId};

/// Prefix of the bytes hashed into an event hash.
pub const EVENT_HASH_DOMAIN: &[u8] = b"audit-ledger/event/v1\0";
/// Prefix of the bytes hashed into a payload digest.
pub const PAYLOAD_DIGEST_DOMAIN: &[u8] = b"audit-ledger/payload/v1\0";
/// Prefix of the message an ed25519 signature is made over (followed by the 32-byte hash).
pub const SIGNATURE_DOMAIN: &[u8] = b"audit-ledger/event-signature/v1\0";
/// Prefix of the bytes hashed into a key id (followed by the 32-byte public key).
pub const KEY_ID_DOMAIN: &[u8] = b"audit-ledger/key-id/v1\0";
/// The `prev_hash` of event 1.
pub const GENESIS_PREV_HASH: Hash32 = [0u8; 32];

/// blake3(PAYLOAD_DIGEST_DOMAIN ‖ payload).
pub fn payload_digest(payload: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(PAYLOAD_DIGEST_DOMAIN);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// The short id of an ed25519 public key: blake3(KEY_ID_DOMAIN ‖ key)[..8].
pub fn key_id(public_key: &[u8; 32]) -> KeyId {
    let mut h = blake3::Hasher::new();
    h.update(KEY_ID_DOMAIN);
    h.update(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&h.finalize().as_bytes()[..8]);
    KeyId(id)
}

/// The message an event's signature is over: SIGNATURE_DOMAIN ‖ hash.
pub fn signature_message(hash: &Hash32) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 32);
    m.extend_from_slice(SIGNATURE_DOMAIN);
    m.extend_from_slice(hash);
    m
}

/// The hashed fields of an event, borrowed (docs/FORMAT.md §2, in order).
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    /// #1
    pub app: &'a str,
    /// #2
    pub seq: u64,
    /// #3
    pub id: &'a [u8; 16],
    /// #4, microseconds since the epoch
    pub recorded_at: i64,
    /// #5–#7: user id, username, role
    pub actor: (&'a str, &'a str, &'a str),
    /// #8
    pub idempotency_key: Option<&'a str>,
    /// #9
    pub reason: Option<&'a str>,
    /// #10, the kind's name
    pub kind: &'a str,
    /// #11: class and objectId
    pub subject: Option<(&'a str, &'a str)>,
    /// #12
    pub payload_digest: &'a Hash32,
    /// #13
    pub prev_hash: &'a Hash32,
    /// #14
    pub key_id: &'a [u8; 8],
}

impl<'a> Fields<'a> {
    /// The hashed fields of an event.
    pub fn of(e: &'a Event) -> Self {
        Fields {
            app: &e.app,
            seq: e.seq,
            id: &e.id,
            recorded_at: e.recorded_at.0,
            actor: (&e.actor.user_id, &e.actor.username, &e.actor.role),
            idempotency_key: e.idempotency_key.as_deref(),
            reason: e.reason.as_deref(),
            kind: e.kind.name(),
            subject: e
                .subject
                .as_ref()
                .map(|s| (s.class.as_str(), s.object_id.as_str())),
            payload_digest: &e.payload_digest,
            prev_hash: &e.prev_hash,
            key_id: &e.key_id.0,
        }
    }

    /// The canonical encoding (docs/FORMAT.md §2).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_str(out, self.app);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.id);
        out.extend_from_slice(&self.recorded_at.to_be_bytes());
        put_str(out, self.actor.0);
        put_str(out, self.actor.1);
        put_str(out, self.actor.2);
        put_opt_str(out, self.idempotency_key);
        put_opt_str(out, self.reason);
        put_str(out, self.kind);
        match self.subject {
            None => out.push(0),
            Some((class, object_id)) => {
                out.push(1);
                put_str(out, class);
                put_str(out, object_id);
            }
        }
        out.extend_from_slice(self.payload_digest);
        out.extend_from_slice(self.prev_hash);
        out.extend_from_slice(self.key_id);
    }

    /// blake3(EVENT_HASH_DOMAIN ‖ encode()).
    pub fn hash(&self) -> Hash32 {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(EVENT_HASH_DOMAIN);
        self.encode(&mut buf);
        *blake3::hash(&buf).as_bytes()
    }
}

/// The canonical encoding of every hashed field of `e` (everything but `hash` and
/// `signature`; the payload enters through its digest). Layout in docs/FORMAT.md §2.
pub fn encode(e: &Event, out: &mut Vec<u8>) {
    Fields::of(e).encode(out);
}

/// blake3(EVENT_HASH_DOMAIN ‖ encode(e)).
pub fn event_hash(e: &Event) -> Hash32 {
    Fields::of(e).hash()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Lengths are bounded well below u32::MAX by the append checks (MAX_* in `command`).
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}
