//! sled made durable lazily, rolled forward at open from the segment and index files: a
//! store whose sled files are put back as they were some appends earlier (what a power
//! loss before sled's next sync leaves) gets every acknowledged event back with its record
//! indexes; only whole writes are restored; a torn last write is cut and kept aside;
//! damage to an earlier write fails the open; a write whose files failed is cut back and
//! never restored; a write whose sled entries failed is kept and restored.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use ledger::store::index::{self, Index};
use ledger::store::{segment, FailAt, SledStore};
use ledger::{
    CheckpointConfig, Command, FileKeyStore, Ledger, LedgerConfig, SystemClock, VerifyMode,
    VerifyPolicy,
};

fn filled(dir: &Path, creates: usize) {
    let l = Ledger::open_dir(dir).expect("open");
    l.ensure_builtin_apps().expect("apps");
    let u = user(&l, "gxp", "mgr");
    for _ in 0..creates {
        create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("create");
    }
}

fn verifies(l: &Ledger) {
    for app in l.apps() {
        let r = l
            .verify(&app, VerifyMode::Full, VerifyPolicy::default())
            .expect("verify");
        assert!(r.ok(), "{app}: {:?}", r.failure);
    }
}

/// Copies sled's own files of a store (everything but the segment and index files).
fn copy_sled(from: &Path, to: &Path) {
    copy_tree(from, to, &["events"]);
}

/// Copies a directory's files and folders, but those named in `skip` at any depth.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &dest, skip);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

/// Puts back sled's files as they were saved in `saved`: what a power loss before sled's
/// next sync leaves (its files behind the segment and index files, which were fdatasync'd
/// before each acknowledgement).
fn restore_sled(store: &Path, saved: &Path) {
    for entry in std::fs::read_dir(store).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_name() == "events" {
            continue;
        }
        if entry.file_type().expect("type").is_dir() {
            std::fs::remove_dir_all(entry.path()).expect("remove");
        } else {
            std::fs::remove_file(entry.path()).expect("remove");
        }
    }
    copy_sled(saved, store);
}

/// The ledger of `dir` over a sled store the test holds too, to inject faults into it.
fn open_holding_store(dir: &Path) -> (Arc<SledStore>, Ledger) {
    let store = Arc::new(SledStore::open(&dir.join("store")).expect("store"));
    let l = Ledger::open(LedgerConfig {
        store: store.clone(),
        keys: Arc::new(FileKeyStore::new(dir.join("keys"))),
        clock: Arc::new(SystemClock),
        seed: None,
        max_group: 64,
        checkpoints: CheckpointConfig::default(),
        min_free_bytes: 0,
    })
    .expect("open");
    (store, l)
}

/// Creates a ValidationLog approved by `approver`, with an idempotency key.
fn keyed_create(
    l: &Ledger,
    approver: &str,
    key: &str,
) -> Result<ledger::Appended, ledger::AppendError> {
    let mut r = req(
        "gxp",
        Command::CreateRecord {
            class: "ValidationLog".into(),
            object_id: None,
            fields: obj(validation_log(approver)),
        },
    );
    r.idempotency_key = Some(key.into());
    l.append(r)
}

/// Appends what the roll forward must restore in sled: a user, a record created with an
/// idempotency key, an update, a deletion. Returns (the keyed record's id, the deleted
/// record's id, the keyed create's seq).
fn later_writes(l: &Ledger) -> (String, String, u64) {
    let u = user(l, "gxp", "later");
    let a = keyed_create(l, &u, "roll-forward-1").expect("create");
    let id = a.event.subject.expect("subject").object_id;
    let gone = create(l, "gxp", "ValidationLog", validation_log(&u))
        .expect("create")
        .event
        .subject
        .expect("subject")
        .object_id;
    l.append(req(
        "gxp",
        Command::UpdateRecord {
            class: "ValidationLog".into(),
            object_id: id.clone(),
            set: obj(serde_json::json!({"result": "fail"})),
            unset: Vec::new(),
        },
    ))
    .expect("update");
    l.append(req(
        "gxp",
        Command::DeleteRecord {
            class: "ValidationLog".into(),
            object_id: gone.clone(),
        },
    ))
    .expect("delete");
    (id, gone, a.event.seq)
}

#[test]
fn sled_behind_its_files_is_rolled_forward_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 4);
    let store = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    copy_sled(&store, &saved);
    let (heads, (id, gone, keyed_seq)) = {
        let l = Ledger::open_dir(dir.path()).expect("reopen");
        let ids = later_writes(&l);
        let heads: Vec<_> = l
            .apps()
            .into_iter()
            .map(|a| {
                let h = l.head(&a).expect("head");
                (a, h)
            })
            .collect();
        (heads, ids)
    };
    restore_sled(&store, &saved);
    let l = Ledger::open_dir(dir.path()).expect("open rolls forward");
    for (app, head) in &heads {
        assert_eq!(l.head(app).as_ref(), Some(head), "{app}");
    }
    verifies(&l);
    // The record indexes are back: the idempotency key, the versions, the deletion.
    let dup = keyed_create(&l, &id, "roll-forward-1").expect("repeat");
    assert!(dup.duplicate && dup.event.seq == keyed_seq);
    assert_eq!(
        l.versions("gxp", "ValidationLog", &id)
            .expect("versions")
            .len(),
        2
    );
    let refused = l.append(req(
        "gxp",
        Command::DeleteRecord {
            class: "ValidationLog".into(),
            object_id: gone,
        },
    ));
    assert!(refused.is_err(), "a deleted record stays deleted");
    let u = user(&l, "gxp", "after");
    assert!(!u.is_empty());
    verifies(&l);
}

#[test]
fn a_torn_last_write_past_sleds_head_is_not_restored_and_is_kept_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, saved, gxp) = lagging(dir.path());
    restore_sled(&store, &saved);
    // The last write's record never reached the disk (a power loss before its fdatasync
    // returned, so before it was acknowledged): the roll stops before it.
    let at = tear(&store, "gxp", gxp.seq);
    let seg_path = segment::path(&store, "gxp");
    let tail = std::fs::read(&seg_path).expect("read")[at as usize..].to_vec();
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp").expect("head").seq, gxp.seq - 1);
    assert_eq!(std::fs::metadata(&seg_path).expect("segment").len(), at);
    // What was cut is kept beside the file, byte for byte.
    let aside = kept_aside(&seg_path);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("read"), tail);
    assert_eq!(kept_aside(&index::path(&store, "gxp")).len(), 1);
    verifies(&l);
    let u = user(&l, "gxp", "after");
    assert!(!u.is_empty());
    verifies(&l);
}

/// Writes `bytes` at `at` in `path`, behind the store's back.
fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .write_all_at(bytes, at)
        .expect("write");
}

/// Where event `seq`'s record is in the segment file.
fn locator(store: &Path, seq: u64) -> segment::Locator {
    Index::open(index::path(store, "gxp"), true)
        .and_then(|i| i.locator(seq))
        .expect("locator")
}

/// Event `seq`'s record in gxp's segment file (`in_index` false) or index file: the
/// file and the record's byte range.
fn record_span(store: &Path, seq: u64, in_index: bool) -> (PathBuf, u64, u64) {
    if in_index {
        let from = index::position(seq).expect("position");
        (
            index::path(store, "gxp"),
            from,
            index::end_of(seq).expect("end"),
        )
    } else {
        let at = locator(store, seq);
        (segment::path(store, "gxp"), at.offset, at.end())
    }
}

/// Blanks the share of one 512-byte sector that bytes `from..to` of `path` hold: the
/// first (`at_start`) or the last, as a crash that never wrote that sector leaves it.
fn blank_share((path, from, to): (PathBuf, u64, u64), at_start: bool) {
    let (a, b) = match at_start {
        true => (from, to.min((from / 512 + 1) * 512)),
        false => (from.max((to - 1) / 512 * 512), to),
    };
    overwrite(&path, a, &vec![0; (b - a) as usize]);
}

#[test]
fn a_last_write_torn_anywhere_in_either_file_is_not_restored() {
    // Sectors a crash left unwritten, whatever the length of their share of the write,
    // in either file, whichever event fails its checks: the whole write is judged.
    type Tear = fn(&Path, u64);
    let tears: [(&str, u64, Tear); 7] = [
        (
            "its index record from the length's low bytes on",
            1,
            |store, seq| {
                // A sector boundary after the write-end byte: the length reads as 0, so the
                // write seems to end early and the segment's bytes to follow it. They do not,
                // by the records' own lengths: the write may be torn, and is.
                let from = index::position(seq).expect("position") + 9;
                let to = index::end_of(seq).expect("end");
                overwrite(
                    &index::path(store, "gxp"),
                    from,
                    &vec![0; (to - from) as usize],
                );
            },
        ),
        (
            "the last sector's share of its segment record",
            1,
            |store, seq| blank_share(record_span(store, seq, false), false),
        ),
        (
            "the first sector's share of its segment record",
            1,
            |store, seq| blank_share(record_span(store, seq, false), true),
        ),
        (
            "the last sector's share of its index record",
            1,
            |store, seq| blank_share(record_span(store, seq, true), false),
        ),
        (
            "the first sector's share of its index record",
            1,
            |store, seq| blank_share(record_span(store, seq, true), true),
        ),
        (
            "the first event's index record, in a write of two",
            2,
            |store, seq| {
                clear_write_end(store, "gxp", seq - 1);
                let from = index::position(seq - 1).expect("position");
                let to = index::position(seq).expect("position");
                overwrite(
                    &index::path(store, "gxp"),
                    from,
                    &vec![0; (to - from) as usize],
                );
            },
        ),
        (
            "the second event's record, in a write of two whose first is damaged",
            2,
            |store, seq| {
                // The event that fails (the first, its bytes changed, no zeros) is not
                // the one that bears the mark.
                clear_write_end(store, "gxp", seq - 1);
                damage(store, "gxp", seq - 1);
                blank_share(record_span(store, seq, false), false);
            },
        ),
    ];
    for (what, dropped, tear) in tears {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, saved, gxp) = lagging(dir.path());
        restore_sled(&store, &saved);
        tear(&store, gxp.seq);
        let l = Ledger::open_dir(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            l.head("gxp").expect("head").seq,
            gxp.seq - dropped,
            "{what}"
        );
        assert_eq!(kept_aside(&index::path(&store, "gxp")).len(), 1, "{what}");
        verifies(&l);
    }
}

#[test]
fn a_last_write_damaged_without_a_tears_mark_fails_the_open() {
    // Every byte of both files written, then one thing changed: damage to a write that
    // may have been acknowledged, whether the index's length runs past the file, the
    // record is misplaced, or only the signature (which no hash covers) is wrong.
    type Damage = fn(&Path, u64);
    let cases: [(&str, &str, Damage); 3] = [
        ("not after the event before", "misplaced", |store, seq| {
            let at = locator(store, seq);
            let place = index::position(seq).expect("position");
            overwrite(
                &index::path(store, "gxp"),
                place,
                &(at.offset + 1).to_be_bytes(),
            );
        }),
        (
            "runs past the end",
            "a length one byte long",
            |store, seq| {
                let at = locator(store, seq);
                let place = index::position(seq).expect("position") + 8;
                let len = (at.len + 1) | (u32::from(index::WRITE_END) << 24);
                overwrite(&index::path(store, "gxp"), place, &len.to_be_bytes());
            },
        ),
        ("signature does not verify", "a signature", |store, seq| {
            let at = locator(store, seq);
            overwrite(&segment::path(store, "gxp"), at.end() - 3, &[0x5a; 2]);
        }),
    ];
    for (why, what, damage) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, saved, gxp) = lagging(dir.path());
        restore_sled(&store, &saved);
        damage(&store, gxp.seq);
        let err = Ledger::open_dir(dir.path())
            .err()
            .unwrap_or_else(|| panic!("{what}: the open must fail"))
            .to_string();
        assert!(err.contains(&format!("event {}", gxp.seq)), "{what}: {err}");
        assert!(err.contains(why), "{what}: {err}");
        assert!(err.contains("no mark of a crash's tear"), "{what}: {err}");
        assert!(kept_aside(&index::path(&store, "gxp")).is_empty(), "{what}");
    }
}

#[test]
fn a_wholly_written_last_write_that_is_damaged_fails_the_open() {
    for followed in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, saved, gxp) = lagging(dir.path());
        restore_sled(&store, &saved);
        // Every sector of the last record was written, then a byte changed: damage to a
        // write that may have been acknowledged, not a tear. Nothing is cut.
        damage(&store, "gxp", gxp.seq);
        if followed {
            // Half an index record of a later write: this one was surely made durable.
            let f = std::fs::OpenOptions::new()
                .append(true)
                .open(index::path(&store, "gxp"))
                .expect("open");
            f.write_all_at(&[7u8; 6], f.metadata().expect("len").len())
                .expect("write");
        }
        let seg_len = std::fs::metadata(segment::path(&store, "gxp"))
            .expect("segment")
            .len();
        let err = Ledger::open_dir(dir.path())
            .err()
            .expect("the open must fail")
            .to_string();
        assert!(err.contains(&format!("event {}", gxp.seq)), "{err}");
        let why = if followed {
            "a later write had begun"
        } else {
            "no mark of a crash's tear"
        };
        assert!(err.contains(why), "{err}");
        assert_eq!(
            std::fs::metadata(segment::path(&store, "gxp"))
                .expect("segment")
                .len(),
            seg_len
        );
        assert!(kept_aside(&segment::path(&store, "gxp")).is_empty());
    }
}

#[test]
fn tree_nodes_that_disagree_with_the_events_fail_the_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, saved, gxp) = lagging(dir.path());
    restore_sled(&store, &saved);
    // The nodes stored for an event past sled's head are not those its events give.
    let seq = gxp.seq - 1;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(index::path(&store, "gxp"))
        .expect("open");
    f.write_all_at(&[9u8; 32], index::position(seq).expect("position") + 12)
        .expect("write");
    let err = Ledger::open_dir(dir.path())
        .err()
        .expect("the open must fail")
        .to_string();
    assert!(err.contains(&format!("event {seq}")), "{err}");
    assert!(err.contains("tree nodes"), "{err}");
}

/// The files an open kept aside when it cut `path`.
fn kept_aside(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().expect("folder"))
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}.cut-")))
        })
        .collect();
    found.sort();
    found
}

/// Clears the end-of-write mark of event `seq`'s index record: as if its write had been
/// cut short before its last record reached the file.
fn clear_write_end(store: &Path, app: &str, seq: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(index::path(store, app))
        .expect("open");
    let at = index::position(seq).expect("position") + 8;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read");
    assert_ne!(b[0] & index::WRITE_END, 0, "event {seq} ended a write");
    f.write_all_at(&[b[0] & !index::WRITE_END], at)
        .expect("write");
}

/// Damages event `seq`'s body in the segment file; returns where its record starts.
fn damage(store: &Path, app: &str, seq: u64) -> u64 {
    let at = Index::open(index::path(store, app), true)
        .and_then(|i| i.locator(seq))
        .expect("locator");
    overwrite(&segment::path(store, app), at.offset + 20, &[0xff; 8]);
    at.offset
}

/// Blanks event `seq`'s record in the segment file, as a write whose sectors never
/// reached the disk leaves it; returns where its record starts.
fn tear(store: &Path, app: &str, seq: u64) -> u64 {
    let at = Index::open(index::path(store, app), true)
        .and_then(|i| i.locator(seq))
        .expect("locator");
    overwrite(
        &segment::path(store, app),
        at.offset,
        &vec![0u8; 4 + at.len as usize],
    );
    at.offset
}

/// A store filled, its sled files saved, then `later_writes` appended: returns the store
/// folder, the saved sled files and gxp's head after the later writes.
fn lagging(dir: &Path) -> (PathBuf, PathBuf, ledger::Head) {
    filled(dir, 4);
    let store = dir.join("store");
    let saved = dir.join("saved-sled");
    copy_sled(&store, &saved);
    let l = Ledger::open_dir(dir).expect("reopen");
    later_writes(&l);
    let head = l.head("gxp").expect("head");
    (store, saved, head)
}

#[test]
fn a_write_whose_end_mark_is_missing_is_not_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, saved, gxp) = lagging(dir.path());
    restore_sled(&store, &saved);
    // The last write (the deletion) lost its last index record's mark: every byte of its
    // one event reads back, yet nothing says the write was finished.
    clear_write_end(&store, "gxp", gxp.seq);
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp").expect("head").seq, gxp.seq - 1);
    verifies(&l);
}

#[test]
fn a_torn_write_is_not_restored_in_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, saved, gxp) = lagging(dir.path());
    restore_sled(&store, &saved);
    // The last two events made one write (the update's mark gone), and the last of them
    // is torn: the whole write goes, its first event with it, though it reads back.
    clear_write_end(&store, "gxp", gxp.seq - 1);
    let offset = tear(&store, "gxp", gxp.seq);
    let first_of_write = Index::open(index::path(&store, "gxp"), true)
        .and_then(|i| i.locator(gxp.seq - 1))
        .expect("locator");
    assert!(first_of_write.offset < offset);
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp").expect("head").seq, gxp.seq - 2);
    assert_eq!(
        std::fs::metadata(segment::path(&store, "gxp"))
            .expect("segment")
            .len(),
        first_of_write.offset
    );
    verifies(&l);
    assert!(!user(&l, "gxp", "after").is_empty());
    verifies(&l);
}

#[test]
fn damage_to_an_acknowledged_write_past_sleds_head_fails_the_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, saved, gxp) = lagging(dir.path());
    restore_sled(&store, &saved);
    // A write followed by another was acknowledged (the next write starts only after its
    // files are synced): its damage is not a torn write, and nothing is cut.
    let bad = gxp.seq - 2;
    damage(&store, "gxp", bad);
    let seg_len = std::fs::metadata(segment::path(&store, "gxp"))
        .expect("segment")
        .len();
    let err = Ledger::open_dir(dir.path())
        .err()
        .expect("the open must fail")
        .to_string();
    assert!(err.contains(&format!("event {bad}")), "{err}");
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(
        std::fs::metadata(segment::path(&store, "gxp"))
            .expect("segment")
            .len(),
        seg_len
    );
    assert!(kept_aside(&segment::path(&store, "gxp")).is_empty());
}

#[test]
fn a_write_whose_files_failed_is_cut_back_and_never_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 2);
    let store_dir = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    copy_sled(&store_dir, &saved);
    let acked = {
        let (store, l) = open_holding_store(dir.path());
        let u = user(&l, "gxp", "later");
        let acked = l.head("gxp").expect("head");
        // The next write fails as a failed fdatasync of its files would.
        store.fail_next_write(FailAt::Files);
        let refused = create(&l, "gxp", "ValidationLog", validation_log(&u));
        let err = refused.expect_err("not recorded");
        assert!(
            matches!(err, ledger::AppendError::WriteFailed(_)),
            "answered as not recorded: {err:?}"
        );
        assert!(err.to_string().contains("its fdatasync failed"), "{err}");
        let at = Index::open(index::path(&store_dir, "gxp"), true)
            .and_then(|i| i.locator(acked.seq))
            .expect("locator");
        assert_eq!(
            std::fs::metadata(segment::path(&store_dir, "gxp"))
                .expect("segment")
                .len(),
            at.end(),
            "the failed write's records are cut back before it is answered"
        );
        assert_eq!(
            Index::open(index::path(&store_dir, "gxp"), true)
                .and_then(|i| i.records())
                .expect("records"),
            acked.seq
        );
        acked
    };
    // Even with sled's files from before every acknowledged append, the open restores
    // what was acknowledged and nothing of the failed write.
    restore_sled(&store_dir, &saved);
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp"), Some(acked));
    verifies(&l);
}

#[test]
fn a_failed_write_that_could_not_be_cut_back_is_answered_as_unknown_and_a_retry_finds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 2);
    let keyed = |l: &Ledger, u: &str| keyed_create(l, u, "unknown-outcome-1");
    let (acked, u) = {
        let (store, l) = open_holding_store(dir.path());
        let u = user(&l, "gxp", "later");
        let acked = l.head("gxp").expect("head");
        // The write's files fail, and so does the cut back.
        store.fail_next_write(FailAt::FilesAndCutBack);
        let err = keyed(&l, &u).expect_err("not acknowledged");
        assert!(
            matches!(err, ledger::AppendError::Durability(_)),
            "not \"nothing was recorded\": {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("retry with the same idempotency key"),
            "{text}"
        );
        // The ledger takes no later write until it is restarted.
        let later = create(&l, "gxp", "ValidationLog", validation_log(&u))
            .expect_err("refused")
            .to_string();
        assert!(later.contains("until restarted"), "{later}");
        assert_eq!(l.head("gxp"), Some(acked));
        (acked, u)
    };
    // Reopened, the write is found whole and restored; the retry gets it, not a copy.
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp").expect("head").seq, acked.seq + 1);
    let again = keyed(&l, &u).expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.event.seq, acked.seq + 1);
    verifies(&l);
}

#[test]
fn a_write_whose_sled_entries_failed_is_kept_answered_as_unknown_and_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 2);
    let store_dir = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    copy_sled(&store_dir, &saved);
    let keyed = |l: &Ledger, u: &str| keyed_create(l, u, "entries-failed-1");
    let (acked, u) = {
        let (store, l) = open_holding_store(dir.path());
        let u = user(&l, "gxp", "later");
        let acked = l.head("gxp").expect("head");
        // The write's files are durable; sled takes its event's entries, then fails
        // before the head.
        store.fail_next_write(FailAt::Entries);
        let err = keyed(&l, &u).expect_err("not acknowledged");
        assert!(
            matches!(err, ledger::AppendError::Durability(_)),
            "not \"nothing was recorded\": {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("retry with the same idempotency key")
                && text.contains("the store's next open restores their entries"),
            "{text}"
        );
        // Kept whole in both files, not cut back.
        let index = Index::open(index::path(&store_dir, "gxp"), true).expect("index");
        assert_eq!(index.records().expect("records"), acked.seq + 1);
        let at = index.locator(acked.seq + 1).expect("locator");
        assert_eq!(
            std::fs::metadata(segment::path(&store_dir, "gxp"))
                .expect("segment")
                .len(),
            at.end()
        );
        let later = create(&l, "gxp", "ValidationLog", validation_log(&u))
            .expect_err("refused")
            .to_string();
        assert!(later.contains("until restarted"), "{later}");
        assert_eq!(l.head("gxp"), Some(acked));
        (acked, u)
    };
    // Reopened (sled as it was left, and again with sled's files from before every
    // acknowledged append), the write is restored whole; the retry gets it, not a copy.
    let second = dir.path().join("second");
    copy_tree(dir.path(), &second, &["second", "saved-sled"]);
    restore_sled(&second.join("store"), &saved);
    for d in [dir.path(), second.as_path()] {
        let l = Ledger::open_dir(d).expect("open");
        assert_eq!(l.head("gxp").expect("head").seq, acked.seq + 1);
        let again = keyed(&l, &u).expect("retry");
        assert!(again.duplicate);
        assert_eq!(again.event.seq, acked.seq + 1);
        let id = again.event.subject.expect("subject").object_id;
        assert_eq!(
            l.versions("gxp", "ValidationLog", &id)
                .expect("versions")
                .len(),
            1
        );
        verifies(&l);
    }
}

#[test]
fn a_tree_size_ahead_of_sleds_head_is_rolled_forward() {
    // A crash between a write's tree size and its head, both inserted into sled: sled
    // keeps the size, not the head.
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 2);
    let store = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    copy_sled(&store, &saved);
    let (head, (id, _, _)) = {
        let l = Ledger::open_dir(dir.path()).expect("reopen");
        let ids = later_writes(&l);
        (l.head("gxp").expect("head"), ids)
    };
    restore_sled(&store, &saved);
    {
        let db = sled::open(&store).expect("sled");
        let t = db.open_tree("app:gxp").expect("tree");
        t.insert(b"T", &head.seq.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let l = Ledger::open_dir(dir.path()).expect("open rolls forward");
    assert_eq!(l.head("gxp"), Some(head));
    assert_eq!(
        l.versions("gxp", "ValidationLog", &id)
            .expect("versions")
            .len(),
        2
    );
    verifies(&l);
    let u = user(&l, "gxp", "after");
    assert!(!u.is_empty());
    verifies(&l);
}

#[test]
fn a_read_only_open_of_a_store_behind_its_files_says_so_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 4);
    let store = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    copy_sled(&store, &saved);
    let before = Ledger::open_dir(dir.path())
        .expect("open")
        .head("gxp")
        .expect("head");
    let after = {
        let l = Ledger::open_dir(dir.path()).expect("reopen");
        later_writes(&l);
        l.head("gxp").expect("head")
    };
    restore_sled(&store, &saved);
    let files = |app: &str| {
        (
            std::fs::read(segment::path(&store, app)).expect("segment"),
            std::fs::read(index::path(&store, app)).expect("index"),
        )
    };
    let held = files("gxp");
    {
        let ro = SledStore::open_read_only(&store).expect("open read-only");
        assert_eq!(
            ro.behind_its_files(),
            vec![ledger::store::Behind {
                app: "gxp".into(),
                head: before.seq,
                held: after.seq,
            }]
        );
        let l = Ledger::open_read_only(Arc::new(ro)).expect("ledger");
        assert_eq!(l.head("gxp"), Some(before), "sled's head, not the files'");
        verifies(&l);
    }
    assert!(files("gxp") == held, "a read-only open changes no file");
    // Opened to write, the store is rolled forward; read-only, nothing is behind then.
    drop(Ledger::open_dir(dir.path()).expect("open"));
    let ro = SledStore::open_read_only(&store).expect("open read-only");
    assert!(ro.behind_its_files().is_empty());
    let l = Ledger::open_read_only(Arc::new(ro)).expect("ledger");
    assert_eq!(l.head("gxp"), Some(after));
}

#[test]
fn a_read_only_open_lists_apps_whose_every_event_sled_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    drop(SledStore::open(&store).expect("store"));
    copy_sled(&store, &saved);
    filled(dir.path(), 2);
    let gxp = Ledger::open_dir(dir.path())
        .expect("open")
        .head("gxp")
        .expect("head");
    // A crash before sled's first sync: no app's tree, all their files.
    restore_sled(&store, &saved);
    let ro = SledStore::open_read_only(&store).expect("open read-only");
    let behind = ro.behind_its_files();
    assert!(
        behind.contains(&ledger::store::Behind {
            app: "gxp".into(),
            head: 0,
            held: gxp.seq,
        }),
        "{behind:?}"
    );
    drop(ro);
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp"), Some(gxp));
    verifies(&l);
}

#[test]
fn a_key_rotated_past_sleds_head_signs_what_follows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 3);
    let store = dir.path().join("store");
    let saved = dir.path().join("saved-sled");
    copy_sled(&store, &saved);
    let head = {
        let l = Ledger::open_dir(dir.path()).expect("reopen");
        l.rotate_key("gxp", actor(), None).expect("rotate");
        user(&l, "gxp", "after-rotation");
        l.head("gxp").expect("head")
    };
    restore_sled(&store, &saved);
    // The last write is signed by the rotated-in key, declared only past sled's head.
    let l = Ledger::open_dir(dir.path()).expect("open");
    assert_eq!(l.head("gxp"), Some(head));
    verifies(&l);
}
