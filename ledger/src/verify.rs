//! Verification of a chain: every event's place, link, hashes, time order, key and
//! signature, naming the first bad event and why. The same code checks a store and an
//! export.
//!
//! Work is done in chunks: decoding and hashing in parallel, the order and link checks in
//! sequence, then signatures batch-verified in parallel. A batch that fails is re-checked
//! one signature at a time to name the first bad event.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::canonical::{payload_digest, signature_message, Fields, GENESIS_PREV_HASH};
use crate::event::{Event, EventKind, Hash32, KeyId};
use crate::keys::PublicKey;
use crate::time::Timestamp;

/// How much to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Every place, link, hash, key and signature.
    Full,
    /// Places, links and hashes; no signatures.
    LinksOnly,
}

/// Why an event failed verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The stored or exported record cannot be read.
    Undecodable {
        /// Details.
        detail: String,
    },
    /// Events are missing: this number was expected, a later one found.
    Gap {
        /// The number found instead.
        found: u64,
    },
    /// An earlier number was found where this one was expected (a duplicate or reordering).
    OutOfOrder {
        /// The number found instead.
        found: u64,
    },
    /// The record under this number claims another number.
    Misplaced {
        /// The number the record claims.
        claims: u64,
    },
    /// The event names another app.
    WrongApp {
        /// The app it names.
        found: String,
    },
    /// The stored hash is not the hash of the event's canonical encoding.
    HashMismatch {
        /// Hash stored with the event.
        stored: String,
        /// Hash recomputed from its fields.
        computed: String,
    },
    /// The payload's digest does not match the payload.
    PayloadDigestMismatch,
    /// `prev_hash` is not the previous event's hash.
    BrokenLink {
        /// What the event says.
        prev_hash: String,
        /// The previous event's hash.
        expected: String,
    },
    /// Recorded time went backwards.
    TimeWentBackwards {
        /// The previous event's time.
        previous: String,
        /// This event's time.
        this: String,
    },
    /// Signed by a key that is not the app's active key at this point, not trusted, or
    /// not the one the export publishes.
    UnknownKey {
        /// The key id on the event.
        key_id: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A key event whose declaration cannot be read.
    BadKeyDeclaration {
        /// Details.
        detail: String,
    },
    /// The signature does not verify under the event's key.
    BadSignature,
    /// The payload of an event whose payload may never be removed (a key or schema event)
    /// is missing.
    ProtectedPayloadRemoved,
    /// The chain ends before the head it must reach: events were cut off its end.
    Truncated {
        /// The last event the chain must have.
        expected_last: u64,
    },
    /// An export holds events past the head it declares.
    BeyondHead {
        /// The head the export declares.
        head_seq: u64,
    },
    /// The event at the expected head has another hash than the head records.
    HeadMismatch {
        /// The hash the head records.
        expected: String,
        /// The event's hash.
        found: String,
    },
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Undecodable { detail } => write!(f, "record cannot be decoded: {detail}"),
            FailureKind::Gap { found } => write!(f, "gap: event missing, next present is {found}"),
            FailureKind::OutOfOrder { found } => {
                write!(f, "out of order: found event {found} again")
            }
            FailureKind::Misplaced { claims } => write!(
                f,
                "misplaced: the record stored here claims to be event {claims}"
            ),
            FailureKind::WrongApp { found } => write!(f, "belongs to app {found:?}"),
            FailureKind::HashMismatch { stored, computed } => {
                write!(f, "hash mismatch: stored {stored}, recomputed {computed}")
            }
            FailureKind::PayloadDigestMismatch => write!(f, "payload does not match its digest"),
            FailureKind::BrokenLink {
                prev_hash,
                expected,
            } => write!(
                f,
                "broken link: prev_hash {prev_hash}, previous event's hash {expected}"
            ),
            FailureKind::TimeWentBackwards { previous, this } => {
                write!(f, "recorded time went backwards: {this} after {previous}")
            }
            FailureKind::UnknownKey { key_id, detail } => {
                write!(f, "unknown key {key_id}: {detail}")
            }
            FailureKind::BadKeyDeclaration { detail } => write!(f, "bad key declaration: {detail}"),
            FailureKind::BadSignature => write!(f, "bad signature"),
            FailureKind::ProtectedPayloadRemoved => {
                write!(f, "the payload of a key or schema event was removed")
            }
            FailureKind::Truncated { expected_last } => write!(
                f,
                "missing: the chain ends before event {expected_last}, its recorded head"
            ),
            FailureKind::BeyondHead { head_seq } => write!(
                f,
                "beyond head: the export declares its last event is {head_seq}"
            ),
            FailureKind::HeadMismatch { expected, found } => write!(
                f,
                "head mismatch: the head records hash {expected}, the event has {found}"
            ),
        }
    }
}

/// The first bad event and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Its sequence number (for a gap or reordering: the number expected there).
    pub seq: u64,
    /// Why.
    #[serde(flatten)]
    pub kind: FailureKind,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {}: {}", self.seq, self.kind)
    }
}

/// A key the chain declared, and the events it signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRange {
    /// The key.
    pub key_id: KeyId,
    /// Its 32 bytes, hex.
    pub public_key: String,
    /// The event that declared it (1 for the genesis key).
    pub from_seq: u64,
    /// The last event it signed, once a rotation replaced it.
    pub to_seq: Option<u64>,
}

/// The outcome of verifying one app's chain.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// The app.
    pub app: String,
    /// What was checked.
    pub mode: VerifyMode,
    /// Events that verified.
    pub verified: u64,
    /// The last event that verified, if any.
    pub last_seq: u64,
    /// The hash of event 1.
    pub first_hash: Option<String>,
    /// The hash of the last verified event.
    pub last_hash: Option<String>,
    /// Recorded time of event 1.
    pub first_time: Option<Timestamp>,
    /// Recorded time of the last verified event.
    pub last_time: Option<Timestamp>,
    /// Keys declared along the verified part of the chain.
    pub keys: Vec<KeyRange>,
    /// Events whose payload was lawfully redacted (their digest could not be rechecked).
    pub redacted: u64,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

impl VerifyReport {
    /// Whether everything checked verified.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// What the sequential checks need of one event, computed in parallel beforehand: its
/// own fields, whether its hash and payload digest recompute, and the key it declares.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Its sequence number.
    pub seq: u64,
    /// The app it names, if not the chain's.
    pub other_app: Option<String>,
    /// Recorded time.
    pub recorded_at: Timestamp,
    /// Its kind.
    pub kind: EventKind,
    /// The stored hash.
    pub hash: Hash32,
    /// The hash recomputed from its fields.
    pub computed: Hash32,
    /// Whether the payload matches its digest (true when the payload was removed).
    pub digest_ok: bool,
    /// Whether the payload was removed.
    pub redacted: bool,
    /// The previous event's hash, as the event says.
    pub prev_hash: Hash32,
    /// The key id on the event.
    pub key_id: KeyId,
    /// The signature.
    pub signature: [u8; 64],
    /// For `app.created` and `key.rotated`: the key it declares.
    pub declared_key: Option<Result<PublicKey, String>>,
}

impl Summary {
    /// Summarises an event of `app`'s chain given its hashed fields and the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app: &str,
        fields: Fields<'_>,
        kind: EventKind,
        payload: Option<&[u8]>,
        hash: Hash32,
        signature: [u8; 64],
    ) -> Self {
        Summary {
            seq: fields.seq,
            other_app: (fields.app != app).then(|| fields.app.to_string()),
            recorded_at: Timestamp(fields.recorded_at),
            kind,
            hash,
            computed: fields.hash(),
            digest_ok: payload.is_none_or(|p| payload_digest(p) == *fields.payload_digest),
            redacted: payload.is_none(),
            prev_hash: *fields.prev_hash,
            key_id: KeyId(*fields.key_id),
            signature,
            declared_key: declared_key_in(kind, payload),
        }
    }

    /// Summarises an owned event.
    pub fn of_event(app: &str, e: &Event) -> Self {
        Summary::new(
            app,
            Fields::of(e),
            e.kind,
            e.payload.as_deref(),
            e.hash,
            e.signature,
        )
    }
}

/// One record to verify: the number it is stored under (if storage gives one) and its
/// summary, or why it could not be read.
#[derive(Debug)]
pub struct Item {
    /// The sequence number of the storage key (None for exports, where only order counts).
    pub key: Option<u64>,
    /// The summary, or why the record could not be decoded.
    pub summary: Result<Summary, String>,
}

/// What to check the chain against beyond itself: pinned and published keys, and the head
/// it must reach (a chain alone cannot show that its tail was cut off).
#[derive(Clone, Debug, Default)]
pub struct VerifyPolicy {
    /// If set, the chain must reach this event and it must have this hash (the store's head
    /// record, an export's declared head, or a head the auditor recorded earlier).
    pub expected_head: Option<(u64, Hash32)>,
    /// Whether the chain must end exactly at `expected_head` (an export's own head).
    pub exact_head: bool,
    /// If set, the genesis key must be one of these (pinned out of band).
    pub trusted_genesis: Option<Vec<PublicKey>>,
    /// If set, every key the chain declares must be published here (an export's keys).
    pub published: Option<Vec<PublicKey>>,
}

/// Verifies one app's chain, chunk by chunk.
pub struct ChainVerifier {
    app: String,
    mode: VerifyMode,
    policy: VerifyPolicy,
    next_seq: u64,
    prev_hash: Hash32,
    prev_time: Option<Timestamp>,
    active: Option<(KeyId, VerifyingKey)>,
    /// The hash of the last event accounted for (hex-encoded into the report at the end).
    last_hash: Option<Hash32>,
    report: VerifyReport,
    /// The last chunk's items, kept so that the next chunk reuses their buffer (a chunk's
    /// items are megabytes: allocated anew, their pages would be zeroed again each time).
    items: Vec<Item>,
}

/// Signatures to check: (seq, key, hash, signature).
type SigJob = (u64, VerifyingKey, Hash32, [u8; 64]);

impl ChainVerifier {
    /// A verifier for `app`'s chain from event 1.
    pub fn new(app: &str, mode: VerifyMode, policy: VerifyPolicy) -> Self {
        ChainVerifier {
            app: app.to_string(),
            mode,
            policy,
            next_seq: 1,
            prev_hash: GENESIS_PREV_HASH,
            prev_time: None,
            active: None,
            last_hash: None,
            items: Vec::new(),
            report: VerifyReport {
                app: app.to_string(),
                mode,
                verified: 0,
                last_seq: 0,
                first_hash: None,
                last_hash: None,
                first_time: None,
                last_time: None,
                keys: Vec::new(),
                redacted: 0,
                failure: None,
            },
        }
    }

    /// Whether a failure has been found (later chunks are then ignored).
    pub fn failed(&self) -> bool {
        self.report.failure.is_some()
    }

    /// Checks the next chunk of records, in chain order: `summarize` (given the app) turns
    /// each raw record into an [`Item`], in parallel; the order, links and keys are then
    /// checked in sequence, and the signatures in parallel batches.
    pub fn push_with<C>(
        &mut self,
        chunk: C,
        summarize: impl Fn(&str, C::Item) -> Item + Sync + Send,
    ) where
        C: IntoParallelIterator,
        C::Iter: IndexedParallelIterator,
    {
        if self.failed() {
            return;
        }
        let app = self.app.as_str();
        let mut items = std::mem::take(&mut self.items);
        chunk
            .into_par_iter()
            .map(|raw| summarize(app, raw))
            .collect_into_vec(&mut items);
        self.push(&items);
        self.items = items;
    }

    /// Checks the next chunk of already summarised records, in chain order.
    pub fn push(&mut self, items: &[Item]) {
        if self.failed() {
            return;
        }
        let mut sigs: Vec<SigJob> = match self.mode {
            VerifyMode::Full => Vec::with_capacity(items.len()),
            VerifyMode::LinksOnly => Vec::new(),
        };
        let mut fail: Option<Failure> = None;
        let mut accepted: Vec<&Summary> = Vec::with_capacity(items.len());
        for item in items {
            match self.check_one(item, &mut sigs) {
                Ok(e) => accepted.push(e),
                Err(f) => {
                    fail = Some(f);
                    break;
                }
            }
        }
        if self.mode == VerifyMode::Full {
            if let Some(bad) = first_bad_signature(&sigs) {
                fail = Some(Failure {
                    seq: bad,
                    kind: FailureKind::BadSignature,
                });
                accepted.retain(|e| e.seq < bad);
            }
        }
        for e in accepted {
            self.account(e);
        }
        self.report.failure = fail;
    }

    /// The report, once every chunk has been pushed.
    pub fn finish(mut self) -> VerifyReport {
        if let Some(last) = self.report.keys.last_mut() {
            last.to_seq = None;
        }
        if let (None, Some((n, _))) = (&self.report.failure, self.policy.expected_head) {
            if self.report.last_seq < n {
                self.report.failure = Some(Failure {
                    seq: self.report.last_seq + 1,
                    kind: FailureKind::Truncated { expected_last: n },
                });
            }
        }
        self.report.last_hash = self.last_hash.map(hex::encode);
        self.report.app = self.app;
        self.report
    }

    fn account(&mut self, e: &Summary) {
        let r = &mut self.report;
        r.verified += 1;
        r.last_seq = e.seq;
        if e.seq == 1 {
            r.first_hash = Some(hex::encode(e.hash));
            r.first_time = Some(e.recorded_at);
        }
        self.last_hash = Some(e.hash);
        r.last_time = Some(e.recorded_at);
        if e.redacted {
            r.redacted += 1;
        }
        if let Some(k) = r.keys.last_mut() {
            k.to_seq = Some(e.seq);
        }
        if let Some(Ok(declared)) = &e.declared_key {
            // The declaring event is signed by the old key; the new key signs from the next.
            r.keys.push(KeyRange {
                key_id: declared.key_id,
                public_key: declared.hex(),
                from_seq: if e.kind == EventKind::AppCreated {
                    e.seq
                } else {
                    e.seq + 1
                },
                to_seq: None,
            });
        }
    }

    fn check_one<'a>(
        &mut self,
        item: &'a Item,
        sigs: &mut Vec<SigJob>,
    ) -> Result<&'a Summary, Failure> {
        let at = self.next_seq;
        let fail = |seq: u64, kind: FailureKind| Failure { seq, kind };
        let e = match &item.summary {
            Ok(e) => e,
            Err(detail) => {
                // A missing event before this one is the first thing wrong.
                return Err(match item.key {
                    Some(k) if k > at => fail(at, FailureKind::Gap { found: k }),
                    _ => fail(
                        at,
                        FailureKind::Undecodable {
                            detail: detail.clone(),
                        },
                    ),
                });
            }
        };
        let position = item.key.unwrap_or(e.seq);
        if position > at {
            return Err(fail(at, FailureKind::Gap { found: position }));
        }
        if position < at {
            return Err(fail(at, FailureKind::OutOfOrder { found: position }));
        }
        if e.seq != position {
            return Err(fail(at, FailureKind::Misplaced { claims: e.seq }));
        }
        if let Some(other) = &e.other_app {
            return Err(fail(
                at,
                FailureKind::WrongApp {
                    found: other.clone(),
                },
            ));
        }
        if e.computed != e.hash {
            return Err(fail(
                at,
                FailureKind::HashMismatch {
                    stored: hex::encode(e.hash),
                    computed: hex::encode(e.computed),
                },
            ));
        }
        if !e.digest_ok {
            return Err(fail(at, FailureKind::PayloadDigestMismatch));
        }
        if e.redacted
            && matches!(
                e.kind,
                EventKind::AppCreated | EventKind::KeyRotated | EventKind::SchemaChanged
            )
        {
            return Err(fail(at, FailureKind::ProtectedPayloadRemoved));
        }
        if e.prev_hash != self.prev_hash {
            return Err(fail(
                at,
                FailureKind::BrokenLink {
                    prev_hash: hex::encode(e.prev_hash),
                    expected: hex::encode(self.prev_hash),
                },
            ));
        }
        if let Some(prev) = self.prev_time {
            if e.recorded_at < prev {
                return Err(fail(
                    at,
                    FailureKind::TimeWentBackwards {
                        previous: prev.to_rfc3339(),
                        this: e.recorded_at.to_rfc3339(),
                    },
                ));
            }
        }
        if let Some((n, h)) = self.policy.expected_head {
            if self.policy.exact_head && e.seq > n {
                return Err(fail(at, FailureKind::BeyondHead { head_seq: n }));
            }
            if e.seq == n && e.hash != h {
                return Err(fail(
                    at,
                    FailureKind::HeadMismatch {
                        expected: hex::encode(h),
                        found: hex::encode(e.hash),
                    },
                ));
            }
        }
        if self.mode == VerifyMode::Full {
            let signer = self.signing_key_for(e)?;
            sigs.push((e.seq, signer, e.hash, e.signature));
        }
        self.next_seq += 1;
        self.prev_hash = e.hash;
        self.prev_time = Some(e.recorded_at);
        Ok(e)
    }

    /// The key that must have signed `e`, updating the active key on key events.
    fn signing_key_for(&mut self, e: &Summary) -> Result<VerifyingKey, Failure> {
        let unknown = |detail: String| Failure {
            seq: e.seq,
            kind: FailureKind::UnknownKey {
                key_id: e.key_id.to_string(),
                detail,
            },
        };
        let bad_declaration = |detail: String| Failure {
            seq: e.seq,
            kind: FailureKind::BadKeyDeclaration { detail },
        };
        let declared = match &e.declared_key {
            None => None,
            Some(Ok(k)) => Some(*k),
            Some(Err(detail)) => return Err(bad_declaration(detail.clone())),
        };
        if e.seq == 1 {
            if e.kind != EventKind::AppCreated {
                return Err(bad_declaration(format!(
                    "event 1 must be app.created, not {}",
                    e.kind
                )));
            }
            let k = declared
                .ok_or_else(|| bad_declaration("event 1 must declare the first key".into()))?;
            if let Some(trusted) = &self.policy.trusted_genesis {
                if !trusted.contains(&k) {
                    return Err(unknown(format!(
                        "the genesis key {} is not among the trusted keys",
                        k.key_id
                    )));
                }
            }
            self.check_published(e, &k)?;
            let vk = k.verifying_key().ok_or_else(|| {
                bad_declaration("the genesis key is not a valid ed25519 point".into())
            })?;
            self.active = Some((k.key_id, vk));
        } else if e.kind == EventKind::AppCreated {
            return Err(bad_declaration("app.created after event 1".into()));
        }
        let (active_id, active_vk) = self.active.ok_or_else(|| unknown("no active key".into()))?;
        if e.key_id != active_id {
            return Err(unknown(format!(
                "the active key at this point is {active_id}"
            )));
        }
        if e.kind == EventKind::KeyRotated {
            let k = declared.ok_or_else(|| bad_declaration("key.rotated without a key".into()))?;
            self.check_published(e, &k)?;
            let vk = k.verifying_key().ok_or_else(|| {
                bad_declaration("the new key is not a valid ed25519 point".into())
            })?;
            self.active = Some((k.key_id, vk));
        }
        Ok(active_vk)
    }

    fn check_published(&self, e: &Summary, k: &PublicKey) -> Result<(), Failure> {
        match &self.policy.published {
            Some(list) if !list.contains(k) => Err(Failure {
                seq: e.seq,
                kind: FailureKind::UnknownKey {
                    key_id: k.key_id.to_string(),
                    detail: "the chain declares a key the export does not publish (or publishes differently)".into(),
                },
            }),
            _ => Ok(()),
        }
    }
}

/// The key an `app.created` or `key.rotated` event declares: payload field `key`
/// = {"key_id": hex, "public_key": hex}.
pub fn declared_key(e: &Event) -> Option<Result<PublicKey, String>> {
    declared_key_in(e.kind, e.payload.as_deref())
}

fn declared_key_in(kind: EventKind, payload: Option<&[u8]>) -> Option<Result<PublicKey, String>> {
    if !matches!(kind, EventKind::AppCreated | EventKind::KeyRotated) {
        return None;
    }
    let parse = || -> Result<PublicKey, String> {
        let payload = payload.ok_or("the payload was redacted")?;
        let v: Value =
            serde_json::from_slice(payload).map_err(|err| format!("payload is not JSON: {err}"))?;
        let hex_key = v
            .pointer("/key/public_key")
            .and_then(Value::as_str)
            .ok_or("payload has no key.public_key")?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes)
            .map_err(|_| "key.public_key is not 64 hex digits")?;
        let k = PublicKey::from_bytes(bytes);
        let id = v
            .pointer("/key/key_id")
            .and_then(Value::as_str)
            .ok_or("payload has no key.key_id")?;
        if id != k.key_id.to_string() {
            return Err(format!(
                "key.key_id {id} is not the id of key.public_key ({})",
                k.key_id
            ));
        }
        Ok(k)
    };
    Some(parse())
}

/// The lowest sequence number whose signature fails, checking in parallel batches.
fn first_bad_signature(jobs: &[SigJob]) -> Option<u64> {
    const BATCH: usize = 128;
    jobs.par_chunks(BATCH)
        .filter_map(|chunk| {
            let msgs: Vec<Vec<u8>> = chunk.iter().map(|j| signature_message(&j.2)).collect();
            let msg_refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let sigs: Vec<Signature> = chunk.iter().map(|j| Signature::from_bytes(&j.3)).collect();
            let keys: Vec<VerifyingKey> = chunk.iter().map(|j| j.1).collect();
            if ed25519_dalek::verify_batch(&msg_refs, &sigs, &keys).is_ok() {
                return None;
            }
            chunk
                .iter()
                .zip(&msgs)
                .zip(&sigs)
                .find(|((j, m), s)| j.1.verify_strict(m, s).is_err())
                .map(|((j, _), _)| j.0)
        })
        .min()
}
