//! Signed checkpoints: an app's tree size, root and time, signed with the app's key in the
//! C2SP tlog-checkpoint / signed-note text format (docs/FORMAT.md §8.3), so that witnesses
//! and auditors can check them with standard tools.
//!
//! ```text
//! audit-ledger/gxp                                  origin: <prefix>/<app>
//! 1234                                              tree size, decimal
//! 6Bw6nPzRqEtq3wV9HfN0Mm1dWb6sBsP9BObC7zIWoRY=      root, base64 (standard, padded)
//! Timestamp: 2026-11-23T12:00:00.000000Z            extension line: when it was signed
//!                                                   blank line
//! — audit-ledger/gxp AbCdEf…                        signature: base64(key hash ‖ ed25519 sig)
//! ```
//!
//! This module parses, signs and verifies checkpoints offline (no store); the ledger cuts,
//! checks and keeps them ([`crate::Ledger::checkpoint`]).

use std::time::Duration;

use base64ct::{Base64, Encoding};
use ed25519_dalek::Signature;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

use crate::event::{Hash32, KeyId};
use crate::keys::{AppKey, KeyStoreError, PublicKey};
use crate::ledger::ReadError;
use crate::merkle::TreeError;
use crate::store::StoreError;
use crate::time::Timestamp;

/// The default first part of checkpoint origins: `audit-ledger/<app>`.
pub const DEFAULT_ORIGIN_PREFIX: &str = "audit-ledger";
/// The extension line that carries a checkpoint's time (RFC 3339, UTC, microseconds).
pub const TIMESTAMP_PREFIX: &str = "Timestamp: ";
/// The signed-note signature algorithm byte of Ed25519 (in key hashes and verifier keys).
pub const ED25519_ALGORITHM: u8 = 0x01;
/// The longest checkpoint text accepted, in bytes.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// How the ledger cuts checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The first part of every app's origin, `<origin_prefix>/<app>`. Name the instance
    /// (e.g. `ledger.example.com`) so that two deployments' logs are told apart; no
    /// spaces or `+`. Default `audit-ledger`.
    pub origin_prefix: String,
    /// How often the server should cut a checkpoint of every app that grew
    /// ([`crate::Ledger::checkpoint_all`]); `None`: on demand only. The ledger itself
    /// schedules nothing. Default 5 minutes.
    pub interval: Option<Duration>,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            origin_prefix: DEFAULT_ORIGIN_PREFIX.to_string(),
            interval: Some(Duration::from_secs(300)),
        }
    }
}

/// Why a checkpoint could not be made, read or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text is not a well-formed checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// An origin or key name that the format does not allow.
    #[error(
        "invalid origin {0:?}: it must be non-empty, without spaces, control characters or '+'"
    )]
    InvalidOrigin(String),
    /// The checkpoint carries no signature by this key.
    #[error("no signature by key {key_name} with key hash {key_hash}")]
    UnknownKey {
        /// The key name looked for (the origin).
        key_name: String,
        /// The 4-byte key hash looked for, hex.
        key_hash: String,
    },
    /// A signature by this key is there but does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The public key is not a valid Ed25519 point.
    #[error("the public key is not a valid Ed25519 key")]
    BadKey,
    /// A new checkpoint would not be consistent with the previous one: the log was
    /// altered behind the ledger's back. Nothing was stored.
    #[error("app {app}: the tree of size {size} is not consistent with the checkpoint of size {previous_size}: {detail}")]
    Inconsistent {
        /// The app.
        app: String,
        /// The previous checkpoint's size.
        previous_size: u64,
        /// The size of the tree now.
        size: u64,
        /// Why.
        detail: String,
    },
    /// The app's signing key is not in the key store.
    #[error("app {app}: the signing key {key_id} is not in the key store")]
    MissingKey {
        /// The app.
        app: String,
        /// The key.
        key_id: KeyId,
    },
    /// The tree could not be read.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
}

/// One signature line of a signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key hash: the first 4 bytes of SHA-256(name ‖ "\n" ‖ algorithm ‖ public key).
    pub key_hash: [u8; 4],
    /// The signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

/// A parsed checkpoint: its text exactly as signed, and the values in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    text: String,
    body_len: usize,
    origin: String,
    size: u64,
    root: Hash32,
    time: Timestamp,
    extensions: Vec<String>,
    signatures: Vec<NoteSignature>,
}

/// Whether a name can be a checkpoint origin or a signed-note key name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// The origin of an app's log: `<prefix>/<app>`.
pub fn origin(prefix: &str, app: &str) -> Result<String, CheckpointError> {
    let o = format!("{prefix}/{app}");
    if !is_valid_name(prefix) || !is_valid_name(app) || app.contains('/') {
        return Err(CheckpointError::InvalidOrigin(o));
    }
    Ok(o)
}

/// The signed-note key hash of an Ed25519 key: the first 4 bytes of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
pub fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = sha2::Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_ALGORITHM]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The signed-note verifier key of an Ed25519 key, as published for note tools:
/// `<name>+<key hash, 8 hex digits>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut k = Vec::with_capacity(33);
    k.push(ED25519_ALGORITHM);
    k.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, public_key)),
        Base64::encode_string(&k)
    )
}

fn malformed(why: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed(why.into())
}

impl Checkpoint {
    /// Signs a checkpoint with `key`; the key name is the origin.
    pub fn sign(
        origin: &str,
        size: u64,
        root: &Hash32,
        time: Timestamp,
        key: &AppKey,
    ) -> Result<Checkpoint, CheckpointError> {
        if !is_valid_name(origin) {
            return Err(CheckpointError::InvalidOrigin(origin.to_string()));
        }
        let body = format!(
            "{origin}\n{size}\n{}\n{TIMESTAMP_PREFIX}{}\n",
            Base64::encode_string(root),
            time.to_rfc3339()
        );
        let mut blob = key_hash(origin, &key.public().bytes).to_vec();
        blob.extend_from_slice(&key.sign_note(body.as_bytes()));
        let text = format!(
            "{body}\n{SIGNATURE_PREFIX}{origin} {}\n",
            Base64::encode_string(&blob)
        );
        Checkpoint::parse(&text)
    }

    /// Parses a checkpoint note (signed-note text: body, blank line, signature lines).
    /// Strict: the text must be exactly what was signed, with canonical numbers, base64
    /// and time, so that one checkpoint has one text. Signatures are not checked here.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(malformed(format!(
                "longer than {MAX_CHECKPOINT_BYTES} bytes"
            )));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("control characters other than newline"));
        }
        let split = text
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let (body, sigs) = (&text[..split + 1], &text[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(malformed("the text must end with a newline"));
        }
        let signatures = sigs
            .split_terminator('\n')
            .map(parse_signature)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(malformed("no signature"));
        }
        let mut lines = body.split_terminator('\n');
        let origin = lines.next().unwrap_or_default();
        if !is_valid_name(origin) {
            return Err(CheckpointError::InvalidOrigin(origin.to_string()));
        }
        let size_text = lines.next().ok_or_else(|| malformed("no tree size line"))?;
        let size: u64 = size_text
            .parse()
            .ok()
            .filter(|n: &u64| n.to_string() == size_text)
            .ok_or_else(|| {
                malformed(format!(
                    "tree size {size_text:?} is not a canonical decimal"
                ))
            })?;
        let root_text = lines.next().ok_or_else(|| malformed("no root hash line"))?;
        let root: Hash32 = Base64::decode_vec(root_text)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                malformed(format!(
                    "root {root_text:?} is not 32 bytes in padded base64"
                ))
            })?;
        let mut time = None;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(malformed("an empty extension line"));
            }
            match line.strip_prefix(TIMESTAMP_PREFIX) {
                Some(t) => {
                    let parsed = Timestamp::parse_rfc3339(t)
                        .filter(|p| p.to_rfc3339() == t)
                        .ok_or_else(|| {
                            malformed(format!(
                                "timestamp {t:?} is not RFC 3339 UTC with microseconds"
                            ))
                        })?;
                    if time.replace(parsed).is_some() {
                        return Err(malformed("two timestamp lines"));
                    }
                }
                None => extensions.push(line.to_string()),
            }
        }
        let time = time.ok_or_else(|| malformed("no timestamp line"))?;
        Ok(Checkpoint {
            text: text.to_string(),
            body_len: body.len(),
            origin: origin.to_string(),
            size,
            root,
            time,
            extensions,
            signatures,
        })
    }

    /// Verifies the signature by `key` (key name: the origin) over the note's body.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        let hash = key_hash(&self.origin, &key.bytes);
        let sig = self
            .signatures
            .iter()
            .find(|s| s.name == self.origin && s.key_hash == hash)
            .ok_or_else(|| CheckpointError::UnknownKey {
                key_name: self.origin.clone(),
                key_hash: hex::encode(hash),
            })?;
        let vk = key.verifying_key().ok_or(CheckpointError::BadKey)?;
        let bytes: [u8; 64] = sig
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::BadSignature)?;
        vk.verify_strict(self.body().as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// The whole note text, exactly as signed and stored.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signed body: every line up to the blank line, each ending with a newline.
    pub fn body(&self) -> &str {
        &self.text[..self.body_len]
    }

    /// The origin line: `<prefix>/<app>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The app: the origin's last `/`-separated part.
    pub fn app(&self) -> Option<&str> {
        self.origin.rsplit_once('/').map(|(_, app)| app)
    }

    /// The tree size: the checkpoint covers events 1 to `size`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree of that size.
    pub fn root(&self) -> &Hash32 {
        &self.root
    }

    /// When the ledger signed it.
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// Extension lines other than the timestamp (none in checkpoints this ledger makes).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The signature lines.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }
}

fn parse_signature(line: &str) -> Result<NoteSignature, CheckpointError> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| {
        malformed(format!(
            "signature line {line:?} does not start with \"— \""
        ))
    })?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| malformed(format!("signature line {line:?} has no signature")))?;
    if !is_valid_name(name) {
        return Err(CheckpointError::InvalidOrigin(name.to_string()));
    }
    let blob = Base64::decode_vec(b64)
        .map_err(|_| malformed(format!("signature {b64:?} is not padded base64")))?;
    if blob.len() < 5 {
        return Err(malformed("a signature shorter than its key hash"));
    }
    let (hash, signature) = blob.split_at(4);
    Ok(NoteSignature {
        name: name.to_string(),
        key_hash: [hash[0], hash[1], hash[2], hash[3]],
        signature: signature.to_vec(),
    })
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Checkpoint {
    /// As its note text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Checkpoint {
    /// From its note text, parsed strictly (signatures unchecked).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Checkpoint::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Checkpoint, AppKey) {
        let key = AppKey::from_seed(&[7; 32]);
        let cp = Checkpoint::sign(
            "audit-ledger/gxp",
            13,
            &[0xab; 32],
            Timestamp(1_795_435_200_000_000),
            &key,
        )
        .expect("sign");
        (cp, key)
    }

    #[test]
    fn a_signed_checkpoint_reads_back_and_verifies() {
        let (cp, key) = sample();
        assert!(cp.text().starts_with("audit-ledger/gxp\n13\n"));
        assert!(cp
            .body()
            .ends_with("Timestamp: 2026-11-23T12:00:00.000000Z\n"));
        assert_eq!(cp.app(), Some("gxp"));
        assert_eq!(Checkpoint::parse(cp.text()).expect("parse"), cp);
        cp.verify(&key.public()).expect("verifies");
        let other = AppKey::from_seed(&[8; 32]);
        assert!(matches!(
            cp.verify(&other.public()),
            Err(CheckpointError::UnknownKey { .. })
        ));
        let json = serde_json::to_string(&cp).expect("json");
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).expect("back"), cp);
    }

    #[test]
    fn the_verifier_key_has_the_documented_shape() {
        let key = AppKey::from_seed(&[7; 32]);
        let vkey = verifier_key("audit-ledger/gxp", &key.public().bytes);
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "audit-ledger/gxp");
        assert_eq!(parts[1].len(), 8);
        let k = Base64::decode_vec(parts[2]).expect("b64");
        assert_eq!(k[0], 1);
        assert_eq!(&k[1..], &key.public().bytes);
    }

    #[test]
    fn non_canonical_texts_are_refused() {
        let (cp, _) = sample();
        for bad in [
            cp.text().replace("\n13\n", "\n013\n"),
            cp.text().replace(
                "Timestamp: 2026-11-23T12:00:00.000000Z",
                "Timestamp: 2026-11-23T12:00:00Z",
            ),
            cp.text().replace("\n\n", "\n"),
            cp.text().trim_end().to_string(),
            cp.text().replace('\u{2014}', "-"),
            format!("{}\r", cp.text()),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(origin("audit ledger", "gxp").is_err());
        assert!(origin("a+b", "gxp").is_err());
        assert_eq!(
            origin("ledger.example.com", "gxp").expect("ok"),
            "ledger.example.com/gxp"
        );
    }
}
