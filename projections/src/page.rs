//! A page of the projection store: a run of records of one class, in objectId order, each
//! with every version of its history. This module owns the page's byte encoding (read in
//! place, without copying payloads), a record's state at any of its versions, adding a
//! version, and cutting records into pages.
//!
//! A version keeps what its event changed (the event's payload, as the log holds it) and,
//! for the latest version of a record that was updated and for every
//! [`SNAPSHOT_EVERY`]-th version, the record's fields after it. A state is read from the
//! nearest version at or before it that holds one (or from the creation, whose payload
//! holds every field), folding at most [`SNAPSHOT_EVERY`] changes with the one fold of
//! [`crate::apply`]. Storing changes rather than whole records per version keeps the store
//! small, and packing a few kilobytes of records per sled entry keeps sled's per-entry
//! cost off rebuilds and scans.
//!
//! Encoding (integers as LEB128 varints, times zigzag):
//!
//! ```text
//! page    = 0x01 count record*
//! record  = len id count version*
//! version = seq time kind(1) flags(1) [len payload] [len state]   flags: 1 payload, 2 state
//! ```

use std::borrow::Cow;

use ledger::{EventKind, Timestamp};
use serde_json::{Map, Value};

use crate::apply::{check_liveness, fold_into, Change};
use crate::record::Record;

/// The version byte of a page.
const PAGE_V1: u8 = 1;
// Debug builds (the tests) use small pages and frequent snapshots, so that every test
// history splits pages and reads through snapshots; the logic is the same.
/// A state is kept at every version whose index is a multiple of this, bounding the
/// changes a read folds.
pub(crate) const SNAPSHOT_EVERY: usize = if cfg!(debug_assertions) { 4 } else { 16 };
/// Records are cut into pages of about this many encoded bytes.
pub(crate) const PAGE_TARGET: usize = if cfg!(debug_assertions) { 512 } else { 4096 };
/// A page that grows past this is split.
pub(crate) const PAGE_MAX: usize = if cfg!(debug_assertions) { 1024 } else { 8192 };

const HAS_PAYLOAD: u8 = 1;
const HAS_STATE: u8 = 2;

/// One version of a record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Version<'a> {
    pub(crate) seq: u64,
    pub(crate) at: Timestamp,
    pub(crate) kind: EventKind,
    /// The event's payload (JSON text; `None` once lawfully removed).
    pub(crate) payload: Option<Cow<'a, [u8]>>,
    /// The record's fields after this version (a JSON object), where kept.
    pub(crate) state: Option<Cow<'a, [u8]>>,
}

/// One record and its versions, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rec<'a> {
    pub(crate) id: Cow<'a, str>,
    pub(crate) versions: Vec<Version<'a>>,
}

fn is_create(kind: EventKind) -> bool {
    matches!(kind, EventKind::RecordCreated | EventKind::UserCreated)
}

impl<'a> Rec<'a> {
    /// A record without versions yet.
    pub(crate) fn new(id: &str) -> Rec<'static> {
        Rec {
            id: Cow::Owned(id.to_string()),
            versions: Vec::new(),
        }
    }

    /// Whether its latest version leaves it live.
    pub(crate) fn is_live(&self) -> bool {
        self.versions
            .last()
            .is_some_and(|v| !v.kind.deletes_subject())
    }

    /// The index of its last version at or before `seq`.
    pub(crate) fn version_at(&self, seq: u64) -> Option<usize> {
        self.versions
            .partition_point(|v| v.seq <= seq)
            .checked_sub(1)
    }

    /// Its state now (`None` if deleted, or without versions).
    pub(crate) fn live(&self, class: &str) -> Result<Option<Record>, String> {
        match self.versions.len().checked_sub(1) {
            Some(k) => self.state_at(class, k),
            None => Ok(None),
        }
    }

    /// Its state right after event `seq` (`None` if it did not exist then, or was deleted).
    pub(crate) fn state_as_of(&self, class: &str, seq: u64) -> Result<Option<Record>, String> {
        match self.version_at(seq) {
            Some(k) => self.state_at(class, k),
            None => Ok(None),
        }
    }

    /// Its state right after version `k` (`None` after a deletion).
    pub(crate) fn state_at(&self, class: &str, k: usize) -> Result<Option<Record>, String> {
        let vs = &self.versions;
        let Some(v) = vs.get(k) else {
            return Ok(None);
        };
        if v.kind.deletes_subject() {
            return Ok(None);
        }
        // The nearest version at or before k holding a state, or the creation.
        let mut j = k;
        while vs[j].state.is_none() && !is_create(vs[j].kind) {
            j = j
                .checked_sub(1)
                .ok_or_else(|| format!("record {}: history without a creation", self.id))?;
        }
        let mut state = match &vs[j].state {
            Some(fields) => {
                let c = (0..=j)
                    .rev()
                    .find(|i| is_create(vs[*i].kind))
                    .ok_or_else(|| format!("record {}: history without a creation", self.id))?;
                let fields: Map<String, Value> = serde_json::from_slice(fields)
                    .map_err(|e| format!("record {} state: {e}", self.id))?;
                Some(Record {
                    object_id: self.id.to_string(),
                    created_at: vs[c].at,
                    updated_at: vs[j].at,
                    created_seq: vs[c].seq,
                    updated_seq: vs[j].seq,
                    fields,
                })
            }
            None => {
                let mut s = None;
                fold_into(&mut s, &self.change(class, j))
                    .map_err(|d| format!("event {}: {d}", vs[j].seq))?;
                s
            }
        };
        for (i, v) in vs.iter().enumerate().take(k + 1).skip(j + 1) {
            fold_into(&mut state, &self.change(class, i))
                .map_err(|d| format!("event {}: {d}", v.seq))?;
        }
        Ok(state)
    }

    fn change<'s>(&'s self, class: &'s str, i: usize) -> Change<'s> {
        let v = &self.versions[i];
        Change {
            kind: v.kind,
            seq: v.seq,
            at: v.at,
            class,
            object_id: &self.id,
            payload: v.payload.as_deref(),
        }
    }

    /// Bytes its encoding takes.
    pub(crate) fn encoded_len(&self) -> usize {
        let mut n = varint_len(self.id.len() as u64) + self.id.len();
        n += varint_len(self.versions.len() as u64);
        for v in &self.versions {
            n += varint_len(v.seq) + varint_len(zigzag(v.at.0)) + 2;
            for b in [&v.payload, &v.state].into_iter().flatten() {
                n += varint_len(b.len() as u64) + b.len();
            }
        }
        n
    }

    /// The record with everything owned.
    pub(crate) fn into_owned(self) -> Rec<'static> {
        Rec {
            id: Cow::Owned(self.id.into_owned()),
            versions: self
                .versions
                .into_iter()
                .map(|v| Version {
                    seq: v.seq,
                    at: v.at,
                    kind: v.kind,
                    payload: v.payload.map(|p| Cow::Owned(p.into_owned())),
                    state: v.state.map(|s| Cow::Owned(s.into_owned())),
                })
                .collect(),
        }
    }
}

/// A version to add: a data-changing event, with its payload owned.
#[derive(Clone, Debug)]
pub(crate) struct NewVersion {
    pub(crate) kind: EventKind,
    pub(crate) seq: u64,
    pub(crate) at: Timestamp,
    pub(crate) payload: Option<Vec<u8>>,
}

impl Rec<'static> {
    /// Adds version `v` of the record (of `class`), folding it into the record's state to
    /// check it and to keep the new state where versions keep one. Returns the state it
    /// leaves. On error the record is unchanged.
    pub(crate) fn push(&mut self, class: &str, v: NewVersion) -> Result<Option<Record>, String> {
        let mut state = if self.is_live() {
            self.live(class)?
        } else {
            None
        };
        let c = Change {
            kind: v.kind,
            seq: v.seq,
            at: v.at,
            class,
            object_id: &self.id,
            payload: v.payload.as_deref(),
        };
        fold_into(&mut state, &c)?;
        let keep = match &state {
            Some(r) if !is_create(v.kind) => Some(Cow::Owned(
                serde_json::to_vec(&r.fields).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        let n = self.versions.len();
        if let Some(last) = self.versions.last_mut() {
            if (n - 1) % SNAPSHOT_EVERY != 0 {
                last.state = None;
            }
        }
        self.versions.push(Version {
            seq: v.seq,
            at: v.at,
            kind: v.kind,
            payload: v.payload.map(Cow::Owned),
            state: keep,
        });
        Ok(state)
    }
}

/// Adds version `v` to record `id`'s `versions` after checking it exactly as the fold
/// would ([`crate::apply::check_change`]; `payload_check` is [`crate::apply::check_payload`]'s verdict on it, made
/// beforehand), but without folding: the states are left to [`Rec::fill_states`]. A
/// rebuild's path: one fold per history instead of one per event.
pub(crate) fn push_unfolded(
    versions: &mut Vec<Version<'static>>,
    class: &str,
    id: &str,
    v: NewVersion,
    payload_check: Result<(), String>,
) -> Result<(), String> {
    let live = versions.last().is_some_and(|l| !l.kind.deletes_subject());
    let c = Change {
        kind: v.kind,
        seq: v.seq,
        at: v.at,
        class,
        object_id: id,
        payload: None,
    };
    check_liveness(live, &c)?;
    payload_check?;
    versions.push(Version {
        seq: v.seq,
        at: v.at,
        kind: v.kind,
        payload: v.payload.map(Cow::Owned),
        state: None,
    });
    Ok(())
}

impl Rec<'_> {
    /// Folds the record's whole history once and keeps the states that [`Rec::push`]
    /// keeps: at the latest version and every [`SNAPSHOT_EVERY`]-th, where the record is
    /// live and the version is not a creation. On error, the event at fault.
    pub(crate) fn fill_states(&mut self, class: &str) -> Result<(), (u64, String)> {
        if self.versions.len() < 2 {
            return Ok(());
        }
        let last = self.versions.len() - 1;
        let mut state = None;
        for i in 0..=last {
            let v = &self.versions[i];
            let (seq, kind) = (v.seq, v.kind);
            fold_into(&mut state, &self.change(class, i)).map_err(|d| (seq, d))?;
            let keep = (i == last || i % SNAPSHOT_EVERY == 0) && !is_create(kind);
            self.versions[i].state = match (&state, keep) {
                (Some(r), true) => Some(Cow::Owned(
                    serde_json::to_vec(&r.fields).map_err(|e| (seq, e.to_string()))?,
                )),
                _ => None,
            };
        }
        Ok(())
    }
}

/// Encodes a page of records (in objectId order).
pub(crate) fn encode(records: &[Rec<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + records.iter().map(Rec::encoded_len).sum::<usize>());
    out.push(PAGE_V1);
    put_varint(&mut out, records.len() as u64);
    for r in records {
        put_bytes(&mut out, r.id.as_bytes());
        put_varint(&mut out, r.versions.len() as u64);
        for v in &r.versions {
            put_varint(&mut out, v.seq);
            put_varint(&mut out, zigzag(v.at.0));
            out.push(v.kind.code());
            let flags = if v.payload.is_some() { HAS_PAYLOAD } else { 0 }
                | if v.state.is_some() { HAS_STATE } else { 0 };
            out.push(flags);
            for b in [&v.payload, &v.state].into_iter().flatten() {
                put_bytes(&mut out, b);
            }
        }
    }
    out
}

/// Decodes a page in place; any malformed or trailing byte, and records or versions out of
/// order, are errors.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Rec<'_>>, String> {
    let mut r = Reader { b: bytes, at: 0 };
    let version = r.byte()?;
    if version != PAGE_V1 {
        return Err(format!("unknown page version {version}"));
    }
    let count = r.len()?;
    let mut records = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let id = std::str::from_utf8(r.bytes()?).map_err(|_| "objectId is not UTF-8")?;
        let n = r.len()?;
        let mut versions = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let seq = r.varint()?;
            let at = Timestamp(unzigzag(r.varint()?));
            let code = r.byte()?;
            let kind = EventKind::from_code(code).ok_or(format!("unknown kind code {code}"))?;
            let flags = r.byte()?;
            if flags & !(HAS_PAYLOAD | HAS_STATE) != 0 {
                return Err(format!("bad version flags {flags}"));
            }
            let payload = if flags & HAS_PAYLOAD != 0 {
                Some(Cow::Borrowed(r.bytes()?))
            } else {
                None
            };
            let state = if flags & HAS_STATE != 0 {
                Some(Cow::Borrowed(r.bytes()?))
            } else {
                None
            };
            if versions.last().is_some_and(|l: &Version<'_>| l.seq >= seq) {
                return Err(format!("record {id}: versions out of order at event {seq}"));
            }
            versions.push(Version {
                seq,
                at,
                kind,
                payload,
                state,
            });
        }
        if records.last().is_some_and(|l: &Rec<'_>| *l.id >= *id) {
            return Err(format!("records out of order at {id}"));
        }
        records.push(Rec {
            id: Cow::Borrowed(id),
            versions,
        });
    }
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes in page", bytes.len() - r.at));
    }
    Ok(records)
}

/// Cuts records (in objectId order) into runs of about [`PAGE_TARGET`] encoded bytes.
pub(crate) fn cut<'a>(records: Vec<Rec<'a>>) -> Vec<Vec<Rec<'a>>> {
    let mut pages = Vec::new();
    let mut page = Vec::new();
    let mut size = 0;
    for r in records {
        let n = r.encoded_len();
        if !page.is_empty() && size + n > PAGE_TARGET {
            pages.push(std::mem::take(&mut page));
            size = 0;
        }
        size += n;
        page.push(r);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.at).ok_or("page cut short")?;
        self.at += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        if n > self.b.len() {
            return Err("length beyond the page".into());
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        let end = self.at.checked_add(n).ok_or("length overflows")?;
        let s = self.b.get(self.at..end).ok_or("page cut short")?;
        self.at = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(kind: EventKind, seq: u64, payload: Option<Value>) -> NewVersion {
        NewVersion {
            kind,
            seq,
            at: Timestamp(seq as i64 * 1000 - 5_000),
            payload: payload.map(|p| p.to_string().into_bytes()),
        }
    }

    #[test]
    fn versions_fold_and_round_trip() {
        let mut r = Rec::new("r1");
        let create = json!({"fields": {"n": 0, "a": "x"}});
        r.push("C", v(EventKind::RecordCreated, 1, Some(create)))
            .expect("create");
        let mut expected = vec![None, r.live("C").expect("live")];
        for i in 2..40u64 {
            let p = json!({"set": {"n": i}, "unset": if i % 3 == 0 { vec!["a"] } else { vec![] }});
            let after = r
                .push("C", v(EventKind::RecordUpdated, i, Some(p)))
                .expect("update");
            expected.push(after);
        }
        let deleted = r
            .push("C", v(EventKind::RecordDeleted, 40, None))
            .expect("delete");
        assert_eq!(deleted, None);
        expected.push(None);
        // States kept: the snapshots only, since the record ends deleted.
        let kept: Vec<usize> = (0..r.versions.len())
            .filter(|i| r.versions[*i].state.is_some())
            .collect();
        let snapshots: Vec<usize> = (1..40).filter(|i| i % SNAPSHOT_EVERY == 0).collect();
        assert_eq!(kept, snapshots);
        let bytes = encode(std::slice::from_ref(&r));
        let back = decode(&bytes).expect("decode");
        assert_eq!(back, vec![r.clone()]);
        for seq in 0..=40u64 {
            let got = back[0].state_as_of("C", seq).expect("state");
            assert_eq!(got, expected[seq as usize], "as of {seq}");
        }
        assert_eq!(
            expected[39]
                .as_ref()
                .map(|r| (r.created_seq, r.updated_seq)),
            Some((1, 39))
        );
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        // Records and versions out of order are refused (reads binary-search them).
        let mut twice = r.clone();
        twice.versions.truncate(2);
        assert!(decode(&encode(&[twice.clone(), twice.clone()])).is_err());
        twice.versions.swap(0, 1);
        assert!(decode(&encode(&[twice])).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn unfolded_versions_filled_equal_folded_ones() {
        let mut folded = Rec::new("r1");
        let mut unfolded = Rec::new("r1");
        let mut seq = 0;
        let mut step = |kind, payload: Option<Value>| {
            seq += 1;
            let nv = v(kind, seq, payload);
            folded.push("C", nv.clone()).expect("push");
            let check = crate::apply::check_payload(nv.kind, nv.payload.as_deref());
            push_unfolded(&mut unfolded.versions, "C", "r1", nv, check).expect("unfolded");
        };
        step(EventKind::RecordCreated, Some(json!({"fields": {"n": 0}})));
        for i in 0..37 {
            step(EventKind::RecordUpdated, Some(json!({"set": {"n": i}})));
        }
        step(EventKind::RecordDeleted, None);
        step(EventKind::RecordCreated, Some(json!({"fields": {"m": 1}})));
        step(EventKind::RecordUpdated, Some(json!({"unset": ["m"]})));
        let mut filled = unfolded.clone();
        filled.fill_states("C").expect("fill");
        assert_eq!(filled, folded);
        assert_ne!(unfolded, folded);
    }

    #[test]
    fn contradictions_are_refused_and_change_nothing() {
        let mut r = Rec::new("r1");
        assert!(r
            .push("C", v(EventKind::RecordUpdated, 1, Some(json!({}))))
            .is_err());
        assert!(r.push("C", v(EventKind::RecordDeleted, 1, None)).is_err());
        assert!(r.versions.is_empty());
        r.push("C", v(EventKind::RecordCreated, 2, None))
            .expect("create");
        assert!(r.push("C", v(EventKind::RecordCreated, 3, None)).is_err());
        assert_eq!(r.versions.len(), 1);
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            i64::MAX,
            i64::MIN,
            1_795_435_200_000_000,
        ] {
            assert_eq!(unzigzag(zigzag(v)), v);
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            assert_eq!(out.len(), varint_len(zigzag(v)));
            let mut r = Reader { b: &out, at: 0 };
            assert_eq!(r.varint().map(unzigzag), Ok(v));
        }
    }
}
