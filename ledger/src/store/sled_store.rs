//! The embedded store: sled 0.34, one tree per app, made durable by `flush` plus an fsync
//! of sled's data file.
//!
//! sled's own `flush()` writes with `sync_file_range` on Linux, which survives a process
//! kill but syncs neither file metadata nor the device's write cache; so `sync` also calls
//! `sync_all` on `<dir>/db` (and on the directory once, at open). sled 0.34 also moves any
//! log message larger than a quarter segment (a whole tree node counts: up to 17 events)
//! into a file under `<dir>/blobs/` that it never fsyncs; `sync` fsyncs each new blob file
//! and the folder before `db`. sled allows one process per directory; a second gets
//! [`StoreError::Locked`].

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use super::layout::{self, entries, event_key, version_prefix, EVENT};
use super::{
    AppBatch, Mark, RawEvents, RecordState, Space, Store, StoreError, StoreResult, TreeNodes,
};

/// Cache sled may use, in bytes: bounds the server's memory (SPEC §8, ≤ 300 MB RSS).
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// How long [`SledStore::open`] waits for a lock a store closed moments ago may still
/// hold before it reports the directory as in use.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// A sled database in a directory.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    data_file: Mutex<File>,
    /// Blob files already fsynced, with the size they had then (sled may still be
    /// writing a blob for a later group when a sync lists it: a changed size is synced again).
    synced_blobs: Mutex<HashMap<std::ffi::OsString, u64>>,
    path: PathBuf,
    trees: RwLock<HashMap<String, sled::Tree>>,
}

fn backend(e: sled::Error) -> StoreError {
    match e {
        // sled words some I/O errors with their Debug form; the two an operator must act
        // on are given their plain names.
        sled::Error::Io(io) => StoreError::Io(match io.kind() {
            std::io::ErrorKind::StorageFull => {
                std::io::Error::new(io.kind(), "no space left on device")
            }
            std::io::ErrorKind::ReadOnlyFilesystem => {
                std::io::Error::new(io.kind(), "read-only file system")
            }
            _ => io,
        }),
        sled::Error::Corruption { at, bt: _ } => {
            StoreError::Corrupt(format!("sled reports corruption at {at:?}"))
        }
        other => StoreError::Backend(other.to_string()),
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None);
        // sled releases its file lock from its own threads shortly after the last handle
        // of a store is dropped: a store closed a moment ago in this process may still
        // hold it. Wait for that, briefly; a lock another process holds is reported then.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if io.to_string().contains("lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: dir.display().to_string(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(other) => return Err(backend(other)),
            }
        };
        let data_file = File::open(dir.join("db"))?;
        File::open(dir)?.sync_all()?;
        Ok(SledStore {
            db,
            data_file: Mutex::new(data_file),
            synced_blobs: Mutex::new(HashMap::new()),
            path: dir.to_path_buf(),
            trees: RwLock::new(HashMap::new()),
        })
    }

    /// fsyncs the blob files written since the last call, then the blobs folder.
    fn sync_blobs(&self) -> StoreResult<()> {
        let dir = self.path.join("blobs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut present = HashMap::new();
        let mut new = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            // sled deletes blobs it no longer references; one gone since the listing needs no sync.
            let file = match File::open(dir.join(&name)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            // The size is read before the fsync: if sled appends after, it differs next time.
            let size = file.metadata()?.len();
            if synced.get(&name) != Some(&size) {
                file.sync_all()?;
                new = true;
            }
            present.insert(name, size);
        }
        if new {
            File::open(&dir)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree of an app, if it exists (handles are cached; sled trees are cheap clones).
    fn tree(&self, app: &str) -> StoreResult<Option<sled::Tree>> {
        if let Some(t) = self
            .trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
        {
            return Ok(Some(t.clone()));
        }
        let name = layout::tree_name(app);
        if !self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
        {
            return Ok(None);
        }
        self.open_tree(app).map(Some)
    }

    /// The tree of an app, created if needed.
    fn open_tree(&self, app: &str) -> StoreResult<sled::Tree> {
        let t = self.db.open_tree(layout::tree_name(app)).map_err(backend)?;
        self.trees
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string(), t.clone());
        Ok(t)
    }

    fn prefix(&self, app: &str, prefix: &[u8]) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let Some(t) = self.tree(app)? else {
            return Ok(Vec::new());
        };
        t.scan_prefix(prefix)
            .map(|r| {
                let (k, v) = r.map_err(backend)?;
                let seq = layout::seq_of(&k)
                    .ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
                Ok((seq, v.to_vec()))
            })
            .collect()
    }

    /// The raw sled tree of an app: for tamper tests, which change bytes behind the ledger.
    #[doc(hidden)]
    pub fn raw_tree(&self, app: &str) -> StoreResult<sled::Tree> {
        self.db.open_tree(layout::tree_name(app)).map_err(backend)
    }
}

impl Store for SledStore {
    fn apps(&self) -> StoreResult<Vec<String>> {
        let mut apps = Vec::new();
        for name in self.db.tree_names() {
            let Some(app) = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| n.strip_prefix("app:"))
            else {
                continue;
            };
            // A tree left empty by a failed first write is not an app.
            if self.last_event(app)?.is_some() {
                apps.push(app.to_string());
            }
        }
        Ok(apps)
    }

    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        Ok(t.get(event_key(seq)).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn last_event(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        match t.range(&[EVENT][..]..&[EVENT + 1][..]).next_back() {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r.map_err(backend)?;
                let seq = layout::seq_of(&k)
                    .ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
                Ok(Some((seq, v.to_vec())))
            }
        }
    }

    fn scan(&self, app: &str, from: u64) -> RawEvents<'_> {
        let t = match self.tree(app) {
            Ok(Some(t)) => t,
            Ok(None) => return Box::new(std::iter::empty()),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let start = event_key(from).to_vec();
        Box::new(t.range(start..vec![EVENT + 1]).map(|r| {
            let (k, v) = r.map_err(backend)?;
            let seq = layout::seq_of(&k)
                .ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
            Ok((seq, v.to_vec()))
        }))
    }

    fn versions(&self, app: &str, class: &str, object_id: &str) -> StoreResult<Vec<(u64, u8)>> {
        Ok(self
            .prefix(app, &version_prefix(class, object_id))?
            .into_iter()
            .map(|(seq, v)| (seq, v.first().copied().unwrap_or(0)))
            .collect())
    }

    fn record_state(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
    ) -> StoreResult<Option<RecordState>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        let value = t
            .get(layout::state_key(class, object_id))
            .map_err(backend)?;
        value
            .map(|v| layout::decode_state(app, class, object_id, &v))
            .transpose()
    }

    fn idempotent(&self, app: &str, key: &str) -> StoreResult<Option<u64>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        Ok(t.get(layout::idempotency_key(key))
            .map_err(backend)?
            .and_then(|v| layout::seq_of(&v)))
    }

    fn head_record(&self, app: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        match t.get(layout::HEAD).map_err(backend)? {
            None => Ok(None),
            Some(v) => layout::parse_head(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("app {app}: malformed head record"))),
        }
    }

    fn marked(&self, app: &str, mark: Mark) -> StoreResult<Vec<u64>> {
        Ok(self
            .prefix(app, &[layout::mark_tag(mark)])?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    fn write(&self, batches: &[AppBatch]) -> StoreResult<()> {
        for b in batches {
            let t = match self.tree(&b.app)? {
                Some(t) => t,
                None => self.open_tree(&b.app)?,
            };
            let mut batch = sled::Batch::default();
            for w in &b.events {
                for (k, v) in entries(w) {
                    batch.insert(k, v);
                }
            }
            batch.insert(layout::HEAD, layout::head_value(b.head.0, &b.head.1));
            batch.insert(layout::TREE_SIZE, &b.head.0.to_be_bytes());
            t.apply_batch(batch).map_err(backend)?;
        }
        Ok(())
    }

    fn sync(&self) -> StoreResult<()> {
        self.db.flush().map_err(backend)?;
        // Blobs first: the log in `db` points at them.
        self.sync_blobs()?;
        let f = self.data_file.lock().unwrap_or_else(|p| p.into_inner());
        f.sync_all()?;
        Ok(())
    }

    fn space(&self) -> StoreResult<Option<Space>> {
        let st = rustix::fs::statvfs(&self.path).map_err(std::io::Error::from)?;
        Ok(Some(Space {
            path: self.path.display().to_string(),
            available: st.f_bavail.saturating_mul(st.f_frsize),
            read_only: st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        }))
    }

    fn tree_size(&self, app: &str) -> StoreResult<Option<u64>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        t.get(layout::TREE_SIZE)
            .map_err(backend)?
            .map(|v| layout::decode_tree_size(app, &v))
            .transpose()
    }

    fn tree_nodes(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<[u8; 32]>>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        t.get(layout::tree_nodes_key(seq))
            .map_err(backend)?
            .map(|v| layout::decode_tree_nodes(app, seq, &v))
            .transpose()
    }

    fn write_tree(&self, app: &str, nodes: &[TreeNodes], size: u64) -> StoreResult<()> {
        let t = match self.tree(app)? {
            Some(t) => t,
            None => self.open_tree(app)?,
        };
        let mut batch = sled::Batch::default();
        for (seq, hashes) in nodes {
            batch.insert(
                &layout::tree_nodes_key(*seq),
                layout::tree_nodes_value(hashes),
            );
        }
        batch.insert(layout::TREE_SIZE, &size.to_be_bytes());
        t.apply_batch(batch).map_err(backend)
    }

    fn put_checkpoint(&self, app: &str, size: u64, note: &[u8]) -> StoreResult<()> {
        let t = match self.tree(app)? {
            Some(t) => t,
            None => self.open_tree(app)?,
        };
        t.insert(layout::checkpoint_key(size), note)
            .map_err(backend)?;
        Ok(())
    }

    fn checkpoints(&self, app: &str, from_size: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let Some(t) = self.tree(app)? else {
            return Ok(Vec::new());
        };
        t.range(layout::checkpoint_key(from_size).to_vec()..vec![layout::CHECKPOINT + 1])
            .map(|r| {
                let (k, v) = r.map_err(backend)?;
                let size = layout::seq_of(&k)
                    .ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
                Ok((size, v.to_vec()))
            })
            .collect()
    }

    fn last_checkpoint(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        match t
            .range(&[layout::CHECKPOINT][..]..&[layout::CHECKPOINT + 1][..])
            .next_back()
        {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r.map_err(backend)?;
                let size = layout::seq_of(&k)
                    .ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
                Ok(Some((size, v.to_vec())))
            }
        }
    }
}
