//! Reading an export back into a store (docs/FORMAT.md §4): every event exactly as
//! exported (hashes and signatures untouched) with the index entries the ledger keeps
//! beside it: the version index, record states, idempotency keys, schema and key marks,
//! the Merkle tree nodes and each app's head. An auditor's tool imports an export into a
//! fresh store (in memory) and opens it with [`crate::Ledger::open_read_only`] to query
//! it as it would a data directory.
//!
//! Importing checks the structure only (the header, the sections, consecutive sequence
//! numbers from 1, each section ending at its declared head); whether the chain verifies
//! is [`crate::export::verify_export`]'s question, asked separately.

use std::io::BufRead;

use crate::export::{line_text, parse_event_line, walk, ExportError, Line};
use crate::merkle::{Blake3, Frontier};
use crate::store::{AppBatch, EventWrite, Store};
use crate::{codec, Event};

/// Events written to the store in one batch.
const BATCH: usize = 4096;

/// One app imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The app.
    pub app: String,
    /// Its events.
    pub events: u64,
}

/// The section being imported.
struct Section {
    app: String,
    line: u64,
    head: (u64, [u8; 32]),
    next_seq: u64,
    last_hash: [u8; 32],
    tree: Frontier,
    batch: Vec<EventWrite>,
}

impl Section {
    fn push(&mut self, n: u64, e: Event) -> Result<(), ExportError> {
        let malformed = |why: String| ExportError::Malformed { line: n, why };
        if e.app != self.app {
            return Err(malformed(format!(
                "an event of app {:?} in the section of {:?}",
                e.app, self.app
            )));
        }
        if e.seq != self.next_seq {
            return Err(malformed(format!(
                "event {} where event {} was expected (events must be consecutive from 1)",
                e.seq, self.next_seq
            )));
        }
        let bytes = codec::encode(&e).map_err(malformed)?;
        let nodes = self.tree.push::<Blake3>(&e.hash);
        self.batch.push(EventWrite::of(&e, bytes, nodes));
        self.next_seq += 1;
        self.last_hash = e.hash;
        Ok(())
    }

    fn write(&mut self, store: &dyn Store) -> Result<(), ExportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = AppBatch {
            app: self.app.clone(),
            events: std::mem::take(&mut self.batch),
            head: (self.next_seq - 1, self.last_hash),
        };
        store
            .write(std::slice::from_ref(&batch))
            .map_err(|e| ExportError::Read(e.into()))
    }

    fn finish(mut self, store: &dyn Store) -> Result<Imported, ExportError> {
        self.write(store)?;
        let last = (self.next_seq - 1, self.last_hash);
        if last != self.head {
            return Err(ExportError::Malformed {
                line: self.line,
                why: format!(
                    "app {}: the section declares head {} ({}) but holds events up to {} ({})",
                    self.app,
                    self.head.0,
                    hex::encode(self.head.1),
                    last.0,
                    hex::encode(last.1)
                ),
            });
        }
        Ok(Imported {
            app: self.app,
            events: last.0,
        })
    }
}

/// Imports an export into `store`, which must not hold any of its apps yet, and makes it
/// durable. Returns each app and its number of events.
pub fn import(input: impl BufRead, store: &dyn Store) -> Result<Vec<Imported>, ExportError> {
    let existing = store.apps().map_err(|e| ExportError::Read(e.into()))?;
    let mut done = Vec::new();
    let mut current: Option<Section> = None;
    walk(input, |line| {
        match line {
            Line::App(a) => {
                if let Some(s) = current.take() {
                    done.push(s.finish(store)?);
                }
                if existing.contains(&a.app) || done.iter().any(|d: &Imported| d.app == a.app) {
                    return Err(ExportError::Malformed {
                        line: a.line,
                        why: format!("app {} is already in the store", a.app),
                    });
                }
                current = Some(Section {
                    app: a.app,
                    line: a.line,
                    head: a.head,
                    next_seq: 1,
                    last_hash: [0; 32],
                    tree: Frontier::new(),
                    batch: Vec::with_capacity(BATCH),
                });
            }
            Line::Event(n, text) => {
                if let Some(s) = current.as_mut() {
                    let e = line_text(text)
                        .and_then(parse_event_line)
                        .map_err(|why| ExportError::Malformed { line: n, why })?;
                    s.push(n, e)?;
                    if s.batch.len() == BATCH {
                        s.write(store)?;
                    }
                }
            }
        }
        Ok(())
    })?;
    if let Some(s) = current.take() {
        done.push(s.finish(store)?);
    }
    store.sync().map_err(|e| ExportError::Read(e.into()))?;
    Ok(done)
}
