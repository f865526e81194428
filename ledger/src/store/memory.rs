//! An in-memory store with the same key layout as sled: for tests and the property tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use super::layout::{self, event_key, index_entries, version_prefix, EVENT};
use super::{AppBatch, Mark, RawEvents, RecordState, Store, StoreResult, TreeNodes};

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// Apps' keyspaces in memory. Never durable: `sync` does nothing.
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: Mutex<BTreeMap<String, Tree>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Tree>> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prefix_scan(&self, app: &str, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let trees = self.lock();
        let Some(t) = trees.get(&layout::tree_name(app)) else {
            return Vec::new();
        };
        t.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Store for MemoryStore {
    fn apps(&self) -> StoreResult<Vec<String>> {
        // As in sled: a keyspace without events (a failed first write) is not an app.
        Ok(self
            .lock()
            .iter()
            .filter(|(_, t)| {
                t.range::<[u8], _>((
                    Bound::Included(&[EVENT][..]),
                    Bound::Excluded(&[EVENT + 1][..]),
                ))
                .next()
                .is_some()
            })
            .filter_map(|(n, _)| n.strip_prefix("app:").map(str::to_string))
            .collect())
    }

    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .get(&layout::tree_name(app))
            .and_then(|t| t.get(&event_key(seq)[..]).cloned()))
    }

    fn last_event(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        let trees = self.lock();
        let Some(t) = trees.get(&layout::tree_name(app)) else {
            return Ok(None);
        };
        Ok(t.range::<[u8], _>((
            Bound::Included(&[EVENT][..]),
            Bound::Excluded(&[EVENT + 1][..]),
        ))
        .next_back()
        .and_then(|(k, v)| Some((layout::seq_of(k)?, v.clone()))))
    }

    fn scan(&self, app: &str, from: u64) -> RawEvents<'_> {
        let trees = self.lock();
        let items: Vec<_> = match trees.get(&layout::tree_name(app)) {
            None => Vec::new(),
            Some(t) => t
                .range::<[u8], _>((
                    Bound::Included(&event_key(from)[..]),
                    Bound::Excluded(&[EVENT + 1][..]),
                ))
                .filter_map(|(k, v)| Some(Ok((layout::seq_of(k)?, v.clone()))))
                .collect(),
        };
        Box::new(items.into_iter())
    }

    fn versions(&self, app: &str, class: &str, object_id: &str) -> StoreResult<Vec<(u64, u8)>> {
        Ok(self
            .prefix_scan(app, &version_prefix(class, object_id))
            .into_iter()
            .filter_map(|(k, v)| Some((layout::seq_of(&k)?, *v.first()?)))
            .collect())
    }

    fn record_state(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
    ) -> StoreResult<Option<RecordState>> {
        // Versions first, as the sled store does: no versions, no `R` entry.
        let Some((first, _)) = self
            .prefix_scan(app, &version_prefix(class, object_id))
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let state = {
            let trees = self.lock();
            trees
                .get(&layout::tree_name(app))
                .and_then(|t| t.get(&layout::state_key(class, object_id)).cloned())
        };
        layout::state_of(app, class, object_id, state.as_deref(), Some(&first))
    }

    fn idempotent(&self, app: &str, key: &str) -> StoreResult<Option<u64>> {
        Ok(self
            .lock()
            .get(&layout::tree_name(app))
            .and_then(|t| t.get(&layout::idempotency_key(key)))
            .and_then(|v| layout::seq_of(v)))
    }

    fn head_record(&self, app: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
        let trees = self.lock();
        match trees
            .get(&layout::tree_name(app))
            .and_then(|t| t.get(layout::HEAD))
        {
            None => Ok(None),
            Some(v) => layout::parse_head(v).map(Some).ok_or_else(|| {
                super::StoreError::Corrupt(format!("app {app}: malformed head record"))
            }),
        }
    }

    fn marked(&self, app: &str, mark: Mark) -> StoreResult<Vec<u64>> {
        Ok(self
            .prefix_scan(app, &[layout::mark_tag(mark)])
            .into_iter()
            .filter_map(|(k, _)| layout::seq_of(&k))
            .collect())
    }

    fn write(&self, batches: &[AppBatch]) -> StoreResult<()> {
        let mut trees = self.lock();
        for b in batches {
            let t = trees.entry(layout::tree_name(&b.app)).or_default();
            for w in &b.events {
                t.insert(event_key(w.seq).to_vec(), w.bytes.clone());
                for (k, v) in index_entries(w) {
                    t.insert(k, v);
                }
                if !w.tree_nodes.is_empty() {
                    t.insert(
                        layout::tree_nodes_key(w.seq).to_vec(),
                        layout::tree_nodes_value(&w.tree_nodes),
                    );
                }
            }
            t.insert(
                layout::HEAD.to_vec(),
                layout::head_value(b.head.0, &b.head.1),
            );
            t.insert(layout::TREE_SIZE.to_vec(), b.head.0.to_be_bytes().to_vec());
        }
        Ok(())
    }

    fn sync(&self) -> StoreResult<()> {
        Ok(())
    }

    fn tree_size(&self, app: &str) -> StoreResult<Option<u64>> {
        let trees = self.lock();
        trees
            .get(&layout::tree_name(app))
            .and_then(|t| t.get(layout::TREE_SIZE))
            .map(|v| layout::decode_tree_size(app, v))
            .transpose()
    }

    fn tree_nodes(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<[u8; 32]>>> {
        let trees = self.lock();
        trees
            .get(&layout::tree_name(app))
            .and_then(|t| t.get(&layout::tree_nodes_key(seq)[..]))
            .map(|v| layout::decode_tree_nodes(app, seq, v))
            .transpose()
    }

    fn write_tree(&self, app: &str, nodes: &[TreeNodes], size: u64) -> StoreResult<()> {
        let mut trees = self.lock();
        let t = trees.entry(layout::tree_name(app)).or_default();
        for (seq, hashes) in nodes {
            t.insert(
                layout::tree_nodes_key(*seq).to_vec(),
                layout::tree_nodes_value(hashes),
            );
        }
        t.insert(layout::TREE_SIZE.to_vec(), size.to_be_bytes().to_vec());
        Ok(())
    }

    fn put_checkpoint(&self, app: &str, size: u64, note: &[u8]) -> StoreResult<()> {
        self.lock()
            .entry(layout::tree_name(app))
            .or_default()
            .insert(layout::checkpoint_key(size).to_vec(), note.to_vec());
        Ok(())
    }

    fn checkpoints(&self, app: &str, from_size: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let trees = self.lock();
        let Some(t) = trees.get(&layout::tree_name(app)) else {
            return Ok(Vec::new());
        };
        Ok(t.range::<[u8], _>((
            Bound::Included(&layout::checkpoint_key(from_size)[..]),
            Bound::Excluded(&[layout::CHECKPOINT + 1][..]),
        ))
        .filter_map(|(k, v)| Some((layout::seq_of(k)?, v.clone())))
        .collect())
    }

    fn last_checkpoint(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        let trees = self.lock();
        let Some(t) = trees.get(&layout::tree_name(app)) else {
            return Ok(None);
        };
        Ok(t.range::<[u8], _>((
            Bound::Included(&[layout::CHECKPOINT][..]),
            Bound::Excluded(&[layout::CHECKPOINT + 1][..]),
        ))
        .next_back()
        .and_then(|(k, v)| Some((layout::seq_of(k)?, v.clone()))))
    }
}
