//! The hash a Merkle tree is built with: RFC 6962/9162 leaf and interior-node hashing
//! (`0x00` and `0x01` prefixes) over a 32-byte hash function. The ledger's trees use
//! [`Blake3`]; [`Sha256`] is RFC 6962's own hash, kept so the RFC's known answers run
//! through exactly the code the ledger uses.

use crate::event::Hash32;

/// Prefix of a leaf hash's input (RFC 6962 §2.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash's input (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;

/// A 32-byte hash with the RFC 6962 tree constructions on top of it.
pub trait TreeHash {
    /// The hash function's name, as documented (`blake3`, `sha256`).
    const NAME: &'static str;

    /// The hash of the empty string: the root of a tree of size 0.
    fn hash_empty() -> Hash32;

    /// A leaf's hash: `H(0x00 ‖ data)`.
    fn hash_leaf(data: &[u8]) -> Hash32;

    /// An interior node's hash: `H(0x01 ‖ left ‖ right)`.
    fn hash_children(left: &Hash32, right: &Hash32) -> Hash32;
}

/// BLAKE3 (default mode, 32-byte output): the hash of the ledger's trees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blake3;

impl TreeHash for Blake3 {
    const NAME: &'static str = "blake3";

    fn hash_empty() -> Hash32 {
        *blake3::hash(b"").as_bytes()
    }

    fn hash_leaf(data: &[u8]) -> Hash32 {
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    fn hash_children(left: &Hash32, right: &Hash32) -> Hash32 {
        let mut input = [0u8; 65];
        input[0] = NODE_PREFIX;
        input[1..33].copy_from_slice(left);
        input[33..].copy_from_slice(right);
        *blake3::hash(&input).as_bytes()
    }
}

/// SHA-256: RFC 6962's hash, for its known-answer tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sha256;

impl TreeHash for Sha256 {
    const NAME: &'static str = "sha256";

    fn hash_empty() -> Hash32 {
        use sha2::Digest;
        sha2::Sha256::digest(b"").into()
    }

    fn hash_leaf(data: &[u8]) -> Hash32 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update([LEAF_PREFIX]);
        h.update(data);
        h.finalize().into()
    }

    fn hash_children(left: &Hash32, right: &Hash32) -> Hash32 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update([NODE_PREFIX]);
        h.update(left);
        h.update(right);
        h.finalize().into()
    }
}

/// The leaf hash of an event in the ledger's tree: `blake3(0x00 ‖ event hash)`.
pub fn event_leaf(event_hash: &Hash32) -> Hash32 {
    Blake3::hash_leaf(event_hash)
}
