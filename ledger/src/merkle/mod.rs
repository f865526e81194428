//! The Merkle tree over each app's event hashes, and its proofs (SPEC §3.5).
//!
//! The construction is RFC 6962/9162's (docs/FORMAT.md §8): leaf `i` (0-based) of an
//! app's tree is event `i + 1`, its leaf hash `blake3(0x00 ‖ event hash)`; an interior
//! node is `blake3(0x01 ‖ left ‖ right)`; a tree of `n > 1` leaves splits at the largest
//! power of two smaller than `n`. Everything is generic over [`TreeHash`], so RFC 6962's
//! SHA-256 known answers run through the same code.
//!
//! - [`hash`]: the leaf/node hashing, [`Blake3`] and [`Sha256`];
//! - [`build`]: appending ([`Frontier`]), an in-memory tree ([`MemoryTree`]), and proof
//!   generation over any [`NodeSource`];
//! - [`verify`]: offline verification of inclusion and consistency proofs;
//! - [`StoredTree`]: the ledger's tree on disk (complete nodes in the app's store);
//! - [`InclusionProof`] and [`ConsistencyProof`]: the proofs the ledger hands out, with
//!   their JSON form, verified against signed [`crate::checkpoint::Checkpoint`]s.

pub mod build;
pub mod hash;
mod proofs;
mod stored;
pub mod verify;

pub use build::{
    consistency_path, inclusion_path, root, subtree_hash, Frontier, MemoryTree, NodeSource,
};
pub use hash::{event_leaf, Blake3, Sha256, TreeHash, LEAF_PREFIX, NODE_PREFIX};
pub use proofs::{ConsistencyProof, InclusionProof};
pub use stored::StoredTree;
pub use verify::{
    consistency_path_len, inclusion_path_len, root_from_inclusion, verify_consistency,
    verify_inclusion, ProofFailure,
};

use crate::store::StoreError;

/// The largest power of two smaller than `n` (RFC 6962's split point; `n >= 2`).
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Why a tree could not be read or a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// No such app.
    #[error("app {0:?} does not exist")]
    UnknownApp(String),
    /// The requested sizes or index are not in the (durable) tree.
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// A complete node that must exist is not stored.
    #[error("Merkle tree node (level {level}, index {index}) is missing")]
    MissingNode {
        /// Its level (0: a leaf).
        level: u32,
        /// Its index within the level.
        index: u64,
    },
    /// The stored tree disagrees with itself or with the log.
    #[error("the Merkle tree of app {app} is corrupt: {detail}")]
    Corrupt {
        /// The app.
        app: String,
        /// What is wrong.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_the_largest_power_of_two_below() {
        for (n, k) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (100, 64)] {
            assert_eq!(split(n), k, "{n}");
        }
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn a_frontier_matches_a_memory_tree_and_reloads_from_its_nodes() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::<Blake3>::new();
        for i in 0u64..70 {
            f.push::<Blake3>(&i.to_be_bytes());
            t.push(&i.to_be_bytes());
            let n = i + 1;
            assert_eq!(Ok(f.root::<Blake3>()), t.root(n).map_err(|e| e.to_string()));
            let loaded = Frontier::load(&t, n).map_err(|e| e.to_string());
            assert_eq!(loaded, Ok(f.clone()));
        }
    }
}
