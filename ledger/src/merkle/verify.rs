//! Verifying proofs offline: RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency),
//! generic over the hash. Nothing here reads a store; every failure says why.

use super::{split, TreeHash};
use crate::event::Hash32;

/// Why a proof does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofFailure {
    /// The index or sizes cannot be proved at all (leaf beyond the tree, empty tree,
    /// old tree larger than the new one).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The proof has the wrong number of hashes for its index and sizes.
    #[error("the proof has {got} hashes; a proof for these sizes has {expected}")]
    WrongLength {
        /// What the index and sizes require.
        expected: usize,
        /// What the proof holds.
        got: usize,
    },
    /// The inclusion proof leads to another root: the leaf is not at that index of
    /// that tree (or the proof or root was altered).
    #[error("the proof leads to root {computed}, not to the expected {expected}")]
    RootMismatch {
        /// The root the proof leads to (hex).
        computed: String,
        /// The root it should lead to (hex).
        expected: String,
    },
    /// The consistency proof does not lead to the old root: the old tree is not a prefix
    /// of the new one (something it held was changed or removed).
    #[error("the consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The consistency proof does not lead to the new root.
    #[error("the consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// A proof about one log checked against another log's checkpoint.
    #[error("the proof is for {proof:?}, the checkpoint for {checkpoint:?}")]
    LogMismatch {
        /// The log the proof names.
        proof: String,
        /// The log the checkpoint names.
        checkpoint: String,
    },
    /// A proof's tree size is not the checkpoint's.
    #[error("the proof is for tree size {proof}, the checkpoint has size {checkpoint}")]
    SizeMismatch {
        /// The size the proof is for.
        proof: u64,
        /// The checkpoint's size.
        checkpoint: u64,
    },
}

/// How many hashes the inclusion proof of leaf `index` in a tree of `size` leaves has
/// (`None` if `index >= size`).
pub fn inclusion_path_len(index: u64, size: u64) -> Option<usize> {
    if index >= size {
        return None;
    }
    let (mut m, mut n, mut len) = (index, size, 0usize);
    while n > 1 {
        let k = split(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    Some(len)
}

/// How many hashes the consistency proof from `old_size` to `new_size` has (`None`
/// unless `1 <= old_size <= new_size`).
pub fn consistency_path_len(old_size: u64, new_size: u64) -> Option<usize> {
    if old_size == 0 || old_size > new_size {
        return None;
    }
    let (mut m, mut n, mut whole, mut len) = (old_size, new_size, true, 0usize);
    loop {
        if m == n {
            if !whole {
                len += 1;
            }
            return Some(len);
        }
        let k = split(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
        len += 1;
    }
}

/// The root an inclusion proof leads to from `leaf_hash` at `index` in a tree of `size`
/// leaves (RFC 9162 §2.1.3.2, steps 1–5, without the final comparison).
pub fn root_from_inclusion<H: TreeHash>(
    leaf_hash: &Hash32,
    index: u64,
    size: u64,
    path: &[Hash32],
) -> Result<Hash32, ProofFailure> {
    let expected = inclusion_path_len(index, size).ok_or_else(|| {
        ProofFailure::OutOfRange(format!("leaf {index} is not in a tree of size {size}"))
    })?;
    if path.len() != expected {
        return Err(ProofFailure::WrongLength {
            expected,
            got: path.len(),
        });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in path {
        if s == 0 {
            return Err(ProofFailure::WrongLength {
                expected,
                got: path.len(),
            });
        }
        if f & 1 == 1 || f == s {
            r = H::hash_children(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = H::hash_children(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofFailure::WrongLength {
            expected,
            got: path.len(),
        });
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is leaf `index` (0-based) of the tree of `size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion<H: TreeHash>(
    leaf_hash: &Hash32,
    index: u64,
    size: u64,
    path: &[Hash32],
    root: &Hash32,
) -> Result<(), ProofFailure> {
    let computed = root_from_inclusion::<H>(leaf_hash, index, size, path)?;
    if computed != *root {
        return Err(ProofFailure::RootMismatch {
            computed: hex::encode(computed),
            expected: hex::encode(root),
        });
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the
/// tree of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2). Equal sizes need
/// an empty proof and equal roots.
pub fn verify_consistency<H: TreeHash>(
    old_size: u64,
    new_size: u64,
    path: &[Hash32],
    old_root: &Hash32,
    new_root: &Hash32,
) -> Result<(), ProofFailure> {
    let expected = consistency_path_len(old_size, new_size).ok_or_else(|| {
        ProofFailure::OutOfRange(format!(
            "no consistency proof from size {old_size} to size {new_size} (need 1 <= old <= new)"
        ))
    })?;
    if path.len() != expected {
        return Err(ProofFailure::WrongLength {
            expected,
            got: path.len(),
        });
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofFailure::NewRootMismatch)
        };
    }
    // Step 2: a complete old tree is itself a node of the new one; its root starts the path.
    let mut nodes: Vec<&Hash32> = Vec::with_capacity(path.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(old_root);
    }
    nodes.extend(path.iter());
    let mut iter = nodes.into_iter();
    let Some(first) = iter.next() else {
        return Err(ProofFailure::WrongLength {
            expected,
            got: path.len(),
        });
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in iter {
        if s == 0 {
            return Err(ProofFailure::WrongLength {
                expected,
                got: path.len(),
            });
        }
        if f & 1 == 1 || f == s {
            fr = H::hash_children(c, &fr);
            sr = H::hash_children(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = H::hash_children(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofFailure::WrongLength {
            expected,
            got: path.len(),
        });
    }
    if fr != *old_root {
        return Err(ProofFailure::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofFailure::NewRootMismatch);
    }
    Ok(())
}
