//! Where projections live: one sled tree per (app, class, generation), and a `meta` tree
//! naming the current generation of each. Rebuilding a class fills a fresh generation and
//! swaps it in; the old tree is dropped once nothing reads it.
//!
//! Keys inside a class tree (numbers big-endian, so byte order is numeric order):
//!
//! | key | value |
//! |---|---|
//! | `A` | applied: seq(8); every event up to it that concerns the class is folded in |
//! | `P` bound | a page ([`crate::page`]): the records whose objectId is at most `bound` and above the previous page's bound, each with all its versions |
//!
//! The last page's bound is 0xFF, above every objectId, so the page that holds (or would
//! hold) a record is the first at or after `P` objectId. Deleted records stay in their
//! page: their history is still read.
//!
//! The meta tree holds `L` → the layout version ([`LAYOUT`]) and `G` app 0x00 class →
//! generation(8). A store of another layout is cleared when opened and caught up again.

/// Key of the applied sequence number.
pub(crate) const APPLIED: &[u8] = b"A";
/// The prefix of every page key.
pub(crate) const PAGE_PREFIX: &[u8] = b"P";
/// The key of the last page of a tree (bound 0xFF).
pub(crate) const LAST_PAGE: &[u8] = b"P\xff";
/// Meta key of the layout version.
pub(crate) const LAYOUT_KEY: &[u8] = b"L";
/// This layout's version (1 was a tree entry per live record and per version).
pub(crate) const LAYOUT: u64 = 2;

/// Name of the tree holding `gen` of `app`'s `class`.
pub(crate) fn tree_name(app: &str, class: &str, gen: u64) -> String {
    format!("proj/v{LAYOUT}/{app}/{class}/{gen}")
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

/// `P` bound: the key of the page whose records' objectIds are at most `bound`; also the
/// key to look a record up from (the first page at or after it holds it).
pub(crate) fn page_key(bound: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bound.len());
    k.extend_from_slice(PAGE_PREFIX);
    k.extend_from_slice(bound.as_bytes());
    k
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
    fn keys_parse_back_and_pages_bound_ids() {
        let g = generation_key("gxp", "ValidationLog");
        assert_eq!(
            parse_generation_key(&g),
            Some(("gxp".into(), "ValidationLog".into()))
        );
        assert_eq!(parse_seq(&seq_value(7)), Some(7));
        // A record belongs to the first page whose bound is at or above its objectId.
        assert!(page_key("abc") <= page_key("abc"));
        assert!(page_key("ab") < page_key("abc"));
        assert!(page_key("zzzz_-") < LAST_PAGE.to_vec());
        assert!(APPLIED < PAGE_PREFIX);
    }
}
