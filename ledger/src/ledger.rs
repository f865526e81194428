//! The ledger handle: opens a store, keeps each app's head, schema and key, and appends
//! with group commit.
//!
//! Appends flow through two threads. The *builder* takes every request waiting, checks
//! each against the app's schema and records, chains and hashes the accepted ones in
//! order, signs them in parallel, and writes the group to the store in one atomic batch
//! per app. The *syncer* then makes everything written durable (`Store::sync`) and only
//! then answers each request. While the syncer waits on the disk, the builder is already
//! preparing the next group, so many appends share one fsync.
//!
//! Readers see only durable events: the syncer publishes each app's durable head.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::canonical::{event_hash, payload_digest, GENESIS_PREV_HASH};
use crate::codec;
use crate::command::*;
use crate::event::{Actor, Event, EventKind, Hash32, KeyId, Subject};
use crate::keys::{AppKey, FileKeyStore, KeyStore, KeyStoreError, MemoryKeyStore, PublicKey};
use crate::schema::validate::{self, is_valid_object_id};
use crate::schema::{AppSchema, ClassDef, SchemaChange, USER_CLASS};
use crate::store::{AppBatch, EventWrite, Mark, MemoryStore, SledStore, Store, StoreError};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::verify::{declared_key, KeyRange, VerifyMode, VerifyPolicy, VerifyReport};

/// How to open a ledger.
pub struct LedgerConfig {
    /// Where events live.
    pub store: Arc<dyn Store>,
    /// Where private keys live.
    pub keys: Arc<dyn KeyStore>,
    /// Where recorded time comes from.
    pub clock: Arc<dyn Clock>,
    /// Seed for event ids and generated objectIds (None: from the OS).
    pub seed: Option<[u8; 32]>,
    /// Most requests in one group commit.
    pub max_group: usize,
}

impl LedgerConfig {
    /// The embedded store in `<dir>/store` (sled), keys in `<dir>/keys`, the system clock.
    pub fn in_dir(dir: &Path) -> Result<Self, StoreError> {
        Ok(LedgerConfig {
            store: Arc::new(SledStore::open(&dir.join("store"))?),
            keys: Arc::new(FileKeyStore::new(dir.join("keys"))),
            clock: Arc::new(SystemClock),
            seed: None,
            max_group: 4096,
        })
    }

    /// Everything in memory and deterministic: for tests.
    pub fn in_memory(seed: [u8; 32], clock: Arc<dyn Clock>) -> Self {
        LedgerConfig {
            store: Arc::new(MemoryStore::new()),
            keys: Arc::new(MemoryKeyStore::new(seed)),
            clock,
            seed: Some(seed),
            max_group: 4096,
        }
    }
}

/// The end of an app's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The last sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash32,
    /// Its recorded time.
    pub recorded_at: Timestamp,
}

/// Why a ledger could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// The app's active signing key is not in the key store.
    #[error("app {app}: the active signing key {key_id} is not in the key store")]
    MissingKey {
        /// The app.
        app: String,
        /// The key the chain says is active.
        key_id: KeyId,
    },
    /// A stored event the ledger needs at start-up cannot be read.
    #[error("app {app}: event {seq} is corrupt: {detail}")]
    Corrupt {
        /// The app.
        app: String,
        /// The event.
        seq: u64,
        /// Why.
        detail: String,
    },
}

#[derive(Clone)]
struct AppState {
    head: Head,
    schema: Arc<AppSchema>,
    key: Arc<AppKey>,
}

#[derive(Clone)]
struct AppView {
    head: Head,
    schema: Arc<AppSchema>,
}

struct Shared {
    store: Arc<dyn Store>,
    keys: Arc<dyn KeyStore>,
    durable: RwLock<HashMap<String, AppView>>,
    poisoned: AtomicBool,
}

type Reply = oneshot::Sender<Result<Appended, AppendError>>;

enum Job {
    Append(Box<AppendRequest>, Reply),
    CreateApp {
        app: String,
        source: String,
        classes: Vec<ClassDef>,
        reply: Reply,
    },
    RotateKey {
        app: String,
        actor: Actor,
        reason: Option<String>,
        reply: Reply,
    },
}

/// A pending append: await it, or block on it with [`Pending::wait`].
pub struct Pending(oneshot::Receiver<Result<Appended, AppendError>>);

impl Pending {
    /// Blocks until the append is durable (or refused). Not inside an async runtime.
    pub fn wait(self) -> Result<Appended, AppendError> {
        self.0.blocking_recv().unwrap_or(Err(AppendError::Closed))
    }
}

impl std::future::Future for Pending {
    type Output = Result<Appended, AppendError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(AppendError::Closed)))
    }
}

/// An open ledger. Cheap to share behind an `Arc`; dropping it finishes in-flight appends.
pub struct Ledger {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Ledger {
    /// Opens the embedded store in `dir`, creating it if needed.
    pub fn open_dir(dir: &Path) -> Result<Self, OpenError> {
        Self::open(LedgerConfig::in_dir(dir)?)
    }

    /// Opens a ledger: reads each app's head, schema and active key.
    pub fn open(config: LedgerConfig) -> Result<Self, OpenError> {
        let mut apps = HashMap::new();
        for app in config.store.apps()? {
            let state = load_app(&*config.store, &*config.keys, &app)?;
            apps.insert(app, state);
        }
        let durable = apps
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    AppView {
                        head: s.head,
                        schema: s.schema.clone(),
                    },
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            store: config.store,
            keys: config.keys,
            durable: RwLock::new(durable),
            poisoned: AtomicBool::new(false),
        });
        let seed = config.seed.unwrap_or_else(|| {
            let mut s = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let (sync_tx, sync_rx) = mpsc::channel::<Synced>();
        let builder = Builder {
            shared: shared.clone(),
            clock: config.clock,
            rng: ChaCha20Rng::from_seed(seed),
            apps,
            max_group: config.max_group.max(1),
            to_syncer: sync_tx,
        };
        let sync_shared = shared.clone();
        let threads = vec![
            std::thread::Builder::new()
                .name("ledger-builder".into())
                .spawn(move || builder.run(rx))
                .map_err(StoreError::Io)?,
            std::thread::Builder::new()
                .name("ledger-syncer".into())
                .spawn(move || run_syncer(&sync_shared, sync_rx))
                .map_err(StoreError::Io)?,
        ];
        Ok(Ledger {
            shared,
            tx: Some(tx),
            threads,
        })
    }

    fn send(&self, job: Job, rx: oneshot::Receiver<Result<Appended, AppendError>>) -> Pending {
        if let Some(tx) = &self.tx {
            // If the builder is gone the job (and its reply) is dropped: the receiver sees Closed.
            let _ = tx.send(job);
        }
        Pending(rx)
    }

    /// Queues an append; the returned [`Pending`] resolves once it is durable or refused.
    pub fn submit(&self, req: AppendRequest) -> Pending {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Append(Box::new(req), reply), rx)
    }

    /// Appends and blocks until the event is durable (or the request refused).
    pub fn append(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        self.submit(req).wait()
    }

    /// Creates an app: a genesis event declaring a new signing key, then its schema.
    pub fn create_app(
        &self,
        app: &str,
        source: &str,
        classes: Vec<ClassDef>,
    ) -> Result<Appended, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.send(
            Job::CreateApp {
                app: app.to_string(),
                source: source.to_string(),
                classes,
                reply,
            },
            rx,
        )
        .wait()
    }

    /// Creates each built-in app (SPEC §2) that does not exist yet; returns those created.
    pub fn ensure_builtin_apps(&self) -> Result<Vec<String>, AppendError> {
        let mut created = Vec::new();
        for t in crate::schema::templates::BUILTIN {
            if self.head(t.app).is_some() {
                continue;
            }
            let classes = t.classes()?;
            self.create_app(t.app, &format!("template:{}", t.app), classes)?;
            created.push(t.app.to_string());
        }
        Ok(created)
    }

    /// Rotates an app's signing key: a `key.rotated` event signed by the old key names
    /// the new one; the old private key is destroyed once the event is durable.
    pub fn rotate_key(
        &self,
        app: &str,
        actor: Actor,
        reason: Option<String>,
    ) -> Result<Appended, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.send(
            Job::RotateKey {
                app: app.to_string(),
                actor,
                reason,
                reply,
            },
            rx,
        )
        .wait()
    }

    /// Apps with a durable genesis, sorted.
    pub fn apps(&self) -> Vec<String> {
        let mut v: Vec<String> = self.views().keys().cloned().collect();
        v.sort();
        v
    }

    fn views(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, AppView>> {
        self.shared
            .durable
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The durable head of an app.
    pub fn head(&self, app: &str) -> Option<Head> {
        self.views().get(app).map(|v| v.head)
    }

    /// The app's current (durable) schema.
    pub fn schema(&self, app: &str) -> Option<Arc<AppSchema>> {
        self.views().get(app).map(|v| v.schema.clone())
    }

    /// The app's schema as it stood after event `seq`.
    pub fn schema_at(&self, app: &str, seq: u64) -> Result<AppSchema, ReadError> {
        schema_upto(&*self.shared.store, app, seq)
    }

    /// The underlying store (read access for projections, export and verification).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    fn durable_seq(&self, app: &str) -> Result<u64, ReadError> {
        self.head(app)
            .map(|h| h.seq)
            .ok_or_else(|| ReadError::UnknownApp(app.to_string()))
    }

    /// Durable event `seq` of `app`.
    pub fn event(&self, app: &str, seq: u64) -> Result<Option<Event>, ReadError> {
        if seq == 0 || seq > self.durable_seq(app)? {
            return Ok(None);
        }
        read_event(&*self.shared.store, app, seq).map(Some)
    }

    /// Durable events `from..=to` of `app` (to is clamped to the head), in order.
    pub fn events(
        &self,
        app: &str,
        from: u64,
        to: u64,
    ) -> Result<impl Iterator<Item = Result<Event, ReadError>> + '_, ReadError> {
        let last = self.durable_seq(app)?.min(to);
        let app_name = app.to_string();
        Ok(self
            .shared
            .store
            .scan(app, from.max(1))
            .take_while(move |r| r.as_ref().map_or(true, |(s, _)| *s <= last))
            .map(move |r| {
                let (seq, bytes) = r?;
                codec::decode(&bytes).map_err(|detail| ReadError::Corrupt {
                    app: app_name.clone(),
                    seq,
                    detail,
                })
            }))
    }

    /// The durable versions (events) of one record: (seq, kind), in order.
    pub fn versions(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
    ) -> Result<Vec<(u64, EventKind)>, ReadError> {
        let last = self.durable_seq(app)?;
        Ok(self
            .shared
            .store
            .versions(app, class, object_id)?
            .into_iter()
            .filter(|(s, _)| *s <= last)
            .filter_map(|(s, k)| Some((s, EventKind::from_code(k)?)))
            .collect())
    }

    /// The last event recorded at or before `t` (0 if none): a binary search over the
    /// chain, whose recorded times never decrease.
    pub fn seq_at(&self, app: &str, t: Timestamp) -> Result<u64, ReadError> {
        let (mut lo, mut hi) = (0u64, self.durable_seq(app)?);
        // Invariant: event lo is at or before t (or lo = 0); every event after hi is after t.
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if read_event(&*self.shared.store, app, mid)?.recorded_at <= t {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
    }

    /// The keys the app's chain declared, with the events each may sign.
    pub fn public_keys(&self, app: &str) -> Result<Vec<KeyRange>, ReadError> {
        let last = self.durable_seq(app)?;
        key_ranges(&*self.shared.store, app, last)
    }

    /// Verifies the app's durable chain.
    /// Unless the policy names a head, the chain must reach the durable head the ledger
    /// holds (read from the store's head record at open).
    pub fn verify(
        &self,
        app: &str,
        mode: VerifyMode,
        mut policy: VerifyPolicy,
    ) -> Result<VerifyReport, ReadError> {
        let head = self
            .head(app)
            .ok_or_else(|| ReadError::UnknownApp(app.to_string()))?;
        policy.expected_head.get_or_insert((head.seq, head.hash));
        Ok(crate::verify_store::verify_store(
            &*self.shared.store,
            app,
            mode,
            policy,
            head.seq,
        ))
    }

    /// Writes the durable chains of `apps` as an NDJSON export (docs/FORMAT.md §4).
    pub fn export(
        &self,
        apps: &[String],
        out: &mut dyn std::io::Write,
    ) -> Result<u64, crate::export::ExportError> {
        let mut sections = Vec::new();
        for app in apps {
            let head = self
                .head(app)
                .ok_or_else(|| ReadError::UnknownApp(app.clone()))?;
            sections.push(crate::export::Section {
                app: app.clone(),
                head_seq: head.seq,
                head_hash: head.hash,
                keys: self.public_keys(app)?,
            });
        }
        crate::export::write(&*self.shared.store, &sections, out)
    }

    /// Stops accepting appends, finishes those in flight, and waits for the threads.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Errors of reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No such app.
    #[error("app {0:?} does not exist")]
    UnknownApp(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event cannot be decoded.
    #[error("app {app}: event {seq} is corrupt: {detail}")]
    Corrupt {
        /// The app.
        app: String,
        /// The event.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// An event that should exist is missing.
    #[error("app {app}: event {seq} is missing")]
    Missing {
        /// The app.
        app: String,
        /// The event.
        seq: u64,
    },
}

pub(crate) fn read_event(store: &dyn Store, app: &str, seq: u64) -> Result<Event, ReadError> {
    let bytes = store.event(app, seq)?.ok_or_else(|| ReadError::Missing {
        app: app.into(),
        seq,
    })?;
    codec::decode(&bytes).map_err(|detail| ReadError::Corrupt {
        app: app.into(),
        seq,
        detail,
    })
}

fn schema_upto(store: &dyn Store, app: &str, upto: u64) -> Result<AppSchema, ReadError> {
    let mut schema = AppSchema::default();
    for seq in store.marked(app, Mark::Schema)? {
        if seq > upto {
            break;
        }
        let e = read_event(store, app, seq)?;
        let corrupt = |detail: String| ReadError::Corrupt {
            app: app.into(),
            seq,
            detail,
        };
        let v: Value = match e.payload_json() {
            Some(Ok(v)) => v,
            Some(Err(err)) => return Err(corrupt(err.to_string())),
            None => {
                return Err(corrupt(
                    "a schema event's payload cannot be redacted".into(),
                ))
            }
        };
        let change = SchemaChange::from_json(&v).map_err(|err| corrupt(err.to_string()))?;
        schema
            .apply(&change)
            .map_err(|err| corrupt(err.to_string()))?;
    }
    Ok(schema)
}

pub(crate) fn key_ranges(
    store: &dyn Store,
    app: &str,
    upto: u64,
) -> Result<Vec<KeyRange>, ReadError> {
    let mut out: Vec<KeyRange> = Vec::new();
    for seq in store.marked(app, Mark::Key)? {
        if seq > upto {
            break;
        }
        let e = read_event(store, app, seq)?;
        let k = match declared_key(&e) {
            Some(Ok(k)) => k,
            Some(Err(detail)) => {
                return Err(ReadError::Corrupt {
                    app: app.into(),
                    seq,
                    detail,
                })
            }
            None => continue,
        };
        if let Some(prev) = out.last_mut() {
            prev.to_seq = Some(seq);
        }
        out.push(KeyRange {
            key_id: k.key_id,
            public_key: k.hex(),
            from_seq: if e.kind == EventKind::AppCreated {
                seq
            } else {
                seq + 1
            },
            to_seq: None,
        });
    }
    Ok(out)
}

fn load_app(store: &dyn Store, keys: &dyn KeyStore, app: &str) -> Result<AppState, OpenError> {
    let corrupt = |seq: u64, detail: String| OpenError::Corrupt {
        app: app.into(),
        seq,
        detail,
    };
    let (seq, bytes) = store
        .last_event(app)?
        .ok_or_else(|| corrupt(0, "app without events".into()))?;
    let last = codec::decode(&bytes).map_err(|d| corrupt(seq, d))?;
    let head = Head {
        seq: last.seq,
        hash: last.hash,
        recorded_at: last.recorded_at,
    };
    // The head record is written in the same atomic batch as the events: if they disagree,
    // events were removed or rewritten behind the ledger's back. Refuse to build on that.
    match store.head_record(app)? {
        Some((s, h)) if s == seq && h == last.hash && last.seq == seq => {}
        Some((s, h)) => {
            return Err(corrupt(
                seq.max(s),
                format!(
                    "the head record says event {s} with hash {}, but the last stored event is {seq} with hash {}: the store was altered",
                    hex::encode(h),
                    hex::encode(last.hash)
                ),
            ))
        }
        None => return Err(corrupt(seq, "no head record".into())),
    }
    let schema = schema_upto(store, app, head.seq).map_err(|e| match e {
        ReadError::Corrupt { seq, detail, .. } => corrupt(seq, detail),
        ReadError::Store(s) => OpenError::Store(s),
        other => corrupt(0, other.to_string()),
    })?;
    let ranges = key_ranges(store, app, head.seq).map_err(|e| corrupt(0, e.to_string()))?;
    let active = ranges
        .last()
        .ok_or_else(|| corrupt(1, "no genesis key".into()))?;
    let key = keys
        .load(app, active.key_id)?
        .ok_or(OpenError::MissingKey {
            app: app.into(),
            key_id: active.key_id,
        })?;
    Ok(AppState {
        head,
        schema: Arc::new(schema),
        key: Arc::new(key),
    })
}

// ---------------------------------------------------------------------------------------
// The builder: checks, chains, signs and writes groups.

struct Built {
    event: Event,
    key: Arc<AppKey>,
    write: EventWrite,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordState {
    Absent,
    Live,
    Deleted,
}

enum Outcome {
    New(usize),
    Existing(Box<Event>),
}

#[derive(Default)]
struct Group {
    built: Vec<Built>,
    replies: Vec<(Reply, Outcome)>,
    undo: HashMap<String, Option<AppState>>,
    versions: HashMap<(String, String, String), (u64, u8)>,
    idempotency: HashMap<(String, String), usize>,
    retire: Vec<(String, KeyId)>,
}

struct Synced {
    replies: Vec<(Reply, Result<Appended, AppendError>)>,
    views: Vec<(String, AppView)>,
    retire: Vec<(String, KeyId)>,
}

struct Builder {
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    rng: ChaCha20Rng,
    apps: HashMap<String, AppState>,
    max_group: usize,
    to_syncer: mpsc::Sender<Synced>,
}

/// What a command turns into before it is chained.
struct Draft {
    kind: EventKind,
    subject: Option<Subject>,
    payload: Value,
    indexed: bool,
    mark: Option<Mark>,
}

fn bad(field: &'static str, why: impl Into<String>) -> AppendError {
    AppendError::BadRequest {
        field,
        why: why.into(),
    }
}

fn check_text(
    field: &'static str,
    v: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), AppendError> {
    if !allow_empty && v.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(bad(field, format!("longer than {max} bytes")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(bad(field, "contains control characters"));
    }
    Ok(())
}

fn is_valid_app_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

impl Builder {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_group {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.commit_group(jobs);
        }
    }

    fn commit_group(&mut self, jobs: Vec<Job>) {
        let mut g = Group::default();
        for job in jobs {
            if self.shared.poisoned.load(Ordering::SeqCst) {
                let reply = match job {
                    Job::Append(_, r)
                    | Job::CreateApp { reply: r, .. }
                    | Job::RotateKey { reply: r, .. } => r,
                };
                let _ = reply.send(Err(AppendError::Durability(
                    "an earlier fsync failed".into(),
                )));
                continue;
            }
            match job {
                Job::Append(req, reply) => match self.append(&mut g, *req) {
                    Ok(o) => g.replies.push((reply, o)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Job::CreateApp {
                    app,
                    source,
                    classes,
                    reply,
                } => match self.create_app(&mut g, &app, &source, classes) {
                    Ok(o) => g.replies.push((reply, o)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Job::RotateKey {
                    app,
                    actor,
                    reason,
                    reply,
                } => match self.rotate(&mut g, &app, actor, reason) {
                    Ok(o) => g.replies.push((reply, o)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
            }
        }
        if g.replies.is_empty() {
            return;
        }
        // Sign: the hash chain is fixed, so signatures are independent of one another and
        // are made in parallel (an ed25519 signature is most of an append's CPU cost).
        let sign = |b: &mut Built| {
            b.event.signature = b.key.sign_hash(&b.event.hash);
            b.write.bytes = codec::encode(&b.event);
        };
        if g.built.len() > 1 {
            g.built.par_iter_mut().for_each(sign);
        } else {
            g.built.iter_mut().for_each(sign);
        }
        let mut batches: Vec<AppBatch> = Vec::new();
        for b in &mut g.built {
            let head = (b.event.seq, b.event.hash);
            let write = EventWrite {
                bytes: std::mem::take(&mut b.write.bytes),
                ..b.write.clone()
            };
            match batches.iter_mut().find(|x| x.app == b.event.app) {
                Some(x) => {
                    x.events.push(write);
                    x.head = head;
                }
                None => batches.push(AppBatch {
                    app: b.event.app.clone(),
                    events: vec![write],
                    head,
                }),
            }
        }
        if !batches.is_empty() {
            if let Err(e) = self.shared.store.write(&batches) {
                let msg = e.to_string();
                for (app, before) in g.undo.drain() {
                    match before {
                        Some(s) => self.apps.insert(app, s),
                        None => self.apps.remove(&app),
                    };
                }
                for (reply, _) in g.replies {
                    let _ = reply.send(Err(AppendError::WriteFailed(msg.clone())));
                }
                return;
            }
        }
        let views = g
            .undo
            .keys()
            .filter_map(|app| {
                let s = self.apps.get(app)?;
                Some((
                    app.clone(),
                    AppView {
                        head: s.head,
                        schema: s.schema.clone(),
                    },
                ))
            })
            .collect();
        // Each new event answers exactly one request (a repeated idempotency key in the
        // same group got a copy at build time), so events are moved, not cloned.
        let mut events: Vec<Option<Event>> = g.built.into_iter().map(|b| Some(b.event)).collect();
        let replies = g
            .replies
            .into_iter()
            .map(|(reply, o)| {
                let r = match o {
                    Outcome::New(i) => match events.get_mut(i).and_then(Option::take) {
                        Some(event) => Ok(Appended {
                            event,
                            duplicate: false,
                        }),
                        None => Err(AppendError::WriteFailed(
                            "internal: an event answered two requests".into(),
                        )),
                    },
                    Outcome::Existing(e) => Ok(Appended {
                        event: *e,
                        duplicate: true,
                    }),
                };
                (reply, r)
            })
            .collect();
        let _ = self.to_syncer.send(Synced {
            replies,
            views,
            retire: g.retire,
        });
    }

    fn state(&self, app: &str) -> Result<&AppState, AppendError> {
        self.apps
            .get(app)
            .ok_or_else(|| AppendError::UnknownApp(app.to_string()))
    }

    /// Whether a record exists, and whether it was deleted, counting this group's events.
    /// Nothing follows a deletion, so this group's last event on a record decides.
    fn record_state(
        &self,
        g: &Group,
        app: &str,
        class: &str,
        id: &str,
    ) -> Result<RecordState, AppendError> {
        if let Some((_, k)) = g
            .versions
            .get(&(app.to_string(), class.to_string(), id.to_string()))
        {
            let deleted = EventKind::from_code(*k).is_some_and(EventKind::deletes_subject);
            return Ok(if deleted {
                RecordState::Deleted
            } else {
                RecordState::Live
            });
        }
        Ok(match self.shared.store.record_state(app, class, id)? {
            None => RecordState::Absent,
            Some(s) if s.deleted => RecordState::Deleted,
            Some(_) => RecordState::Live,
        })
    }

    fn live(&self, g: &Group, app: &str, class: &str, id: &str) -> Result<bool, AppendError> {
        Ok(self.record_state(g, app, class, id)? == RecordState::Live)
    }

    fn require_live(&self, g: &Group, app: &str, class: &str, id: &str) -> Result<(), AppendError> {
        match self.record_state(g, app, class, id)? {
            RecordState::Absent => Err(AppendError::NotFound {
                class: class.into(),
                object_id: id.into(),
            }),
            RecordState::Deleted => Err(AppendError::Deleted {
                class: class.into(),
                object_id: id.into(),
            }),
            RecordState::Live => Ok(()),
        }
    }

    fn check_pointers(
        &self,
        g: &Group,
        app: &str,
        class: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), AppendError> {
        for (field, target, id) in validate::pointers(fields) {
            if !self.live(g, app, target, id)? {
                return Err(AppendError::PointerTargetMissing {
                    class: class.into(),
                    field: field.into(),
                    target_class: target.into(),
                    object_id: id.into(),
                });
            }
        }
        Ok(())
    }

    fn new_object_id(&mut self, g: &Group, app: &str, class: &str) -> Result<String, AppendError> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let id: String = (0..10)
                .map(|_| ALPHABET[self.rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            if self.record_state(g, app, class, &id)? == RecordState::Absent {
                return Ok(id);
            }
        }
    }

    fn append(&mut self, g: &mut Group, req: AppendRequest) -> Result<Outcome, AppendError> {
        let app = req.app.as_str();
        self.state(app)?;
        check_text("actor.user_id", &req.actor.user_id, MAX_ACTOR_FIELD, false)?;
        check_text(
            "actor.username",
            &req.actor.username,
            MAX_ACTOR_FIELD,
            false,
        )?;
        check_text("actor.role", &req.actor.role, MAX_ACTOR_FIELD, true)?;
        if let Some(r) = &req.reason {
            check_text("reason", r, MAX_REASON, false)?;
        }
        if let Some(k) = &req.idempotency_key {
            check_text("idempotency_key", k, MAX_IDEMPOTENCY_KEY, false)?;
            if let Some(&i) = g.idempotency.get(&(app.to_string(), k.clone())) {
                return Ok(Outcome::Existing(Box::new(g.built[i].event.clone())));
            }
            if let Some(seq) = self.shared.store.idempotent(app, k)? {
                let e = read_event(&*self.shared.store, app, seq)
                    .map_err(|e| AppendError::WriteFailed(e.to_string()))?;
                return Ok(Outcome::Existing(Box::new(e)));
            }
        }
        let draft = self.draft(g, app, req.command)?;
        let i = self.chain(
            g,
            app,
            req.actor,
            req.idempotency_key,
            req.reason,
            draft,
            None,
        )?;
        Ok(Outcome::New(i))
    }

    fn draft(&mut self, g: &Group, app: &str, cmd: Command) -> Result<Draft, AppendError> {
        let subject = |class: &str, id: &str| {
            Some(Subject {
                class: class.into(),
                object_id: id.into(),
            })
        };
        let schema = self.state(app)?.schema.clone();
        Ok(match cmd {
            Command::CreateRecord {
                class,
                object_id,
                fields,
            } => {
                let fields = validate::check_create(&schema, &class, &fields)?;
                self.check_pointers(g, app, &class, &fields)?;
                let id = match object_id {
                    Some(id) => {
                        if !is_valid_object_id(&id) {
                            return Err(bad(
                                "objectId",
                                format!("{id:?} is not 1 to 64 of [A-Za-z0-9_-]"),
                            ));
                        }
                        if self.record_state(g, app, &class, &id)? != RecordState::Absent {
                            return Err(AppendError::AlreadyExists {
                                class,
                                object_id: id,
                            });
                        }
                        id
                    }
                    None => self.new_object_id(g, app, &class)?,
                };
                let kind = if class == USER_CLASS {
                    EventKind::UserCreated
                } else {
                    EventKind::RecordCreated
                };
                Draft {
                    kind,
                    subject: subject(&class, &id),
                    payload: json!({"fields": fields}),
                    indexed: true,
                    mark: None,
                }
            }
            Command::UpdateRecord {
                class,
                object_id,
                set,
                unset,
            } => {
                let (set, unset) = validate::check_update(&schema, &class, &set, &unset)?;
                self.require_live(g, app, &class, &object_id)?;
                self.check_pointers(g, app, &class, &set)?;
                let kind = if class == USER_CLASS {
                    EventKind::UserUpdated
                } else {
                    EventKind::RecordUpdated
                };
                Draft {
                    kind,
                    subject: subject(&class, &object_id),
                    payload: json!({"set": set, "unset": unset}),
                    indexed: true,
                    mark: None,
                }
            }
            Command::DeleteRecord { class, object_id } => {
                if schema.class(&class).is_none() {
                    return Err(validate::ValidationError::UnknownClass { class }.into());
                }
                self.require_live(g, app, &class, &object_id)?;
                let kind = if class == USER_CLASS {
                    EventKind::UserDeleted
                } else {
                    EventKind::RecordDeleted
                };
                Draft {
                    kind,
                    subject: subject(&class, &object_id),
                    payload: json!({}),
                    indexed: true,
                    mark: None,
                }
            }
            Command::SignRecord {
                class,
                object_id,
                version_seq,
                meaning,
                printed_name,
            } => {
                check_text("printed_name", &printed_name, MAX_ACTOR_FIELD, false)?;
                self.require_live(g, app, &class, &object_id)?;
                let latest = self.latest_data_version(g, app, &class, &object_id)?;
                if latest != version_seq {
                    return Err(AppendError::OutdatedVersion {
                        class,
                        object_id,
                        given: version_seq,
                        latest,
                    });
                }
                let version_hash = match g
                    .built
                    .iter()
                    .find(|b| b.event.app == app && b.event.seq == version_seq)
                {
                    Some(b) => b.event.hash,
                    None => {
                        read_event(&*self.shared.store, app, version_seq)
                            .map_err(|e| AppendError::WriteFailed(e.to_string()))?
                            .hash
                    }
                };
                Draft {
                    kind: EventKind::RecordSigned,
                    subject: subject(&class, &object_id),
                    payload: json!({"version_seq": version_seq, "version_hash": hex::encode(version_hash), "meaning": meaning, "printed_name": printed_name}),
                    indexed: true,
                    mark: None,
                }
            }
            Command::ChangeSchema(change) => {
                let mut next = (*schema).clone();
                next.apply(&change)?;
                Draft {
                    kind: EventKind::SchemaChanged,
                    subject: None,
                    payload: change.to_json(),
                    indexed: false,
                    mark: Some(Mark::Schema),
                }
            }
            Command::ChangeRole {
                user_id,
                role,
                granted,
            } => {
                check_text("role", &role, MAX_ACTOR_FIELD, false)?;
                self.require_live(g, app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::RoleChanged,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({"role": role, "granted": granted}),
                    indexed: true,
                    mark: None,
                }
            }
            Command::Login { user_id } => {
                self.require_live(g, app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::LoginSucceeded,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({}),
                    indexed: false,
                    mark: None,
                }
            }
            Command::LoginFailed { username, detail } => {
                check_text("username", &username, MAX_ACTOR_FIELD, true)?;
                check_text("detail", &detail, MAX_REASON, true)?;
                Draft {
                    kind: EventKind::LoginFailed,
                    subject: None,
                    payload: json!({"username": username, "detail": detail}),
                    indexed: false,
                    mark: None,
                }
            }
            Command::Logout { user_id } => {
                self.require_live(g, app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::Logout,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({}),
                    indexed: false,
                    mark: None,
                }
            }
            Command::AccessDenied {
                operation,
                class,
                object_id,
            } => {
                check_text("operation", &operation, MAX_ACTOR_FIELD, false)?;
                let subj = match (&class, &object_id) {
                    (Some(c), Some(o)) => subject(c, o),
                    _ => None,
                };
                Draft {
                    kind: EventKind::AccessDenied,
                    subject: subj,
                    payload: json!({"operation": operation, "class": class, "object_id": object_id}),
                    indexed: false,
                    mark: None,
                }
            }
            Command::AccountLocked {
                user_id,
                failed_attempts,
            } => {
                self.require_live(g, app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::AccountLocked,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({"failed_attempts": failed_attempts}),
                    indexed: false,
                    mark: None,
                }
            }
        })
    }

    fn latest_data_version(
        &self,
        g: &Group,
        app: &str,
        class: &str,
        id: &str,
    ) -> Result<u64, AppendError> {
        let is_data = |k: u8| {
            EventKind::from_code(k).is_some_and(|k| {
                k.is_record_change() || matches!(k, EventKind::UserCreated | EventKind::UserUpdated)
            })
        };
        if let Some((seq, k)) =
            g.versions
                .get(&(app.to_string(), class.to_string(), id.to_string()))
        {
            if is_data(*k) {
                return Ok(*seq);
            }
        }
        let pending_sig_or_role = g.built.iter().rev().find(|b| {
            b.event.app == app
                && b.event
                    .subject
                    .as_ref()
                    .is_some_and(|s| s.class == class && s.object_id == id)
                && is_data(b.event.kind.code())
        });
        if let Some(b) = pending_sig_or_role {
            return Ok(b.event.seq);
        }
        Ok(self
            .shared
            .store
            .versions(app, class, id)?
            .into_iter()
            .rev()
            .find(|(_, k)| is_data(*k))
            .map_or(0, |(s, _)| s))
    }

    /// Chains a draft onto the app: next seq, time, hash. Signing happens per group.
    #[allow(clippy::too_many_arguments)]
    fn chain(
        &mut self,
        g: &mut Group,
        app: &str,
        actor: Actor,
        idempotency_key: Option<String>,
        reason: Option<String>,
        draft: Draft,
        new_state: Option<AppState>,
    ) -> Result<usize, AppendError> {
        let payload =
            serde_json::to_vec(&draft.payload).map_err(|e| bad("payload", e.to_string()))?;
        if payload.len() > MAX_PAYLOAD {
            return Err(bad(
                "payload",
                format!(
                    "{} bytes, more than the {MAX_PAYLOAD}-byte limit",
                    payload.len()
                ),
            ));
        }
        let now = self.clock.now();
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        let prior = match new_state {
            Some(s) => {
                // A new app: there is no prior state to restore but removal.
                g.undo.entry(app.to_string()).or_insert(None);
                self.apps.insert(app.to_string(), s);
                None
            }
            None => self.apps.get(app).cloned(),
        };
        if let Some(p) = &prior {
            g.undo
                .entry(app.to_string())
                .or_insert_with(|| Some(p.clone()));
        }
        let state = self
            .apps
            .get_mut(app)
            .ok_or_else(|| AppendError::UnknownApp(app.to_string()))?;
        let (seq, prev_hash, recorded_at) = match prior {
            Some(p) => (p.head.seq + 1, p.head.hash, now.max(p.head.recorded_at)),
            None => (1, GENESIS_PREV_HASH, now),
        };
        let mut event = Event {
            app: app.to_string(),
            seq,
            id,
            recorded_at,
            actor,
            idempotency_key,
            reason,
            kind: draft.kind,
            subject: draft.subject,
            payload_digest: payload_digest(&payload),
            payload: Some(payload),
            prev_hash,
            key_id: state.key.id(),
            hash: [0; 32],
            signature: [0; 64],
        };
        event.hash = event_hash(&event);
        state.head = Head {
            seq,
            hash: event.hash,
            recorded_at,
        };
        if draft.kind == EventKind::SchemaChanged {
            let mut next = (*state.schema).clone();
            let change = SchemaChange::from_json(&draft.payload)?;
            next.apply(&change)?;
            state.schema = Arc::new(next);
        }
        let key = state.key.clone();
        let sets_state = match draft.kind {
            EventKind::RecordCreated | EventKind::UserCreated => Some(crate::store::RecordState {
                deleted: false,
                since: seq,
            }),
            EventKind::RecordDeleted | EventKind::UserDeleted => Some(crate::store::RecordState {
                deleted: true,
                since: seq,
            }),
            _ => None,
        };
        let version = match (&event.subject, draft.indexed) {
            (Some(s), true) => {
                g.versions.insert(
                    (app.to_string(), s.class.clone(), s.object_id.clone()),
                    (seq, draft.kind.code()),
                );
                Some((s.class.clone(), s.object_id.clone(), draft.kind.code()))
            }
            _ => None,
        };
        if let Some(k) = &event.idempotency_key {
            g.idempotency
                .insert((app.to_string(), k.clone()), g.built.len());
        }
        g.built.push(Built {
            write: EventWrite {
                seq,
                bytes: Vec::new(),
                version,
                sets_state,
                idempotency_key: event.idempotency_key.clone(),
                mark: draft.mark,
            },
            event,
            key,
        });
        Ok(g.built.len() - 1)
    }

    fn create_app(
        &mut self,
        g: &mut Group,
        app: &str,
        source: &str,
        classes: Vec<ClassDef>,
    ) -> Result<Outcome, AppendError> {
        if !is_valid_app_name(app) {
            return Err(bad(
                "app",
                format!("{app:?} must be 1 to 64 of [a-z0-9_-], starting with a letter"),
            ));
        }
        if self.apps.contains_key(app) || !self.shared.store.marked(app, Mark::Key)?.is_empty() {
            return Err(AppendError::AppExists(app.to_string()));
        }
        let change = SchemaChange::Define {
            source: source.to_string(),
            classes,
        };
        let mut schema = AppSchema::default();
        schema.apply(&change)?;
        let key = Arc::new(self.shared.keys.create(app)?);
        let pk: PublicKey = key.public();
        let genesis = Draft {
            kind: EventKind::AppCreated,
            subject: None,
            payload: json!({"app": app, "format": "audit-ledger/v1", "key": {"key_id": pk.key_id.to_string(), "public_key": pk.hex()}}),
            indexed: false,
            mark: Some(Mark::Key),
        };
        let placeholder = Head {
            seq: 0,
            hash: GENESIS_PREV_HASH,
            recorded_at: Timestamp(i64::MIN),
        };
        let state = AppState {
            head: placeholder,
            schema: Arc::new(AppSchema::default()),
            key,
        };
        self.chain(g, app, Actor::system(), None, None, genesis, Some(state))?;
        let define = Draft {
            kind: EventKind::SchemaChanged,
            subject: None,
            payload: change.to_json(),
            indexed: false,
            mark: Some(Mark::Schema),
        };
        let i = self.chain(g, app, Actor::system(), None, None, define, None)?;
        Ok(Outcome::New(i))
    }

    fn rotate(
        &mut self,
        g: &mut Group,
        app: &str,
        actor: Actor,
        reason: Option<String>,
    ) -> Result<Outcome, AppendError> {
        let old = self.state(app)?.key.id();
        if let Some(r) = &reason {
            check_text("reason", r, MAX_REASON, false)?;
        }
        let new_key = Arc::new(self.shared.keys.create(app)?);
        let pk = new_key.public();
        let draft = Draft {
            kind: EventKind::KeyRotated,
            subject: None,
            payload: json!({"key": {"key_id": pk.key_id.to_string(), "public_key": pk.hex()}, "previous_key_id": old.to_string()}),
            indexed: false,
            mark: Some(Mark::Key),
        };
        let i = self.chain(g, app, actor, None, reason, draft, None)?;
        if let Some(s) = self.apps.get_mut(app) {
            s.key = new_key;
        }
        g.retire.push((app.to_string(), old));
        Ok(Outcome::New(i))
    }
}

fn run_syncer(shared: &Shared, rx: mpsc::Receiver<Synced>) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        if let Err(e) = shared.store.sync() {
            shared.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "fsync failed; refusing further writes");
            for g in groups {
                for (reply, _) in g.replies {
                    let _ = reply.send(Err(AppendError::Durability(e.to_string())));
                }
            }
            continue;
        }
        {
            let mut durable = shared.durable.write().unwrap_or_else(|p| p.into_inner());
            for g in &groups {
                for (app, view) in &g.views {
                    durable.insert(app.clone(), view.clone());
                }
            }
        }
        for g in groups {
            for (reply, r) in g.replies {
                let _ = reply.send(r);
            }
            for (app, key) in g.retire {
                if let Err(e) = shared.keys.retire(&app, key) {
                    tracing::warn!(app = %app, key = %key, error = %e, "could not destroy a rotated-out key");
                }
            }
        }
    }
}
