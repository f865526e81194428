//! An export read back into a fresh store (what an auditor's tool does) is the same log:
//! same heads, same export byte for byte, same versions, keys, schema and Merkle roots;
//! opened read-only it refuses every write. Broken structure is refused with the line.

mod common;

use std::sync::Arc;

use common::*;
use ledger::store::{MemoryStore, Store};
use ledger::{AppendError, Command, Ledger, SignatureMeaning, VerifyMode, VerifyPolicy};
use serde_json::json;

/// A log with creates, updates, a signature, a deletion, a schema change, a key rotation
/// and an idempotency key, over two apps.
fn populated() -> Ledger {
    let (l, clock) = mem_ledger();
    let approver = user(&l, "gxp", "qa.lead");
    let mut ids = Vec::new();
    for i in 0..5 {
        clock.advance(1_000_000);
        let a = create(&l, "gxp", "ValidationLog", validation_log(&approver)).expect("create");
        ids.push((a.event.subject.expect("subject").object_id, a.event.seq));
        if i == 2 {
            l.rotate_key("gxp", actor(), Some("rotation".into()))
                .expect("rotate");
        }
    }
    let (id, _) = &ids[1];
    let mut r = req(
        "gxp",
        Command::UpdateRecord {
            class: "ValidationLog".into(),
            object_id: id.clone(),
            set: obj(json!({"result": "fail"})),
            unset: vec![],
        },
    );
    r.reason = Some("typo".into());
    r.idempotency_key = Some("req-1".into());
    let updated = l.append(r).expect("update");
    l.append(req(
        "gxp",
        Command::SignRecord {
            class: "ValidationLog".into(),
            object_id: id.clone(),
            version_seq: updated.event.seq,
            meaning: SignatureMeaning::Approval,
            printed_name: "Q. A. Lead".into(),
        },
    ))
    .expect("sign");
    l.append(req(
        "gxp",
        Command::DeleteRecord {
            class: "ValidationLog".into(),
            object_id: ids[3].0.clone(),
        },
    ))
    .expect("delete");
    user(&l, "hipaa", "privacy.officer");
    l
}

fn export_all(l: &Ledger) -> Vec<u8> {
    let mut out = Vec::new();
    l.export(&l.apps(), &mut out).expect("export");
    out
}

fn import(text: &[u8]) -> Result<Ledger, String> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    ledger::import::import(text, &*store).map_err(|e| e.to_string())?;
    Ledger::open_read_only(store).map_err(|e| e.to_string())
}

#[test]
fn an_imported_export_is_the_same_log() {
    let original = populated();
    let text = export_all(&original);
    let copy = import(&text).expect("import");
    assert!(copy.is_read_only());
    assert_eq!(copy.apps(), original.apps());
    assert_eq!(export_all(&copy), text, "re-exported byte for byte");
    for app in original.apps() {
        assert_eq!(copy.head(&app), original.head(&app), "{app}");
        assert_eq!(
            copy.public_keys(&app).expect("keys"),
            original.public_keys(&app).expect("keys")
        );
        assert_eq!(
            copy.schema(&app).map(|s| s.to_json()),
            original.schema(&app).map(|s| s.to_json())
        );
        let head = original.head(&app).expect("head").seq;
        for size in [1, head / 2, head] {
            assert_eq!(
                copy.tree_root(&app, size).expect("root"),
                original.tree_root(&app, size).expect("root"),
                "{app} root of size {size}"
            );
        }
        let r = copy
            .verify(&app, VerifyMode::Full, VerifyPolicy::default())
            .expect("verify");
        assert!(r.ok(), "{app}: {:?}", r.failure);
        assert_eq!(r.last_seq, head);
    }
    // The version index: every record's versions, as the original has them.
    let gxp_head = original.head("gxp").expect("head").seq;
    for seq in 1..=gxp_head {
        let e = original.event("gxp", seq).expect("read").expect("event");
        assert_eq!(copy.event("gxp", seq).expect("read"), Some(e.clone()));
        if let Some(s) = &e.subject {
            assert_eq!(
                copy.versions("gxp", &s.class, &s.object_id)
                    .expect("versions"),
                original
                    .versions("gxp", &s.class, &s.object_id)
                    .expect("versions"),
                "versions of {}/{}",
                s.class,
                s.object_id
            );
        }
    }
    assert_eq!(
        copy.seq_at("gxp", ledger::Timestamp(T0 + 2_500_000))
            .expect("seq_at"),
        original
            .seq_at("gxp", ledger::Timestamp(T0 + 2_500_000))
            .expect("seq_at")
    );
}

#[test]
fn a_read_only_ledger_refuses_writes() {
    let copy = import(&export_all(&populated())).expect("import");
    let before = export_all(&copy);
    let refused = create(&copy, "gxp", "ValidationLog", validation_log("x"));
    assert!(matches!(refused, Err(AppendError::ReadOnly)), "{refused:?}");
    assert!(
        copy.checkpoint("gxp").is_err(),
        "no key to sign a checkpoint"
    );
    assert!(copy.rotate_key("gxp", actor(), None).is_err());
    assert_eq!(export_all(&copy), before);
}

#[test]
fn broken_structure_is_refused_with_its_line() {
    let text = String::from_utf8(export_all(&populated())).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    // Line 1 is the header, line 2 the first app line, line 3 its event 1.
    let without = |i: usize| {
        let mut l = lines.clone();
        l.remove(i);
        l.join("\n")
    };
    let err = import(without(5).as_bytes()).err().expect("a gap");
    assert!(
        err.contains("line 6") && err.contains("event 5 where event 4"),
        "{err}"
    );
    let err = import(without(0).as_bytes()).err().expect("no header");
    assert!(err.contains("header"), "{err}");
    let last = lines.len() - 1;
    let err = import(without(last).as_bytes()).err().expect("cut tail");
    assert!(err.contains("declares head"), "{err}");

    // Importing into a store that holds the app already.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    ledger::import::import(text.as_bytes(), &*store).expect("first import");
    let err = ledger::import::import(text.as_bytes(), &*store).expect_err("twice");
    assert!(err.to_string().contains("already in the store"), "{err}");
}
