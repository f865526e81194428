//! The index file of an app, `<dir>/events/<app>.index`: for each event, where its record
//! is in the segment file and the Merkle tree nodes it completes, at a place computed from
//! its sequence number alone (no search, no sled lookup).
//!
//! Event `seq`'s record is its [`Locator`] (offset(8) ‖ length(4), big-endian, as
//! [`super::layout::locator_value`] writes it) followed by the `trailing_zeros(seq) + 1`
//! node hashes event `seq` completes, level 0 (its leaf) first, 32 bytes each. Events
//! `1..s` complete `Σ (trailing_zeros(k) + 1) = 2(s−1) − popcount(s−1)` nodes, so record
//! `s` starts at byte `12(s−1) + 32·(2(s−1) − popcount(s−1))`.
//!
//! The top bit of a locator's length ([`WRITE_END`]) marks the last record of one write
//! (one atomic batch of the store): an event's record is never 2 GiB long, so the bit is
//! free. A roll forward at open ([`super::sled_store`]) restores whole writes only, up to
//! a marked record, so a write torn by a crash is never restored in part. Records written
//! before the mark existed carry none (their stores never roll forward: sled was made
//! durable with every write then).
//!
//! Order of a write (see [`super::sled_store`]): the segment's records, then these index
//! records, each file fdatasync'd (the write is acknowledged from here on), then sled's
//! batch that moves the head past them. So the head never counts an event whose index
//! record or body a power loss could take. sled is made durable only now and then, so
//! after a crash index records past its head may be acknowledged: the store's open rolls
//! sled forward over every whole write they hold, and cuts off (keeping the bytes aside)
//! only what follows the last whole write, or a last write a crash tore.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::layout::{locator_value, parse_locator};
use super::segment::{cut_file, open_file, unwritten_sector_in, Locator, Tail};
use super::{io_error, StoreError, StoreResult};
use crate::event::Hash32;

/// Bytes of a locator at the start of each record.
const LOCATOR: u64 = 12;

/// The bit of a record's length byte 8 (the top bit of the big-endian length) that marks
/// the last record of a write.
pub const WRITE_END: u8 = 0x80;

/// A locator read from a record, the write-end mark taken off.
fn parse_record(bytes: &[u8]) -> Option<(Locator, bool)> {
    let mut v: [u8; LOCATOR as usize] = bytes.get(..LOCATOR as usize)?.try_into().ok()?;
    let end = v[8] & WRITE_END != 0;
    v[8] &= !WRITE_END;
    Some((parse_locator(&v)?, end))
}

/// Where event `seq`'s record starts (`None` for 0 or a number too large to place).
pub fn position(seq: u64) -> Option<u64> {
    let before = seq.checked_sub(1)?;
    let nodes = before
        .checked_mul(2)?
        .checked_sub(u64::from(before.count_ones()))?;
    before
        .checked_mul(LOCATOR)?
        .checked_add(nodes.checked_mul(32)?)
}

/// How many node hashes event `seq` completes.
pub fn node_count(seq: u64) -> usize {
    seq.trailing_zeros() as usize + 1
}

/// The length of event `seq`'s record.
fn record_len(seq: u64) -> u64 {
    LOCATOR + 32 * node_count(seq) as u64
}

/// The end of the records of events `1..=n`.
pub fn end_of(n: u64) -> Option<u64> {
    position(n.checked_add(1)?)
}

/// The path of an app's index file.
pub fn path(store_dir: &Path, app: &str) -> PathBuf {
    super::segment::dir(store_dir).join(format!("{app}.index"))
}

/// One app's index file.
#[derive(Debug)]
pub struct Index {
    file: File,
    path: PathBuf,
}

impl Index {
    /// Opens (creating if needed, unless `read_only`) the file.
    pub fn open(path: PathBuf, read_only: bool) -> StoreResult<Self> {
        let file = open_file(&path, read_only)?;
        Ok(Index { file, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the records of events `first`, `first + 1`, … (their locators and nodes) in
    /// one write, the last one marked as a write's end ([`WRITE_END`]); not yet durable
    /// ([`Index::sync`]). An empty node list leaves zeros (a benchmark measuring writes
    /// without a tree; the ledger always gives the nodes).
    pub fn write<'a>(
        &self,
        first: u64,
        records: impl Iterator<Item = (Locator, &'a [Hash32])>,
    ) -> StoreResult<()> {
        let start = self.place(first)?;
        let mut buf = Vec::new();
        let mut last_mark = None;
        for (seq, (at, nodes)) in (first..).zip(records) {
            if at.len.to_be_bytes()[0] & WRITE_END != 0 {
                return Err(StoreError::Backend(format!(
                    "event {seq}: a record of {} bytes is too large",
                    at.len
                )));
            }
            last_mark = Some(buf.len() + 8);
            buf.extend_from_slice(&locator_value(at));
            if nodes.is_empty() {
                buf.resize(buf.len() + 32 * node_count(seq), 0);
                continue;
            }
            self.check_nodes(seq, nodes.len())?;
            for n in nodes {
                buf.extend_from_slice(n);
            }
        }
        if let Some(mark) = last_mark {
            buf[mark] |= WRITE_END;
        }
        self.file.write_all_at(&buf, start).map_err(io_error)
    }

    /// Writes the nodes of the events given, keeping their locators (a tree built after
    /// its events: the backfill of a store written before trees).
    pub fn write_nodes(&self, nodes: &[(u64, Vec<Hash32>)]) -> StoreResult<()> {
        // Runs of consecutive events are read, patched and written back whole.
        let mut i = 0;
        while i < nodes.len() {
            let first = nodes[i].0;
            let mut j = i + 1;
            while j < nodes.len() && Some(nodes[j].0) == nodes[j - 1].0.checked_add(1) {
                j += 1;
            }
            let start = self.place(first)?;
            let end = self.end_of_record(nodes[j - 1].0)?;
            // As long as the records of the nodes given: bounded by the caller's input.
            let len = end
                .checked_sub(start)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| self.unplaceable(first))?;
            let mut buf = vec![0u8; len];
            self.read_up_to(&mut buf, start)?;
            for (seq, hashes) in &nodes[i..j] {
                self.check_nodes(*seq, hashes.len())?;
                let at = (self.place(*seq)? - start + LOCATOR) as usize;
                for (k, h) in hashes.iter().enumerate() {
                    buf[at + 32 * k..at + 32 * (k + 1)].copy_from_slice(h);
                }
            }
            self.file.write_all_at(&buf, start).map_err(io_error)?;
            i = j;
        }
        Ok(())
    }

    /// Rewrites one event's locator: for tamper tests, which move a record.
    pub fn write_locator(&self, seq: u64, at: Locator) -> StoreResult<()> {
        self.file
            .write_all_at(&locator_value(at), self.place(seq)?)
            .map_err(io_error)
    }

    /// Makes what was written durable.
    pub fn sync(&self) -> StoreResult<()> {
        self.file.sync_data().map_err(io_error)
    }

    /// Whether the file holds the records of events `1..=n`.
    pub fn covers(&self, n: u64) -> StoreResult<bool> {
        let Some(end) = end_of(n) else {
            return Ok(false);
        };
        Ok(self.file.metadata()?.len() >= end)
    }

    /// Where a blank sector's share is among the records of events `first..=last`
    /// ([`super::segment::unwritten_sector`], with its `head` and `tail`).
    pub fn unwritten_sector(
        &self,
        first: u64,
        last: u64,
        head: usize,
        tail: usize,
    ) -> StoreResult<Option<u64>> {
        let from = self.place(first)?;
        let to = end_of(last).ok_or_else(|| self.unplaceable(last))?;
        Ok(unwritten_sector_in(&self.file, from, to, head, tail)?)
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> StoreResult<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// How many events' records the file holds whole.
    pub fn records(&self) -> StoreResult<u64> {
        let len = self.file.metadata()?.len();
        // The largest n whose records end within the file (end_of grows with n).
        let (mut lo, mut hi) = (0u64, len / LOCATOR + 1);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if end_of(mid).is_some_and(|end| end <= len) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
    }

    /// Cuts what follows the records of events `1..=n` (written, never acknowledged);
    /// `tail` says whether the cut bytes are kept aside first.
    pub fn cut(&self, n: u64, tail: Tail) -> StoreResult<()> {
        let end = end_of(n).ok_or_else(|| self.unplaceable(n))?;
        cut_file(&self.file, &self.path, end, tail)
    }

    /// Where event `seq`'s record is in the segment file.
    pub fn locator(&self, seq: u64) -> StoreResult<Locator> {
        self.entry(seq).map(|(at, _)| at)
    }

    /// Where event `seq`'s record is in the segment file, and whether it ended a write.
    pub fn entry(&self, seq: u64) -> StoreResult<(Locator, bool)> {
        let mut buf = [0u8; LOCATOR as usize];
        self.read_exact(seq, &mut buf, self.place(seq)?)?;
        parse_record(&buf).ok_or_else(|| self.unplaceable(seq))
    }

    /// The locators of events `from..=to`, read in one go into `out` (cleared first);
    /// `buf` is scratch space kept between calls.
    pub fn locators(
        &self,
        from: u64,
        to: u64,
        out: &mut Vec<Locator>,
        buf: &mut Vec<u8>,
    ) -> StoreResult<()> {
        out.clear();
        if to < from {
            return Ok(());
        }
        let start = self.place(from)?;
        let end = self.end_of_record(to)?;
        buf.resize(self.span(from, start, end)?, 0);
        self.read_exact(from, buf, start)?;
        let mut at = 0usize;
        for seq in from..=to {
            let (loc, _) = buf
                .get(at..at + LOCATOR as usize)
                .and_then(parse_record)
                .ok_or_else(|| self.unplaceable(seq))?;
            out.push(loc);
            at += record_len(seq) as usize;
        }
        Ok(())
    }

    /// The nodes event `seq` completes.
    pub fn nodes(&self, seq: u64) -> StoreResult<Vec<Hash32>> {
        let mut buf = vec![0u8; 32 * node_count(seq)];
        self.read_exact(seq, &mut buf, self.place(seq)? + LOCATOR)?;
        Ok(buf
            .chunks_exact(32)
            .filter_map(|c| <Hash32>::try_from(c).ok())
            .collect())
    }

    fn place(&self, seq: u64) -> StoreResult<u64> {
        position(seq).ok_or_else(|| self.unplaceable(seq))
    }

    /// Where event `seq`'s record ends.
    fn end_of_record(&self, seq: u64) -> StoreResult<u64> {
        self.place(seq)?
            .checked_add(record_len(seq))
            .ok_or_else(|| self.unplaceable(seq))
    }

    /// The bytes from `start` to `end` (records from event `first` on), as a buffer
    /// length: a range is read only where the file can hold it, so a damaged sequence
    /// number cannot ask for gigabytes.
    fn span(&self, first: u64, start: u64, end: u64) -> StoreResult<usize> {
        let len = end
            .checked_sub(start)
            .ok_or_else(|| self.unplaceable(first))?;
        if len > 1 << 20 && end > self.file.metadata()?.len() {
            return Err(self.unplaceable(first));
        }
        usize::try_from(len).map_err(|_| self.unplaceable(first))
    }

    fn check_nodes(&self, seq: u64, have: usize) -> StoreResult<()> {
        if have != node_count(seq) {
            return Err(StoreError::Backend(format!(
                "event {seq} completes {} tree nodes, not {have}",
                node_count(seq)
            )));
        }
        Ok(())
    }

    fn read_exact(&self, seq: u64, buf: &mut [u8], at: u64) -> StoreResult<()> {
        self.file.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt(format!(
                    "event {seq}: its index record is missing from {} (the file is too short)",
                    self.path.display()
                ))
            } else {
                StoreError::Io(e)
            }
        })
    }

    /// Fills `buf` from `at`; what lies past the file's end stays as it was (zeros).
    fn read_up_to(&self, buf: &mut [u8], at: u64) -> StoreResult<()> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], at + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn unplaceable(&self, seq: u64) -> StoreError {
        StoreError::Corrupt(format!(
            "event {seq} has no place in {}",
            self.path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_starts_where_the_one_before_ends() {
        let mut at = 0;
        for seq in 1..5000u64 {
            assert_eq!(position(seq), Some(at), "event {seq}");
            at += record_len(seq);
        }
        assert_eq!(position(0), None);
        assert_eq!(position(u64::MAX), None);
    }

    fn nodes_of(seq: u64) -> Vec<Hash32> {
        (0..node_count(seq))
            .map(|l| [(seq as u8).wrapping_add(l as u8); 32])
            .collect()
    }

    #[test]
    fn records_read_back_and_nodes_written_later_keep_the_locators() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index::open(dir.path().join("events").join("a.index"), false).expect("open");
        let at = |seq: u64| Locator {
            offset: seq * 100,
            len: seq as u32,
        };
        let nodes: Vec<Vec<Hash32>> = (1..=20).map(nodes_of).collect();
        index
            .write(
                1,
                (1..=12).map(|s| (at(s), nodes[s as usize - 1].as_slice())),
            )
            .expect("write");
        index
            .write(
                13,
                (13..=20).map(|s| (at(s), nodes[s as usize - 1].as_slice())),
            )
            .expect("write");
        index.sync().expect("sync");
        assert!(index.covers(20).expect("len") && !index.covers(21).expect("len"));
        for seq in 1..=20 {
            assert_eq!(index.locator(seq).expect("locator"), at(seq));
            assert_eq!(index.nodes(seq).expect("nodes"), nodes[seq as usize - 1]);
        }
        let (mut out, mut buf) = (Vec::new(), Vec::new());
        index.locators(5, 17, &mut out, &mut buf).expect("range");
        assert_eq!(out, (5..=17).map(at).collect::<Vec<_>>());

        // Nodes rewritten for a run and a lone event; locators untouched.
        let fresh: Vec<(u64, Vec<Hash32>)> = [3u64, 4, 5, 9]
            .iter()
            .map(|&s| (s, vec![[0xee; 32]; node_count(s)]))
            .collect();
        index.write_nodes(&fresh).expect("nodes");
        for seq in 1..=20 {
            assert_eq!(index.locator(seq).expect("locator"), at(seq));
            let want = fresh
                .iter()
                .find(|(s, _)| *s == seq)
                .map_or_else(|| nodes[seq as usize - 1].clone(), |(_, n)| n.clone());
            assert_eq!(index.nodes(seq).expect("nodes"), want);
        }

        // Past the end: named, not a panic; the cut keeps exactly events 1..=n.
        let err = index.locator(21).expect_err("past the end").to_string();
        assert!(err.contains("event 21") && err.contains("a.index"), "{err}");
        index.cut(7, Tail::Drop).expect("cut");
        assert!(index.covers(7).expect("len") && !index.covers(8).expect("len"));
        assert!(index.nodes(8).is_err());
        assert_eq!(index.locator(7).expect("locator"), at(7));
    }
}
