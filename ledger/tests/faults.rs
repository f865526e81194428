//! Storage faults: a failed write records nothing and the ledger carries on once the store
//! works again; a failed fsync makes the ledger refuse every later write until reopened.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use ledger::store::{
    AppBatch, Mark, MemoryStore, RawEvents, RecordState, Store, StoreError, StoreResult,
};
use ledger::{
    AppendError, Ledger, LedgerConfig, ManualClock, MemoryKeyStore, Timestamp, VerifyMode,
    VerifyPolicy,
};

/// A store that fails writes or syncs while told to.
#[derive(Default)]
struct FaultyStore {
    inner: MemoryStore,
    fail_writes: AtomicBool,
    fail_syncs: AtomicBool,
}

impl Store for FaultyStore {
    fn apps(&self) -> StoreResult<Vec<String>> {
        self.inner.apps()
    }
    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        self.inner.event(app, seq)
    }
    fn last_event(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        self.inner.last_event(app)
    }
    fn scan(&self, app: &str, from: u64) -> RawEvents<'_> {
        self.inner.scan(app, from)
    }
    fn versions(&self, app: &str, class: &str, object_id: &str) -> StoreResult<Vec<(u64, u8)>> {
        self.inner.versions(app, class, object_id)
    }
    fn record_state(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
    ) -> StoreResult<Option<RecordState>> {
        self.inner.record_state(app, class, object_id)
    }
    fn idempotent(&self, app: &str, key: &str) -> StoreResult<Option<u64>> {
        self.inner.idempotent(app, key)
    }
    fn head_record(&self, app: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
        self.inner.head_record(app)
    }
    fn marked(&self, app: &str, mark: Mark) -> StoreResult<Vec<u64>> {
        self.inner.marked(app, mark)
    }
    fn write(&self, batches: &[AppBatch]) -> StoreResult<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other(
                "No space left on device (simulated)",
            )));
        }
        self.inner.write(batches)
    }
    fn sync(&self) -> StoreResult<()> {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other(
                "fsync: Input/output error (simulated)",
            )));
        }
        self.inner.sync()
    }
}

fn faulty_ledger() -> (Ledger, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore::default());
    let config = LedgerConfig {
        store: store.clone(),
        keys: Arc::new(MemoryKeyStore::new([5; 32])),
        clock: Arc::new(ManualClock::new(Timestamp(T0))),
        seed: Some([5; 32]),
        max_group: 4096,
    };
    let l = Ledger::open(config).expect("open");
    l.ensure_builtin_apps().expect("apps");
    (l, store)
}

#[test]
fn a_failed_write_records_nothing_and_the_ledger_carries_on() {
    let (l, store) = faulty_ledger();
    let u = user(&l, "gxp", "mgr");
    let before = export_text(&l, "gxp");
    store.fail_writes.store(true, Ordering::SeqCst);
    // Several at once, so that groups are built on top of the failing one.
    let pending: Vec<_> = (0..20)
        .map(|_| l.submit(req("gxp", ledger::Command::Login { user_id: u.clone() })))
        .collect();
    for p in pending {
        let e = p.wait().expect_err("must fail");
        assert!(matches!(e, AppendError::WriteFailed(_)), "{e:?}");
        assert!(
            e.to_string().contains("nothing was recorded")
                || e.to_string().contains("not recorded"),
            "{e}"
        );
    }
    assert!(matches!(
        l.rotate_key("gxp", actor(), None),
        Err(AppendError::WriteFailed(_))
    ));
    assert_eq!(
        export_text(&l, "gxp"),
        before,
        "a failed write left something behind"
    );

    store.fail_writes.store(false, Ordering::SeqCst);
    let next = create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("works again");
    let head_before: u64 = before
        .lines()
        .nth(1)
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["head_seq"].as_u64())
        .expect("head");
    assert_eq!(
        next.event.seq,
        head_before + 1,
        "no gap where the failed appends were"
    );
    l.rotate_key("gxp", actor(), None)
        .expect("rotation works again");
    create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("signed with the new key");
    let r = l
        .verify("gxp", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify");
    assert!(r.ok(), "{:?}", r.failure);
}

#[test]
fn a_failed_fsync_refuses_every_later_write() {
    let (l, store) = faulty_ledger();
    let u = user(&l, "gxp", "mgr");
    store.fail_syncs.store(true, Ordering::SeqCst);
    let e = create(&l, "gxp", "ValidationLog", validation_log(&u)).expect_err("not durable");
    assert!(matches!(e, AppendError::Durability(_)), "{e:?}");
    store.fail_syncs.store(false, Ordering::SeqCst);
    let e =
        create(&l, "gxp", "ValidationLog", validation_log(&u)).expect_err("refused until reopened");
    assert!(matches!(e, AppendError::Durability(_)), "{e:?}");
    assert!(e.to_string().contains("restarted"), "{e}");
}
