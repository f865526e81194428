//! Key layout inside one app's keyspace (a sled tree named `app:<name>`). Every key starts
//! with a one-byte tag; numbers are big-endian so byte order is numeric order.
//!
//! | key | value |
//! |---|---|
//! | `E` seq(8) | in memory: the event, postcard-encoded ([`crate::codec`]); sled keeps it in its segment and index files ([`super::segment`], [`super::index`]) and has `E` entries only in a store written before them (the event, or where it is: offset(8) ‖ length(4)), migrated at open |
//! | `V` class 0x00 objectId 0x00 seq(8) | kind code (1 byte) |
//! | `R` class 0x00 objectId | state(1: 0 live, 1 deleted) seq(8): written at deletion (until 2026-12-04 at creation too); a record without one is live since its first `V` entry, if it has one ([`state_of`]) |
//! | `I` idempotency key | seq(8) |
//! | `S` seq(8) | empty: a schema event |
//! | `K` seq(8) | empty: an event declaring a key |
//! | `H` | the head: seq(8) ‖ hash(32), rewritten with every batch |
//! | `N` seq(8) | in memory (sled: in the index file, and `N` entries only before it): the Merkle tree nodes event seq completes: `trailing_zeros(seq) + 1` hashes of 32 bytes, level 0 (the leaf hash) first; node (level l, index i) is at offset 32·l of `N` ((i+1)·2^l) |
//! | `T` | the tree size: seq(8), the events the stored nodes cover; rewritten with every batch, = the head's seq |
//! | `C` size(8) | a signed checkpoint of that tree size: its note text (UTF-8) |
//!
//! Class names and objectIds never contain 0x00 (their character sets exclude it), so the
//! version-index prefix of one record is never a prefix of another's.

use super::Mark;

/// Tag of event keys.
pub const EVENT: u8 = b'E';
/// Tag of version-index keys.
pub const VERSION: u8 = b'V';
/// Tag of idempotency keys.
pub const IDEMPOTENCY: u8 = b'I';

/// The key of the head record.
pub const HEAD: &[u8] = b"H";
/// Tag of Merkle tree node keys.
pub const TREE_NODES: u8 = b'N';
/// The key of the tree size record.
pub const TREE_SIZE: &[u8] = b"T";
/// Tag of checkpoint keys.
pub const CHECKPOINT: u8 = b'C';

/// `N` seq: the tree nodes event seq completes.
pub fn tree_nodes_key(seq: u64) -> [u8; 9] {
    let mut k = [TREE_NODES; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The value of an `N` key: the hashes, concatenated.
pub fn tree_nodes_value(nodes: &[[u8; 32]]) -> Vec<u8> {
    nodes.concat()
}

/// Reads an `N` value; a length other than `trailing_zeros(seq) + 1` hashes is corruption.
pub fn decode_tree_nodes(app: &str, seq: u64, v: &[u8]) -> super::StoreResult<Vec<[u8; 32]>> {
    let want = seq.trailing_zeros() as usize + 1;
    if v.len() != want * 32 {
        return Err(super::StoreError::Corrupt(format!(
            "app {app}: the tree nodes of event {seq} are {} bytes, not {}",
            v.len(),
            want * 32
        )));
    }
    Ok(v.chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect())
}

/// Reads the tree size record.
pub fn decode_tree_size(app: &str, v: &[u8]) -> super::StoreResult<u64> {
    seq_of(v)
        .filter(|_| v.len() == 8)
        .ok_or_else(|| super::StoreError::Corrupt(format!("app {app}: malformed tree size record")))
}

/// `C` size: a checkpoint.
pub fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut k = [CHECKPOINT; 9];
    k[1..].copy_from_slice(&size.to_be_bytes());
    k
}

/// The head record's value.
pub fn head_value(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(hash);
    v
}

/// Reads a head record's value.
pub fn parse_head(v: &[u8]) -> Option<(u64, [u8; 32])> {
    if v.len() != 40 {
        return None;
    }
    let seq = u64::from_be_bytes(v[..8].try_into().ok()?);
    let hash: [u8; 32] = v[8..].try_into().ok()?;
    Some((seq, hash))
}

/// The tree (or keyspace) name of an app.
pub fn tree_name(app: &str) -> String {
    format!("app:{app}")
}

/// `E` seq.
pub fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [EVENT; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The seq of an event key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// `V` class 0 objectId 0: the prefix of one record's versions.
pub fn version_prefix(class: &str, object_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + class.len() + object_id.len() + 8);
    k.push(VERSION);
    k.extend_from_slice(class.as_bytes());
    k.push(0);
    k.extend_from_slice(object_id.as_bytes());
    k.push(0);
    k
}

/// `V` class 0 objectId 0 seq.
pub fn version_key(class: &str, object_id: &str, seq: u64) -> Vec<u8> {
    let mut k = version_prefix(class, object_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `R` class 0 objectId: a record's state.
pub fn state_key(class: &str, object_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + class.len() + object_id.len());
    k.push(b'R');
    k.extend_from_slice(class.as_bytes());
    k.push(0);
    k.extend_from_slice(object_id.as_bytes());
    k
}

/// A record state's value.
pub fn state_value(s: super::RecordState) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(u8::from(s.deleted));
    v.extend_from_slice(&s.since.to_be_bytes());
    v
}

/// A record's state from its `R` entry's value, if it has one, else from its first `V`
/// key (the key of its first version), if it has one: live since that version.
pub fn state_of(
    app: &str,
    class: &str,
    object_id: &str,
    state: Option<&[u8]>,
    first_version: Option<&[u8]>,
) -> super::StoreResult<Option<super::RecordState>> {
    if let Some(v) = state {
        return decode_state(app, class, object_id, v).map(Some);
    }
    first_version
        .map(|k| {
            seq_of(k)
                .map(|since| super::RecordState {
                    deleted: false,
                    since,
                })
                .ok_or_else(|| {
                    super::StoreError::Corrupt(format!(
                        "app {app}: malformed version key of {class} {object_id}"
                    ))
                })
        })
        .transpose()
}

/// Reads a record state's value; malformed bytes are corruption, named by record.
pub fn decode_state(
    app: &str,
    class: &str,
    object_id: &str,
    v: &[u8],
) -> super::StoreResult<super::RecordState> {
    parse_state(v).ok_or_else(|| {
        super::StoreError::Corrupt(format!(
            "app {app}: malformed record state of {class} {object_id}"
        ))
    })
}

fn parse_state(v: &[u8]) -> Option<super::RecordState> {
    let (&flag, seq) = v.split_first()?;
    if flag > 1 {
        return None;
    }
    Some(super::RecordState {
        deleted: flag == 1,
        since: u64::from_be_bytes(seq.try_into().ok()?),
    })
}

/// `I` key.
pub fn idempotency_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(IDEMPOTENCY);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The tag of a mark list.
pub fn mark_tag(mark: Mark) -> u8 {
    match mark {
        Mark::Schema => b'S',
        Mark::Key => b'K',
    }
}

/// Tag seq, for a mark.
pub fn mark_key(mark: Mark, seq: u64) -> [u8; 9] {
    let mut k = [mark_tag(mark); 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The value of an `E` key in sled: the event's locator.
pub fn locator_value(at: super::segment::Locator) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&at.offset.to_be_bytes());
    v[8..].copy_from_slice(&at.len.to_be_bytes());
    v
}

/// Reads an `E` value in sled; any length but 12 is not a locator (it is an event's bytes,
/// in a store written before segment files: an encoded event holds at least two hashes and
/// a signature, so it is never 12 bytes long).
pub fn parse_locator(v: &[u8]) -> Option<super::segment::Locator> {
    if v.len() != 12 {
        return None;
    }
    Some(super::segment::Locator {
        offset: u64::from_be_bytes(v[..8].try_into().ok()?),
        len: u32::from_be_bytes(v[8..].try_into().ok()?),
    })
}

/// The record-index entries one event write puts into its app's keyspace: all but its
/// `E` and `N` entries, which a store keeps as it chooses ([`super::MemoryStore`] in the
/// keyspace; [`super::SledStore`] in its segment and index files).
pub fn index_entries(w: &super::EventWrite) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(4);
    if let Some((class, id, kind)) = &w.version {
        out.push((version_key(class, id, w.seq), vec![*kind]));
        if let Some(state) = w.sets_state {
            out.push((state_key(class, id), state_value(state)));
        }
    }
    if let Some(key) = &w.idempotency_key {
        out.push((idempotency_key(key), w.seq.to_be_bytes().to_vec()));
    }
    if let Some(m) = w.mark {
        out.push((mark_key(m, w.seq).to_vec(), Vec::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordState;

    #[test]
    fn a_record_state_comes_from_its_state_entry_else_from_its_first_version() {
        let st = |state: Option<RecordState>, first: Option<u64>| {
            let v = state.map(state_value);
            let k = first.map(|s| version_key("C", "id1", s));
            state_of("gxp", "C", "id1", v.as_deref(), k.as_deref()).expect("state")
        };
        let live = |since| RecordState {
            deleted: false,
            since,
        };
        let deleted = RecordState {
            deleted: true,
            since: 9,
        };
        // Never created.
        assert_eq!(st(None, None), None);
        // Created since a creation wrote no state entry: live since its first version.
        assert_eq!(st(None, Some(4)), Some(live(4)));
        // Deleted: the entry decides.
        assert_eq!(st(Some(deleted), Some(4)), Some(deleted));
        // A store written before: its creation wrote a live entry, read as it is.
        assert_eq!(st(Some(live(4)), Some(4)), Some(live(4)));
        // A malformed entry or version key is corruption, not a state.
        assert!(state_of("gxp", "C", "id1", Some(&[7]), None).is_err());
        assert!(state_of("gxp", "C", "id1", None, Some(b"V")).is_err());
    }
}
