//! Where projections live: one sled tree per (app, class, generation), and a `meta` tree
//! naming the current generation of each. Rebuilding a class fills a fresh generation and
//! swaps it in; the old tree is dropped once nothing reads it.
//!
//! Keys inside a class tree (numbers big-endian, so byte order is numeric order):
//!
//! | key | value |
//! |---|---|
//! | `A` | applied: seq(8); every event up to it that concerns the class is folded in |
//! | `O` objectId | the live record ([`Record`](crate::Record) encoding) |
//! | `V` objectId 0x00 seq(8) | a version: kind code(1) ‖ the record after the event (for a deletion: its last state) |
//!
//! The meta tree holds `G` app 0x00 class → generation(8). objectIds never contain 0x00,
//! so one record's version prefix is never a prefix of another's.

use ledger::EventKind;

use crate::record::Record;

/// Key of the applied sequence number.
pub(crate) const APPLIED: &[u8] = b"A";
const LIVE: u8 = b'O';
const VERSION: u8 = b'V';

/// Name of the tree holding `gen` of `app`'s `class`.
pub(crate) fn tree_name(app: &str, class: &str, gen: u64) -> String {
    format!("proj/v1/{app}/{class}/{gen}")
}

/// Meta key of a class's current generation.
pub(crate) fn generation_key(app: &str, class: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + app.len() + class.len());
    k.push(b'G');
    k.extend_from_slice(app.as_bytes());
    k.push(0);
    k.extend_from_slice(class.as_bytes());
    k
}

/// Reads a meta generation key back into (app, class).
pub(crate) fn parse_generation_key(k: &[u8]) -> Option<(String, String)> {
    let rest = k.strip_prefix(b"G")?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let app = std::str::from_utf8(&rest[..nul]).ok()?;
    let class = std::str::from_utf8(&rest[nul + 1..]).ok()?;
    Some((app.to_string(), class.to_string()))
}

/// `O` objectId.
pub(crate) fn live_key(object_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + object_id.len());
    k.push(LIVE);
    k.extend_from_slice(object_id.as_bytes());
    k
}

/// The prefix of every live-record key.
pub(crate) const LIVE_PREFIX: &[u8] = b"O";
/// The prefix of every version key.
pub(crate) const VERSION_PREFIX: &[u8] = b"V";

/// `V` objectId 0x00: the prefix of one record's versions.
pub(crate) fn version_prefix(object_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + object_id.len());
    k.push(VERSION);
    k.extend_from_slice(object_id.as_bytes());
    k.push(0);
    k
}

/// `V` objectId 0x00 seq.
pub(crate) fn version_key(object_id: &str, seq: u64) -> Vec<u8> {
    let mut k = version_prefix(object_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a version key into (objectId, seq).
pub(crate) fn parse_version_key(k: &[u8]) -> Option<(&str, u64)> {
    let rest = k.strip_prefix(&[VERSION])?;
    if rest.len() < 9 || rest[rest.len() - 9] != 0 {
        return None;
    }
    let (id, seq) = rest.split_at(rest.len() - 9);
    let seq = u64::from_be_bytes(seq[1..].try_into().ok()?);
    Some((std::str::from_utf8(id).ok()?, seq))
}

/// A version's value.
pub(crate) fn version_value(kind: EventKind, record: &Record) -> Vec<u8> {
    let body = record.encode();
    let mut v = Vec::with_capacity(1 + body.len());
    v.push(kind.code());
    v.extend_from_slice(&body);
    v
}

/// Reads a version's value: (kind, record).
pub(crate) fn parse_version_value(v: &[u8]) -> Result<(EventKind, Record), String> {
    let (&code, body) = v.split_first().ok_or("empty version")?;
    let kind = EventKind::from_code(code).ok_or_else(|| format!("unknown kind code {code}"))?;
    Ok((kind, Record::decode(body)?))
}

/// The kind code alone, without decoding the record.
pub(crate) fn version_kind(v: &[u8]) -> Option<EventKind> {
    v.first().and_then(|c| EventKind::from_code(*c))
}

/// An applied value.
pub(crate) fn seq_value(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Reads a stored seq.
pub(crate) fn parse_seq(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let k = version_key("abc", 258);
        assert_eq!(parse_version_key(&k), Some(("abc", 258)));
        assert!(k.starts_with(&version_prefix("abc")));
        assert!(!k.starts_with(&version_prefix("ab")));
        let g = generation_key("gxp", "ValidationLog");
        assert_eq!(
            parse_generation_key(&g),
            Some(("gxp".into(), "ValidationLog".into()))
        );
        assert_eq!(parse_seq(&seq_value(7)), Some(7));
    }
}
