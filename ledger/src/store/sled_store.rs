//! The embedded store: sled 0.34, one tree per app for the record indexes and the head;
//! event bodies in one append-only file per app ([`super::segment`]) and, for each event,
//! where its body is and the Merkle tree nodes it completes in a second file placed by
//! sequence number ([`super::index`]). Both files are fdatasync'd in every `write`, before
//! sled's entries for their new records, which end with the head: an acknowledged event is
//! on disk in them. sled is made durable (`flush` plus an fsync of its data file) at most a
//! second later ([`Store::sync_appends`]), and in full by [`Store::sync`]; after a crash,
//! its entries for events the files hold past its head are rolled forward at open, each
//! event read back and checked first. So an append costs sled only its record indexes,
//! and a group waits for two fdatasyncs, not three flushes.
//!
//! A write's sled entries are single inserts, not one `sled::Batch`: sled 0.34 writes its
//! log buffer out at the start of every batch (the batch's recovery marker must follow
//! everything before it), one `pwrite` and `sync_file_range` per group, where single
//! inserts fill the buffer first. Nothing needs the batch's atomicity: sled recovers a
//! prefix of its log, and the inserts come in an order in which any prefix is restored
//! by the roll forward: each event's entries, then the tree size, then the head, each
//! write's after the files that hold its events are durable. Entries past the head are
//! those the roll forward writes again, with the same values.
//!
//! A store written before index files (each event's body, or where it is, in sled's `E`
//! entry, its tree nodes in `N` entries) is migrated when it opens: the events are moved
//! in order, each chunk's segment and index records fdatasync'd before its `E` and `N`
//! entries are removed, so an interrupted migration resumes where it stopped.
//!
//! sled's own `flush()` writes with `sync_file_range` on Linux, which survives a process
//! kill but syncs neither file metadata nor the device's write cache; so `sync` also calls
//! `sync_all` on `<dir>/db` (and on the directory once, at open). sled 0.34 also moves any
//! log message larger than a quarter segment (a whole tree node counts) into a file under
//! `<dir>/blobs/` that it never fsyncs; `sync` fsyncs each new blob file and the folder
//! before `db`. sled allows one process per directory; a second gets
//! [`StoreError::Locked`].

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::index::{self, Index};
use super::layout::{self, event_key, index_entries, version_prefix, EVENT};
use super::segment::{self, Locator, Reader, Segment, Tail};
use super::EventWrite;
use super::{
    AppBatch, LendEvent, Mark, RawEvents, RecordState, Space, Store, StoreError, StoreResult,
    TreeNodes,
};
use crate::canonical::GENESIS_PREV_HASH;
use crate::merkle::{Blake3, Frontier};

/// Cache sled may use, in bytes: bounds the server's memory (SPEC §8, ≤ 300 MB RSS).
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// How long [`SledStore::open`] waits for a lock a store closed moments ago may still
/// hold before it reports the directory as in use.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Events a range read takes the locators of at once.
const SCAN_CHUNK: u64 = 1024;
/// Events a scan copies out at once (each as its own buffer, held until taken).
const SCAN_COPIES: u64 = 256;

/// How often the acknowledgement path ([`Store::sync_appends`]) also makes sled durable.
/// Acknowledgements rest on the segment and index files alone; sled's entries for events
/// it lost are rolled forward from those files at open, so this bounds that work (about
/// a second of appends), not what an acknowledgement guarantees.
const SLED_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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
    files: RwLock<HashMap<String, Arc<AppFiles>>>,
    /// A write that failed (or a failed sync of sled): the files may hold pages a failed
    /// fdatasync dropped, or a write that could not be cut back, or sled only part of a
    /// write's entries, so every later write and
    /// `sync` reports it ([`Store::refuses_writes`]: the ledger refuses writes until it is
    /// reopened, and the open judges what the files hold past the head).
    failed_append: Mutex<Option<(std::io::ErrorKind, String)>>,
    /// Read-only: the apps whose files hold events past sled's head (not shown).
    behind: Mutex<Vec<Behind>>,
    /// Opened for reading only: no migration, no cut, no new files.
    read_only: bool,
    /// The fault [`SledStore::fail_next_write`] asked the next write to meet.
    fail_next_write: Mutex<Option<FailAt>>,
    /// When sled was last made durable ([`Store::sync`]).
    sled_synced: Mutex<std::time::Instant>,
}

/// A fault for tests of what a failed write leaves ([`SledStore::fail_next_write`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    /// The write's files are synced, then it fails as a failed fdatasync would: it is cut
    /// back off both files.
    Files,
    /// As [`FailAt::Files`], and cutting its index records back fails too.
    FilesAndCutBack,
    /// Its files are synced and its first event's sled entries inserted, then the next
    /// insert fails.
    Entries,
}

/// What failed in one app's write, which decides what the write leaves.
enum WriteFailure {
    /// Writing or syncing the segment or index file: the write is cut back off both.
    Files(StoreError),
    /// An insert of sled's entries, after both files were made durable: the write stays
    /// whole in them, and the next open restores its entries.
    Entries(StoreError),
}

/// An app whose files hold events past the head sled recorded, seen by a read-only open
/// of a store not closed cleanly: the events past the head are not shown until a writable
/// open rolls sled forward ([`SledStore::behind_its_files`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    /// The app.
    pub app: String,
    /// The head sled recorded: the events shown are `1..=head`.
    pub head: u64,
    /// How many events' index records the index file holds.
    pub held: u64,
}

/// An app's files.
#[derive(Debug)]
struct AppFiles {
    seg: Arc<Segment>,
    /// `None`: a store written before index files, opened read-only and so read as it is
    /// (its `E` entries say where each body is).
    index: Option<Index>,
    /// How many events the index places: reads see events `1..=events` through it. Moves
    /// after sled's entries are inserted (so for a moment the head and the tree size in sled
    /// count events reads do not show yet; the ledger reads only up to its durable head).
    events: AtomicU64,
    /// Read-only, a migration interrupted after event `events`: the later events are still
    /// in sled's `E` and `N` entries.
    rest_in_sled: bool,
}

impl AppFiles {
    fn new(seg: Segment, index: Option<Index>, events: u64, rest_in_sled: bool) -> Arc<Self> {
        Arc::new(AppFiles {
            seg: Arc::new(seg),
            index,
            events: AtomicU64::new(events),
            rest_in_sled,
        })
    }
}

/// Events a migration moves into the segment and index files per batch.
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
            files: RwLock::new(HashMap::new()),
            failed_append: Mutex::new(None),
            read_only,
            fail_next_write: Mutex::new(None),
            sled_synced: Mutex::new(std::time::Instant::now()),
            behind: Mutex::new(Vec::new()),
        };
        let mut apps: std::collections::BTreeSet<String> = store
            .db
            .tree_names()
            .iter()
            .filter_map(|name| std::str::from_utf8(name).ok()?.strip_prefix("app:"))
            .map(str::to_string)
            .collect();
        // An app whose first events sled lost (a crash before its first sync) still has
        // its files: its tree is made again and rolled forward from them (read-only, it
        // is reported as behind them).
        if let Ok(entries) = std::fs::read_dir(segment::dir(dir)) {
            for entry in entries {
                let name = entry?.file_name();
                let Some(app) = name.to_str().and_then(|n| n.strip_suffix(".index")) else {
                    continue;
                };
                if !segment::is_file_stem(app) || apps.contains(app) {
                    continue;
                }
                if !read_only {
                    store.open_tree(app)?;
                    apps.insert(app.to_string());
                    continue;
                }
                match Index::open(index::path(dir, app), true).and_then(|i| i.records()) {
                    Ok(0) => {}
                    Ok(held) => store.behind_by(app, 0, held),
                    Err(e) => tracing::warn!(
                        app,
                        error = %e,
                        "an index file of an app sled does not know cannot be read: skipped"
                    ),
                }
            }
        }
        for app in &apps {
            store.open_app(app)?;
        }
        Ok(store)
    }

    /// Read-only: the apps whose files hold events past the head sled recorded (a store
    /// not closed cleanly; the events past it are not shown here, and an open to write
    /// restores every whole write among them). Empty for a store opened to write.
    pub fn behind_its_files(&self) -> Vec<Behind> {
        self.behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read-only: notes that `app`'s files hold `held` events, past the `head` sled
    /// recorded.
    fn behind_by(&self, app: &str, head: u64, held: u64) {
        self.behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Behind {
                app: app.to_string(),
                head,
                held,
            });
        tracing::warn!(
            app,
            head,
            held,
            "the files hold events past the head sled recorded (the store was not closed cleanly): \
             read-only, they are not shown; opening the store to write (the server) restores every whole write among them"
        );
    }

    /// Opens an app's files at open: cuts index and segment records the head does not
    /// count, and migrates a store written before index files (neither when read-only).
    fn open_app(&self, app: &str) -> StoreResult<()> {
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
        if first_entry(&t, EVENT)?.is_some() {
            return if self.read_only {
                self.open_sled_layout(app, &t)
            } else {
                self.migrate(app, &t)
            };
        }
        let head = self.head_record(app)?.map_or(0, |(seq, _)| seq);
        let (seg_path, index_path) = (segment::path(&self.path, app), index::path(&self.path, app));
        if self.read_only {
            if let Some(lost) = [&seg_path, &index_path].into_iter().find(|p| !p.exists()) {
                if head == 0 {
                    return Ok(());
                }
                return Err(StoreError::Corrupt(format!(
                    "app {app}: {} is missing, but the head counts {head} events",
                    lost.display()
                )));
            }
        }
        let index = Index::open(index_path, self.read_only)?;
        let seg = Segment::open(seg_path, 0, self.read_only)?;
        let head = match self.read_only {
            false => self.roll_forward(app, &t, &index, &seg)?,
            true => {
                let held = index.records().unwrap_or(0);
                if held > head {
                    self.behind_by(app, head, held);
                }
                head
            }
        };
        // Where the head event's record ends is where the next write goes.
        let last = match head {
            0 => None,
            seq => match index.locator(seq) {
                Ok(at) => Some(at),
                // Read-only, the reads then report it; a store to write to must not
                // write over what it cannot place.
                Err(_) if self.read_only => None,
                Err(e) => return Err(e),
            },
        };
        seg.publish(last.map_or(0, Locator::end));
        // Only a store whose head event's record reads back as that event may lose a tail:
        // otherwise the verifier must see everything as it is.
        let consistent = match last {
            None => head == 0,
            Some(at) => seg
                .read(head, at)
                .ok()
                .and_then(|bytes| crate::codec::decode(&bytes).ok())
                .is_some_and(|e| e.seq == head && e.app == app),
        };
        if consistent && !self.read_only {
            seg.cut_tail(Tail::KeepAside)?;
            // A tree may run ahead of the events only where a benchmark built one alone.
            let tree = self.tree_size(app)?.unwrap_or(0);
            index.cut(head.max(tree), Tail::KeepAside)?;
        }
        self.register(app, seg, Some(index), head, false);
        Ok(())
    }

    /// Restores sled's entries for the events the segment and index files hold past sled's
    /// head: sled is made durable only now and then ([`SLED_SYNC_EVERY`]), so after a
    /// crash its head may be behind events already acknowledged (their files were
    /// fdatasync'd first). Whole writes only, each ending at a record marked as a write's
    /// end ([`index::WRITE_END`]); each event is read back and checked (its place in the
    /// files, its number, its link to the one before, its hash and payload digest) and its
    /// tree nodes computed again and compared with those the writer stored. Only the last
    /// write, with nothing written after it, can have been torn by a crash before it was
    /// acknowledged (the writer begins a write once the one before is fdatasync'd): if one
    /// of its events fails its checks (for this write, its signature too, against the
    /// keys the chain declared) and the write's bytes bear a tear's marks
    /// ([`tear_mark`]) the write is dropped whole, and the open cuts it off, keeping the
    /// bytes aside. Any other bad event, or stored tree nodes that disagree, is damage to
    /// events that may have been acknowledged: the open fails, naming the event, and cuts nothing (whole writes
    /// before it may have been restored). An I/O error fails the open too.
    /// Returns the new head.
    fn roll_forward(
        &self,
        app: &str,
        t: &sled::Tree,
        index: &Index,
        seg: &Segment,
    ) -> StoreResult<u64> {
        // No head record: perhaps a first write whose entries never reached sled's disk.
        let (head, hash) = self.head_record(app)?.unwrap_or((0, GENESIS_PREV_HASH));
        // A write's tree size is inserted before its head: a crash between the two leaves
        // the size ahead, which the roll forward writes again.
        if self.tree_size(app)?.unwrap_or(0) < head {
            // A tree still being built from older events: nothing was appended past it.
            return Ok(head);
        }
        let placed = index.records()?;
        let mut ends = Vec::new();
        for seq in head.saturating_add(1)..=placed {
            if index.entry(seq)?.1 {
                ends.push(seq);
            }
        }
        let Some(&last_end) = ends.last() else {
            return Ok(head);
        };
        // The first event of the last write.
        let last_write = ends.len().checked_sub(2).map_or(head + 1, |i| ends[i] + 1);
        // The writer begins a write only once the one before is in both files and both
        // were fdatasync'd: bytes past the last write's in either file show it was made
        // durable whole, so damage in it is damage, not a tear.
        // In the segment file, where the last write ends is counted two ways (by the index
        // records' lengths and by the records' own prefixes): one of them may be torn.
        let write_start = match last_write - 1 {
            0 => 0,
            before => index.locator(before)?.end(),
        };
        let last = WriteEnds::of(index, seg, last_write, last_end, write_start)?;
        let followed =
            index.file_len()? > index::end_of(last_end).unwrap_or(u64::MAX) || last.followed();
        let tree_error = |e: crate::merkle::TreeError| {
            StoreError::Corrupt(format!("app {app}: rolling the tree forward: {e}"))
        };
        let mut frontier = Frontier::load(&IndexNodes(index), head).map_err(tree_error)?;
        let mut seg_end = match head {
            0 => 0,
            h => index.locator(h)?.end(),
        };
        let mut at_hash = hash;
        let mut rolled = head;
        let mut writes: Vec<EventWrite> = Vec::new();
        // The end of the last whole write read: its seq, hash and place in `writes`.
        let mut whole = (head, hash, 0usize);
        // The keys declared so far, if the last write's signatures are to be checked.
        let mut keys = match followed {
            true => Vec::new(),
            false => declared_keys(app, &self.marked(app, Mark::Key)?, index, seg, head)?,
        };
        for seq in head + 1..=last_end {
            let found = match next_written(app, index, seg, seq, seg_end, &at_hash)? {
                Ok((e, at)) => {
                    let nodes = frontier.push::<Blake3>(&e.hash);
                    if let Some(Ok(k)) = crate::verify::declared_key(&e) {
                        keys.push(k);
                    }
                    // The writer stored these nodes; recomputed, they must agree, or the
                    // frontier they were computed from is damaged (or the write torn).
                    if index.nodes(seq)? != nodes {
                        Err("its tree nodes in the index file differ from those recomputed from the events before it".to_string())
                    } else if seq >= last_write && !followed {
                        // A write that may be torn: its signatures too (unhashed, a tear
                        // in one would pass every check above).
                        signed(&keys, &e).map(|()| (e, at, nodes))
                    } else {
                        Ok((e, at, nodes))
                    }
                }
                Err(why) => Err(why),
            };
            let (e, at, nodes) = match found {
                Ok(found) => found,
                Err(why) => {
                    let since = if seq < last_write {
                        "a later write follows it, so it was acknowledged".to_string()
                    } else if followed {
                        "a later write had begun, so it had been made durable whole".to_string()
                    } else {
                        // Only the last write, with nothing after it, may have been torn
                        // by a crash before its fdatasyncs returned (so before it was
                        // acknowledged): it is dropped whole if its bytes show it.
                        match tear_mark(index, seg, last_write, last_end, &last)? {
                            Some(mark) => {
                                tracing::warn!(
                                    app,
                                    event = seq,
                                    why = %why,
                                    mark = %mark,
                                    "the last write past sled's head is torn (a crash before it was acknowledged): it is not restored"
                                );
                                break;
                            }
                            None => "its records bear no mark of a crash's tear (no blank sector, \
                                     none missing), so it may have been acknowledged"
                                .to_string(),
                        }
                    };
                    return Err(StoreError::Corrupt(format!(
                        "app {app}: event {seq}, held by the store's files past sled's head, is damaged ({why}); \
                         {since}: the store is left as it is (`ledger-replay verify` reads it)"
                    )));
                }
            };
            writes.push(EventWrite::of(&e, Vec::new(), nodes));
            (at_hash, seg_end) = (e.hash, at.end());
            if ends.binary_search(&seq).is_ok() {
                whole = (seq, e.hash, writes.len());
                if writes.len() >= MIGRATION_BATCH {
                    restore(t, index, &mut writes, seq, &e.hash)?;
                    (rolled, whole.2) = (seq, 0);
                }
            }
        }
        // sled's batches end at write ends: a whole write restored, or none of it.
        writes.truncate(whole.2);
        if whole.0 > rolled {
            restore(t, index, &mut writes, whole.0, &whole.1)?;
            rolled = whole.0;
        }
        if rolled > head {
            tracing::info!(
                app,
                from = head + 1,
                to = rolled,
                "restored sled's entries for events the files hold past its head"
            );
            self.sync()?;
        }
        Ok(rolled)
    }

    /// Opens, read-only, an app of a store written before index files: its `E` entries
    /// say where each body is (or hold it). If a migration was interrupted, the events
    /// before the first `E` entry are read through the index file.
    fn open_sled_layout(&self, app: &str, t: &sled::Tree) -> StoreResult<()> {
        let moved = match first_entry(t, EVENT)? {
            Some((k, _)) => layout::seq_of(&k).unwrap_or(1).saturating_sub(1),
            None => 0,
        };
        let path = segment::path(&self.path, app);
        if !path.exists() {
            if moved > 0 {
                return Err(StoreError::Corrupt(format!(
                    "app {app}: {} is missing, but {moved} events were moved into it",
                    path.display()
                )));
            }
            return Ok(());
        }
        let index = match moved {
            0 => None,
            _ => Some(Index::open(index::path(&self.path, app), true)?),
        };
        let end = match last_entry(t, EVENT)? {
            Some((_, v)) => layout::parse_locator(&v).map(Locator::end),
            None => None,
        };
        let end = match (end, &index) {
            (Some(end), _) => end,
            (None, Some(index)) => index.locator(moved).map_or(0, Locator::end),
            (None, None) => 0,
        };
        let seg = Segment::open(path, end, true)?;
        self.register(app, seg, index, moved, moved > 0);
        Ok(())
    }

    /// Keeps an app's opened files for its reads and writes.
    fn register(
        &self,
        app: &str,
        seg: Segment,
        index: Option<Index>,
        events: u64,
        rest_in_sled: bool,
    ) -> Arc<AppFiles> {
        let files = AppFiles::new(seg, index, events, rest_in_sled);
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string(), files.clone());
        files
    }

    /// Moves an app's events out of sled's `E` and `N` entries: a body still in its `E`
    /// entry into the segment file, and each event's locator and tree nodes into the index
    /// file, a chunk at a time, both files fdatasync'd before the chunk's entries go.
    fn migrate(&self, app: &str, t: &sled::Tree) -> StoreResult<()> {
        // Events before the first `E` entry left were moved by an interrupted migration.
        let Some((first_key, _)) = first_entry(t, EVENT)? else {
            return Ok(());
        };
        let first = layout::seq_of(&first_key)
            .filter(|&s| s > 0)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("app {app}: malformed key {first_key:?}"))
            })?;
        let index = Index::open(index::path(&self.path, app), false)?;
        let mut seg_end = match first {
            1 => 0,
            s => index.locator(s - 1)?.end(),
        };
        let seg = Segment::open(segment::path(&self.path, app), seg_end, false)?;
        let tree = self.tree_size(app)?.unwrap_or(0);
        tracing::info!(app, from = first, file = %index.path().display(), "moving event locations and tree nodes out of sled");
        let mut next = first;
        let mut cut = false;
        loop {
            let chunk: Vec<(sled::IVec, sled::IVec)> = t
                .range(event_key(next).to_vec()..vec![EVENT + 1])
                .take(MIGRATION_BATCH)
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            if chunk.is_empty() {
                break;
            }
            let mut locators = Vec::with_capacity(chunk.len());
            let mut nodes = Vec::with_capacity(chunk.len());
            let mut bodies: Vec<(usize, &[u8])> = Vec::new();
            for (k, v) in &chunk {
                let seq = layout::seq_of(k).unwrap_or(0);
                if seq != next {
                    return Err(StoreError::Corrupt(format!(
                        "app {app}: event {next} is missing from the index (the next entry is {k:?})"
                    )));
                }
                match layout::parse_locator(v) {
                    // Bodies moved by an older migration come before those still in sled.
                    Some(_) if cut || !bodies.is_empty() => {
                        return Err(StoreError::Corrupt(format!(
                            "app {app}: event {seq}'s index entry is a locator, after events whose bodies are still in the index"
                        )));
                    }
                    Some(at) => {
                        seg_end = at.end();
                        locators.push(at);
                    }
                    None => {
                        bodies.push((locators.len(), v.as_ref()));
                        locators.push(Locator { offset: 0, len: 0 });
                    }
                }
                nodes.push(match t.get(layout::tree_nodes_key(seq)).map_err(backend)? {
                    Some(v) => layout::decode_tree_nodes(app, seq, &v)?,
                    None if seq > tree => Vec::new(),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "app {app}: the tree covers event {seq} but its nodes are missing"
                        )))
                    }
                });
                next += 1;
            }
            if !bodies.is_empty() {
                // Bodies go after the last record an index refers to: what an interrupted
                // migration appended past it is written again.
                let _w = seg.lock();
                if !cut {
                    seg.publish(seg_end);
                    // Copies of bodies still in sled.
                    seg.cut_tail(Tail::Drop)?;
                    cut = true;
                }
                let (at, end) = seg.append(bodies.iter().map(|(_, b)| *b))?;
                seg.sync()?;
                for ((i, _), at) in bodies.iter().zip(at) {
                    locators[*i] = at;
                }
                seg.publish(end);
                seg_end = end;
            }
            let first_seq = next - chunk.len() as u64;
            index.write(
                first_seq,
                locators
                    .iter()
                    .copied()
                    .zip(nodes.iter().map(Vec::as_slice)),
            )?;
            index.sync()?;
            let mut batch = sled::Batch::default();
            for (k, _) in &chunk {
                batch.remove(k);
                if let Some(seq) = layout::seq_of(k) {
                    batch.remove(&layout::tree_nodes_key(seq));
                }
            }
            t.apply_batch(batch).map_err(backend)?;
        }
        // sled's flush, its blob files and its data file, as for any write.
        self.sync()?;
        drop((seg, index));
        self.open_app(app)
    }

    /// The files of an app, created if `create` (its first write) and not there yet.
    fn files(&self, app: &str, create: bool) -> StoreResult<Option<Arc<AppFiles>>> {
        if let Some(f) = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
        {
            return Ok(Some(f.clone()));
        }
        if !create {
            return Ok(None);
        }
        if self.read_only || !segment::is_file_stem(app) {
            return Err(StoreError::Backend(format!(
                "app {app}: no segment file can be made here"
            )));
        }
        let mut all = self.files.write().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = all.get(app) {
            return Ok(Some(f.clone()));
        }
        // A new app: anything in files left by a first write that failed is not counted.
        let seg = Segment::open(segment::path(&self.path, app), 0, false)?;
        seg.cut_tail(Tail::KeepAside)?;
        let index = Index::open(index::path(&self.path, app), false)?;
        index.cut(0, Tail::KeepAside)?;
        let files = AppFiles::new(seg, Some(index), 0, false);
        all.insert(app.to_string(), files.clone());
        Ok(Some(files))
    }

    /// An app's files in the current layout (events placed by the index file), if it has
    /// them; `None` for an app with no files yet or read as written before index files.
    fn indexed_files(&self, app: &str) -> StoreResult<Option<Arc<AppFiles>>> {
        Ok(self.files(app, false)?.filter(|f| f.index.is_some()))
    }

    /// Lends events `from..=to` (within those the head counts) of an app in the current
    /// layout, read through one sequential reader of its segment.
    fn read_indexed(&self, files: &Arc<AppFiles>, from: u64, to: u64, each: &mut LendEvent<'_>) {
        let Some(index) = &files.index else {
            return;
        };
        let to = to.min(files.events.load(Ordering::Acquire));
        let mut reader = files.seg.reader();
        let (mut locators, mut buf) = (Vec::new(), Vec::new());
        let mut next = from.max(1);
        while next <= to {
            let last = to.min(next.saturating_add(SCAN_CHUNK - 1));
            let mut failure = None;
            if index.locators(next, last, &mut locators, &mut buf).is_err() {
                // One at a time: the events before the bad record are served, and the
                // error names its event.
                locators.clear();
                for seq in next..=last {
                    match index.locator(seq) {
                        Ok(at) => locators.push(at),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
            for (seq, at) in (next..).zip(locators.iter().copied()) {
                each(reader.read(seq, at).map(|b| (seq, b)));
            }
            if let Some(e) = failure {
                return each(Err(e));
            }
            next = last + 1;
        }
    }

    /// One event of an app in the current layout.
    fn read_one(files: &AppFiles, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        let Some(index) = &files.index else {
            return Ok(None);
        };
        if seq == 0 || seq > files.events.load(Ordering::Acquire) {
            return Ok(None);
        }
        files.seg.read(seq, index.locator(seq)?).map(Some)
    }

    /// An app's tree and a sequential reader of its segment file (if it has one), for a
    /// store read as written before index files: events are read in the order of their
    /// `E` entries, each through the reader's window.
    fn sled_indexed(&self, app: &str) -> StoreResult<Option<(sled::Tree, Option<Reader>)>> {
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        let reader = self.files(app, false)?.map(|f| f.seg.reader());
        Ok(Some((t, reader)))
    }

    /// The bytes an `E` entry stands for: read through `reader`, or the entry itself in a
    /// store written before segment files.
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
        let files = self
            .files(app, false)?
            .ok_or_else(|| no_segment(app, seq))?;
        files.seg.read(seq, at)
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

    /// Events from `from` on, read through sled's `E` entries (a store written before index
    /// files, read as it is).
    fn scan_sled(&self, app: &str, from: u64) -> RawEvents<'_> {
        let (t, mut reader) = match self.sled_indexed(app) {
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
        let files = self
            .indexed_files(app)?
            .ok_or_else(|| no_segment(app, seq))?;
        let index = files.index.as_ref().ok_or_else(|| no_segment(app, seq))?;
        let mut events = Vec::new();
        for s in seq..=files.events.load(Ordering::Acquire) {
            let at = index.locator(s)?;
            events.push((s, at, files.seg.read(s, at)?));
        }
        let Some((_, at, first)) = events.first_mut() else {
            return Err(StoreError::Corrupt(format!("app {app}: no event {seq}")));
        };
        let len = first.len();
        change(first);
        if first.len() == len {
            return files.seg.overwrite(*at, first);
        }
        let _w = files.seg.lock();
        let (at, end) = files
            .seg
            .append(events.iter().map(|(_, _, b)| b.as_slice()))?;
        files.seg.sync()?;
        for ((s, _, _), at) in events.iter().zip(at) {
            index.write_locator(*s, at)?;
        }
        index.sync()?;
        files.seg.publish(end);
        Ok(())
    }

    /// After a failed segment or index write, every later write and sync is refused until
    /// the store is opened again (the files may hold pages a failed fdatasync dropped).
    fn check_failed(&self) -> StoreResult<()> {
        match self
            .failed_append
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some((kind, why)) => Err(StoreError::Io(std::io::Error::new(kind, why))),
            None => Ok(()),
        }
    }

    /// One app's batch: its segment records, then its index records, both fdatasync'd,
    /// then sled's entries (record indexes, tree size, head: the order the module doc
    /// explains). Returns where the segment's records end.
    fn write_files(
        &self,
        t: &sled::Tree,
        files: &AppFiles,
        index: &Index,
        b: &AppBatch,
    ) -> Result<u64, WriteFailure> {
        let first = b.events.first().map_or(0, |w| w.seq);
        let in_file = |path: &Path| {
            let path = path.display().to_string();
            move |e: StoreError| {
                WriteFailure::Files(match e {
                    StoreError::Io(io) => StoreError::Io(std::io::Error::new(
                        io.kind(),
                        format!("writing {path} failed: {io}"),
                    )),
                    other => StoreError::Backend(format!("writing {path} failed: {other}")),
                })
            }
        };
        let (at, end) = files
            .seg
            .append(b.events.iter().map(|w| w.bytes.as_slice()))
            .map_err(in_file(files.seg.path()))?;
        index
            .write(
                first,
                at.into_iter()
                    .zip(b.events.iter().map(|w| w.tree_nodes.as_slice())),
            )
            .map_err(in_file(index.path()))?;
        files.seg.sync().map_err(in_file(files.seg.path()))?;
        index.sync().map_err(in_file(index.path()))?;
        let fault = *self
            .fail_next_write
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if matches!(fault, Some(FailAt::Files | FailAt::FilesAndCutBack)) {
            return Err(in_file(index.path())(StoreError::Backend(
                "its fdatasync failed (a fault injected by a test)".into(),
            )));
        }
        let entries = |e: sled::Error| WriteFailure::Entries(backend(e));
        for w in &b.events {
            for (k, v) in index_entries(w) {
                t.insert(k, v).map_err(entries)?;
            }
            if fault == Some(FailAt::Entries) {
                return Err(WriteFailure::Entries(StoreError::Backend(
                    "sled failed an insert (a fault injected by a test)".into(),
                )));
            }
        }
        t.insert(layout::TREE_SIZE, &b.head.0.to_be_bytes())
            .map_err(entries)?;
        t.insert(layout::HEAD, layout::head_value(b.head.0, &b.head.1))
            .map_err(entries)?;
        Ok(end)
    }

    /// Makes the next write meet `fault`: for tests of what a failed write leaves.
    #[doc(hidden)]
    pub fn fail_next_write(&self, fault: FailAt) {
        *self
            .fail_next_write
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(fault);
    }

    /// Replaces the tree nodes stored for event `seq` behind the ledger. For tamper tests.
    #[doc(hidden)]
    pub fn tamper_tree_nodes(
        &self,
        app: &str,
        seq: u64,
        change: impl FnOnce(&mut Vec<[u8; 32]>),
    ) -> StoreResult<()> {
        let files = self
            .indexed_files(app)?
            .ok_or_else(|| no_segment(app, seq))?;
        let index = files.index.as_ref().ok_or_else(|| no_segment(app, seq))?;
        let mut nodes = index.nodes(seq)?;
        change(&mut nodes);
        index.write_nodes(&[(seq, nodes)])?;
        index.sync()
    }
}

/// Reads and checks event `seq` as the files hold it past sled's head: its index record
/// places it right after the event before (`seg_end`), it decodes as that app's event
/// `seq`, links to `prev`, and its hash and payload digest recompute. `Ok(Err(why))`
/// says why it cannot be restored; an I/O error is returned as such (the open fails:
/// nothing is judged from a failed read).
fn next_written(
    app: &str,
    index: &Index,
    seg: &Segment,
    seq: u64,
    seg_end: u64,
    prev: &[u8; 32],
) -> StoreResult<Result<(crate::Event, Locator), String>> {
    let at = index.locator(seq)?;
    if at.offset != seg_end {
        return Ok(Err(format!(
            "its record is placed at byte {}, not after the event before (byte {seg_end})",
            at.offset
        )));
    }
    let Some(record) = seg.record_bytes(at)? else {
        return Ok(Err(format!(
            "its record ({} bytes at byte {}) runs past the end of {}",
            4 + u64::from(at.len),
            at.offset,
            seg.path().display()
        )));
    };
    let fail = |why: &str| Ok(Err(why.to_string()));
    if record.get(..4) != Some(&at.len.to_be_bytes()[..]) {
        return fail("its length prefix disagrees with its index record");
    }
    let e = match crate::codec::decode(&record[4..]) {
        Ok(e) => e,
        Err(e) => return fail(&format!("it does not decode: {e}")),
    };
    let digest_ok = e
        .payload
        .as_deref()
        .is_none_or(|p| crate::canonical::payload_digest(p) == e.payload_digest);
    if e.app != app || e.seq != seq {
        fail("it is another event")
    } else if e.prev_hash != *prev {
        fail("it does not link to the event before")
    } else if !digest_ok {
        fail("its payload does not match its digest")
    } else if crate::canonical::event_hash(&e) != e.hash {
        fail("its hash does not match its bytes")
    } else {
        Ok(Ok((e, at)))
    }
}

/// Where the last write's records end in the segment file, counted by the index
/// records' lengths and by the records' own length prefixes, from where the write begins
/// (`None`: past the file's end, or a prefix of zero); with what [`tear_mark`] needs of
/// the write's index records, read once.
struct WriteEnds {
    from: u64,
    by_index: Option<u64>,
    by_prefixes: Option<u64>,
    seg_len: u64,
    /// The first event's length, as its index record has it.
    first_len: u32,
    /// The first event whose index record has a zero length (one never written).
    blank_record: Option<u64>,
}

impl WriteEnds {
    fn of(index: &Index, seg: &Segment, first: u64, last: u64, from: u64) -> StoreResult<Self> {
        let seg_len = seg.file_len()?;
        let mut by_index = Some(from);
        let mut by_prefixes = Some(from);
        let (mut first_len, mut blank_record) = (0, None);
        for seq in first..=last {
            let len = index.locator(seq)?.len;
            if seq == first {
                first_len = len;
            }
            if len == 0 {
                blank_record = blank_record.or(Some(seq));
            }
            by_index = by_index.and_then(|o| o.checked_add(4 + u64::from(len)));
            if let Some(o) = by_prefixes {
                by_prefixes = match seg.prefix_at(o)? {
                    Some(len) if len > 0 => o
                        .checked_add(4 + u64::from(len))
                        .filter(|&end| end <= seg_len),
                    _ => None,
                };
            }
        }
        Ok(WriteEnds {
            from,
            by_index: by_index.filter(|&end| end <= seg_len),
            by_prefixes,
            seg_len,
            first_len,
            blank_record,
        })
    }

    /// Whether the segment file holds bytes past the write by both counts: a later write
    /// had begun, so this one had been made durable whole.
    fn followed(&self) -> bool {
        [self.by_index, self.by_prefixes]
            .iter()
            .all(|end| end.is_some_and(|end| end < self.seg_len))
    }
}

/// The mark of a crash's tear in the last write past sled's head (events `first..=last`,
/// nothing written after it; `ends` places it in the segment file), if its bytes bear
/// one: an index record never written (a zero length); a segment file that ends before
/// the write's records do, by the index's lengths and by the records' own; or a sector's
/// share of the write's bytes, in either file, all zeros ([`segment::unwritten_sector`]).
/// Inside the write a share is a whole sector. The share at its start counts from one
/// zero byte more than its first bytes hold when written (the high bytes of the first
/// locator's offset and of the first length prefix), the share at its end from 2 (a tree
/// node or a signature ends there). The whole write is judged, not one record: a crash
/// may leave any of its sectors unwritten, in either file, whichever event fails its
/// checks. Called only once one has: damage that writes zeros where a tear would is
/// taken for a tear (its bytes are kept aside, with a warning; for the 2-byte end, one
/// chance in 2¹⁶ of random bytes); a tear within the few bytes at an edge that a share
/// must exceed leaves no mark, and the open fails instead.
fn tear_mark(
    index: &Index,
    seg: &Segment,
    first: u64,
    last: u64,
    ends: &WriteEnds,
) -> StoreResult<Option<String>> {
    let seg_path = seg.path().display();
    if let Some(seq) = ends.blank_record {
        return Ok(Some(format!("event {seq}'s index record is blank")));
    }
    if ends.by_index.is_none() && ends.by_prefixes.is_none() {
        return Ok(Some(format!(
            "{seg_path} ends at byte {}, before the write's records do",
            ends.seg_len
        )));
    }
    // How many zero bytes a write's first bytes hold when written: the high bytes of its
    // first locator's offset (where the write begins) and of its first length prefix.
    let zeros = |bytes: &[u8]| bytes.iter().take_while(|&&b| b == 0).count();
    let index_head = zeros(&ends.from.to_be_bytes()) + 1;
    let seg_head = zeros(&ends.first_len.to_be_bytes()) + 1;
    if let Some(blank) = index.unwritten_sector(first, last, index_head, 2)? {
        return Ok(Some(format!(
            "{} has a blank sector at byte {blank}",
            index.path().display()
        )));
    }
    Ok(seg
        .unwritten_sector(ends.from, ends.seg_len, seg_head, 2)?
        .map(|blank| format!("{seg_path} has a blank sector at byte {blank}")))
}

/// The keys an app's chain declared in its events up to `head` (`marked`: its events
/// marked as declaring one), read through its files at open (their events were
/// acknowledged): what the roll forward checks the signatures of a last write that may be
/// torn against.
fn declared_keys(
    app: &str,
    marked: &[u64],
    index: &Index,
    seg: &Segment,
    head: u64,
) -> StoreResult<Vec<crate::keys::PublicKey>> {
    let mut keys = Vec::new();
    for &seq in marked.iter().filter(|&&seq| seq <= head) {
        let e = crate::codec::decode(&seg.read(seq, index.locator(seq)?)?).map_err(|why| {
            StoreError::Corrupt(format!(
                "app {app}: event {seq}, which declares a signing key: {why}"
            ))
        })?;
        if let Some(Ok(k)) = crate::verify::declared_key(&e) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// Whether `e`'s signature verifies under a key the chain declared with its key id, as
/// verification checks it (a batch equation, of one).
fn signed(keys: &[crate::keys::PublicKey], e: &crate::Event) -> Result<(), String> {
    let key = keys
        .iter()
        .rev()
        .find(|k| k.key_id == e.key_id)
        .and_then(crate::keys::PublicKey::verifying_key)
        .ok_or_else(|| {
            format!(
                "it is signed by key {}, which the chain did not declare",
                e.key_id
            )
        })?;
    let message = crate::canonical::signature_message(&e.hash);
    let signature = ed25519_dalek::Signature::from_bytes(&e.signature);
    ed25519_dalek::verify_batch(&[message.as_slice()], &[signature], &[key])
        .map_err(|_| format!("its signature does not verify under key {}", e.key_id))
}

/// Writes rolled-forward events' entries to sled (and their recomputed tree nodes to the
/// index file) in one batch, with the head and tree size after them.
fn restore(
    t: &sled::Tree,
    index: &Index,
    writes: &mut Vec<EventWrite>,
    head: u64,
    hash: &[u8; 32],
) -> StoreResult<()> {
    let nodes: Vec<(u64, Vec<[u8; 32]>)> = writes
        .iter_mut()
        .map(|w| (w.seq, std::mem::take(&mut w.tree_nodes)))
        .collect();
    index.write_nodes(&nodes)?;
    index.sync()?;
    let mut batch = sled::Batch::default();
    for w in writes.drain(..) {
        for (k, v) in index_entries(&w) {
            batch.insert(k, v);
        }
    }
    batch.insert(layout::HEAD, layout::head_value(head, hash));
    batch.insert(layout::TREE_SIZE, &head.to_be_bytes());
    t.apply_batch(batch).map_err(backend)
}

/// An app's tree nodes read from its index file: the frontier a roll forward starts from.
struct IndexNodes<'a>(&'a Index);

impl crate::merkle::NodeSource for IndexNodes<'_> {
    fn complete(&self, level: u32, index: u64) -> Result<[u8; 32], crate::merkle::TreeError> {
        let missing = crate::merkle::TreeError::MissingNode { level, index };
        let seq = 1u64
            .checked_shl(level)
            .and_then(|width| index.checked_add(1)?.checked_mul(width))
            .ok_or(crate::merkle::TreeError::MissingNode { level, index })?;
        let nodes = self.0.nodes(seq)?;
        usize::try_from(level)
            .ok()
            .and_then(|l| nodes.get(l))
            .copied()
            .ok_or(missing)
    }
}

/// The first entry of a tag in an app's tree.
fn first_entry(t: &sled::Tree, tag: u8) -> StoreResult<Option<(sled::IVec, sled::IVec)>> {
    t.range(&[tag][..]..&[tag + 1][..])
        .next()
        .transpose()
        .map_err(backend)
}

/// The last entry of a tag in an app's tree.
fn last_entry(t: &sled::Tree, tag: u8) -> StoreResult<Option<(sled::IVec, sled::IVec)>> {
    t.range(&[tag][..]..&[tag + 1][..])
        .next_back()
        .transpose()
        .map_err(backend)
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
                Some(t) => {
                    t.contains_key(layout::HEAD).map_err(backend)?
                        || first_entry(&t, EVENT)?.is_some()
                }
                None => false,
            };
            if has_events {
                apps.push(app.to_string());
            }
        }
        Ok(apps)
    }

    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        if let Some(files) = self.indexed_files(app)? {
            if !files.rest_in_sled || seq <= files.events.load(Ordering::Acquire) {
                return Self::read_one(&files, seq);
            }
        }
        let Some(t) = self.tree(app)? else {
            return Ok(None);
        };
        t.get(event_key(seq))
            .map_err(backend)?
            .map(|v| self.body(app, seq, &v))
            .transpose()
    }

    fn last_event(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        if let Some(files) = self.indexed_files(app)?.filter(|f| !f.rest_in_sled) {
            let seq = files.events.load(Ordering::Acquire);
            return Ok(Self::read_one(&files, seq)?.map(|bytes| (seq, bytes)));
        }
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
        let files = match self.indexed_files(app) {
            Ok(files) => files,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let Some(files) = files else {
            return self.scan_sled(app, from);
        };
        // A chunk of events at a time, copied out of the reader's window.
        let last = files.events.load(Ordering::Acquire);
        let sled_from = from.max(last + 1);
        let rest_in_sled = files.rest_in_sled;
        let mut next = from.max(1);
        let mut pending = std::collections::VecDeque::new();
        let indexed = std::iter::from_fn(move || {
            if pending.is_empty() && next <= last {
                let to = last.min(next.saturating_add(SCAN_COPIES - 1));
                self.read_indexed(&files, next, to, &mut |r| {
                    pending.push_back(r.map(|(seq, b)| (seq, b.to_vec())));
                });
                next = to + 1;
            }
            pending.pop_front()
        });
        if !rest_in_sled {
            return Box::new(indexed);
        }
        let app = app.to_string();
        Box::new(
            indexed.chain(std::iter::once(()).flat_map(move |()| self.scan_sled(&app, sled_from))),
        )
    }

    fn read_range(&self, app: &str, from: u64, to: u64, each: &mut LendEvent<'_>) {
        let mut sled_from = from;
        match self.indexed_files(app) {
            Ok(Some(files)) => {
                self.read_indexed(&files, from, to, each);
                if !files.rest_in_sled {
                    return;
                }
                sled_from = from.max(files.events.load(Ordering::Acquire) + 1);
            }
            Ok(None) => {}
            Err(e) => return each(Err(e)),
        }
        let (t, mut reader) = match self.sled_indexed(app) {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(e) => return each(Err(e)),
        };
        for r in t.range(event_key(sled_from).to_vec()..=event_key(to).to_vec()) {
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
        // Versions first: a record without any has no `R` entry either (it is written at
        // a deletion only), so the builder's usual question, whether a new id is free,
        // costs one lookup.
        let Some(first) = t
            .scan_prefix(version_prefix(class, object_id))
            .keys()
            .next()
            .transpose()
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let state = t
            .get(layout::state_key(class, object_id))
            .map_err(backend)?;
        layout::state_of(app, class, object_id, state.as_deref(), Some(&first))
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
        self.check_failed()?;
        for b in batches {
            let Some(first) = b.events.first().map(|w| w.seq) else {
                continue;
            };
            let t = match self.tree(&b.app)? {
                Some(t) => t,
                None => self.open_tree(&b.app)?,
            };
            let files = self
                .files(&b.app, true)?
                .ok_or_else(|| StoreError::Backend(format!("app {}: no segment file", b.app)))?;
            let index = files.index.as_ref().ok_or_else(|| {
                StoreError::Backend(format!("app {}: opened without its index file", b.app))
            })?;
            let _w = files.seg.lock();
            let counted = files.events.load(Ordering::Acquire);
            if first != counted + 1 || !(first..).zip(&b.events).all(|(s, w)| w.seq == s) {
                return Err(StoreError::Backend(format!(
                    "app {}: a batch must continue the {counted} events stored, in order",
                    b.app
                )));
            }
            // Bodies and index records durable first (both written, then both synced);
            // then sled's entries, the head last. A failure in the files cuts both back,
            // so that no later open rolls forward a write answered "not recorded".
            let failed = match self.write_files(&t, &files, index, b) {
                Ok(end) => {
                    files.seg.publish(end);
                    files
                        .events
                        .store(first + b.events.len() as u64 - 1, Ordering::Release);
                    continue;
                }
                Err(failed) => failed,
            };
            let fault = self
                .fail_next_write
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            // Refused from now on: the files may hold what a failed fdatasync dropped, or
            // sled only part of a write's entries.
            let refuse = |kind: std::io::ErrorKind, why: &str| {
                *self.failed_append.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((kind, why.to_string()));
            };
            let e = match failed {
                WriteFailure::Entries(e) => {
                    // The events are whole and durable in the files: kept, not cut (sled
                    // may hold some of their entries, which only the roll forward from
                    // the files makes whole again).
                    let why = format!(
                        "app {}: {e}; its events are in {} and {}, and the store's next open restores their entries",
                        b.app,
                        files.seg.path().display(),
                        index.path().display()
                    );
                    refuse(std::io::ErrorKind::Other, &why);
                    return Err(StoreError::OutcomeUnknown(why));
                }
                WriteFailure::Files(e) => e,
            };
            let why = format!("app {}: {e}", b.app);
            let kind = match &e {
                StoreError::Io(io) => io.kind(),
                _ => std::io::ErrorKind::Other,
            };
            refuse(kind, &why);
            // The index first: without its records (and their write-end mark) no open
            // restores the write, whatever the segment holds.
            let injected = fault == Some(FailAt::FilesAndCutBack);
            let index_cut = if injected {
                Err(StoreError::Backend("a fault injected by a test".into()))
            } else {
                index.cut(counted, Tail::Drop)
            };
            // Past the head, the segment's tail is cut at the next open anyway.
            let seg_cut = match injected {
                true => Err(StoreError::Backend("a fault injected by a test".into())),
                false => files.seg.cut_tail(Tail::Drop),
            };
            if let Err(cut) = seg_cut {
                tracing::error!(app = %b.app, error = %cut, "cutting a failed write's records back off the segment file failed");
            }
            if let Err(cut) = index_cut {
                let why = format!(
                    "app {}: {e}; cutting its records back off {} failed too ({cut})",
                    b.app,
                    index.path().display()
                );
                refuse(std::io::ErrorKind::Other, &why);
                return Err(StoreError::OutcomeUnknown(why));
            }
            return Err(StoreError::Io(std::io::Error::new(kind, why)));
        }
        Ok(())
    }

    fn sync(&self) -> StoreResult<()> {
        self.check_failed()?;
        let started = std::time::Instant::now();
        self.db.flush().map_err(backend)?;
        // Blobs first: the log in `db` points at them.
        self.sync_blobs()?;
        let f = self.data_file.lock().unwrap_or_else(|p| p.into_inner());
        f.sync_all()?;
        *self.sled_synced.lock().unwrap_or_else(|p| p.into_inner()) = started;
        Ok(())
    }

    fn sync_appends(&self) -> StoreResult<()> {
        // Every `write` that returned `Ok` fdatasync'd its events' files before sled's
        // entries: they are durable already, whatever happened since (a later write's
        // failure, a failed sled sync). sled itself is made durable now and then, its
        // entries restorable from the files at open; if that fails, later writes are
        // refused until the store is opened again, and these stay acknowledged.
        let due = self
            .sled_synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= SLED_SYNC_EVERY;
        if due && self.check_failed().is_ok() {
            if let Err(e) = self.sync() {
                let why = format!("making sled durable failed: {e}");
                tracing::error!(error = %why, "refusing further writes until the store is opened again");
                let kind = match &e {
                    StoreError::Io(io) => io.kind(),
                    _ => std::io::ErrorKind::Other,
                };
                *self.failed_append.lock().unwrap_or_else(|p| p.into_inner()) = Some((kind, why));
            }
        }
        Ok(())
    }

    fn writes_durable(&self) -> bool {
        true
    }

    fn refuses_writes(&self) -> Option<String> {
        self.failed_append
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, why)| why.clone())
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
        if let Some(files) = self
            .indexed_files(app)?
            .filter(|f| !f.rest_in_sled || seq <= f.events.load(Ordering::Acquire))
        {
            let size = self.tree_size(app)?.unwrap_or(0);
            let Some(index) = files.index.as_ref().filter(|_| seq > 0 && seq <= size) else {
                return Ok(None);
            };
            return index.nodes(seq).map(Some);
        }
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
        let files = self
            .files(app, true)?
            .ok_or_else(|| StoreError::Backend(format!("app {app}: no index file")))?;
        let index = files.index.as_ref().ok_or_else(|| {
            StoreError::Backend(format!("app {app}: opened without its index file"))
        })?;
        // Nodes durable first, then the size that covers them.
        index.write_nodes(nodes)?;
        index.sync()?;
        t.insert(layout::TREE_SIZE, &size.to_be_bytes())
            .map_err(backend)?;
        Ok(())
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

fn no_segment(app: &str, seq: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "app {app}: event {seq} is indexed but the app has no segment file"
    ))
}
