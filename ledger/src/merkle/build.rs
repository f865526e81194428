//! Building a tree and making proofs from it, generic over the hash and over where the
//! nodes live.
//!
//! A tree is kept as its **complete subtrees**: node `(level, index)` is the root of the
//! subtree over leaves `index·2^level .. (index+1)·2^level`, and it exists once its last
//! leaf has been appended; it never changes after that. Every other subtree hash a root or
//! a proof needs (the incomplete ones on the tree's right edge) is recombined from at most
//! 64 complete ones, so proofs read O(log n) nodes and never need the whole tree.
//!
//! [`Frontier`] appends leaves in O(log n) time and memory and says which complete nodes
//! each leaf creates; [`MemoryTree`] keeps every node in memory (tests, vectors); the
//! ledger's store keeps them on disk ([`super::StoredTree`]). The proofs are RFC 6962's
//! `PATH` and `PROOF` (RFC 9162 §2.1.3.1 and §2.1.4.1), computed by [`inclusion_path`]
//! and [`consistency_path`] over any [`NodeSource`].

use std::marker::PhantomData;

use super::{split, TreeError, TreeHash};
use crate::event::Hash32;

/// Where a tree's complete subtrees are read from.
pub trait NodeSource {
    /// The hash of the complete subtree `(level, index)`: leaves `index·2^level` to
    /// `(index+1)·2^level - 1`. An error if it is not there (yet).
    fn complete(&self, level: u32, index: u64) -> Result<Hash32, TreeError>;
}

/// The Merkle Tree Hash of leaves `start .. start + size` (RFC 6962's `MTH(D[start:start+size])`),
/// read from complete nodes where the subtree is complete and recombined where it is not.
pub fn subtree_hash<H: TreeHash, S: NodeSource + ?Sized>(
    src: &S,
    start: u64,
    size: u64,
) -> Result<Hash32, TreeError> {
    if size == 0 {
        return Ok(H::hash_empty());
    }
    if size.is_power_of_two() && start % size == 0 {
        let level = size.trailing_zeros();
        return src.complete(level, start >> level);
    }
    let k = split(size);
    let left = subtree_hash::<H, S>(src, start, k)?;
    let right = subtree_hash::<H, S>(src, start + k, size - k)?;
    Ok(H::hash_children(&left, &right))
}

/// The root of the tree of the first `size` leaves.
pub fn root<H: TreeHash, S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Hash32, TreeError> {
    subtree_hash::<H, S>(src, 0, size)
}

/// The inclusion proof (audit path) of leaf `index` (0-based) in the tree of the first
/// `size` leaves: RFC 6962 `PATH(index, D[0:size])`, the sibling nearest the leaf first.
pub fn inclusion_path<H: TreeHash, S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash32>, TreeError> {
    if index >= size {
        return Err(TreeError::OutOfRange(format!(
            "leaf {index} is not in a tree of size {size}"
        )));
    }
    let mut path = Vec::with_capacity(64);
    path_into::<H, S>(src, index, 0, size, &mut path)?;
    Ok(path)
}

fn path_into<H: TreeHash, S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash32>,
) -> Result<(), TreeError> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path_into::<H, S>(src, m, start, k, out)?;
        out.push(subtree_hash::<H, S>(src, start + k, n - k)?);
    } else {
        path_into::<H, S>(src, m - k, start + k, n - k, out)?;
        out.push(subtree_hash::<H, S>(src, start, k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of the first `old_size` and `new_size`
/// leaves: RFC 6962 `PROOF(old_size, D[0:new_size])`. Empty when the sizes are equal.
pub fn consistency_path<H: TreeHash, S: NodeSource + ?Sized>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash32>, TreeError> {
    if old_size == 0 || old_size > new_size {
        return Err(TreeError::OutOfRange(format!(
            "no consistency proof from size {old_size} to size {new_size} (need 1 <= old <= new)"
        )));
    }
    let mut path = Vec::with_capacity(64);
    subproof_into::<H, S>(src, old_size, 0, new_size, true, &mut path)?;
    Ok(path)
}

fn subproof_into<H: TreeHash, S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    out: &mut Vec<Hash32>,
) -> Result<(), TreeError> {
    if m == n {
        if !whole {
            out.push(subtree_hash::<H, S>(src, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof_into::<H, S>(src, m, start, k, whole, out)?;
        out.push(subtree_hash::<H, S>(src, start + k, n - k)?);
    } else {
        subproof_into::<H, S>(src, m - k, start + k, n - k, false, out)?;
        out.push(subtree_hash::<H, S>(src, start, k)?);
    }
    Ok(())
}

/// The right edge of a tree: the roots of the complete subtrees its leaves decompose into
/// (one per set bit of its size, largest first). Enough to append and to compute the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash32>,
}

impl Frontier {
    /// The frontier of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of the tree of the first `size` leaves, read from its complete nodes
    /// (one read per set bit of `size`).
    pub fn load<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Self, TreeError> {
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                nodes.push(src.complete(level, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, nodes })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf whose data is `data` (for the ledger: an event hash). Returns the
    /// hashes of the complete nodes this leaf creates, level 0 (its leaf hash) first: node
    /// `(l, (size_before + 1) / 2^l - 1)` for `l = 0 ..= trailing_zeros(size_before + 1)`.
    pub fn push<H: TreeHash>(&mut self, data: &[u8]) -> Vec<Hash32> {
        let index = self.size;
        let mut node = H::hash_leaf(data);
        let mut created = Vec::with_capacity(1 + index.trailing_ones() as usize);
        created.push(node);
        let mut level = 0u32;
        while (index >> level) & 1 == 1 {
            match self.nodes.pop() {
                Some(left) => node = H::hash_children(&left, &node),
                // Unreachable for a frontier built by `push` or `load`: a set bit of the
                // size always has its node. Stop rather than invent a hash.
                None => break,
            }
            created.push(node);
            level += 1;
        }
        self.nodes.push(node);
        self.size += 1;
        created
    }

    /// The root of the tree (`H("")` when empty).
    pub fn root<H: TreeHash>(&self) -> Hash32 {
        let mut iter = self.nodes.iter().rev();
        let Some(last) = iter.next() else {
            return H::hash_empty();
        };
        iter.fold(*last, |acc, left| H::hash_children(left, &acc))
    }
}

/// A tree with every complete node in memory: for tests, test vectors and tools.
#[derive(Clone, Debug)]
pub struct MemoryTree<H: TreeHash> {
    levels: Vec<Vec<Hash32>>,
    frontier: Frontier,
    _hash: PhantomData<H>,
}

impl<H: TreeHash> Default for MemoryTree<H> {
    fn default() -> Self {
        MemoryTree {
            levels: Vec::new(),
            frontier: Frontier::new(),
            _hash: PhantomData,
        }
    }
}

impl<H: TreeHash> MemoryTree<H> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over these leaves' data, in order.
    pub fn from_leaves<D: AsRef<[u8]>>(leaves: impl IntoIterator<Item = D>) -> Self {
        let mut t = Self::new();
        for d in leaves {
            t.push(d.as_ref());
        }
        t
    }

    /// Appends a leaf.
    pub fn push(&mut self, data: &[u8]) {
        for (level, hash) in self.frontier.push::<H>(data).into_iter().enumerate() {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            if let Some(l) = self.levels.get_mut(level) {
                l.push(hash);
            }
        }
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash32, TreeError> {
        self.check(size)?;
        root::<H, _>(self, size)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_path(&self, index: u64, size: u64) -> Result<Vec<Hash32>, TreeError> {
        self.check(size)?;
        inclusion_path::<H, _>(self, index, size)
    }

    /// The consistency proof from `old_size` to `new_size`.
    pub fn consistency_path(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash32>, TreeError> {
        self.check(new_size)?;
        consistency_path::<H, _>(self, old_size, new_size)
    }

    fn check(&self, size: u64) -> Result<(), TreeError> {
        if size > self.size() {
            return Err(TreeError::OutOfRange(format!(
                "size {size} is beyond the tree's {} leaves",
                self.size()
            )));
        }
        Ok(())
    }
}

impl<H: TreeHash> NodeSource for MemoryTree<H> {
    fn complete(&self, level: u32, index: u64) -> Result<Hash32, TreeError> {
        usize::try_from(level)
            .ok()
            .and_then(|l| self.levels.get(l))
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(TreeError::MissingNode { level, index })
    }
}
