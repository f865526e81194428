//! Event bodies in segment files: a tail no index refers to is cut at open, a file shorter
//! than its index is reported, and a store written with the bodies in sled is migrated
//! (also when a migration was interrupted).

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use ledger::store::layout::{event_key, parse_locator};
use ledger::store::segment;
use ledger::{Ledger, VerifyMode, VerifyPolicy};

fn filled(dir: &Path, creates: usize) -> Vec<(String, ledger::Head)> {
    let l = Ledger::open_dir(dir).expect("open");
    l.ensure_builtin_apps().expect("apps");
    let u = user(&l, "gxp", "mgr");
    for _ in 0..creates {
        create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("create");
    }
    l.apps()
        .into_iter()
        .map(|a| {
            let h = l.head(&a).expect("head");
            (a, h)
        })
        .collect()
}

fn verifies(l: &Ledger) {
    for app in l.apps() {
        let r = l
            .verify(&app, VerifyMode::Full, VerifyPolicy::default())
            .expect("verify");
        assert!(r.ok(), "{app}: {:?}", r.failure);
    }
}

/// sled releases the directory's lock from its own threads a moment after the last
/// handle drops: open a raw sled database when it can (bounded).
fn raw_sled(store: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(store) {
            Ok(db) => return db,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open sled: {e}"),
        }
    }
}

#[test]
fn records_no_index_refers_to_are_cut_at_open_and_appends_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 10);
    let file = segment::path(&dir.path().join("store"), "gxp");
    let len = std::fs::metadata(&file).expect("segment").len();
    // What a batch whose index write never happened leaves: records past the last one
    // sled refers to (here a whole plausible record, then a torn one).
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .expect("open segment");
        f.write_all(&200u32.to_be_bytes()).expect("write");
        f.write_all(&[7u8; 200]).expect("write");
        f.write_all(&[0, 0, 1]).expect("write");
    }
    let l = Ledger::open_dir(dir.path()).expect("reopen");
    assert_eq!(std::fs::metadata(&file).expect("segment").len(), len);
    for (app, head) in &heads {
        assert_eq!(l.head(app).as_ref(), Some(head));
    }
    verifies(&l);
    let u = user(&l, "gxp", "qa");
    let more = create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("create");
    assert_eq!(
        l.event("gxp", more.event.seq)
            .expect("read")
            .expect("there"),
        more.event
    );
    verifies(&l);
}

#[test]
fn a_segment_file_shorter_than_its_index_is_refused_naming_the_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 3);
    let gxp = heads.iter().find(|(a, _)| a == "gxp").expect("gxp").1.seq;
    let file = segment::path(&dir.path().join("store"), "gxp");
    let len = std::fs::metadata(&file).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 10)
        .expect("cut");
    let err = Ledger::open_dir(dir.path()).err().expect("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("event {gxp}")) && msg.contains("missing"),
        "{msg}"
    );
    // Nothing was cut or rewritten by the refusal.
    assert_eq!(std::fs::metadata(&file).expect("segment").len(), len - 10);
}

/// Puts every event's bytes back into sled's `E` values, as stores were written before
/// segment files, keeping the first `keep` events of `partial_app` as locators (a
/// migration interrupted after them) and that app's file cut after them, plus `junk`.
fn to_bodies_in_sled(store: &Path, partial_app: &str, keep: u64, junk: &[u8]) {
    let db = raw_sled(store);
    for name in db.tree_names() {
        let Some(app) = std::str::from_utf8(&name)
            .ok()
            .and_then(|n| n.strip_prefix("app:"))
            .map(str::to_string)
        else {
            continue;
        };
        let t = db.open_tree(&name).expect("tree");
        let file = std::fs::File::open(segment::path(store, &app)).expect("segment");
        let mut kept_end = 0;
        let entries: Vec<_> = t
            .range(&[b'E'][..]..&[b'F'][..])
            .map(|r| r.expect("entry"))
            .collect();
        assert!(!entries.is_empty());
        for (k, v) in entries {
            let at = parse_locator(&v).expect("a locator");
            let seq = ledger::store::layout::seq_of(&k).expect("seq");
            if app == partial_app && seq <= keep {
                kept_end = at.end();
                continue;
            }
            let mut bytes = vec![0u8; at.len as usize];
            file.read_exact_at(&mut bytes, at.offset + 4).expect("read");
            t.insert(event_key(seq), bytes).expect("insert");
        }
        drop(file);
        if app == partial_app && keep > 0 {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(segment::path(store, &app))
                .expect("open");
            f.set_len(kept_end).expect("cut");
            f.write_all_at(junk, kept_end).expect("junk");
        } else {
            std::fs::remove_file(segment::path(store, &app)).expect("remove");
        }
    }
    db.flush().expect("flush");
}

fn check_migrated(dir: &Path, heads: &[(String, ledger::Head)]) {
    let l = Ledger::open_dir(dir).expect("open migrates");
    for (app, head) in heads {
        assert_eq!(l.head(app).as_ref(), Some(head), "{app}");
        assert!(segment::path(&dir.join("store"), app).exists());
    }
    verifies(&l);
    let u = user(&l, "gxp", "after");
    assert!(!u.is_empty());
    verifies(&l);
    drop(l);
    // Every index entry is a locator now.
    let db = raw_sled(&dir.join("store"));
    for name in db.tree_names() {
        if !name.starts_with(b"app:") {
            continue;
        }
        let t = db.open_tree(&name).expect("tree");
        for r in t.range(&[b'E'][..]..&[b'F'][..]) {
            let (_, v) = r.expect("entry");
            assert!(parse_locator(&v).is_some());
        }
    }
}

#[test]
fn a_store_with_event_bodies_in_sled_is_migrated_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 12);
    to_bodies_in_sled(&dir.path().join("store"), "", 0, &[]);
    check_migrated(dir.path(), &heads);
}

#[test]
fn an_interrupted_migration_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 12);
    // The first 9 gxp events were moved, a chunk after them was being written.
    to_bodies_in_sled(&dir.path().join("store"), "gxp", 9, &[1, 2, 3, 4, 5]);
    check_migrated(dir.path(), &heads);
}

#[test]
fn a_read_only_open_neither_migrates_nor_cuts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 6);
    let store_dir = dir.path().join("store");
    // A tail no index refers to stays: the reader leaves the evidence as it found it.
    let file = segment::path(&store_dir, "gxp");
    let len = std::fs::metadata(&file).expect("segment").len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open")
        .write_all(&[9u8; 40])
        .expect("junk");
    let read = |store_dir: &Path| {
        let store = ledger::store::SledStore::open_read_only(store_dir).expect("open");
        let l = Ledger::open_read_only(std::sync::Arc::new(store)).expect("ledger");
        for (app, head) in &heads {
            assert_eq!(l.head(app).as_ref(), Some(head), "{app}");
        }
        verifies(&l);
    };
    read(&store_dir);
    assert_eq!(std::fs::metadata(&file).expect("segment").len(), len + 40);
    // A store written before segment files is read as it is, not migrated.
    to_bodies_in_sled(&store_dir, "", 0, &[]);
    read(&store_dir);
    assert!(!segment::path(&store_dir, "gxp").exists());
}
