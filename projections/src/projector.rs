//! The projector: keeps each class's trees in step with the ledger, and rebuilds them.
//!
//! [`Projections::sync`] folds every durable event after the applied point into the class
//! trees, one atomic sled batch per tree and chunk, each batch also moving that tree's
//! applied seq. After a crash each tree resumes from its own applied seq, so the result is
//! what a rebuild gives. [`Projections::rebuild`] replays the log into fresh trees without
//! blocking readers or the incremental path, catches them up, and swaps them in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use ledger::{Event, Ledger, ReadError};

use crate::apply::{apply, changed_class, ApplyError, Effect};
use crate::layout;
use crate::query::{IndexField, OrderIndex};
use crate::record::Record;

/// Events folded per atomic step of [`Projections::sync`].
const CHUNK: usize = 8192;
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
    pub fn sync(&self, app: &str) -> Result<u64> {
        let ap = self.app(app)?;
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
        let mut batches = fold.batches;
        let mut state = ap.state.write().unwrap_or_else(|p| p.into_inner());
        let indexes = state.indexes.get_mut().unwrap_or_else(|p| p.into_inner());
        for ((class, id), before) in &fold.before {
            let Some(by_field) = indexes.get_mut(class) else {
                continue;
            };
            let after = fold
                .overlay
                .get(&(class.clone(), id.clone()))
                .and_then(Option::as_ref);
            for index in by_field.values_mut() {
                index.update(before.as_ref(), after);
            }
        }
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
        let mut fresh: HashMap<String, ClassTree> = HashMap::new();
        let mut states: HashMap<String, HashMap<String, Record>> = HashMap::new();
        let mut batches: HashMap<String, (sled::Batch, usize)> = HashMap::new();
        let mut stats = RebuildStats {
            events: 0,
            versions: 0,
            records: 0,
            seq: upto,
        };
        for e in self.ledger.events(app, 1, upto)? {
            let e = e?;
            stats.events += 1;
            let Some(class) = changed_class(&e) else {
                continue;
            };
            if wanted.as_ref().is_some_and(|w| !w.contains(class)) {
                continue;
            }
            if !fresh.contains_key(class) {
                let t = self.new_tree(app, class, next_gen(&current, class))?;
                fresh.insert(class.to_string(), t);
            }
            let records = states.entry(class.to_string()).or_default();
            let id = e
                .subject
                .as_ref()
                .map(|s| s.object_id.as_str())
                .unwrap_or("");
            let Some(effect) =
                apply(records.get(id), &e).map_err(|source| ProjectionError::Apply {
                    app: app.to_string(),
                    source,
                })?
            else {
                continue;
            };
            let (batch, n) = batches.entry(class.to_string()).or_default();
            batch.insert(
                layout::version_key(id, e.seq),
                layout::version_value(e.kind, effect.record()),
            );
            *n += 1;
            stats.versions += 1;
            if *n >= CHUNK {
                if let Some(t) = fresh.get(class) {
                    t.tree.apply_batch(std::mem::take(batch))?;
                }
                *n = 0;
            }
            match effect {
                Effect::Put(r) => {
                    records.insert(id.to_string(), r);
                }
                Effect::Delete(_) => {
                    records.remove(id);
                }
            }
        }
        // Classes asked for but without events still get an (empty) fresh tree.
        for c in wanted.iter().flatten() {
            if !fresh.contains_key(*c) {
                fresh.insert(c.to_string(), self.new_tree(app, c, next_gen(&current, c))?);
            }
        }
        for (class, t) in fresh.iter_mut() {
            let mut batch = batches.remove(class).map(|(b, _)| b).unwrap_or_default();
            let mut n = 0usize;
            for (id, r) in states.remove(class).unwrap_or_default() {
                batch.insert(layout::live_key(&id), r.encode());
                stats.records += 1;
                n += 1;
                if n >= CHUNK {
                    t.tree.apply_batch(std::mem::take(&mut batch))?;
                    n = 0;
                }
            }
            batch.insert(layout::APPLIED, &layout::seq_value(upto));
            t.tree.apply_batch(batch)?;
            t.applied = upto;
        }
        self.swap_in(app, &ap, fresh, wanted.is_none())?;
        Ok(stats)
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
            for (class, t) in fresh.iter_mut() {
                let mut batch = fold.batches.remove(class).unwrap_or_default();
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
            state.applied = target.max(state.applied);
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

/// Events folded into per-tree batches, with the latest state of each record they touched
/// (so that several events on one record within a batch build on each other) and the
/// state each had before the first of them (for the indexes).
#[derive(Default)]
struct Fold {
    batches: BTreeMap<String, sled::Batch>,
    overlay: HashMap<(String, String), Option<Record>>,
    before: HashMap<(String, String), Option<Record>>,
}

impl Fold {
    /// Folds `e` into the batch of its class's tree, unless the tree has no place for it
    /// (no such tree, or it already reflects the event).
    fn event(&mut self, app: &str, trees: &HashMap<String, ClassTree>, e: &Event) -> Result<()> {
        let Some(class) = changed_class(e) else {
            return Ok(());
        };
        let Some(t) = trees.get(class).filter(|t| e.seq > t.applied) else {
            return Ok(());
        };
        let id = e.subject.as_ref().map_or("", |s| s.object_id.as_str());
        let key = (class.to_string(), id.to_string());
        let prev = match self.overlay.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = load_live(app, class, &t.tree, id)?;
                self.before.insert(key.clone(), r.clone());
                r
            }
        };
        let effect = apply(prev.as_ref(), e).map_err(|source| ProjectionError::Apply {
            app: app.to_string(),
            source,
        })?;
        if let Some(effect) = effect {
            write_effect(
                self.batches.entry(class.to_string()).or_default(),
                e,
                &effect,
            );
            self.overlay
                .insert(key, (!effect.is_delete()).then(|| effect.record().clone()));
        }
        Ok(())
    }
}

/// The generation a rebuild writes: one past the current; 2 for a class without a tree,
/// since the incremental path may create generation 1 meanwhile.
fn next_gen(current: &HashMap<String, u64>, class: &str) -> u64 {
    current.get(class).copied().unwrap_or(1) + 1
}

/// Writes an effect into a tree's batch: the version entry, and the live record (or its
/// removal).
fn write_effect(batch: &mut sled::Batch, e: &Event, effect: &Effect) {
    let r = effect.record();
    batch.insert(
        layout::version_key(&r.object_id, e.seq),
        layout::version_value(e.kind, r),
    );
    match effect {
        Effect::Put(r) => batch.insert(layout::live_key(&r.object_id), r.encode()),
        Effect::Delete(r) => batch.remove(layout::live_key(&r.object_id)),
    }
}

/// The live record `id` of a class tree.
pub(crate) fn load_live(
    app: &str,
    class: &str,
    tree: &sled::Tree,
    id: &str,
) -> Result<Option<Record>> {
    match tree.get(layout::live_key(id))? {
        None => Ok(None),
        Some(v) => Record::decode(&v)
            .map(Some)
            .map_err(|detail| ProjectionError::Corrupt {
                app: app.into(),
                class: class.into(),
                detail: format!("record {id}: {detail}"),
            }),
    }
}
