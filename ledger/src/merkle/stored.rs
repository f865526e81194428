//! The ledger's tree on disk: every complete node, kept beside the events it covers
//! (`Store::tree_nodes`: the nodes event `seq` completes — in `SledStore`'s index file,
//! `store/index.rs`, or a `N` + seq key in the memory store's keyspace — and `T` the tree
//! size, written with the events, before or in the same atomic batch).
//!
//! Node `(level, index)` is completed by leaf `(index + 1)·2^level - 1`, i.e. by event
//! `seq = (index + 1)·2^level`, and sits at position `level` of that event's node list:
//! one point read per node. Appending writes one record per event (O(log n) hashes in it,
//! two on average); a proof reads O(log n) of them.

use super::{build, Blake3, Frontier, NodeSource, TreeError};
use crate::event::Hash32;
use crate::store::{Store, StoreError};

/// An app's tree as stored. Reads only: the ledger writes nodes with the events.
pub struct StoredTree<'a> {
    store: &'a dyn Store,
    app: &'a str,
}

impl<'a> StoredTree<'a> {
    /// The tree of `app` in `store`.
    pub fn new(store: &'a dyn Store, app: &'a str) -> Self {
        StoredTree { store, app }
    }

    /// How many events the stored tree covers (0 for a store written before trees).
    pub fn size(&self) -> Result<u64, TreeError> {
        Ok(self.store.tree_size(self.app)?.unwrap_or(0))
    }

    /// The root of the tree of the first `size` events.
    pub fn root(&self, size: u64) -> Result<Hash32, TreeError> {
        self.check(size)?;
        build::root::<Blake3, _>(self, size)
    }

    /// The inclusion path of event `seq` (leaf `seq - 1`) in the tree of size `size`.
    pub fn inclusion_path(&self, seq: u64, size: u64) -> Result<Vec<Hash32>, TreeError> {
        self.check(size)?;
        if seq == 0 {
            return Err(TreeError::OutOfRange("events are numbered from 1".into()));
        }
        build::inclusion_path::<Blake3, _>(self, seq - 1, size)
    }

    /// The consistency path from the tree of size `old_size` to that of size `new_size`.
    pub fn consistency_path(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash32>, TreeError> {
        self.check(new_size)?;
        build::consistency_path::<Blake3, _>(self, old_size, new_size)
    }

    /// The right edge of the tree of size `size`.
    pub fn frontier(&self, size: u64) -> Result<Frontier, TreeError> {
        self.check(size)?;
        Frontier::load(self, size)
    }

    /// Appends the leaves of events `size + 1 ..` (their hashes, in order) to the stored
    /// tree, in atomic chunks of at most `chunk` events. Used to build the tree of a store
    /// written before trees existed, and by benchmarks and tests to build large trees
    /// without events; the ledger's appends write nodes with the events instead.
    pub fn extend(
        &self,
        event_hashes: impl IntoIterator<Item = Result<Hash32, TreeError>>,
        chunk: usize,
    ) -> Result<u64, TreeError> {
        let size = self.size()?;
        let mut frontier = Frontier::load(self, size)?;
        let mut pending: Vec<(u64, Vec<Hash32>)> = Vec::with_capacity(chunk.max(1));
        for hash in event_hashes {
            let hash = hash?;
            let nodes = frontier.push::<Blake3>(&hash);
            pending.push((frontier.size(), nodes));
            if pending.len() >= chunk.max(1) {
                self.store.write_tree(self.app, &pending, frontier.size())?;
                pending.clear();
            }
        }
        if !pending.is_empty() {
            self.store.write_tree(self.app, &pending, frontier.size())?;
        }
        Ok(frontier.size())
    }

    fn check(&self, size: u64) -> Result<(), TreeError> {
        let have = self.size()?;
        if size > have {
            return Err(TreeError::OutOfRange(format!(
                "tree size {size} is beyond the {have} events app {} has",
                self.app
            )));
        }
        Ok(())
    }

    fn corrupt(&self, detail: String) -> TreeError {
        TreeError::Corrupt {
            app: self.app.to_string(),
            detail,
        }
    }
}

impl NodeSource for StoredTree<'_> {
    fn complete(&self, level: u32, index: u64) -> Result<Hash32, TreeError> {
        let seq = 1u64
            .checked_shl(level)
            .and_then(|width| index.checked_add(1)?.checked_mul(width))
            .ok_or(TreeError::MissingNode { level, index })?;
        let nodes = match self.store.tree_nodes(self.app, seq) {
            Ok(Some(n)) => n,
            Ok(None) => return Err(TreeError::MissingNode { level, index }),
            Err(StoreError::Corrupt(d)) => return Err(self.corrupt(d)),
            Err(e) => return Err(e.into()),
        };
        usize::try_from(level)
            .ok()
            .and_then(|l| nodes.get(l))
            .copied()
            .ok_or_else(|| {
                self.corrupt(format!(
                    "event {seq} holds {} node hashes, not the {} it completes",
                    nodes.len(),
                    seq.trailing_zeros() + 1
                ))
            })
    }
}
