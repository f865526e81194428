//! Storage behind a narrow trait: events by sequence number (for sled, their bodies in an
//! append-only file per app, [`segment`], placed by an index file, [`index`]), the
//! per-record version index,
//! the idempotency index, marks for schema and key events, each app's Merkle tree nodes
//! (written with the events) and its signed checkpoints. Backends: [`SledStore`]
//! (the embedded default) and [`MemoryStore`] (tests). Both lay keys out as [`layout`]
//! says, so what one stores the other would read the same way.
//!
//! A [`Store::write`] is atomic per app and visible at once but not yet durable;
//! [`Store::sync`] makes everything written so far durable, [`Store::sync_appends`] at
//! least the events (a store may restore its other entries from them at open). The
//! ledger acknowledges an append only after a `sync_appends` that began after its
//! `write`.

pub mod index;
pub mod layout;
mod memory;
pub mod segment;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::{Behind, FailAt, SledStore};

/// One event to store, with the index entries it implies.
#[derive(Clone, Debug, Default)]
pub struct EventWrite {
    /// Its sequence number.
    pub seq: u64,
    /// Its encoded bytes ([`crate::codec`]).
    pub bytes: Vec<u8>,
    /// (class, objectId, kind code) for the version index.
    pub version: Option<(String, String, u8)>,
    /// The record state this event sets: on creation and on deletion only.
    pub sets_state: Option<RecordState>,
    /// The idempotency key to remember.
    pub idempotency_key: Option<String>,
    /// Which mark list the event joins, if any.
    pub mark: Option<Mark>,
    /// The Merkle tree nodes this event completes, level 0 (its leaf hash) first:
    /// `trailing_zeros(seq) + 1` hashes ([`crate::merkle::StoredTree`]).
    pub tree_nodes: Vec<[u8; 32]>,
}

impl EventWrite {
    /// The write of a stored event (`bytes`, its encoding) with the index entries its kind,
    /// subject and idempotency key imply, as the ledger wrote them.
    pub fn of(e: &crate::Event, bytes: Vec<u8>, tree_nodes: Vec<[u8; 32]>) -> Self {
        let version = match &e.subject {
            Some(s) if e.kind.in_version_index() => {
                Some((s.class.clone(), s.object_id.clone(), e.kind.code()))
            }
            _ => None,
        };
        EventWrite {
            seq: e.seq,
            bytes,
            version,
            sets_state: e.kind.sets_state(e.seq),
            idempotency_key: e.idempotency_key.clone(),
            mark: e.kind.mark(),
            tree_nodes,
        }
    }
}

/// Whether a record is live or deleted, and since which event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordState {
    /// Deleted (a tombstone) or live.
    pub deleted: bool,
    /// The event that created or deleted it.
    pub since: u64,
}

/// Lists of events the ledger must find without a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// `schema.changed` (and genesis, which defines nothing but starts the list).
    Schema,
    /// Events that declare a signing key: `app.created` and `key.rotated`.
    Key,
}

/// Everything one group commit writes for one app.
#[derive(Clone, Debug)]
pub struct AppBatch {
    /// The app.
    pub app: String,
    /// Its new events, in order.
    pub events: Vec<EventWrite>,
    /// The new head (seq, hash), written in the same atomic batch. The tree size record
    /// moves with it: the events carry their tree nodes.
    pub head: (u64, [u8; 32]),
}

/// The tree nodes of one event: (seq, the nodes it completes, level 0 first).
pub type TreeNodes = (u64, Vec<[u8; 32]>);

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory is held by another process.
    #[error("the data directory {path} is in use by another process (only one process may open it); stop that process or use another directory")]
    Locked {
        /// The directory.
        path: String,
    },
    /// An I/O error.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The backend reported corruption.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// Any other backend error.
    #[error("storage error: {0}")]
    Backend(String),
    /// A write failed and could not be undone: the store's next open may find it whole
    /// and restore it. A retry with the same idempotency key then gets the restored event.
    #[error("a write failed and could not be undone, so it may be restored when the store is next opened (retry with the same idempotency key): {0}")]
    OutcomeUnknown(String),
}

/// Room and writability of the file system a store lives on, as [`Store::space`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    /// The store's directory.
    pub path: String,
    /// Bytes an unprivileged writer may still use there.
    pub available: u64,
    /// Whether the file system is mounted read-only.
    pub read_only: bool,
}

/// An I/O error as a store error; the two an operator must act on get their plain names
/// (sled words some I/O errors with their Debug form, the OS with its error number).
pub(crate) fn io_error(io: std::io::Error) -> StoreError {
    StoreError::Io(match io.kind() {
        std::io::ErrorKind::StorageFull => {
            std::io::Error::new(io.kind(), "no space left on device")
        }
        std::io::ErrorKind::ReadOnlyFilesystem => {
            std::io::Error::new(io.kind(), "read-only file system")
        }
        _ => io,
    })
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Raw events in sequence order: (key sequence number, stored bytes).
pub type RawEvents<'a> = Box<dyn Iterator<Item = StoreResult<(u64, Vec<u8>)>> + Send + 'a>;

/// Takes events lent by [`Store::read_range`]: (seq, stored bytes), or why one could not
/// be read.
pub type LendEvent<'a> = dyn FnMut(StoreResult<(u64, &[u8])>) + 'a;

/// An event store. Implementations must make `write` atomic per app.
pub trait Store: Send + Sync + 'static {
    /// Names of the apps that have at least one event.
    fn apps(&self) -> StoreResult<Vec<String>>;
    /// The stored bytes of event `seq`.
    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>>;
    /// The last event: (seq, bytes).
    fn last_event(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>>;
    /// Events with `seq >= from`, in order.
    fn scan(&self, app: &str, from: u64) -> RawEvents<'_>;
    /// Events `from..=to` in order, as [`Store::scan`] gives them, each lent to `each`
    /// rather than allocated: for long sequential reads (verification).
    fn read_range(&self, app: &str, from: u64, to: u64, each: &mut LendEvent<'_>) {
        for r in self.scan(app, from) {
            match r {
                Ok((seq, _)) if seq > to => return,
                Ok((seq, bytes)) => each(Ok((seq, &bytes))),
                Err(e) => each(Err(e)),
            }
        }
    }
    /// The version index of one record: (seq, kind code), in order.
    fn versions(&self, app: &str, class: &str, object_id: &str) -> StoreResult<Vec<(u64, u8)>>;
    /// A record's state in one point read: `None` if it never existed, else whether it is
    /// deleted and the event that last set that state (its creation or its deletion).
    fn record_state(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
    ) -> StoreResult<Option<RecordState>>;
    /// The event that carried an idempotency key.
    fn idempotent(&self, app: &str, key: &str) -> StoreResult<Option<u64>>;
    /// The head record: (seq, hash) of the last event written, kept apart from the events
    /// so that cutting events off the end of the chain shows.
    fn head_record(&self, app: &str) -> StoreResult<Option<(u64, [u8; 32])>>;
    /// Sequence numbers of the events with a mark, in order.
    fn marked(&self, app: &str, mark: Mark) -> StoreResult<Vec<u64>>;
    /// Writes batches, app by app, each whole or not at all, or else failing with
    /// [`StoreError::OutcomeUnknown`] (what it left may be found whole at the next open);
    /// visible at once, durable after the next `sync` (the events: after the next
    /// `sync_appends`).
    fn write(&self, batches: &[AppBatch]) -> StoreResult<()>;
    /// Makes every completed `write` durable.
    fn sync(&self) -> StoreResult<()>;
    /// Makes the events of every completed `write` durable: what acknowledging them
    /// needs. A store may defer the rest if it can restore it from the events when it
    /// opens ([`SledStore`] rolls its record indexes forward from its index file).
    fn sync_appends(&self) -> StoreResult<()> {
        self.sync()
    }
    /// Whether a `write` that returned `Ok` has made its events durable already (then a
    /// written group is acknowledged even if the store fails afterwards).
    fn writes_durable(&self) -> bool {
        false
    }
    /// Why the store refuses every further write until it is opened again, if it does
    /// (after a failure that left its files in doubt).
    fn refuses_writes(&self) -> Option<String> {
        None
    }
    /// The room left on the store's file system and whether it is writable, for the
    /// ledger to refuse writes before the disk fills; `None` for a store with no disk.
    fn space(&self) -> StoreResult<Option<Space>> {
        Ok(None)
    }
    /// How many events the app's Merkle tree covers; `None` if the store predates trees.
    fn tree_size(&self, app: &str) -> StoreResult<Option<u64>>;
    /// The Merkle tree nodes event `seq` completed, level 0 first.
    fn tree_nodes(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<[u8; 32]>>>;
    /// Writes tree nodes of events already stored, and the new tree size, atomically:
    /// for building the tree of a store written before trees.
    fn write_tree(&self, app: &str, nodes: &[TreeNodes], size: u64) -> StoreResult<()>;
    /// Keeps a signed checkpoint of tree size `size` (its note text).
    fn put_checkpoint(&self, app: &str, size: u64, note: &[u8]) -> StoreResult<()>;
    /// The checkpoints of tree size `from_size` or more, in size order: (size, note).
    fn checkpoints(&self, app: &str, from_size: u64) -> StoreResult<Vec<(u64, Vec<u8>)>>;
    /// The checkpoint of the largest tree size.
    fn last_checkpoint(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>>;
}
