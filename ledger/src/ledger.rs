//! The ledger handle: opens a store, keeps each app's head, schema and key, and appends
//! with group commit.
//!
//! Appends flow through four threads (see [`crate::commit`]): a builder that checks and
//! chains, a signer, a writer, and a syncer that fsyncs and answers.
//!
//! Readers see only durable events: the syncer publishes each app's durable head.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::checkpoint::CheckpointConfig;
use crate::codec;
use crate::command::*;
use crate::commit::{run_signer, run_syncer, run_writer, Builder, Job, Pipeline};
use crate::event::{Actor, Event, EventKind, Hash32, KeyId};
use crate::keys::{AppKey, FileKeyStore, KeyStore, KeyStoreError, MemoryKeyStore};
use crate::merkle::Frontier;
use crate::schema::{AppSchema, ClassDef, SchemaChange};
use crate::store::{Mark, MemoryStore, SledStore, Store, StoreError};
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
    /// Signed checkpoints: the origin of each app's log and the server's schedule.
    pub checkpoints: CheckpointConfig,
    /// Room to keep free on the store's file system: below it (or on a read-only file
    /// system) appends are refused before anything is written, and resume by themselves
    /// once there is room again. 0 turns the check off.
    pub min_free_bytes: u64,
}

/// The default of [`LedgerConfig::min_free_bytes`] for a store on disk: room for sled to
/// finish the writes and the projections in flight when the check last passed.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

impl LedgerConfig {
    /// The embedded store in `<dir>/store` (sled), keys in `<dir>/keys`, the system clock.
    pub fn in_dir(dir: &Path) -> Result<Self, StoreError> {
        Ok(LedgerConfig {
            store: Arc::new(SledStore::open(&dir.join("store"))?),
            keys: Arc::new(FileKeyStore::new(dir.join("keys"))),
            clock: Arc::new(SystemClock),
            seed: None,
            max_group: 4096,
            checkpoints: CheckpointConfig::default(),
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
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
            checkpoints: CheckpointConfig::default(),
            min_free_bytes: 0,
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
    /// The configuration cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
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

/// What the builder holds per app: the chain's end (including events in flight), the
/// schema there, and the active signing key.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) head: Head,
    pub(crate) schema: Arc<AppSchema>,
    pub(crate) key: Arc<AppKey>,
    /// The right edge of the app's Merkle tree, including events in flight.
    pub(crate) tree: Frontier,
    /// The last event on the app's user records, including events in flight, or the head
    /// when the state was loaded ([`Ledger::users_changed`]).
    pub(crate) users_changed: u64,
}

/// What readers see of an app: its durable head and the schema there.
#[derive(Clone)]
pub(crate) struct AppView {
    pub(crate) head: Head,
    pub(crate) schema: Arc<AppSchema>,
    /// [`AppState::users_changed`] as of the durable head.
    pub(crate) users_changed: u64,
}

/// Set once making writes durable failed: from then on nothing may be acknowledged (the
/// kernel may have dropped pages an earlier write depended on, even if a later fsync
/// succeeds), until the ledger is reopened from what the disk holds.
#[derive(Default)]
pub(crate) struct Poison {
    set: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Poison {
    /// Records the first failure.
    pub(crate) fn set(&self, why: &str) {
        let mut first = self.why.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(why.to_string());
        }
        self.set.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a failure was recorded.
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The first failure, if any.
    pub(crate) fn why(&self) -> Option<String> {
        if !self.is_set() {
            return None;
        }
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The refusal of an append made after the failure.
    pub(crate) fn refusal(&self) -> AppendError {
        AppendError::Durability(format!(
            "a write could not be made durable ({})",
            self.why().unwrap_or_default()
        ))
    }
}

/// What the handle and the commit threads share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) durable: RwLock<HashMap<String, AppView>>,
    pub(crate) poisoned: Poison,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) checkpoints: CheckpointConfig,
    /// Held while a checkpoint is cut, so that two are never cut from one previous one.
    pub(crate) checkpoint_lock: Mutex<()>,
    /// [`LedgerConfig::min_free_bytes`].
    pub(crate) min_free_bytes: u64,
    /// Why appends are refused for want of room or writability, while they are.
    pub(crate) storage_refusal: RwLock<Option<String>>,
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
    pub(crate) shared: Arc<Shared>,
    /// Opened with [`Ledger::open_read_only`]: appends and checkpoints are refused.
    pub(crate) read_only: bool,
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
        crate::checkpoint::origin(&config.checkpoints.origin_prefix, "app")
            .map_err(|e| OpenError::Config(e.to_string()))?;
        let mut apps = HashMap::new();
        for app in config.store.apps()? {
            // Stores written before trees existed (or a tree left behind) catch up first.
            crate::transparency::backfill_tree(&*config.store, &app)?;
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
                        users_changed: s.users_changed,
                    },
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            store: config.store,
            keys: config.keys,
            durable: RwLock::new(durable),
            poisoned: Poison::default(),
            clock: config.clock.clone(),
            checkpoints: config.checkpoints,
            checkpoint_lock: Mutex::new(()),
            min_free_bytes: config.min_free_bytes,
            storage_refusal: RwLock::new(None),
        });
        let seed = config.seed.unwrap_or_else(|| {
            let mut s = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let (sign_tx, sign_rx) = mpsc::channel();
        let (write_tx, write_rx) = mpsc::channel();
        let (sync_tx, sync_rx) = mpsc::channel();
        let pipeline = Arc::new(Pipeline::default());
        let builder = Builder::new(
            shared.clone(),
            pipeline.clone(),
            config.clock,
            ChaCha20Rng::from_seed(seed),
            apps,
            config.max_group.max(1),
            sign_tx,
        );
        let (write_shared, sync_shared) = (shared.clone(), shared.clone());
        let threads = vec![
            std::thread::Builder::new()
                .name("ledger-builder".into())
                .spawn(move || builder.run(rx))
                .map_err(StoreError::Io)?,
            std::thread::Builder::new()
                .name("ledger-signer".into())
                .spawn(move || run_signer(sign_rx, write_tx))
                .map_err(StoreError::Io)?,
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || run_writer(&write_shared, &pipeline, write_rx, sync_tx))
                .map_err(StoreError::Io)?,
            std::thread::Builder::new()
                .name("ledger-syncer".into())
                .spawn(move || run_syncer(&sync_shared, sync_rx))
                .map_err(StoreError::Io)?,
        ];
        Ok(Ledger {
            shared,
            read_only: false,
            tx: Some(tx),
            threads,
        })
    }

    /// Opens a store to read it only, as an auditor's tool does: no signing key is needed,
    /// no thread is started and nothing is written (not even a missing Merkle tree is
    /// built: proofs then fail instead). Every append is refused with
    /// [`AppendError::ReadOnly`]. Each app's head is still checked against the store's
    /// head record, as [`Ledger::open`] does.
    pub fn open_read_only(store: Arc<dyn Store>) -> Result<Self, OpenError> {
        let mut durable = HashMap::new();
        for app in store.apps()? {
            let (head, schema) = load_view(&*store, &app)?;
            let schema = Arc::new(schema);
            durable.insert(
                app,
                AppView {
                    head,
                    schema,
                    users_changed: head.seq,
                },
            );
        }
        let shared = Arc::new(Shared {
            store,
            keys: Arc::new(crate::keys::NoKeys),
            durable: RwLock::new(durable),
            poisoned: Poison::default(),
            clock: Arc::new(SystemClock),
            checkpoints: CheckpointConfig::default(),
            checkpoint_lock: Mutex::new(()),
            min_free_bytes: 0,
            storage_refusal: RwLock::new(None),
        });
        Ok(Ledger {
            shared,
            read_only: true,
            tx: None,
            threads: Vec::new(),
        })
    }

    /// Whether the ledger was opened with [`Ledger::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Why appends are being refused, if they are: the store's file system is below
    /// [`LedgerConfig::min_free_bytes`] or read-only (this clears by itself once it has
    /// room again), or an fsync failed (this lasts until the ledger is reopened).
    pub fn write_refusal(&self) -> Option<String> {
        if let Some(why) = self.shared.poisoned.why() {
            return Some(format!(
                "making writes durable failed ({why}): writes are refused until the server is restarted"
            ));
        }
        self.shared
            .storage_refusal
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn send(&self, job: Job, rx: oneshot::Receiver<Result<Appended, AppendError>>) -> Pending {
        if self.read_only {
            drop(job);
            let (reply, refused) = oneshot::channel();
            let _ = reply.send(Err(AppendError::ReadOnly));
            return Pending(refused);
        }
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

    /// A number that changes whenever a durable event changes one of the app's user
    /// records (`_User`): the last such event, or the head at the ledger's open (no user
    /// changed between the open and that event). Equal readings mean no user record
    /// changed in between, so what was read of a user at the first still holds; a cache
    /// of users reads it before it reads a user. `None` for an unknown app.
    pub fn users_changed(&self, app: &str) -> Option<u64> {
        self.views().get(app).map(|v| v.users_changed)
    }

    /// The app's current (durable) schema.
    pub fn schema(&self, app: &str) -> Option<Arc<AppSchema>> {
        self.views().get(app).map(|v| v.schema.clone())
    }

    /// The app's schema as it stood after event `seq`.
    pub fn schema_at(&self, app: &str, seq: u64) -> Result<AppSchema, ReadError> {
        // Only durable schema events count, like every read.
        let durable = self.durable_seq(app)?;
        schema_upto(&*self.shared.store, app, seq.min(durable))
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
                let e = codec::decode(&bytes).map_err(|detail| ReadError::Corrupt {
                    app: app_name.clone(),
                    seq,
                    detail,
                })?;
                stored_as(&app_name, seq, e)
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
    let e = codec::decode(&bytes).map_err(|detail| ReadError::Corrupt {
        app: app.into(),
        seq,
        detail,
    })?;
    stored_as(app, seq, e)
}

/// The event read as event `seq` of `app`, if it is that event: an index pointing at
/// another event's bytes is corruption, not an answer.
fn stored_as(app: &str, seq: u64, e: Event) -> Result<Event, ReadError> {
    if e.seq != seq || e.app != app {
        return Err(ReadError::Corrupt {
            app: app.into(),
            seq,
            detail: format!(
                "the bytes stored as this event are event {} of app {}",
                e.seq, e.app
            ),
        });
    }
    Ok(e)
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

/// An app's durable head, checked against the store's head record, and its schema there.
fn load_view(store: &dyn Store, app: &str) -> Result<(Head, AppSchema), OpenError> {
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
    // The head record is written after the events it counts (rolled forward at open if
    // sled lost it): if they disagree, events were removed or rewritten behind the
    // ledger's back. Refuse to build on that.
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
    Ok((head, schema))
}

pub(crate) fn load_app(
    store: &dyn Store,
    keys: &dyn KeyStore,
    app: &str,
) -> Result<AppState, OpenError> {
    let corrupt = |seq: u64, detail: String| OpenError::Corrupt {
        app: app.into(),
        seq,
        detail,
    };
    let (head, schema) = load_view(store, app)?;
    let tree = crate::transparency::load_frontier(store, app, &head)?;
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
        tree,
        users_changed: head.seq,
    })
}
