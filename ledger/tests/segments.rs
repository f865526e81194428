//! Event bodies in segment files, placed by index files: a tail the head does not count is
//! cut at open (in both files), a file shorter than the head needs is reported, and a
//! store written with the bodies (or their locators) and tree nodes in sled is migrated
//! (also when a migration was interrupted).

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use ledger::store::index::{self, Index};
use ledger::store::layout::{event_key, locator_value, tree_nodes_key, tree_nodes_value};
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
    let mut tail = 200u32.to_be_bytes().to_vec();
    tail.extend_from_slice(&[7u8; 200]);
    tail.extend_from_slice(&[0, 0, 1]);
    append_file(&file, &tail);
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
    cut_file(&file, len - 10, &[]);
    let err = Ledger::open_dir(dir.path()).err().expect("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("event {gxp}")) && msg.contains("missing"),
        "{msg}"
    );
    // Nothing was cut or rewritten by the refusal.
    assert_eq!(std::fs::metadata(&file).expect("segment").len(), len - 10);
}

/// Puts every event back into sled as stores were written before index files: each `E`
/// value the event's bytes (`inline`, before segment files) or its locator, each event's
/// tree nodes in an `N` entry. The first `keep` events of `partial_app` stay in the index
/// file (a migration interrupted after them), whose files are then cut after them and
/// followed by `junk`; the other apps lose their index files (and, `inline`, segments).
fn to_sled_layout(store: &Path, inline: bool, partial_app: &str, keep: u64, junk: &[u8]) {
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
        let head = t
            .get(ledger::store::layout::HEAD)
            .expect("get")
            .and_then(|v| ledger::store::layout::parse_head(&v))
            .expect("head")
            .0;
        let idx = Index::open(index::path(store, &app), true).expect("index");
        let file = std::fs::File::open(segment::path(store, &app)).expect("segment");
        let mut kept_end = 0;
        for seq in 1..=head {
            let at = idx.locator(seq).expect("locator");
            if app == partial_app && seq <= keep {
                kept_end = at.end();
                continue;
            }
            let value = if inline {
                let mut bytes = vec![0u8; at.len as usize];
                file.read_exact_at(&mut bytes, at.offset + 4).expect("read");
                bytes
            } else {
                locator_value(at).to_vec()
            };
            t.insert(event_key(seq), value).expect("insert");
            let nodes = idx.nodes(seq).expect("nodes");
            t.insert(tree_nodes_key(seq), tree_nodes_value(&nodes))
                .expect("insert");
        }
        drop((file, idx));
        if app == partial_app && keep > 0 {
            cut_file(
                &index::path(store, &app),
                index::end_of(keep).expect("end"),
                junk,
            );
            if inline {
                cut_file(&segment::path(store, &app), kept_end, junk);
            }
        } else {
            std::fs::remove_file(index::path(store, &app)).expect("remove");
            if inline {
                std::fs::remove_file(segment::path(store, &app)).expect("remove");
            }
        }
    }
    db.flush().expect("flush");
}

fn check_migrated(dir: &Path, heads: &[(String, ledger::Head)]) {
    let l = Ledger::open_dir(dir).expect("open migrates");
    for (app, head) in heads {
        assert_eq!(l.head(app).as_ref(), Some(head), "{app}");
        assert!(segment::path(&dir.join("store"), app).exists());
        assert!(index::path(&dir.join("store"), app).exists());
        // The tree is read from the moved nodes: its root is the events' own.
        let hashes: Vec<[u8; 32]> = (1..=head.seq)
            .map(|s| l.event(app, s).expect("read").expect("there").hash)
            .collect();
        let mem = ledger::merkle::MemoryTree::<ledger::merkle::Blake3>::from_leaves(&hashes);
        assert_eq!(
            l.tree_root(app, head.seq).expect("root"),
            mem.root(head.seq).expect("root"),
            "{app}"
        );
    }
    verifies(&l);
    let u = user(&l, "gxp", "after");
    assert!(!u.is_empty());
    verifies(&l);
    drop(l);
    // No event or tree node is left in sled.
    let db = raw_sled(&dir.join("store"));
    for name in db.tree_names() {
        if !name.starts_with(b"app:") {
            continue;
        }
        let t = db.open_tree(&name).expect("tree");
        for tag in [b'E', b'N'] {
            assert!(t.range(&[tag][..]..&[tag + 1][..]).next().is_none());
        }
    }
}

#[test]
fn a_store_with_event_bodies_in_sled_is_migrated_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 12);
    to_sled_layout(&dir.path().join("store"), true, "", 0, &[]);
    check_migrated(dir.path(), &heads);
}

#[test]
fn a_store_with_locators_and_tree_nodes_in_sled_is_migrated_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 12);
    to_sled_layout(&dir.path().join("store"), false, "", 0, &[]);
    check_migrated(dir.path(), &heads);
}

#[test]
fn an_interrupted_migration_resumes_where_it_stopped() {
    for inline in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let heads = filled(dir.path(), 12);
        // The first 9 gxp events were moved, a chunk after them was being written.
        to_sled_layout(
            &dir.path().join("store"),
            inline,
            "gxp",
            9,
            &[1, 2, 3, 4, 5],
        );
        check_migrated(dir.path(), &heads);
    }
}

/// What the previous migration (bodies out of sled) left when interrupted: in `app`, the
/// `E` entries of events `1..=moved` are locators, the later ones still the events' bytes,
/// and the segment file ends after event `moved`'s record with `junk`; no index files.
fn to_interrupted_body_migration(store: &Path, app: &str, moved: u64, junk: &[u8]) {
    to_sled_layout(store, false, "", 0, &[]);
    let db = raw_sled(store);
    let t = db.open_tree(format!("app:{app}")).expect("tree");
    let path = segment::path(store, app);
    let file = std::fs::File::open(&path).expect("segment");
    let mut kept_end = 0;
    let entries: Vec<_> = t
        .range(&[b'E'][..]..&[b'F'][..])
        .map(|r| r.expect("entry"))
        .collect();
    for (k, v) in entries {
        let at = ledger::store::layout::parse_locator(&v).expect("a locator");
        let seq = ledger::store::layout::seq_of(&k).expect("seq");
        if seq <= moved {
            kept_end = at.end();
            continue;
        }
        let mut bytes = vec![0u8; at.len as usize];
        file.read_exact_at(&mut bytes, at.offset + 4).expect("read");
        t.insert(k, bytes).expect("insert");
    }
    drop(file);
    cut_file(&path, kept_end, junk);
    db.flush().expect("flush");
}

fn read_only_verifies(store_dir: &Path, heads: &[(String, ledger::Head)]) {
    let store = ledger::store::SledStore::open_read_only(store_dir).expect("open");
    let l = Ledger::open_read_only(std::sync::Arc::new(store)).expect("ledger");
    for (app, head) in heads {
        assert_eq!(l.head(app).as_ref(), Some(head), "{app}");
        let seqs: Vec<u64> = l
            .events(app, 1, u64::MAX)
            .expect("events")
            .map(|e| e.expect("event").seq)
            .collect();
        assert_eq!(seqs, (1..=head.seq).collect::<Vec<_>>(), "{app}");
    }
    verifies(&l);
}

#[test]
fn an_interrupted_migration_of_the_older_layout_is_read_as_it_is_then_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 12);
    let store = dir.path().join("store");
    to_interrupted_body_migration(&store, "gxp", 7, &[0, 0, 0, 9, 1, 2]);
    read_only_verifies(&store, &heads);
    check_migrated(dir.path(), &heads);
}

#[test]
fn an_interrupted_migration_is_read_as_it_is_when_opened_read_only() {
    for inline in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let heads = filled(dir.path(), 12);
        let store = dir.path().join("store");
        to_sled_layout(&store, inline, "gxp", 9, &[1, 2, 3, 4, 5]);
        read_only_verifies(&store, &heads);
        // And nothing was migrated or cut by reading.
        let db = raw_sled(&store);
        let t = db.open_tree("app:gxp").expect("tree");
        assert!(t.get(event_key(10)).expect("get").is_some());
        drop((t, db));
        check_migrated(dir.path(), &heads);
    }
}

#[test]
fn a_missing_index_file_is_named_when_opened_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path(), 3);
    let store = dir.path().join("store");
    let path = index::path(&store, "gxp");
    std::fs::remove_file(&path).expect("remove");
    let err = ledger::store::SledStore::open_read_only(&store)
        .expect_err("must refuse")
        .to_string();
    assert!(
        err.contains("gxp.index") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_scan_of_a_short_index_serves_the_events_before_the_gap_then_names_it() {
    use ledger::store::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 20);
    let gxp = heads.iter().find(|(a, _)| a == "gxp").expect("gxp").1.seq;
    let store = dir.path().join("store");
    // Event 13's record torn off, and everything after it.
    cut_file(
        &index::path(&store, "gxp"),
        index::end_of(12).expect("end") + 5,
        &[],
    );
    let s = ledger::store::SledStore::open_read_only(&store).expect("open");
    let mut got = Vec::new();
    s.read_range("gxp", 1, gxp, &mut |r| {
        got.push(r.map(|(seq, _)| seq).map_err(|e| e.to_string()))
    });
    let served: Vec<u64> = got
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(served, (1..=12).collect::<Vec<_>>());
    let err = got
        .last()
        .and_then(|r| r.as_ref().err())
        .expect("an error last");
    assert!(
        err.contains("event 13") && err.contains("gxp.index"),
        "{err}"
    );
}

#[test]
fn index_records_past_the_head_are_cut_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 5);
    let gxp = heads.iter().find(|(a, _)| a == "gxp").expect("gxp").1.seq;
    let file = index::path(&dir.path().join("store"), "gxp");
    append_file(&file, &[3u8; 300]);
    let l = Ledger::open_dir(dir.path()).expect("reopen");
    assert_eq!(
        std::fs::metadata(&file).expect("index").len(),
        index::end_of(gxp).expect("end")
    );
    verifies(&l);
    let u = user(&l, "gxp", "qa");
    assert!(!u.is_empty());
    verifies(&l);
}

#[test]
fn an_index_file_shorter_than_the_head_is_refused_naming_the_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 3);
    let gxp = heads.iter().find(|(a, _)| a == "gxp").expect("gxp").1.seq;
    let file = index::path(&dir.path().join("store"), "gxp");
    let short = index::end_of(gxp).expect("end") - 1;
    cut_file(&file, short, &[]);
    let err = Ledger::open_dir(dir.path()).err().expect("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("event {gxp}")) && msg.contains("index"),
        "{msg}"
    );
    // Nothing was cut or rewritten by the refusal.
    assert_eq!(std::fs::metadata(&file).expect("index").len(), short);
}

#[test]
fn a_read_only_open_neither_migrates_nor_cuts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let heads = filled(dir.path(), 6);
    let store_dir = dir.path().join("store");
    // A tail no index refers to stays: the reader leaves the evidence as it found it.
    let file = segment::path(&store_dir, "gxp");
    let len = std::fs::metadata(&file).expect("segment").len();
    append_file(&file, &[9u8; 40]);
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
    // A store written before index files is read as it is, not migrated.
    to_sled_layout(&store_dir, false, "", 0, &[]);
    read(&store_dir);
    assert!(!index::path(&store_dir, "gxp").exists());
    // And one written before segment files.
    let other = tempfile::tempdir().expect("tempdir");
    let heads = filled(other.path(), 6);
    let store_dir = other.path().join("store");
    to_sled_layout(&store_dir, true, "", 0, &[]);
    let store = ledger::store::SledStore::open_read_only(&store_dir).expect("open");
    let l = Ledger::open_read_only(std::sync::Arc::new(store)).expect("ledger");
    for (app, head) in &heads {
        assert_eq!(l.head(app).as_ref(), Some(head), "{app}");
    }
    verifies(&l);
    assert!(!segment::path(&store_dir, "gxp").exists());
}
