//! Storage faults: a failed write records nothing and the ledger carries on once the store
//! works again; a failed fsync makes the ledger refuse every later write until reopened;
//! a file system below the free-space reserve, or read-only, refuses appends before
//! anything is written, and writes resume once it has room again.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

use common::*;
use ledger::store::{
    AppBatch, Mark, MemoryStore, RawEvents, RecordState, Space, Store, StoreError, StoreResult,
    TreeNodes,
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
    /// Fail this many syncs, then work again.
    fail_next_syncs: AtomicUsize,
    /// How long a failing sync takes (so later groups pile up behind it), in ms.
    failing_sync_ms: AtomicUsize,
    /// Fail writes of this app only.
    fail_app: Mutex<Option<String>>,
    /// Hide this stored event from reads (as if removed behind the ledger's back).
    hidden: Mutex<Option<u64>>,
    /// What `space` reports (None: no disk).
    space: Mutex<Option<Space>>,
}

impl FaultyStore {
    /// The fault a sync is set to meet, if any.
    fn injected_sync_fault(&self) -> StoreResult<()> {
        let once = self
            .fail_next_syncs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if once || self.fail_syncs.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(
                self.failing_sync_ms.load(Ordering::SeqCst) as u64,
            ));
            return Err(StoreError::Io(std::io::Error::other(
                "fsync: Input/output error (simulated)",
            )));
        }
        Ok(())
    }
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
        let hidden = *self.hidden.lock().unwrap_or_else(|p| p.into_inner());
        Box::new(
            self.inner
                .scan(app, from)
                .filter(move |r| !matches!((r, hidden), (Ok((s, _)), Some(h)) if *s == h)),
        )
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
        let failing_app = self
            .fail_app
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let this_app_fails = batches.iter().any(|b| Some(&b.app) == failing_app.as_ref());
        if self.fail_writes.load(Ordering::SeqCst) || this_app_fails {
            return Err(StoreError::Io(std::io::Error::other(
                "No space left on device (simulated)",
            )));
        }
        self.inner.write(batches)
    }
    fn sync(&self) -> StoreResult<()> {
        self.injected_sync_fault()?;
        self.inner.sync()
    }
    fn sync_appends(&self) -> StoreResult<()> {
        self.injected_sync_fault()?;
        self.inner.sync_appends()
    }
    fn space(&self) -> StoreResult<Option<Space>> {
        Ok(self.space.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    fn tree_size(&self, app: &str) -> StoreResult<Option<u64>> {
        self.inner.tree_size(app)
    }
    fn tree_nodes(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<[u8; 32]>>> {
        self.inner.tree_nodes(app, seq)
    }
    fn write_tree(&self, app: &str, nodes: &[TreeNodes], size: u64) -> StoreResult<()> {
        self.inner.write_tree(app, nodes, size)
    }
    fn put_checkpoint(&self, app: &str, size: u64, note: &[u8]) -> StoreResult<()> {
        self.inner.put_checkpoint(app, size, note)
    }
    fn checkpoints(&self, app: &str, from_size: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.inner.checkpoints(app, from_size)
    }
    fn last_checkpoint(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        self.inner.last_checkpoint(app)
    }
}

fn faulty_ledger() -> (Ledger, Arc<FaultyStore>) {
    faulty_ledger_keeping(0)
}

fn faulty_ledger_keeping(min_free_bytes: u64) -> (Ledger, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore::default());
    let config = LedgerConfig {
        store: store.clone(),
        keys: Arc::new(MemoryKeyStore::new([5; 32])),
        clock: Arc::new(ManualClock::new(Timestamp(T0))),
        seed: Some([5; 32]),
        max_group: 4096,
        checkpoints: Default::default(),
        min_free_bytes,
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
    let head_before = export_head_seq(&before);
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

fn set_space(store: &FaultyStore, available: u64, read_only: bool) {
    *store.space.lock().unwrap_or_else(|p| p.into_inner()) = Some(Space {
        path: "/data/store".into(),
        available,
        read_only,
    });
}

#[test]
fn a_full_or_read_only_disk_refuses_appends_before_writing_and_writes_resume_with_room() {
    let (l, store) = faulty_ledger_keeping(1_000_000);
    set_space(&store, 5_000_000, false);
    let u = user(&l, "gxp", "mgr");
    assert_eq!(l.write_refusal(), None);
    let before = export_text(&l, "gxp");

    // Below the reserve: every append is refused, naming the directory and the figures.
    set_space(&store, 999_999, false);
    let pending: Vec<_> = (0..10)
        .map(|_| l.submit(req("gxp", ledger::Command::Login { user_id: u.clone() })))
        .collect();
    for p in pending {
        let e = p.wait().expect_err("no room");
        assert!(matches!(e, AppendError::StorageUnavailable(_)), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("/data/store") && msg.contains("1.0 MiB free"),
            "{msg}"
        );
        assert!(msg.contains("nothing was recorded"), "{msg}");
    }
    assert!(matches!(
        l.rotate_key("gxp", actor(), None),
        Err(AppendError::StorageUnavailable(_))
    ));
    let refusal = l.write_refusal().expect("the refusal is reported");
    assert!(refusal.contains("reserve"), "{refusal}");

    // A read-only file system: refused too, saying so.
    set_space(&store, 5_000_000, true);
    let e = create(&l, "gxp", "ValidationLog", validation_log(&u)).expect_err("read-only");
    assert!(e.to_string().contains("read-only file system"), "{e}");
    assert_eq!(
        export_text(&l, "gxp"),
        before,
        "a refused append left something behind"
    );

    // Room again: writes resume with no gap, and the chain verifies.
    set_space(&store, 1_000_000, false);
    let next = create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("room again");
    let head_before = export_head_seq(&before);
    assert_eq!(next.event.seq, head_before + 1);
    assert_eq!(l.write_refusal(), None);
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
    assert!(l.write_refusal().is_some_and(|r| r.contains("restarted")));
}

#[test]
fn nothing_is_acknowledged_after_a_failed_fsync_even_if_the_next_one_works() {
    let (l, store) = faulty_ledger();
    let u = user(&l, "gxp", "mgr");
    // The next fsync fails, slowly: meanwhile later groups are built, written, and wait
    // for the syncer. The sync after the failed one would succeed.
    store.failing_sync_ms.store(300, Ordering::SeqCst);
    store.fail_next_syncs.store(1, Ordering::SeqCst);
    let first = l.submit(req("gxp", ledger::Command::Login { user_id: u.clone() }));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let later: Vec<_> = (0..20)
        .map(|_| l.submit(req("gxp", ledger::Command::Login { user_id: u.clone() })))
        .collect();
    for p in std::iter::once(first).chain(later) {
        let e = p.wait().expect_err("nothing may be acknowledged");
        assert!(matches!(e, AppendError::Durability(_)), "{e:?}");
    }
}

#[test]
fn when_one_app_cannot_be_written_the_others_are_answered_truthfully() {
    let (l, store) = faulty_ledger();
    let g = user(&l, "gxp", "g");
    let h = user(&l, "hipaa", "h");
    *store.fail_app.lock().expect("lock") = Some("hipaa".into());
    let mut pending = Vec::new();
    for i in 0..100 {
        let (app, user_id) = if i % 2 == 0 {
            ("gxp", &g)
        } else {
            ("hipaa", &h)
        };
        let key = format!("k{i}");
        pending.push((
            app,
            key.clone(),
            l.submit(ledger::AppendRequest {
                idempotency_key: Some(key),
                ..req(
                    app,
                    ledger::Command::Login {
                        user_id: user_id.clone(),
                    },
                )
            }),
        ));
    }
    let outcomes: Vec<(&str, String, bool)> = pending
        .into_iter()
        .map(|(app, key, p)| (app, key, p.wait().is_ok()))
        .collect();
    *store.fail_app.lock().expect("lock") = None;
    let mut acked = 0;
    for (app, key, ok) in &outcomes {
        let recorded = store.idempotent(app, key).expect("read").is_some();
        assert_eq!(
            *ok, recorded,
            "{app} {key}: answered ok={ok} but recorded={recorded}"
        );
        acked += usize::from(*ok);
        if *app == "hipaa" {
            assert!(
                !ok,
                "hipaa could not be written: {key} answered ok; outcomes {:?}",
                outcomes
                    .iter()
                    .filter(|o| o.0 == "hipaa" && o.2)
                    .map(|o| o.1.clone())
                    .collect::<Vec<_>>()
            );
        }
    }
    assert!(acked > 0, "gxp appends must go through");
    create(&l, "hipaa", "AuditUser", serde_json::json!({"fullName": "A", "email": "a@example.com", "role": "auditor", "active": true})).expect("hipaa works again");
    for app in ["gxp", "hipaa"] {
        assert!(
            l.verify(app, VerifyMode::Full, VerifyPolicy::default())
                .expect("verify")
                .ok(),
            "{app}"
        );
    }
}

#[test]
fn verification_reads_in_chunks_and_names_a_missing_event_in_a_later_chunk() {
    let (l, store) = faulty_ledger();
    let u = user(&l, "gxp", "mgr");
    // More than two reader chunks (8,192 events each).
    let pending: Vec<_> = (0..17_000)
        .map(|_| l.submit(req("gxp", ledger::Command::Login { user_id: u.clone() })))
        .collect();
    for p in pending {
        p.wait().expect("append");
    }
    let head = l.head("gxp").expect("head").seq;
    assert!(l
        .verify("gxp", VerifyMode::LinksOnly, VerifyPolicy::default())
        .expect("verify")
        .ok());
    for missing in [8_192, 8_193, 16_385, head] {
        *store.hidden.lock().expect("lock") = Some(missing);
        let r = l
            .verify("gxp", VerifyMode::LinksOnly, VerifyPolicy::default())
            .expect("verify");
        let f = r.failure.expect("a missing event is found");
        assert_eq!(f.seq, missing, "{f}");
        assert_eq!(r.last_seq, missing - 1);
    }
    *store.hidden.lock().expect("lock") = None;

    // The export's reader packs lines into reused chunk buffers of 8,192: the same
    // answers across chunk boundaries, with the right line numbers.
    let mut export = Vec::new();
    l.export(&["gxp".to_string()], &mut export).expect("export");
    let text = String::from_utf8(export).expect("utf8");
    let verify = |text: &str| {
        ledger::export::verify_export(text.as_bytes(), VerifyMode::LinksOnly, None)
            .expect("well formed")
            .remove(0)
    };
    let r = verify(&text);
    assert!(r.ok(), "{:?}", r.failure);
    assert_eq!(r.verified, head);
    let head_hash = hex::encode(l.head("gxp").expect("head").hash);
    assert_eq!(r.last_hash.as_deref(), Some(head_hash.as_str()));
    let lines: Vec<&str> = text.lines().collect();
    // Line 1 is the header, line 2 the app line: event N is line N + 2.
    for seq in [8_192u64, 8_193, 16_385, head] {
        let at = seq as usize + 1;
        let mut removed = lines.clone();
        removed.remove(at);
        let r = verify(&(removed.join("\n") + "\n"));
        let f = r.failure.expect("a missing event is found");
        assert_eq!(f.seq, seq, "removed event {seq}: {f}");
        assert_eq!(r.verified, seq - 1);

        let mut changed = lines.clone();
        let edited = changed[at].replacen(
            "\"kind\":\"session.login\"",
            "\"kind\":\"session.logout\"",
            1,
        );
        assert_ne!(edited, changed[at], "event {seq} is a login");
        changed[at] = &edited;
        let r = verify(&(changed.join("\n") + "\n"));
        let f = r.failure.expect("a changed event is found");
        assert_eq!(f.seq, seq, "changed event {seq}: {f}");

        let mut broken = lines.clone();
        broken[at] = "{\"type\":\"event\",";
        let r = verify(&(broken.join("\n") + "\n"));
        let f = r.failure.expect("a malformed line is found");
        assert_eq!(f.seq, seq, "malformed event {seq}: {f}");
        assert!(f.to_string().contains(&format!("line {}", at + 1)), "{f}");
    }

    // Lines are lent from the reader's own buffer: through a 100-byte buffer every line
    // straddles fills, and CRLF endings give the same answer.
    let crlf = lines.join("\r\n") + "\r\n";
    let small = std::io::BufReader::with_capacity(100, crlf.as_bytes());
    let r = ledger::export::verify_export(small, VerifyMode::LinksOnly, None)
        .expect("well formed")
        .remove(0);
    assert!(r.ok(), "{:?}", r.failure);
    assert_eq!(r.verified, head);

    // UTF-8 is checked per event line: a bad byte fails that event, named by its line.
    let seq = 8_193usize;
    let offset: usize = lines[..seq + 1].iter().map(|l| l.len() + 1).sum();
    let mut bytes = text.clone().into_bytes();
    bytes[offset + lines[seq + 1].len() / 2] = 0xFF;
    let r = ledger::export::verify_export(&bytes[..], VerifyMode::LinksOnly, None)
        .expect("well formed")
        .remove(0);
    let f = r.failure.expect("a line that is not UTF-8 is found");
    assert_eq!(f.seq, seq as u64, "{f}");
    let why = f.to_string();
    assert!(
        why.contains(&format!("line {}", seq + 2)) && why.contains("not UTF-8"),
        "{why}"
    );
}
