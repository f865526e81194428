//! A damaged projection store is reported, never served: every read that meets a page whose
//! bytes were altered behind the projections' back answers `ProjectionError::Corrupt`, and
//! a rebuild from the log repairs it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ledger::schema::ClassDef;
use ledger::{Actor, AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp};
use projections::query::QueryParams;
use projections::{At, ProjectionError, Projections};
use serde_json::json;

#[test]
fn altered_pages_are_reported_and_a_rebuild_repairs_them() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_435_200_000_000)));
    let ledger = Arc::new(Ledger::open(LedgerConfig::in_memory([9; 32], clock)).unwrap());
    let class = ClassDef::from_json(&json!({"className": "Item", "fields": {
        "name": {"type": "String"},
    }}))
    .unwrap();
    ledger.create_app("t", "test", vec![class]).unwrap();
    let db = sled::Config::new().temporary(true).open().unwrap();
    let p = Projections::open(ledger.clone(), db.clone()).unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let a = ledger
            .append(AppendRequest {
                app: "t".into(),
                actor: Actor::system(),
                idempotency_key: None,
                reason: None,
                command: Command::CreateRecord {
                    class: "Item".into(),
                    object_id: None,
                    fields: json!({"name": format!("n{i}")})
                        .as_object()
                        .cloned()
                        .unwrap(),
                },
            })
            .unwrap();
        ids.push(a.event.subject.unwrap().object_id);
    }
    p.sync("t").unwrap();
    let before = p.class_at("t", "Item", At::Now).unwrap().value;
    assert_eq!(before.len(), 40);

    // Cut the last byte off every page of the class's tree.
    let name = db
        .tree_names()
        .into_iter()
        .find(|n| n.starts_with(b"proj/v2/t/Item/"))
        .unwrap();
    let tree = db.open_tree(name).unwrap();
    for kv in tree.scan_prefix(b"P") {
        let (k, v) = kv.unwrap();
        tree.insert(k, &v[..v.len() - 1]).unwrap();
    }
    let corrupt = |r: Result<(), ProjectionError>| {
        assert!(
            matches!(r, Err(ProjectionError::Corrupt { .. })),
            "expected Corrupt, got {r:?}"
        );
    };
    corrupt(p.get("t", "Item", &ids[3], At::Now).map(|_| ()));
    corrupt(p.get("t", "Item", &ids[3], At::Seq(10)).map(|_| ()));
    corrupt(p.class_at("t", "Item", At::Now).map(|_| ()));
    corrupt(p.class_at("t", "Item", At::Seq(10)).map(|_| ()));
    let q = QueryParams {
        order: Some("-name".into()),
        limit: Some(5),
        ..QueryParams::default()
    };
    corrupt(p.find("t", "Item", &q, At::Now).map(|_| ()));
    corrupt(p.find("t", "Item", &q, At::Seq(10)).map(|_| ()));

    p.rebuild("t", None).unwrap();
    assert_eq!(p.class_at("t", "Item", At::Now).unwrap().value, before);
    assert_eq!(p.find("t", "Item", &q, At::Now).unwrap().results.len(), 5);
}
