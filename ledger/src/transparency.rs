//! The ledger's side of SPEC §3.5: proofs from each app's stored Merkle tree, signed
//! checkpoints cut from it (checked consistent with the previous one before they are
//! kept), and the tree's upkeep at open (checked against the head, built for stores
//! written before trees existed).
//!
//! Appends maintain the tree themselves: the builder pushes each event's hash onto the
//! app's [`Frontier`] and the nodes it completes are written with the event (`commit.rs`;
//! in the index file, fdatasync'd with its locator, for the sled store), so the tree and
//! the log never disagree, crash or not.

use std::sync::Arc;

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::codec;
use crate::event::Hash32;
use crate::keys::AppKey;
use crate::ledger::{key_ranges, Head, Ledger, OpenError};
use crate::merkle::{
    event_leaf, verify_consistency, Blake3, ConsistencyProof, Frontier, InclusionProof, StoredTree,
    TreeError,
};
use crate::store::Store;

/// Events per atomic batch when the tree of an existing store is built.
const BACKFILL_CHUNK: usize = 8192;

fn open_corrupt(app: &str, seq: u64, detail: String) -> OpenError {
    OpenError::Corrupt {
        app: app.to_string(),
        seq,
        detail,
    }
}

fn tree_open_error(app: &str, seq: u64, e: TreeError) -> OpenError {
    match e {
        TreeError::Store(s) => OpenError::Store(s),
        other => open_corrupt(app, seq, other.to_string()),
    }
}

/// Builds the app's tree up to its last stored event if it is behind (a store written
/// before trees existed, or one whose tree was removed): reads the events after the
/// tree's size and writes their nodes in atomic chunks, each moving the tree size.
pub(crate) fn backfill_tree(store: &dyn Store, app: &str) -> Result<u64, OpenError> {
    let Some((last, _)) = store.last_event(app)? else {
        return Ok(0);
    };
    let tree = StoredTree::new(store, app);
    let size = tree.size().map_err(|e| tree_open_error(app, 0, e))?;
    if size >= last {
        return Ok(0);
    }
    tracing::info!(
        app,
        from = size + 1,
        to = last,
        "building the Merkle tree of existing events"
    );
    let mut expect = size + 1;
    let hashes = store.scan(app, size + 1).map(|r| {
        let (seq, bytes) = r?;
        let e = codec::decode(&bytes).map_err(|detail| TreeError::Corrupt {
            app: app.to_string(),
            detail: format!("event {seq}: {detail}"),
        })?;
        if seq != expect || e.seq != seq {
            return Err(TreeError::Corrupt {
                app: app.to_string(),
                detail: format!("event {expect} is missing (found {seq})"),
            });
        }
        expect += 1;
        Ok(e.hash)
    });
    let built = tree
        .extend(hashes, BACKFILL_CHUNK)
        .map_err(|e| tree_open_error(app, size + 1, e))?;
    store.sync()?;
    Ok(built - size)
}

/// The frontier of the app's tree at its head, after checking that the tree covers
/// exactly the chain and that its last leaf is the head event's.
pub(crate) fn load_frontier(
    store: &dyn Store,
    app: &str,
    head: &Head,
) -> Result<Frontier, OpenError> {
    let tree = StoredTree::new(store, app);
    let size = tree.size().map_err(|e| tree_open_error(app, head.seq, e))?;
    if size != head.seq {
        return Err(open_corrupt(
            app,
            head.seq,
            format!(
                "the Merkle tree covers {size} events but the chain has {}",
                head.seq
            ),
        ));
    }
    let leaf = store
        .tree_nodes(app, head.seq)?
        .and_then(|n| n.first().copied());
    if leaf != Some(event_leaf(&head.hash)) {
        return Err(open_corrupt(
            app,
            head.seq,
            "the Merkle tree's last leaf is not the last event's".into(),
        ));
    }
    tree.frontier(head.seq)
        .map_err(|e| tree_open_error(app, head.seq, e))
}

impl Ledger {
    fn durable_size(&self, app: &str) -> Result<u64, TreeError> {
        self.head(app)
            .map(|h| h.seq)
            .ok_or_else(|| TreeError::UnknownApp(app.to_string()))
    }

    fn tree<'a>(&'a self, app: &'a str) -> StoredTree<'a> {
        StoredTree::new(&**self.store(), app)
    }

    fn within_durable(&self, app: &str, size: u64) -> Result<(), TreeError> {
        let durable = self.durable_size(app)?;
        if size > durable {
            return Err(TreeError::OutOfRange(format!(
                "tree size {size} is beyond app {app}'s {durable} durable events"
            )));
        }
        Ok(())
    }

    /// The root of `app`'s tree of its first `size` events (`size` ≤ the durable head).
    pub fn tree_root(&self, app: &str, size: u64) -> Result<Hash32, TreeError> {
        self.within_durable(app, size)?;
        self.tree(app).root(size)
    }

    /// A proof that event `seq` is in `app`'s tree of `tree_size` events
    /// (1 ≤ `seq` ≤ `tree_size` ≤ the durable head). O(log n) store reads.
    pub fn inclusion_proof(
        &self,
        app: &str,
        seq: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, TreeError> {
        self.within_durable(app, tree_size)?;
        Ok(InclusionProof {
            app: app.to_string(),
            seq,
            tree_size,
            path: self.tree(app).inclusion_path(seq, tree_size)?,
        })
    }

    /// A proof that `app`'s tree of `old_size` events is a prefix of its tree of
    /// `new_size` (1 ≤ `old_size` ≤ `new_size` ≤ the durable head). O(log n) store reads.
    pub fn consistency_proof(
        &self,
        app: &str,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, TreeError> {
        self.within_durable(app, new_size)?;
        Ok(ConsistencyProof {
            app: app.to_string(),
            old_size,
            new_size,
            path: self.tree(app).consistency_path(old_size, new_size)?,
        })
    }

    /// Recomputes `app`'s tree from its durable events and compares it with the stored
    /// one: the root, and every stored node. O(n); for audits and repair checks.
    pub fn verify_tree(&self, app: &str) -> Result<(), TreeError> {
        let size = self.durable_size(app)?;
        let mut frontier = Frontier::new();
        let store = self.store();
        for e in self.events(app, 1, size).map_err(|e| TreeError::Corrupt {
            app: app.into(),
            detail: e.to_string(),
        })? {
            let e = e.map_err(|e| TreeError::Corrupt {
                app: app.into(),
                detail: e.to_string(),
            })?;
            let nodes = frontier.push::<Blake3>(&e.hash);
            if store.tree_nodes(app, e.seq)?.as_ref() != Some(&nodes) {
                return Err(TreeError::Corrupt {
                    app: app.into(),
                    detail: format!("the stored tree nodes of event {} are not its own", e.seq),
                });
            }
        }
        if frontier.size() != size || self.tree(app).root(size)? != frontier.root::<Blake3>() {
            return Err(TreeError::Corrupt {
                app: app.into(),
                detail: "the stored tree's root is not the events' root".into(),
            });
        }
        Ok(())
    }

    /// The origin of `app`'s checkpoints: `<origin prefix>/<app>`.
    pub fn checkpoint_origin(&self, app: &str) -> Result<String, CheckpointError> {
        checkpoint::origin(&self.shared.checkpoints.origin_prefix, app)
    }

    /// How often the server should call [`Ledger::checkpoint_all`] (from the config).
    pub fn checkpoint_interval(&self) -> Option<std::time::Duration> {
        self.shared.checkpoints.interval
    }

    /// A signed checkpoint of `app`'s durable tree, kept in the store. If the tree has
    /// not grown since the latest checkpoint, that checkpoint is returned and nothing new
    /// is signed. A new checkpoint is made only after the tree is proved consistent with
    /// the previous one; if it is not (the log was rewritten behind the ledger's back),
    /// nothing is signed or stored and [`CheckpointError::Inconsistent`] says so.
    ///
    /// Signed with the app's signing key at the checkpoint's size (the key that signs the
    /// next event); its time is the clock's, never before the head's recorded time or
    /// the previous checkpoint's. Costs O(log n) reads, one signature and one fsync.
    pub fn checkpoint(&self, app: &str) -> Result<Checkpoint, CheckpointError> {
        let _one_at_a_time = self
            .shared
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let origin = self.checkpoint_origin(app)?;
        // A rotation may retire the key between reading the head and loading the key:
        // then the head has moved on; read it again.
        let (head, key) = {
            let mut tries = 0;
            loop {
                let head = self
                    .head(app)
                    .ok_or_else(|| TreeError::UnknownApp(app.to_string()))?;
                match self.signing_key(app, head.seq)? {
                    Some(key) => break (head, key),
                    None if tries < 3 => tries += 1,
                    None => {
                        let key_id = key_ranges(&**self.store(), app, head.seq)?
                            .last()
                            .map(|k| k.key_id)
                            .unwrap_or(crate::event::KeyId([0; 8]));
                        return Err(CheckpointError::MissingKey {
                            app: app.to_string(),
                            key_id,
                        });
                    }
                }
            }
        };
        let tree = self.tree(app);
        let root = tree.root(head.seq)?;
        let previous = self.latest_checkpoint(app)?;
        let mut time = self.shared.clock.now().max(head.recorded_at);
        if let Some(p) = &previous {
            let inconsistent = |detail: String| CheckpointError::Inconsistent {
                app: app.to_string(),
                previous_size: p.size(),
                size: head.seq,
                detail,
            };
            if p.origin() != origin {
                return Err(inconsistent(format!(
                    "the previous checkpoint's origin is {:?}, this ledger's {origin:?}",
                    p.origin()
                )));
            }
            if p.size() > head.seq {
                return Err(inconsistent(
                    "the previous checkpoint is larger than the log".into(),
                ));
            }
            let path = tree.consistency_path(p.size(), head.seq)?;
            verify_consistency::<Blake3>(p.size(), head.seq, &path, p.root(), &root).map_err(|e| {
                tracing::error!(app, previous = p.size(), size = head.seq, error = %e, "the log is not consistent with its last checkpoint");
                inconsistent(e.to_string())
            })?;
            if p.size() == head.seq {
                return Ok(p.clone());
            }
            time = time.max(p.time());
        }
        let cp = Checkpoint::sign(&origin, head.seq, &root, time, &key)?;
        cp.verify(&key.public())?;
        let store = self.store();
        store.put_checkpoint(app, head.seq, cp.text().as_bytes())?;
        store.sync()?;
        Ok(cp)
    }

    /// Cuts a checkpoint of every app ([`Ledger::checkpoint`]; apps that did not grow keep
    /// their latest). What the server's periodic schedule calls.
    pub fn checkpoint_all(&self) -> Vec<(String, Result<Checkpoint, CheckpointError>)> {
        self.apps()
            .into_iter()
            .map(|app| {
                let r = self.checkpoint(&app);
                (app, r)
            })
            .collect()
    }

    /// `app`'s latest kept checkpoint.
    pub fn latest_checkpoint(&self, app: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.known_app(app)?;
        self.store()
            .last_checkpoint(app)?
            .map(|(size, note)| parse_stored(app, size, &note))
            .transpose()
    }

    /// `app`'s kept checkpoint of tree size `size`, if one was made.
    pub fn checkpoint_at(
        &self,
        app: &str,
        size: u64,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        self.known_app(app)?;
        self.store()
            .checkpoints(app, size)?
            .into_iter()
            .next()
            .filter(|(s, _)| *s == size)
            .map(|(s, note)| parse_stored(app, s, &note))
            .transpose()
    }

    /// `app`'s kept checkpoints of tree size `from_size` or more, oldest first.
    pub fn checkpoints(
        &self,
        app: &str,
        from_size: u64,
    ) -> Result<Vec<Checkpoint>, CheckpointError> {
        self.known_app(app)?;
        self.store()
            .checkpoints(app, from_size)?
            .into_iter()
            .map(|(size, note)| parse_stored(app, size, &note))
            .collect()
    }

    fn known_app(&self, app: &str) -> Result<(), CheckpointError> {
        self.durable_size(app).map(|_| ()).map_err(Into::into)
    }

    /// The private key that signs checkpoints of size `size`: the one active after event
    /// `size` (declared by the last key event at or before it). `None` if retired.
    fn signing_key(&self, app: &str, size: u64) -> Result<Option<Arc<AppKey>>, CheckpointError> {
        let ranges = key_ranges(&**self.store(), app, size)?;
        let Some(active) = ranges.last() else {
            return Ok(None);
        };
        Ok(self.shared.keys.load(app, active.key_id)?.map(Arc::new))
    }
}

fn parse_stored(app: &str, size: u64, note: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let cp = std::str::from_utf8(note)
        .map_err(|e| e.to_string())
        .and_then(|t| Checkpoint::parse(t).map_err(|e| e.to_string()))
        .map_err(|detail| {
            CheckpointError::Store(crate::store::StoreError::Corrupt(format!(
                "app {app}: the checkpoint of size {size} cannot be read: {detail}"
            )))
        })?;
    if cp.size() != size || cp.app() != Some(app) {
        return Err(CheckpointError::Store(crate::store::StoreError::Corrupt(
            format!(
                "app {app}: the checkpoint kept under size {size} is for {} at size {}",
                cp.origin(),
                cp.size()
            ),
        )));
    }
    Ok(cp)
}
