//! The embedded store: sled 0.34, one tree per app for the indexes and the head, made
//! durable by `flush` plus an fsync of sled's data file; event bodies in one append-only
//! file per app ([`super::segment`]), fdatasync'd before sled's batch that points at them.
//!
//! A store written before segment files (event bodies in sled's `E` values) is migrated
//! when it opens: the bodies are copied into the segment file in order, each chunk
//! fdatasync'd before its `E` entries are rewritten as locators, so an interrupted
//! migration resumes where it stopped.
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
use std::sync::{Arc, Mutex, RwLock};

use super::layout::{self, event_key, index_entries, version_prefix, EVENT};
use super::segment::{self, Locator, Reader, Segment};
use super::{
    AppBatch, LendEvent, Mark, RawEvents, RecordState, Space, Store, StoreError, StoreResult,
    TreeNodes,
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
    segments: RwLock<HashMap<String, Arc<Segment>>>,
    /// A segment write that failed: the file may hold a partial record and pages a failed
    /// fdatasync dropped, so the next `sync` reports it (the ledger then refuses writes
    /// until it is reopened, which cuts what no index refers to).
    failed_append: Mutex<Option<(std::io::ErrorKind, String)>>,
    /// Opened for reading only: no migration, no cut, no new files.
    read_only: bool,
}

/// Events a migration moves into a segment file per batch.
const MIGRATION_BATCH: usize = 4096;

fn backend(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => super::io_error(io),
        sled::Error::Corruption { at, bt: _ } => {
            StoreError::Corrupt(format!("sled reports corruption at {at:?}"))
        }
        other => StoreError::Backend(other.to_string()),
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with(dir, false)
    }

    /// Opens the store in `dir` to read it (the replay tool on a data directory): sled
    /// still takes its lock, but the store's own files are left exactly as they are: a
    /// store written before segment files is read as it is, not migrated, and records no
    /// index refers to are not cut.
    pub fn open_read_only(dir: &Path) -> StoreResult<Self> {
        Self::open_with(dir, true)
    }

    fn open_with(dir: &Path, read_only: bool) -> StoreResult<Self> {
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
        let store = SledStore {
            db,
            data_file: Mutex::new(data_file),
            synced_blobs: Mutex::new(HashMap::new()),
            path: dir.to_path_buf(),
            trees: RwLock::new(HashMap::new()),
            segments: RwLock::new(HashMap::new()),
            failed_append: Mutex::new(None),
            read_only,
        };
        for name in store.db.tree_names() {
            if let Some(app) = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| n.strip_prefix("app:"))
            {
                store.open_segment(app)?;
            }
        }
        Ok(store)
    }

    /// Opens an app's segment file at open: cuts records no index refers to, and migrates
    /// event bodies still in sled (neither when read-only).
    fn open_segment(&self, app: &str) -> StoreResult<()> {
        let Some(t) = self.tree(app)? else {
            return Ok(());
        };
        if !segment::is_file_stem(app) {
            tracing::warn!(
                app,
                "an app name that cannot name a file: its events read as missing"
            );
            return Ok(());
        }
        let path = segment::path(&self.path, app);
        let last = t
            .range(&[EVENT][..]..&[EVENT + 1][..])
            .next_back()
            .transpose()
            .map_err(backend)?;
        let head = self.head_record(app)?.map(|(seq, _)| seq);
        // The last indexed event: (its key's seq, where its record is).
        let last = match &last {
            None => None,
            Some((k, v)) => match layout::parse_locator(v) {
                Some(at) => Some((layout::seq_of(k), at)),
                None if self.read_only => return Ok(()),
                None => return self.migrate(app, &t),
            },
        };
        if self.read_only && !path.exists() {
            return Ok(());
        }
        let end = last.map_or(0, |(_, at)| at.end());
        let seg = Segment::open(path, end, self.read_only)?;
        // Only a store whose last indexed event is its head, and whose last record is that
        // event, may lose a tail: otherwise the verifier must see everything as it is.
        let consistent = match last {
            None => head.is_none(),
            Some((seq, at)) => seq.is_some_and(|seq| {
                head == Some(seq)
                    && seg
                        .read(seq, at)
                        .ok()
                        .and_then(|bytes| crate::codec::decode(&bytes).ok())
                        .is_some_and(|e| e.seq == seq && e.app == app)
            }),
        };
        if consistent && !self.read_only {
            seg.cut_tail()?;
        }
        self.register(app, seg);
        Ok(())
    }

    /// Keeps an app's opened segment for its reads and writes.
    fn register(&self, app: &str, seg: Segment) -> Arc<Segment> {
        let seg = Arc::new(seg);
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string(), seg.clone());
        seg
    }

    /// Moves an app's event bodies from sled's `E` values into its segment file.
    fn migrate(&self, app: &str, t: &sled::Tree) -> StoreResult<()> {
        // Events already moved (an interrupted migration) end where the next one goes.
        let mut end = 0;
        for r in t.range(&[EVENT][..]..&[EVENT + 1][..]) {
            let (_, v) = r.map_err(backend)?;
            match layout::parse_locator(&v) {
                Some(at) => end = at.end(),
                None => break,
            }
        }
        let seg = Segment::open(segment::path(&self.path, app), end, false)?;
        // What an interrupted migration wrote past its last locator is written again.
        seg.cut_tail()?;
        tracing::info!(app, file = %seg.path().display(), "moving event bodies out of sled");
        let mut from = event_key(0).to_vec();
        loop {
            let chunk: Vec<(sled::IVec, sled::IVec)> = t
                .range(from.clone()..vec![EVENT + 1])
                .filter(|r| {
                    r.as_ref()
                        .map_or(true, |(_, v)| layout::parse_locator(v).is_none())
                })
                .take(MIGRATION_BATCH)
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let Some((last_key, _)) = chunk.last() else {
                break;
            };
            from = last_key.to_vec();
            from.push(0);
            let _w = seg.lock();
            let (at, new_end) = seg.append(chunk.iter().map(|(_, v)| v.as_ref()))?;
            let mut batch = sled::Batch::default();
            for ((k, _), at) in chunk.iter().zip(at) {
                batch.insert(k, &layout::locator_value(at));
            }
            t.apply_batch(batch).map_err(backend)?;
            seg.publish(new_end);
        }
        // sled's flush, its blob files and its data file, as for any write.
        self.sync()?;
        self.register(app, seg);
        Ok(())
    }

    /// The segment of an app, created if `create` (its first write) and not there yet.
    fn segment(&self, app: &str, create: bool) -> StoreResult<Option<Arc<Segment>>> {
        if let Some(s) = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
        {
            return Ok(Some(s.clone()));
        }
        if !create {
            return Ok(None);
        }
        let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = segments.get(app) {
            return Ok(Some(s.clone()));
        }
        if self.read_only || !segment::is_file_stem(app) {
            return Err(StoreError::Backend(format!(
                "app {app}: no segment file can be made here"
            )));
        }
        // A new app: anything in a file left by a first write that failed is not referred to.
        let seg = Segment::open(segment::path(&self.path, app), 0, false)?;
        seg.cut_tail()?;
        let seg = Arc::new(seg);
        segments.insert(app.to_string(), seg.clone());
        Ok(Some(seg))
    }

    /// An app's tree and a sequential reader of its segment file (if it has one): events
    /// are read in the order of their `E` entries (which point reads use too, so a scan
    /// checks exactly what is served), each through the reader's window.
    fn indexed(&self, app: &str) -> StoreResult<Option<(sled::Tree, Option<Reader>)>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        let reader = self.segment(app, false)?.map(|seg| seg.reader());
        Ok(Some((t, reader)))
    }

    /// The bytes an `E` entry stands for: read through `reader` (made on first need: an
    /// app's first write may have made its file since the scan began), or the entry itself
    /// in a store written before segment files.
    fn entry_bytes<'r>(
        &self,
        app: &str,
        reader: &'r mut Option<Reader>,
        seq: u64,
        v: &'r [u8],
    ) -> StoreResult<&'r [u8]> {
        let Some(at) = layout::parse_locator(v) else {
            return Ok(v);
        };
        if reader.is_none() {
            *reader = self.segment(app, false)?.map(|seg| seg.reader());
        }
        match reader {
            Some(r) => r.read(seq, at),
            None => Err(no_segment(app, seq)),
        }
    }

    /// The body of event `seq` whose `E` value is `v` (a locator, or the body itself in a
    /// store written before segment files).
    fn body(&self, app: &str, seq: u64, v: &[u8]) -> StoreResult<Vec<u8>> {
        let Some(at) = layout::parse_locator(v) else {
            return Ok(v.to_vec());
        };
        let seg = self
            .segment(app, false)?
            .ok_or_else(|| no_segment(app, seq))?;
        seg.read(seq, at)
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

    /// Replaces the stored bytes of event `seq` behind the ledger: in place when the length
    /// is unchanged; else the records of `seq` and every later event are written again
    /// after the file's end and the index points at them (the end of the last event stays
    /// the end of what the index refers to). For tamper tests.
    #[doc(hidden)]
    pub fn tamper_event(
        &self,
        app: &str,
        seq: u64,
        change: impl FnOnce(&mut Vec<u8>),
    ) -> StoreResult<()> {
        let t = self.tree(app)?.ok_or_else(|| no_segment(app, seq))?;
        let seg = self
            .segment(app, false)?
            .ok_or_else(|| no_segment(app, seq))?;
        let mut events = Vec::new();
        for r in t.range(event_key(seq).to_vec()..vec![EVENT + 1]) {
            let (k, v) = r.map_err(backend)?;
            let s = layout::seq_of(&k)
                .ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
            let at = locator(app, s, &v)?;
            events.push((s, at, seg.read(s, at)?));
        }
        let Some((_, at, first)) = events.first_mut() else {
            return Err(StoreError::Corrupt(format!("app {app}: no event {seq}")));
        };
        let len = first.len();
        change(first);
        if first.len() == len {
            seg.overwrite(*at, first)?;
        } else {
            let _w = seg.lock();
            let (at, end) = seg.append(events.iter().map(|(_, _, b)| b.as_slice()))?;
            let mut batch = sled::Batch::default();
            for ((s, _, _), at) in events.iter().zip(at) {
                batch.insert(&event_key(*s), &layout::locator_value(at));
            }
            t.apply_batch(batch).map_err(backend)?;
            seg.publish(end);
        }
        t.flush().map_err(backend)?;
        Ok(())
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
            let has_events = match self.tree(app)? {
                Some(t) => t
                    .range(&[EVENT][..]..&[EVENT + 1][..])
                    .next()
                    .transpose()
                    .map_err(backend)?
                    .is_some(),
                None => false,
            };
            if has_events {
                apps.push(app.to_string());
            }
        }
        Ok(apps)
    }

    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        t.get(event_key(seq))
            .map_err(backend)?
            .map(|v| self.body(app, seq, &v))
            .transpose()
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
                Ok(Some((seq, self.body(app, seq, &v)?)))
            }
        }
    }

    fn scan(&self, app: &str, from: u64) -> RawEvents<'_> {
        let (t, mut reader) = match self.indexed(app) {
            Ok(Some(found)) => found,
            Ok(None) => return Box::new(std::iter::empty()),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let app = app.to_string();
        let start = event_key(from).to_vec();
        Box::new(t.range(start..vec![EVENT + 1]).map(move |r| {
            let (seq, v) = indexed_at(r)?;
            Ok((seq, self.entry_bytes(&app, &mut reader, seq, &v)?.to_vec()))
        }))
    }

    fn read_range(&self, app: &str, from: u64, to: u64, each: &mut LendEvent<'_>) {
        let (t, mut reader) = match self.indexed(app) {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(e) => return each(Err(e)),
        };
        for r in t.range(event_key(from).to_vec()..=event_key(to).to_vec()) {
            match indexed_at(r) {
                Ok((seq, v)) => each(
                    self.entry_bytes(app, &mut reader, seq, &v)
                        .map(|b| (seq, b)),
                ),
                Err(e) => each(Err(e)),
            }
        }
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
            let seg = self
                .segment(&b.app, true)?
                .ok_or_else(|| StoreError::Backend(format!("app {}: no segment file", b.app)))?;
            // Bodies durable first; then the index that points at them; then visible.
            let _w = seg.lock();
            let (at, end) = seg
                .append(b.events.iter().map(|w| w.bytes.as_slice()))
                .inspect_err(|e| {
                    let kind = match e {
                        StoreError::Io(io) => io.kind(),
                        _ => std::io::ErrorKind::Other,
                    };
                    let why = format!("writing {} failed: {e}", seg.path().display());
                    *self.failed_append.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((kind, why));
                })?;
            let mut batch = sled::Batch::default();
            for (w, at) in b.events.iter().zip(at) {
                batch.insert(&event_key(w.seq), &layout::locator_value(at));
                for (k, v) in index_entries(w) {
                    batch.insert(k, v);
                }
            }
            batch.insert(layout::HEAD, layout::head_value(b.head.0, &b.head.1));
            batch.insert(layout::TREE_SIZE, &b.head.0.to_be_bytes());
            t.apply_batch(batch).map_err(backend)?;
            seg.publish(end);
        }
        Ok(())
    }

    fn sync(&self) -> StoreResult<()> {
        if let Some((kind, why)) = self
            .failed_append
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(StoreError::Io(std::io::Error::new(kind, why)));
        }
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

/// An `E` entry: its event's seq and value.
fn indexed_at(r: sled::Result<(sled::IVec, sled::IVec)>) -> StoreResult<(u64, sled::IVec)> {
    let (k, v) = r.map_err(backend)?;
    let seq = layout::seq_of(&k).ok_or_else(|| StoreError::Corrupt(format!("short key {k:?}")))?;
    Ok((seq, v))
}

/// Reads an `E` value; anything but a locator is corruption, named by event.
fn locator(app: &str, seq: u64, v: &[u8]) -> StoreResult<Locator> {
    layout::parse_locator(v).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "app {app}: the index entry of event {seq} is {} bytes, not a 12-byte locator",
            v.len()
        ))
    })
}

fn no_segment(app: &str, seq: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "app {app}: event {seq} is indexed but the app has no segment file"
    ))
}
