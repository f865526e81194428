//! The proofs the ledger hands out, in the form the server and CLI ship (JSON, hashes in
//! lowercase hex; docs/FORMAT.md §8.4), and their verification against signed checkpoints.
//!
//! Verifying a proof against a checkpoint checks the proof's log and sizes against the
//! checkpoint's and the hashes against its root; it does not check the checkpoint's
//! signature — do that first with [`Checkpoint::verify`].

use serde::{Deserialize, Serialize};

use super::{event_leaf, verify_consistency, verify_inclusion, Blake3, ProofFailure};
use crate::checkpoint::Checkpoint;
use crate::event::Hash32;

/// A proof that event `seq` of `app` is in the app's tree of `tree_size` events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The app (the log).
    pub app: String,
    /// The event proved (leaf `seq - 1`).
    pub seq: u64,
    /// The size of the tree it is proved in.
    pub tree_size: u64,
    /// RFC 6962 `PATH(seq - 1, D[0:tree_size])`: sibling hashes, the leaf's own first.
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash32>,
}

impl InclusionProof {
    /// The root this proof leads to from the event with hash `event_hash`.
    pub fn root_from(&self, event_hash: &Hash32) -> Result<Hash32, ProofFailure> {
        let index = self
            .seq
            .checked_sub(1)
            .ok_or_else(|| ProofFailure::OutOfRange("events are numbered from 1, not 0".into()))?;
        super::root_from_inclusion::<Blake3>(
            &event_leaf(event_hash),
            index,
            self.tree_size,
            &self.path,
        )
    }

    /// Verifies that the event with hash `event_hash` is event `seq` of the tree whose
    /// root is `root` (of `tree_size` events).
    pub fn verify_root(&self, event_hash: &Hash32, root: &Hash32) -> Result<(), ProofFailure> {
        let index = self
            .seq
            .checked_sub(1)
            .ok_or_else(|| ProofFailure::OutOfRange("events are numbered from 1, not 0".into()))?;
        verify_inclusion::<Blake3>(
            &event_leaf(event_hash),
            index,
            self.tree_size,
            &self.path,
            root,
        )
    }

    /// Verifies that the event with hash `event_hash` is event `seq` of the log the
    /// checkpoint signs (same app, same size, leading to its root). Check the
    /// checkpoint's signature first.
    pub fn verify(&self, event_hash: &Hash32, checkpoint: &Checkpoint) -> Result<(), ProofFailure> {
        same_log(&self.app, checkpoint)?;
        if self.tree_size != checkpoint.size() {
            return Err(ProofFailure::SizeMismatch {
                proof: self.tree_size,
                checkpoint: checkpoint.size(),
            });
        }
        self.verify_root(event_hash, checkpoint.root())
    }
}

/// A proof that `app`'s tree of `old_size` events is a prefix of its tree of `new_size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The app (the log).
    pub app: String,
    /// The older, smaller tree's size.
    pub old_size: u64,
    /// The newer tree's size.
    pub new_size: u64,
    /// RFC 6962 `PROOF(old_size, D[0:new_size])`.
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash32>,
}

impl ConsistencyProof {
    /// Verifies the proof between two roots.
    pub fn verify_roots(&self, old_root: &Hash32, new_root: &Hash32) -> Result<(), ProofFailure> {
        verify_consistency::<Blake3>(self.old_size, self.new_size, &self.path, old_root, new_root)
    }

    /// Verifies that the log `new` signs extends the log `old` signs: same log, sizes as
    /// the proof says, and the proof leads to both roots. Check both checkpoints'
    /// signatures first.
    pub fn verify(&self, old: &Checkpoint, new: &Checkpoint) -> Result<(), ProofFailure> {
        same_log(&self.app, old)?;
        if old.origin() != new.origin() {
            return Err(ProofFailure::LogMismatch {
                proof: old.origin().to_string(),
                checkpoint: new.origin().to_string(),
            });
        }
        for (proof, checkpoint) in [(self.old_size, old.size()), (self.new_size, new.size())] {
            if proof != checkpoint {
                return Err(ProofFailure::SizeMismatch { proof, checkpoint });
            }
        }
        self.verify_roots(old.root(), new.root())
    }
}

fn same_log(app: &str, checkpoint: &Checkpoint) -> Result<(), ProofFailure> {
    if checkpoint.app() != Some(app) {
        return Err(ProofFailure::LogMismatch {
            proof: app.to_string(),
            checkpoint: checkpoint.origin().to_string(),
        });
    }
    Ok(())
}

mod hex_hashes {
    //! serde for a list of 32-byte hashes as lowercase hex strings.
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::event::Hash32;

    pub(crate) fn serialize<S: Serializer>(v: &[Hash32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash32>, D::Error> {
        let texts: Vec<String> = Vec::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                let mut h = [0u8; 32];
                if t.len() != 64 || t.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(D::Error::custom(format!(
                        "{t:?} is not 64 lowercase hex digits"
                    )));
                }
                hex::decode_to_slice(t, &mut h).map_err(D::Error::custom)?;
                Ok(h)
            })
            .collect()
    }
}
