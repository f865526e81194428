//! The projector: keeps each class's trees in step with the ledger, and rebuilds them.
//!
//! [`Projections::sync`] folds every durable event after the applied point into the class
//! trees, one atomic sled batch per tree and chunk, each batch also moving that tree's
//! applied seq. After a crash each tree resumes from its own applied seq, so the result is
//! what a rebuild gives. [`Projections::rebuild`] replays the log into fresh trees without
//! blocking readers or the incremental path, catches them up, and swaps them in.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use ledger::{Event, Ledger, ReadError};
use rayon::prelude::*;

use crate::apply::{changed_class, check_payload, ApplyError};
use crate::layout;
use crate::page::{self, NewVersion, Rec, Version};
use crate::query::{IndexField, OrderIndex};
use crate::record::Record;

/// Events folded per atomic step of [`Projections::sync`].
const CHUNK: usize = 8192;
/// An app with nothing projected and more events than this is caught up by a rebuild.
/// (Small in debug builds, so that the tests take that path too.)
const BULK_CATCH_UP: u64 = if cfg!(debug_assertions) { 16 } else { 65_536 };
/// Events a rebuild's reader hands over at a time.
const READ_CHUNK: usize = 512;
/// Threads reading the log in a rebuild.
const READERS: usize = 2;
/// Pages a rebuild encodes and writes at a time (one sled batch).
const WRITE_GROUP: usize = 1024;
/// A tree whose applied seq lags the app's by more than this is moved forward even if no
/// event touched it, so a restart never rescans far.
const MAX_LAG: u64 = 16_384;

/// Why a projection read or update failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// No such app.
    #[error("app {0:?} does not exist")]
    UnknownApp(String),
    /// No such class in the app's schema.
    #[error("class {class} does not exist in app {app}")]
    UnknownClass {
        /// The app.
        app: String,
        /// The class.
        class: String,
    },
    /// The projection store failed.
    #[error("projection store: {0}")]
    Store(#[from] sled::Error),
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] ReadError),
    /// The log contradicts itself at an event.
    #[error("app {app}: {source}")]
    Apply {
        /// The app.
        app: String,
        /// What is wrong, and where.
        source: ApplyError,
    },
    /// A stored projection entry cannot be read.
    #[error("projection of {app}.{class} is corrupt: {detail} (rebuild it)")]
    Corrupt {
        /// The app.
        app: String,
        /// The class.
        class: String,
        /// What is wrong.
        detail: String,
    },
    /// An objectId that no record can have.
    #[error("bad objectId {0:?}: an objectId is 1 to 64 of [A-Za-z0-9_-]")]
    BadObjectId(String),
    /// A query was refused.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// A sequence number beyond the durable head.
    #[error("app {app}: sequence number {seq} is beyond the head ({head})")]
    BeyondHead {
        /// The app.
        app: String,
        /// What was asked.
        seq: u64,
        /// The durable head.
        head: u64,
    },
}

/// Result of projection operations.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;

/// One class's current tree.
#[derive(Clone)]
pub(crate) struct ClassTree {
    pub(crate) tree: sled::Tree,
    pub(crate) gen: u64,
    pub(crate) applied: u64,
}

/// One app's trees and how far they reflect the log.
#[derive(Default)]
pub(crate) struct AppState {
    /// Every tree reflects every event up to here.
    pub(crate) applied: u64,
    pub(crate) classes: HashMap<String, ClassTree>,
    /// In-memory ordered indexes of the live records, per class and field, built on a
    /// query's first use (under the state's read lock, from trees no one can change then)
    /// and kept in step by every applied chunk (under the write lock).
    pub(crate) indexes: RwLock<ClassIndexes>,
}

/// Per class, its indexes by field.
pub(crate) type ClassIndexes = HashMap<String, HashMap<IndexField, OrderIndex>>;

pub(crate) struct AppProjection {
    /// Serialises sync and the swap of a rebuild.
    apply_lock: Mutex<()>,
    /// One rebuild of an app at a time.
    rebuild_lock: Mutex<()>,
    /// Readers hold it for a whole read, so what they see is exactly `applied`.
    pub(crate) state: RwLock<AppState>,
}

/// The read models of every app of one ledger.
pub struct Projections {
    pub(crate) ledger: Arc<Ledger>,
    db: sled::Db,
    meta: sled::Tree,
    apps: Mutex<HashMap<String, Arc<AppProjection>>>,
}

/// What a rebuild did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildStats {
    /// Events read from the log.
    pub events: u64,
    /// Record versions written.
    pub versions: u64,
    /// Live records written.
    pub records: u64,
    /// The sequence number the new trees reflect.
    pub seq: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppProjection {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, AppState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Projections {
    /// Opens (creating if needed) the projection store in `dir` for `ledger`.
    pub fn open_dir(ledger: Arc<Ledger>, dir: &Path) -> Result<Self> {
        Self::open(ledger, sled::Config::new().path(dir).open()?)
    }

    /// Projections kept in a temporary store (tests, tools).
    pub fn temporary(ledger: Arc<Ledger>) -> Result<Self> {
        Self::open(ledger, sled::Config::new().temporary(true).open()?)
    }

    /// Opens projections in `db`: loads each class's current tree and drops trees left
    /// behind by an interrupted rebuild. Call [`Projections::sync`] to catch up.
    pub fn open(ledger: Arc<Ledger>, db: sled::Db) -> Result<Self> {
        let meta = db.open_tree("meta")?;
        let layout_ok = meta
            .get(layout::LAYOUT_KEY)?
            .and_then(|v| layout::parse_seq(&v))
            == Some(layout::LAYOUT);
        if !layout_ok {
            // Another layout (or a new store): forget every generation; the trees are
            // dropped below and the projections catch up from the log.
            let mut batch = sled::Batch::default();
            for k in meta.iter().keys() {
                batch.remove(k?);
            }
            batch.insert(layout::LAYOUT_KEY, &layout::seq_value(layout::LAYOUT));
            meta.apply_batch(batch)?;
        }
        let mut apps: HashMap<String, AppState> = HashMap::new();
        let mut current = HashSet::new();
        for kv in meta.scan_prefix(b"G") {
            let (k, v) = kv?;
            let corrupt = |detail: &str| ProjectionError::Corrupt {
                app: "?".into(),
                class: "?".into(),
                detail: format!("meta entry {k:?}: {detail}"),
            };
            let (app, class) = layout::parse_generation_key(&k).ok_or_else(|| corrupt("key"))?;
            let gen = layout::parse_seq(&v).ok_or_else(|| corrupt("value"))?;
            let name = layout::tree_name(&app, &class, gen);
            let tree = db.open_tree(&name)?;
            let applied = match tree.get(layout::APPLIED)? {
                Some(v) => layout::parse_seq(&v).ok_or_else(|| ProjectionError::Corrupt {
                    app: app.clone(),
                    class: class.clone(),
                    detail: "applied seq".into(),
                })?,
                None => 0,
            };
            current.insert(name);
            apps.entry(app)
                .or_default()
                .classes
                .insert(class, ClassTree { tree, gen, applied });
        }
        for name in db.tree_names() {
            let is_projection = name.starts_with(b"proj/");
            if is_projection && !current.contains(std::str::from_utf8(&name).unwrap_or("")) {
                db.drop_tree(&name)?;
            }
        }
        let apps = apps
            .into_iter()
            .map(|(app, mut s)| {
                s.applied = s.classes.values().map(|c| c.applied).min().unwrap_or(0);
                (
                    app,
                    Arc::new(AppProjection {
                        apply_lock: Mutex::new(()),
                        rebuild_lock: Mutex::new(()),
                        state: RwLock::new(s),
                    }),
                )
            })
            .collect();
        Ok(Projections {
            ledger,
            db,
            meta,
            apps: Mutex::new(apps),
        })
    }

    /// The ledger these projections read.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub(crate) fn app(&self, app: &str) -> Result<Arc<AppProjection>> {
        if self.ledger.head(app).is_none() {
            return Err(ProjectionError::UnknownApp(app.to_string()));
        }
        Ok(lock(&self.apps)
            .entry(app.to_string())
            .or_insert_with(|| {
                Arc::new(AppProjection {
                    apply_lock: Mutex::new(()),
                    rebuild_lock: Mutex::new(()),
                    state: RwLock::new(AppState::default()),
                })
            })
            .clone())
    }

    /// The sequence number `app`'s projections reflect (without catching up).
    pub fn applied(&self, app: &str) -> Result<u64> {
        Ok(self.app(app)?.read().applied)
    }

    /// Folds every durable event not yet applied into `app`'s projections; returns the
    /// sequence number they now reflect.
    ///
    /// An app with nothing projected yet and a long log is caught up by a rebuild's bulk
    /// load first (many times faster than folding event by event into pages).
    pub fn sync(&self, app: &str) -> Result<u64> {
        let ap = self.app(app)?;
        let empty = {
            let st = ap.read();
            st.applied == 0 && st.classes.is_empty()
        };
        if empty && self.durable_head(app)? > BULK_CATCH_UP {
            self.rebuild(app, None)?;
        }
        let _apply = lock(&ap.apply_lock);
        let head = self.durable_head(app)?;
        loop {
            let from = ap.read().applied + 1;
            if from > head {
                return Ok(from - 1);
            }
            let to = head.min(from + CHUNK as u64 - 1);
            let events: Vec<Event> = self
                .ledger
                .events(app, from, to)?
                .collect::<std::result::Result<_, _>>()?;
            self.apply_chunk(app, &ap, &events, to)?;
        }
    }

    /// Folds `events` (the log's `..=to` after the applied point) into the trees: one
    /// atomic batch per touched tree; trees lagging too far get their applied seq moved.
    /// The app's indexes follow each touched record from its state before to after.
    fn apply_chunk(&self, app: &str, ap: &AppProjection, events: &[Event], to: u64) -> Result<()> {
        let mut trees: HashMap<String, ClassTree> = ap.read().classes.clone();
        for e in events {
            if let Some(class) = changed_class(e) {
                if !trees.contains_key(class) {
                    trees.insert(class.to_string(), self.new_tree(app, class, 1)?);
                }
            }
        }
        let mut fold = Fold::default();
        for e in events {
            fold.event(app, &trees, e)?;
        }
        let mut batches = fold.batches();
        let mut state = ap.state.write().unwrap_or_else(|p| p.into_inner());
        // Each indexed record's state before (still in the tree) and after (in the fold).
        let mut moves = Vec::new();
        {
            let indexes = state.indexes.get_mut().unwrap_or_else(|p| p.into_inner());
            for (class, ids) in &fold.touched {
                let (Some(t), Some(by_field)) = (trees.get(class), indexes.get(class)) else {
                    continue;
                };
                if by_field.is_empty() {
                    continue;
                }
                for id in ids {
                    let before = load_live(app, class, &t.tree, id)?;
                    let after = fold.live(app, class, id)?;
                    moves.push((class, before, after));
                }
            }
        }
        let written = (|| -> Result<()> {
            for (class, ct) in trees.iter_mut() {
                let touched = batches.remove(class);
                if touched.is_none() && ct.applied + MAX_LAG >= to {
                    continue;
                }
                let mut batch = touched.unwrap_or_default();
                batch.insert(layout::APPLIED, &layout::seq_value(to));
                ct.tree.apply_batch(batch)?;
                ct.applied = to;
            }
            Ok(())
        })();
        let indexes = state.indexes.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = written {
            // Some trees may have moved: the indexes are rebuilt on next use.
            indexes.clear();
            return Err(e);
        }
        for (class, before, after) in &moves {
            if let Some(by_field) = indexes.get_mut(*class) {
                for index in by_field.values_mut() {
                    index.update(before.as_ref(), after.as_ref());
                }
            }
        }
        // New trees join; existing ones keep their handles (a rebuild may not swap while
        // the apply lock is held, so the generations are the ones read above).
        state.classes = trees;
        state.applied = to;
        Ok(())
    }

    /// Creates (empty) generation `gen` of a class's tree and records it in the meta tree
    /// once it is current. Leftovers of an interrupted rebuild under that name are cleared.
    fn new_tree(&self, app: &str, class: &str, gen: u64) -> Result<ClassTree> {
        let tree = self.db.open_tree(layout::tree_name(app, class, gen))?;
        tree.clear()?;
        if gen == 1 {
            self.meta
                .insert(layout::generation_key(app, class), &layout::seq_value(gen))?;
        }
        Ok(ClassTree {
            tree,
            gen,
            applied: 0,
        })
    }

    fn durable_head(&self, app: &str) -> Result<u64> {
        self.ledger
            .head(app)
            .map(|h| h.seq)
            .ok_or_else(|| ProjectionError::UnknownApp(app.to_string()))
    }

    /// Rebuilds `classes` of `app` (all classes with records when `None`) from the log into
    /// fresh trees, then swaps them in. Readers and [`Projections::sync`] keep working on
    /// the old trees until the swap.
    ///
    /// One thread reads and decodes the log while this one folds each record's versions in
    /// memory; the records are then written in objectId order, a page at a time.
    pub fn rebuild(&self, app: &str, classes: Option<&[&str]>) -> Result<RebuildStats> {
        let ap = self.app(app)?;
        let _one_rebuild = lock(&ap.rebuild_lock);
        let upto = self.durable_head(app)?;
        let wanted: Option<HashSet<&str>> = classes.map(|c| c.iter().copied().collect());
        if let Some(w) = &wanted {
            let schema = self
                .ledger
                .schema(app)
                .ok_or_else(|| ProjectionError::UnknownApp(app.to_string()))?;
            for c in w {
                if schema.class(c).is_none() {
                    return Err(ProjectionError::UnknownClass {
                        app: app.into(),
                        class: c.to_string(),
                    });
                }
            }
        }
        let current: HashMap<String, u64> = ap
            .read()
            .classes
            .iter()
            .map(|(c, t)| (c.clone(), t.gen))
            .collect();
        let mut stats = RebuildStats {
            events: 0,
            versions: 0,
            records: 0,
            seq: upto,
        };
        let mut records = RebuildRecords::new();
        let wanted = &wanted;
        std::thread::scope(|s| -> Result<()> {
            // Readers decode interleaved runs of the log, keep what the fold needs of each
            // data change and check its payload; this thread takes the runs in order and
            // files each change under its record.
            let mut rxs = Vec::with_capacity(READERS);
            for r in 0..READERS {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Item>>>(8);
                rxs.push(rx);
                s.spawn(move || {
                    let mut lo = 1 + (r * READ_CHUNK) as u64;
                    while lo <= upto {
                        let hi = upto.min(lo + READ_CHUNK as u64 - 1);
                        let run = self.read_run(app, lo, hi, wanted);
                        let failed = run.is_err();
                        if tx.send(run).is_err() || failed {
                            return;
                        }
                        lo += (READERS * READ_CHUNK) as u64;
                    }
                });
            }
            let mut lo = 1u64;
            for r in (0..READERS).cycle() {
                if lo > upto {
                    break;
                }
                let run = rxs[r].recv().map_err(|_| ProjectionError::Corrupt {
                    app: app.into(),
                    class: "*".into(),
                    detail: format!("the log reader stopped before event {lo}"),
                })??;
                let hi = upto.min(lo + READ_CHUNK as u64 - 1);
                stats.events += hi - lo + 1;
                lo = hi + 1;
                for item in run {
                    let (class, by_id) = class_records(&mut records, item.class);
                    let id = item.object_id;
                    let v = NewVersion {
                        kind: item.kind,
                        seq: item.seq,
                        at: item.at,
                        payload: item.payload,
                    };
                    let filed = match by_id.get_mut(&id) {
                        Some(versions) => {
                            page::push_unfolded(versions, class, &id, v, item.payload_check)
                        }
                        None => {
                            let mut versions = Vec::new();
                            let r = page::push_unfolded(
                                &mut versions,
                                class,
                                &id,
                                v,
                                item.payload_check,
                            );
                            by_id.insert(id, versions);
                            r
                        }
                    };
                    filed.map_err(|detail| ProjectionError::Apply {
                        app: app.to_string(),
                        source: ApplyError {
                            seq: item.seq,
                            detail,
                        },
                    })?;
                    stats.versions += 1;
                }
            }
            Ok(())
        })?;
        // Every class with events, and those asked for without any, get a fresh tree.
        let mut names: Vec<String> = records.iter().map(|(c, _)| c.clone()).collect();
        names.extend(wanted.iter().flatten().map(|c| c.to_string()));
        names.sort();
        names.dedup();
        let mut fresh: HashMap<String, ClassTree> = HashMap::new();
        for class in names {
            let mut t = self.new_tree(app, &class, next_gen(&current, &class))?;
            let mut recs: Vec<Rec<'static>> = match records.iter().position(|(c, _)| *c == class) {
                Some(i) => records
                    .swap_remove(i)
                    .1
                    .into_iter()
                    .map(|(id, versions)| Rec {
                        id: Cow::Owned(id),
                        versions,
                    })
                    .collect(),
                None => Vec::new(),
            };
            recs.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            stats.records += recs.iter().filter(|r| r.is_live()).count() as u64;
            // States and pages are made on both cores while sled takes the previous
            // group of pages.
            recs.par_iter_mut()
                .try_for_each(|r| r.fill_states(&class))
                .map_err(|(seq, detail)| ProjectionError::Apply {
                    app: app.to_string(),
                    source: ApplyError { seq, detail },
                })?;
            let pages = page::cut(recs);
            let last = pages.len().saturating_sub(1);
            let mut pages = pages.into_iter().enumerate();
            let mut pending: Option<sled::Batch> = None;
            loop {
                let group: Vec<(usize, Vec<Rec<'static>>)> =
                    pages.by_ref().take(WRITE_GROUP).collect();
                if group.is_empty() {
                    break;
                }
                let tree = &t.tree;
                let (written, batch) = rayon::join(
                    || pending.take().map_or(Ok(()), |b| tree.apply_batch(b)),
                    || {
                        let encoded: Vec<(Vec<u8>, Vec<u8>)> = group
                            .into_par_iter()
                            .map(|(i, p)| {
                                let key = match p.last() {
                                    Some(r) if i < last => layout::page_key(&r.id),
                                    _ => layout::LAST_PAGE.to_vec(),
                                };
                                (key, page::encode(&p))
                            })
                            .collect();
                        let mut batch = sled::Batch::default();
                        for (k, v) in encoded {
                            batch.insert(k, v);
                        }
                        batch
                    },
                );
                written?;
                pending = Some(batch);
            }
            let mut batch = pending.unwrap_or_default();
            batch.insert(layout::APPLIED, &layout::seq_value(upto));
            t.tree.apply_batch(batch)?;
            t.applied = upto;
            fresh.insert(class, t);
        }
        self.swap_in(app, &ap, fresh, wanted.is_none())?;
        Ok(stats)
    }

    /// Events `lo..=hi` of the log, as a rebuild's fold needs them: the data changes of
    /// the classes `wanted`.
    fn read_run(
        &self,
        app: &str,
        lo: u64,
        hi: u64,
        wanted: &Option<HashSet<&str>>,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::with_capacity(usize::try_from(hi + 1 - lo).unwrap_or(0));
        let mut next = lo;
        for e in self.ledger.events(app, lo, hi)? {
            let e = e?;
            if e.seq != next {
                return Err(ProjectionError::Corrupt {
                    app: app.into(),
                    class: "*".into(),
                    detail: format!("read event {} where {next} was due", e.seq),
                });
            }
            next += 1;
            if changed_class(&e).is_none() {
                continue;
            }
            let Some(s) = e.subject else {
                continue;
            };
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(s.class.as_str()))
            {
                continue;
            }
            items.push(Item {
                seq: e.seq,
                kind: e.kind,
                at: e.recorded_at,
                payload_check: check_payload(e.kind, e.payload.as_deref()),
                class: s.class,
                object_id: s.object_id,
                payload: e.payload,
            });
        }
        if next != hi + 1 {
            return Err(ProjectionError::Corrupt {
                app: app.into(),
                class: "*".into(),
                detail: format!("the log ends at event {} before {hi}", next - 1),
            });
        }
        Ok(items)
    }

    /// Catches fresh trees up with the incremental path, then makes them current.
    fn swap_in(
        &self,
        app: &str,
        ap: &AppProjection,
        fresh: HashMap<String, ClassTree>,
        all: bool,
    ) -> Result<()> {
        let _apply = lock(&ap.apply_lock);
        let target = ap.read().applied;
        let mut fresh = fresh;
        // Fold what sync applied meanwhile into the fresh trees, in one pass over the log.
        let from = fresh.values().map(|t| t.applied).min().unwrap_or(target);
        if from < target {
            let mut fold = Fold::default();
            for e in self.ledger.events(app, from + 1, target)? {
                fold.event(app, &fresh, &e?)?;
            }
            let mut batches = fold.batches();
            for (class, t) in fresh.iter_mut() {
                let mut batch = batches.remove(class).unwrap_or_default();
                batch.insert(layout::APPLIED, &layout::seq_value(target));
                t.tree.apply_batch(batch)?;
                t.applied = target;
            }
        }
        let mut retired = Vec::new();
        {
            let mut state = ap.state.write().unwrap_or_else(|p| p.into_inner());
            // The new trees' records are rebuilt from the log: indexes of the old ones go
            // (and are built again on next use).
            let indexes = state.indexes.get_mut().unwrap_or_else(|p| p.into_inner());
            if all {
                indexes.clear();
            } else {
                for class in fresh.keys() {
                    indexes.remove(class);
                }
            }
            let mut meta = sled::Batch::default();
            for (class, t) in &fresh {
                meta.insert(
                    layout::generation_key(app, class),
                    &layout::seq_value(t.gen),
                );
            }
            // A full rebuild also retires trees of classes that no longer have events.
            if all {
                let stale: Vec<String> = state
                    .classes
                    .keys()
                    .filter(|c| !fresh.contains_key(*c))
                    .cloned()
                    .collect();
                for class in stale {
                    meta.remove(layout::generation_key(app, &class));
                    if let Some(old) = state.classes.remove(&class) {
                        retired.push(old.tree.name());
                    }
                }
            }
            self.meta.apply_batch(meta)?;
            for (class, t) in fresh {
                if let Some(old) = state.classes.insert(class, t) {
                    retired.push(old.tree.name());
                }
            }
            // After a full rebuild every tree is a fresh one, at least at `target`.
            let fresh_at = state.classes.values().map(|t| t.applied).min();
            state.applied = match fresh_at {
                Some(a) if all => a.max(target),
                _ => target.max(state.applied),
            };
        }
        for name in retired {
            self.db.drop_tree(name)?;
        }
        Ok(())
    }

    /// Flushes the projection store and moves every tree's applied seq to the app's, so a
    /// restart rescans nothing. (Not needed for correctness: projections catch up.)
    pub fn flush(&self) -> Result<()> {
        let apps: Vec<Arc<AppProjection>> = lock(&self.apps).values().cloned().collect();
        for ap in apps {
            let _apply = lock(&ap.apply_lock);
            let mut state = ap.state.write().unwrap_or_else(|p| p.into_inner());
            let applied = state.applied;
            for t in state.classes.values_mut() {
                if t.applied < applied {
                    t.tree
                        .insert(layout::APPLIED, &layout::seq_value(applied))?;
                    t.applied = applied;
                }
            }
        }
        self.db.flush()?;
        Ok(())
    }
}

/// Events folded into the pages of their class trees: each touched page decoded once per
/// chunk and written back once (split when it outgrows [`page::PAGE_MAX`]), so several
/// events on one record or page within a chunk build on each other.
#[derive(Default)]
struct Fold {
    /// Per class, the touched pages by key, decoded and owned.
    pages: BTreeMap<String, BTreeMap<Vec<u8>, Vec<Rec<'static>>>>,
    /// Per class, the records touched.
    touched: BTreeMap<String, BTreeSet<String>>,
}

impl Fold {
    /// Folds `e` into its record's page, unless its class tree has no place for it (no
    /// such tree, or it already reflects the event).
    fn event(&mut self, app: &str, trees: &HashMap<String, ClassTree>, e: &Event) -> Result<()> {
        let Some(class) = changed_class(e) else {
            return Ok(());
        };
        let Some(t) = trees.get(class).filter(|t| e.seq > t.applied) else {
            return Ok(());
        };
        let id = e.subject.as_ref().map_or("", |s| s.object_id.as_str());
        let pages = self.pages.entry(class.to_string()).or_default();
        let key = match page_of(&t.tree, id)? {
            Some((k, v)) => {
                if !pages.contains_key(k.as_ref()) {
                    let recs = page::decode(&v)
                        .map_err(|d| corrupt(app, class, format!("page {k:?}: {d}")))?;
                    pages.insert(k.to_vec(), recs.into_iter().map(Rec::into_owned).collect());
                }
                k.to_vec()
            }
            None => layout::LAST_PAGE.to_vec(),
        };
        let recs = pages.entry(key).or_default();
        let i = match recs.binary_search_by(|r| r.id.as_ref().cmp(id)) {
            Ok(i) => i,
            Err(i) => {
                recs.insert(i, Rec::new(id));
                i
            }
        };
        let v = NewVersion {
            kind: e.kind,
            seq: e.seq,
            at: e.recorded_at,
            payload: e.payload.clone(),
        };
        recs[i]
            .push(class, v)
            .map_err(|detail| ProjectionError::Apply {
                app: app.to_string(),
                source: ApplyError { seq: e.seq, detail },
            })?;
        self.touched
            .entry(class.to_string())
            .or_default()
            .insert(id.to_string());
        Ok(())
    }

    /// The touched pages as one batch per class tree; a page grown past
    /// [`page::PAGE_MAX`] is cut in several, the last keeping its key.
    fn batches(&self) -> BTreeMap<String, sled::Batch> {
        let mut out = BTreeMap::new();
        for (class, pages) in &self.pages {
            let mut batch = sled::Batch::default();
            for (key, recs) in pages {
                let value = page::encode(recs);
                if value.len() <= page::PAGE_MAX || recs.len() < 2 {
                    batch.insert(key.as_slice(), value);
                    continue;
                }
                let parts = page::cut(recs.clone());
                let last = parts.len().saturating_sub(1);
                for (i, p) in parts.iter().enumerate() {
                    let k = match p.last() {
                        Some(r) if i < last => layout::page_key(&r.id),
                        _ => key.clone(),
                    };
                    batch.insert(k, page::encode(p));
                }
            }
            out.insert(class.clone(), batch);
        }
        out
    }

    /// The live state of a touched record, as the fold leaves it.
    fn live(&self, app: &str, class: &str, id: &str) -> Result<Option<Record>> {
        for recs in self.pages.get(class).into_iter().flat_map(|p| p.values()) {
            if let Ok(i) = recs.binary_search_by(|r| r.id.as_ref().cmp(id)) {
                return recs[i]
                    .live(class)
                    .map_err(|d| corrupt(app, class, format!("record {id}: {d}")));
            }
        }
        Ok(None)
    }
}

/// A rebuild's records of `class` (new if need be), with the class as filed.
fn class_records(
    records: &mut RebuildRecords,
    class: String,
) -> (&str, &mut HashMap<String, Vec<Version<'static>>>) {
    let i = match records.iter().position(|(c, _)| *c == class) {
        Some(i) => i,
        None => {
            records.push((class, HashMap::new()));
            records.len() - 1
        }
    };
    let (class, by_id) = &mut records[i];
    (class.as_str(), by_id)
}

/// A rebuild's records: per class (a handful), versions by objectId.
type RebuildRecords = Vec<(String, HashMap<String, Vec<Version<'static>>>)>;

/// A data change as a rebuild's reader hands it over: what the fold needs, and the
/// verdict on its payload's shape.
struct Item {
    seq: u64,
    kind: ledger::EventKind,
    at: ledger::Timestamp,
    class: String,
    object_id: String,
    payload: Option<Vec<u8>>,
    payload_check: std::result::Result<(), String>,
}

/// The generation a rebuild writes: one past the current; 2 for a class without a tree,
/// since the incremental path may create generation 1 meanwhile.
fn next_gen(current: &HashMap<String, u64>, class: &str) -> u64 {
    current.get(class).copied().unwrap_or(1) + 1
}

fn corrupt(app: &str, class: &str, detail: String) -> ProjectionError {
    ProjectionError::Corrupt {
        app: app.into(),
        class: class.into(),
        detail,
    }
}

/// The page of a class tree that holds (or would hold) record `id`: the first at or after
/// `P` id. `None` when the tree has no page yet.
pub(crate) fn page_of(tree: &sled::Tree, id: &str) -> Result<Option<(sled::IVec, sled::IVec)>> {
    Ok(tree
        .range(layout::page_key(id)..=layout::LAST_PAGE.to_vec())
        .next()
        .transpose()?)
}

/// Record `id` of a class tree, decoded from its page, passed to `f`.
pub(crate) fn with_record<R>(
    app: &str,
    class: &str,
    tree: &sled::Tree,
    id: &str,
    f: impl FnOnce(&Rec<'_>) -> Result<R, String>,
) -> Result<Option<R>> {
    let Some((k, v)) = page_of(tree, id)? else {
        return Ok(None);
    };
    let recs = page::decode(&v).map_err(|d| corrupt(app, class, format!("page {k:?}: {d}")))?;
    match recs.binary_search_by(|r| r.id.as_ref().cmp(id)) {
        Ok(i) => f(&recs[i])
            .map(Some)
            .map_err(|d| corrupt(app, class, format!("record {id}: {d}"))),
        Err(_) => Ok(None),
    }
}

/// The live record `id` of a class tree.
pub(crate) fn load_live(
    app: &str,
    class: &str,
    tree: &sled::Tree,
    id: &str,
) -> Result<Option<Record>> {
    Ok(with_record(app, class, tree, id, |r| r.live(class))?.flatten())
}
