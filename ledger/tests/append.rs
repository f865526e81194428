//! Appends end to end: every kind of event, bad input that writes nothing, idempotency,
//! concurrency, key rotation, reopening the sled store, and tampering behind its back.

mod common;

use std::sync::Arc;

use common::*;
use ledger::schema::{FieldDef, FieldType, SchemaChange};
use ledger::{
    AppendError, Command, EventKind, FailureKind, Ledger, ReviewScope, SignatureMeaning, Timestamp,
    VerifyMode, VerifyPolicy,
};
use serde_json::{json, Value};

#[test]
fn every_kind_of_change_is_chained_and_verifies() {
    let (l, clock) = mem_ledger();
    let approver = user(&l, "gxp", "mgr");
    clock.advance(1_000);
    let created = create(&l, "gxp", "ValidationLog", validation_log(&approver)).expect("create");
    let id = created.event.subject.clone().expect("subject").object_id;
    assert_eq!(created.event.kind, EventKind::RecordCreated);
    let upd = l
        .append(ledger::AppendRequest {
            reason: Some("re-run after calibration".into()),
            ..req(
                "gxp",
                Command::UpdateRecord {
                    class: "ValidationLog".into(),
                    object_id: id.clone(),
                    set: obj(json!({"result": "fail"})),
                    unset: vec![],
                },
            )
        })
        .expect("update");
    let payload: Value =
        serde_json::from_slice(upd.event.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(
        payload,
        json!({"set": {"result": "fail"}, "unset": []}),
        "only the changed field is recorded"
    );
    assert_eq!(
        upd.event.reason.as_deref(),
        Some("re-run after calibration")
    );
    let signed = l
        .append(req(
            "gxp",
            Command::SignRecord {
                class: "ValidationLog".into(),
                object_id: id.clone(),
                version_seq: upd.event.seq,
                meaning: SignatureMeaning::Approval,
                printed_name: "Quinn Lead".into(),
            },
        ))
        .expect("sign");
    let sp: Value =
        serde_json::from_slice(signed.event.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(sp["version_hash"], hex::encode(upd.event.hash));
    l.append(req(
        "gxp",
        Command::ChangeRole {
            user_id: approver.clone(),
            role: "qa_reviewer".into(),
            granted: true,
        },
    ))
    .expect("role");
    l.append(req(
        "gxp",
        Command::Login {
            user_id: approver.clone(),
        },
    ))
    .expect("login");
    l.append(req(
        "gxp",
        Command::LoginFailed {
            username: "mgr".into(),
            detail: "wrong password".into(),
        },
    ))
    .expect("login failed");
    l.append(req(
        "gxp",
        Command::Logout {
            user_id: approver.clone(),
        },
    ))
    .expect("logout");
    l.append(req(
        "gxp",
        Command::AccessDenied {
            operation: "delete".into(),
            class: Some("SystemAudit".into()),
            object_id: None,
        },
    ))
    .expect("denied");
    l.append(req(
        "gxp",
        Command::AccountLocked {
            user_id: approver.clone(),
            failed_attempts: 5,
        },
    ))
    .expect("locked");
    l.append(req(
        "gxp",
        Command::ChangeSchema(SchemaChange::AddField {
            class: "ValidationLog".into(),
            field: "batch".into(),
            def: FieldDef::new(FieldType::String),
        }),
    ))
    .expect("schema");
    let reviewed = l
        .append(req(
            "gxp",
            Command::ReviewAuditTrail {
                scope: ReviewScope::Record {
                    class: "ValidationLog".into(),
                    object_id: id.clone(),
                },
                through_seq: signed.event.seq,
                printed_name: "Quinn Lead".into(),
            },
        ))
        .expect("review");
    assert_eq!(reviewed.event.kind, EventKind::AuditTrailReviewed);
    let rp: Value =
        serde_json::from_slice(reviewed.event.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(rp["through_hash"], hex::encode(signed.event.hash));
    assert_eq!(rp["scope"], "record");
    let day = l
        .append(req(
            "gxp",
            Command::ReviewAuditTrail {
                scope: ReviewScope::Day {
                    date: "2026-11-23".into(),
                    tz: "Europe/Paris".into(),
                    first_seq: Some(1),
                },
                through_seq: reviewed.event.seq,
                printed_name: "Quinn Lead".into(),
            },
        ))
        .expect("day review");
    assert_eq!(day.event.subject, None);
    let del = l
        .append(req(
            "gxp",
            Command::DeleteRecord {
                class: "ValidationLog".into(),
                object_id: id.clone(),
            },
        ))
        .expect("delete");
    l.rotate_key("gxp", actor(), Some("annual rotation".into()))
        .expect("rotate");
    create(&l, "gxp", "ValidationLog", validation_log(&approver)).expect("create after rotation");

    let versions = l.versions("gxp", "ValidationLog", &id).expect("versions");
    let kinds: Vec<EventKind> = versions.iter().map(|v| v.1).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::RecordCreated,
            EventKind::RecordUpdated,
            EventKind::RecordSigned,
            EventKind::AuditTrailReviewed,
            EventKind::RecordDeleted
        ]
    );
    assert_eq!(versions.last().map(|v| v.0), Some(del.event.seq));

    let head = l.head("gxp").expect("head");
    let report = l
        .verify("gxp", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify");
    assert!(report.ok(), "{:?}", report.failure);
    assert_eq!(report.verified, head.seq);
    assert_eq!(report.keys.len(), 2, "genesis key and the rotated-in key");
    assert_eq!(
        report.keys[0].to_seq,
        Some(head.seq - 1),
        "old key signed up to and including the rotation"
    );
    assert!(l
        .schema("gxp")
        .expect("schema")
        .class("ValidationLog")
        .expect("class")
        .fields
        .contains_key("batch"));
    assert!(!l
        .schema_at("gxp", 2)
        .expect("schema at 2")
        .class("ValidationLog")
        .expect("class")
        .fields
        .contains_key("batch"));
    // Every seq from 1 to the head, no gaps.
    let seqs: Vec<u64> = l
        .events("gxp", 1, u64::MAX)
        .expect("events")
        .map(|e| e.expect("event").seq)
        .collect();
    assert_eq!(seqs, (1..=head.seq).collect::<Vec<_>>());
}

#[test]
fn rejected_appends_return_typed_errors_and_leave_the_log_exactly_as_it_was() {
    let (l, _) = mem_ledger();
    let approver = user(&l, "gxp", "mgr");
    let id = create(&l, "gxp", "ValidationLog", validation_log(&approver))
        .expect("ok")
        .event
        .subject
        .expect("s")
        .object_id;
    let before = export_text(&l, "gxp");
    let with = |k: &str, v: Value| {
        let mut f = validation_log(&approver);
        f[k] = v;
        f
    };
    let mut missing = validation_log(&approver);
    missing.as_object_mut().expect("obj").remove("result");
    let cases: Vec<(&str, Result<ledger::Appended, AppendError>)> = vec![
        (
            "wrong type",
            create(&l, "gxp", "ValidationLog", with("result", json!(42))),
        ),
        (
            "missing required",
            create(&l, "gxp", "ValidationLog", missing),
        ),
        (
            "unknown class",
            create(&l, "gxp", "NoSuchClass", json!({"a": 1})),
        ),
        (
            "unknown field",
            create(&l, "gxp", "ValidationLog", with("colour", json!("red"))),
        ),
        (
            "bad pointer format",
            create(
                &l,
                "gxp",
                "ValidationLog",
                with(
                    "approvedBy",
                    json!({"__type": "Pointer", "className": "_User"}),
                ),
            ),
        ),
        (
            "pointer to wrong class",
            create(
                &l,
                "gxp",
                "ValidationLog",
                with("approvedBy", pointer("ComplianceLog", &approver)),
            ),
        ),
        (
            "pointer to missing object",
            create(
                &l,
                "gxp",
                "ValidationLog",
                with("approvedBy", pointer("_User", "ghost")),
            ),
        ),
        (
            "bad date",
            create(
                &l,
                "gxp",
                "ValidationLog",
                with("executedAt", date("2026-02-30T10:00:00Z")),
            ),
        ),
        (
            "date as plain string",
            create(
                &l,
                "gxp",
                "ValidationLog",
                with("executedAt", json!("2026-11-17")),
            ),
        ),
        (
            "unknown app",
            create(&l, "nope", "ValidationLog", validation_log(&approver)),
        ),
        (
            "password in a user",
            create(
                &l,
                "gxp",
                "_User",
                json!({"username": "x", "password": "hunter2"}),
            ),
        ),
        (
            "update of a missing record",
            l.append(req(
                "gxp",
                Command::UpdateRecord {
                    class: "ValidationLog".into(),
                    object_id: "ghost".into(),
                    set: obj(json!({"result": "x"})),
                    unset: vec![],
                },
            )),
        ),
        (
            "update removing a required field",
            l.append(req(
                "gxp",
                Command::UpdateRecord {
                    class: "ValidationLog".into(),
                    object_id: id.clone(),
                    set: obj(json!({"result": null})),
                    unset: vec![],
                },
            )),
        ),
        (
            "empty update",
            l.append(req(
                "gxp",
                Command::UpdateRecord {
                    class: "ValidationLog".into(),
                    object_id: id.clone(),
                    set: obj(json!({})),
                    unset: vec![],
                },
            )),
        ),
        (
            "sign an outdated version",
            l.append(req(
                "gxp",
                Command::SignRecord {
                    class: "ValidationLog".into(),
                    object_id: id.clone(),
                    version_seq: 1,
                    meaning: SignatureMeaning::Review,
                    printed_name: "Q".into(),
                },
            )),
        ),
        (
            "schema change to a dangling class",
            l.append(req(
                "gxp",
                Command::ChangeSchema(SchemaChange::AddField {
                    class: "ValidationLog".into(),
                    field: "x".into(),
                    def: FieldDef::new(FieldType::Pointer {
                        target_class: "Nope".into(),
                    }),
                }),
            )),
        ),
        (
            "empty reason",
            l.append(ledger::AppendRequest {
                reason: Some(String::new()),
                ..req(
                    "gxp",
                    Command::DeleteRecord {
                        class: "ValidationLog".into(),
                        object_id: id.clone(),
                    },
                )
            }),
        ),
        (
            "oversized idempotency key",
            l.append(ledger::AppendRequest {
                idempotency_key: Some("k".repeat(1000)),
                ..req(
                    "gxp",
                    Command::DeleteRecord {
                        class: "ValidationLog".into(),
                        object_id: id.clone(),
                    },
                )
            }),
        ),
        (
            "oversized payload",
            create(
                &l,
                "gxp",
                "ValidationLog",
                with("testedSystem", json!("x".repeat(200_000))),
            ),
        ),
        (
            "bad objectId",
            l.append(req(
                "gxp",
                Command::CreateRecord {
                    class: "ValidationLog".into(),
                    object_id: Some("has space".into()),
                    fields: obj(validation_log(&approver)),
                },
            )),
        ),
        (
            "duplicate objectId",
            l.append(req(
                "gxp",
                Command::CreateRecord {
                    class: "ValidationLog".into(),
                    object_id: Some(id.clone()),
                    fields: obj(validation_log(&approver)),
                },
            )),
        ),
        ("duplicate app", l.create_app("gxp", "test", vec![])),
        ("bad app name", l.create_app("Bad App", "test", vec![])),
    ];
    for (name, r) in cases {
        let e = r.err().unwrap_or_else(|| panic!("{name}: accepted"));
        let msg = e.to_string();
        assert!(!msg.is_empty(), "{name}");
        let expected_variant = match name {
            "wrong type" => {
                matches!(
                    e,
                    AppendError::Invalid(
                        ledger::schema::validate::ValidationError::WrongType { .. }
                    )
                ) && msg.contains("ValidationLog.result")
                    && msg.contains("String")
                    && msg.contains("Number")
            }
            "missing required" => msg.contains("ValidationLog.result") && msg.contains("required"),
            "unknown class" => msg.contains("NoSuchClass"),
            "unknown field" => msg.contains("colour"),
            "pointer to missing object" => {
                matches!(e, AppendError::PointerTargetMissing { .. }) && msg.contains("ghost")
            }
            "bad date" => msg.contains("2026-02-30"),
            "unknown app" => matches!(e, AppendError::UnknownApp(_)),
            "update of a missing record" => matches!(e, AppendError::NotFound { .. }),
            "sign an outdated version" => matches!(e, AppendError::OutdatedVersion { .. }),
            "duplicate objectId" => matches!(e, AppendError::AlreadyExists { .. }),
            "duplicate app" => matches!(e, AppendError::AppExists(_)),
            _ => true,
        };
        assert!(expected_variant, "{name}: unexpected error {e:?}");
    }
    assert_eq!(
        export_text(&l, "gxp"),
        before,
        "a refused append wrote something"
    );
}

#[test]
fn a_repeated_idempotency_key_returns_the_first_event() {
    let (l, _) = mem_ledger();
    let approver = user(&l, "gxp", "mgr");
    let r = || ledger::AppendRequest {
        idempotency_key: Some("req-42".into()),
        ..req(
            "gxp",
            Command::CreateRecord {
                class: "ValidationLog".into(),
                object_id: None,
                fields: obj(validation_log(&approver)),
            },
        )
    };
    let first = l.append(r()).expect("first");
    let head = l.head("gxp").expect("head");
    let again = l.append(r()).expect("again");
    assert!(again.duplicate && !first.duplicate);
    assert_eq!(again.event, first.event);
    assert_eq!(l.head("gxp"), Some(head));
    // The same key in one group (submitted together) also yields one event.
    let pend: Vec<_> = (0..8)
        .map(|_| {
            l.submit(ledger::AppendRequest {
                idempotency_key: Some("req-43".into()),
                ..req(
                    "gxp",
                    Command::Login {
                        user_id: approver.clone(),
                    },
                )
            })
        })
        .collect();
    let seqs: std::collections::HashSet<u64> = pend
        .into_iter()
        .map(|p| p.wait().expect("ok").event.seq)
        .collect();
    assert_eq!(seqs.len(), 1);
    // The same key in another app is another request.
    let other = user(&l, "iso9001", "boss");
    let o = l
        .append(ledger::AppendRequest {
            idempotency_key: Some("req-42".into()),
            ..req("iso9001", Command::Login { user_id: other })
        })
        .expect("other app");
    assert!(!o.duplicate);
}

#[test]
fn concurrent_appenders_get_one_gapless_order_each_acknowledged_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = Arc::new(Ledger::open_dir(dir.path()).expect("open"));
    l.ensure_builtin_apps().expect("apps");
    let approver = user(&l, "gxp", "mgr");
    let threads = 8;
    let per = 150;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let l = l.clone();
            let approver = approver.clone();
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let mut f = validation_log(&approver);
                        f["protocolId"] = json!(format!("T{t}-{i}"));
                        create(&l, "gxp", "ValidationLog", f)
                            .expect("append")
                            .event
                            .seq
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    all.sort_unstable();
    let first = all[0];
    assert_eq!(
        all,
        (first..first + (threads * per) as u64).collect::<Vec<_>>(),
        "gapless, each once"
    );
    let report = l
        .verify("gxp", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify");
    assert!(report.ok(), "{:?}", report.failure);
    assert_eq!(report.last_seq, first + (threads * per) as u64 - 1);
}

#[test]
fn new_object_ids_are_parse_shaped_and_sort_in_creation_order() {
    let (l, _clock) = mem_ledger();
    let l = Arc::new(l);
    let approver = user(&l, "gxp", "mgr");
    // From several threads, so that creates share groups.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (l, approver) = (l.clone(), approver.clone());
            std::thread::spawn(move || {
                (0..100)
                    .map(|_| {
                        let e = create(&l, "gxp", "ValidationLog", validation_log(&approver))
                            .expect("append")
                            .event;
                        (e.seq, e.subject.expect("subject").object_id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut made: Vec<(u64, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    made.sort();
    const DIGITS: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (seq, id) in &made {
        assert!(
            id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{id}"
        );
        // The first six characters are the creating event's number in base 62.
        let prefix = id[..6].bytes().fold(0u64, |n, b| {
            n * 62 + DIGITS.find(char::from(b)).expect("a base-62 digit") as u64
        });
        assert_eq!(prefix, *seq, "{id}");
    }
    assert!(
        made.windows(2).all(|w| w[0].1 < w[1].1),
        "ids in creation order"
    );
    // A given objectId is still taken as given.
    let given = l
        .append(req(
            "gxp",
            Command::CreateRecord {
                class: "ValidationLog".into(),
                object_id: Some("zzzzzzzzzz".into()),
                fields: obj(validation_log(&approver)),
            },
        ))
        .expect("append");
    assert_eq!(
        given.event.subject.expect("subject").object_id,
        "zzzzzzzzzz"
    );
}

#[test]
fn recorded_time_never_decreases_and_seq_at_finds_the_last_event_before_an_instant() {
    let (l, clock) = mem_ledger();
    let u = user(&l, "gxp", "mgr");
    let base = l.head("gxp").expect("head").seq;
    let times = [100, 200, 200, 50, 300];
    for (i, dt) in times.iter().enumerate() {
        clock.set(Timestamp(T0 + dt * 1_000_000));
        let e = l
            .append(req("gxp", Command::Login { user_id: u.clone() }))
            .expect("login")
            .event;
        assert_eq!(e.seq, base + 1 + i as u64);
    }
    let recorded: Vec<i64> = (base + 1..=base + 5)
        .map(|s| {
            l.event("gxp", s)
                .expect("read")
                .expect("some")
                .recorded_at
                .0
        })
        .collect();
    assert_eq!(
        recorded,
        vec![
            T0 + 100_000_000,
            T0 + 200_000_000,
            T0 + 200_000_000,
            T0 + 200_000_000,
            T0 + 300_000_000
        ],
        "the clock went back; the chain did not"
    );
    assert_eq!(
        l.seq_at("gxp", Timestamp(T0 + 150_000_000))
            .expect("seq_at"),
        base + 1
    );
    assert_eq!(
        l.seq_at("gxp", Timestamp(T0 + 200_000_000))
            .expect("seq_at"),
        base + 4
    );
    assert_eq!(
        l.seq_at("gxp", Timestamp(T0 + 999_000_000))
            .expect("seq_at"),
        base + 5
    );
    assert_eq!(l.seq_at("gxp", Timestamp(T0 - 1)).expect("seq_at"), 0);
}

#[test]
fn the_sled_store_survives_reopening_and_refuses_a_second_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (head, keys) = {
        let l = Ledger::open_dir(dir.path()).expect("open");
        l.ensure_builtin_apps().expect("apps");
        let u = user(&l, "hipaa", "privacy.officer");
        l.rotate_key("hipaa", actor(), None).expect("rotate");
        l.append(req("hipaa", Command::Login { user_id: u }))
            .expect("login");
        let second = ledger::store::SledStore::open(&dir.path().join("store"));
        assert!(
            matches!(second, Err(ledger::store::StoreError::Locked { .. })),
            "second open must be refused: {second:?}"
        );
        (
            l.head("hipaa").expect("head"),
            l.public_keys("hipaa").expect("keys"),
        )
    };
    let l = Ledger::open_dir(dir.path()).expect("reopen");
    assert_eq!(
        l.apps(),
        vec!["gxp", "hipaa", "iso14001", "iso9001", "training"]
    );
    assert_eq!(l.head("hipaa"), Some(head));
    assert_eq!(l.public_keys("hipaa").expect("keys"), keys);
    assert!(l.ensure_builtin_apps().expect("idempotent").is_empty());
    // The rotated-out private key is destroyed; the active one signs on.
    let key_files: Vec<_> = std::fs::read_dir(dir.path().join("keys/hipaa"))
        .expect("dir")
        .collect();
    assert_eq!(key_files.len(), 1);
    let u2 = user(&l, "hipaa", "second");
    assert!(!u2.is_empty());
    assert!(l
        .verify("hipaa", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify")
        .ok());
}

#[test]
fn tampering_with_the_sled_store_is_reported_at_that_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target;
    {
        let l = Ledger::open_dir(dir.path()).expect("open");
        l.ensure_builtin_apps().expect("apps");
        let u = user(&l, "gxp", "mgr");
        for _ in 0..20 {
            create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("create");
        }
        target = 10;
    }
    {
        let store = ledger::store::SledStore::open(&dir.path().join("store")).expect("store");
        // The event's record is rewritten in place in the app's segment file.
        let file = ledger::store::segment::path(&dir.path().join("store"), "gxp");
        let before = std::fs::metadata(&file).expect("segment").len();
        store
            .tamper_event("gxp", target, |bytes| {
                let mut e = ledger::stored::decode(bytes).expect("decode");
                let p = String::from_utf8(e.payload.take().expect("payload"))
                    .expect("utf8")
                    .replace("pass", "fail");
                e.payload = Some(p.into_bytes());
                *bytes = ledger::stored::encode(&e).expect("encode");
            })
            .expect("tamper");
        assert_eq!(std::fs::metadata(&file).expect("segment").len(), before);
    }
    let l = Ledger::open_dir(dir.path()).expect("reopen");
    for mode in [VerifyMode::Full, VerifyMode::LinksOnly] {
        let r = l
            .verify("gxp", mode, VerifyPolicy::default())
            .expect("verify");
        let f = r.failure.expect("tampering must be found");
        assert_eq!(f.seq, target);
        assert_eq!(f.kind, FailureKind::PayloadDigestMismatch);
        assert_eq!(r.last_seq, target - 1);
    }
}

#[test]
fn cutting_events_off_the_end_of_the_sled_store_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = {
        let l = Ledger::open_dir(dir.path()).expect("open");
        l.ensure_builtin_apps().expect("apps");
        user(&l, "gxp", "mgr");
        user(&l, "gxp", "qa");
        l.head("gxp").expect("head")
    };
    // The head event's record removed from both files: the head record still counts it.
    let store = dir.path().join("store");
    let index = ledger::store::index::path(&store, "gxp");
    let at = ledger::store::index::Index::open(index.clone(), true)
        .and_then(|i| i.locator(head.seq))
        .expect("locator");
    for (file, len) in [
        (
            index,
            ledger::store::index::end_of(head.seq - 1).expect("end"),
        ),
        (ledger::store::segment::path(&store, "gxp"), at.offset),
    ] {
        cut_file(&file, len, &[]);
    }
    let err = Ledger::open_dir(dir.path()).err().expect("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("event {}", head.seq)) && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn large_events_are_read_back_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = "x".repeat(60_000);
    let seqs: Vec<u64> = {
        let l = Ledger::open_dir(dir.path()).expect("open");
        l.ensure_builtin_apps().expect("apps");
        let u = user(&l, "gxp", "mgr");
        (0..40)
            .map(|_| {
                let mut f = validation_log(&u);
                f["testedSystem"] = json!(big);
                create(&l, "gxp", "ValidationLog", f)
                    .expect("create")
                    .event
                    .seq
            })
            .collect()
    };
    let file = ledger::store::segment::path(&dir.path().join("store"), "gxp");
    let len = std::fs::metadata(&file).expect("segment").len();
    assert!(
        len > 40 * 60_000,
        "the bodies are in the segment file ({len} bytes)"
    );
    // sled's own I/O threads may still hold the directory's lock for a moment after the
    // ledger is dropped: wait for them (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let l = loop {
        match Ledger::open_dir(dir.path()) {
            Err(ledger::OpenError::Store(ledger::store::StoreError::Locked { .. }))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("reopen"),
        }
    };
    for s in seqs {
        let e = l.event("gxp", s).expect("read").expect("present");
        assert!(String::from_utf8_lossy(e.payload.as_deref().expect("payload")).contains(&big));
    }
    assert!(l
        .verify("gxp", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify")
        .ok());
}

#[test]
fn a_schema_change_that_cannot_be_stored_faithfully_is_refused_without_a_gap() {
    let (l, _) = mem_ledger();
    let head = l.head("gxp").expect("head");
    let nested = FieldDef::new(FieldType::Array {
        inner: Some(Box::new(FieldType::Pointer {
            target_class: "_User".into(),
        })),
    });
    let e = l
        .append(req(
            "gxp",
            Command::ChangeSchema(SchemaChange::AddField {
                class: "ValidationLog".into(),
                field: "refs".into(),
                def: nested,
            }),
        ))
        .expect_err("refused");
    assert!(e.to_string().contains("innerType"), "{e}");
    assert_eq!(l.head("gxp"), Some(head));
    let next = user(&l, "gxp", "after");
    assert!(!next.is_empty());
    assert_eq!(l.head("gxp").expect("head").seq, head.seq + 1, "no gap");
    assert!(l
        .verify("gxp", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify")
        .ok());
}

#[test]
fn an_app_whose_schema_cannot_be_recorded_is_not_half_created() {
    let (l, _) = mem_ledger();
    // A schema too large for one event: refused before the genesis event is chained.
    let fields = (0..3000)
        .map(|i| (format!("field{i:04}"), FieldDef::new(FieldType::String)))
        .collect();
    let big = ledger::schema::ClassDef {
        name: "Big".into(),
        fields,
    };
    let e = l
        .create_app("big", "test", vec![big])
        .expect_err("too large");
    assert!(e.to_string().contains("payload"), "{e}");
    assert!(!l.apps().contains(&"big".to_string()));
    let e = l
        .append(req(
            "big",
            Command::Login {
                user_id: "x".into(),
            },
        ))
        .expect_err("no such app");
    assert!(matches!(e, AppendError::UnknownApp(_)), "{e:?}");
    l.create_app("big", "test", vec![])
        .expect("the name is still free");
    assert!(l
        .verify("big", VerifyMode::Full, VerifyPolicy::default())
        .expect("verify")
        .ok());
}

#[test]
fn a_password_field_is_secret_however_it_is_declared() {
    let (l, _) = mem_ledger();
    l.append(req(
        "gxp",
        Command::ChangeSchema(SchemaChange::AddField {
            class: "ComplianceLog".into(),
            field: "password".into(),
            def: FieldDef::new(FieldType::String),
        }),
    ))
    .expect("added");
    assert!(
        l.schema("gxp")
            .expect("schema")
            .class("ComplianceLog")
            .expect("class")
            .fields["password"]
            .secret
    );
    let u = user(&l, "gxp", "mgr");
    let e = create(&l, "gxp", "ComplianceLog", json!({"title": "t", "category": "c", "owner": pointer("_User", &u), "reviewStatus": "open", "password": "hunter2"}))
        .expect_err("never stored");
    assert!(e.to_string().contains("secret"), "{e}");
}

#[test]
fn an_audit_trail_review_must_name_what_exists() {
    let (l, _clock) = mem_ledger();
    let approver = user(&l, "gxp", "mgr");
    let created = create(&l, "gxp", "ValidationLog", validation_log(&approver)).expect("create");
    let id = created.event.subject.clone().expect("subject").object_id;
    let head = l.head("gxp").expect("head").seq;
    let record = |object_id: &str| ReviewScope::Record {
        class: "ValidationLog".into(),
        object_id: object_id.into(),
    };
    let day = |date: &str, first_seq| ReviewScope::Day {
        date: date.into(),
        tz: "UTC".into(),
        first_seq,
    };
    for (scope, through_seq, printed_name, needle) in [
        (record(&id), head + 1, "Q", "does not exist"),
        (record(&id), 0, "Q", "last event examined"),
        (record("nosuchrecord"), head, "Q", "nosuchrecord"),
        (record(&id), head, "", "printed_name"),
        (day("2026-13-01", Some(1)), head, "Q", "2026-13-01"),
        (day("2026-11-23", None), head, "Q", "first_seq"),
        (day("2026-11-23", Some(head + 1)), head, "Q", "first_seq"),
    ] {
        let err = l
            .append(req(
                "gxp",
                Command::ReviewAuditTrail {
                    scope: scope.clone(),
                    through_seq,
                    printed_name: printed_name.into(),
                },
            ))
            .expect_err("refused");
        assert!(err.to_string().contains(needle), "{scope:?}: {err}");
        assert_eq!(l.head("gxp").expect("head").seq, head, "nothing written");
    }
    // An empty day is reviewed with nothing examined.
    let e = l
        .append(req(
            "gxp",
            Command::ReviewAuditTrail {
                scope: day("2026-11-01", None),
                through_seq: 0,
                printed_name: "Q".into(),
            },
        ))
        .expect("empty day");
    let p: Value =
        serde_json::from_slice(e.event.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(p["through_hash"], Value::Null);
}

#[test]
fn users_changed_moves_with_each_durable_change_to_a_user_and_only_then() {
    let (l, _) = mem_ledger();
    let at_open = l.users_changed("gxp").expect("app");
    assert_eq!(l.users_changed("no-such-app"), None);
    let u = user(&l, "gxp", "ana");
    let after_user = l.users_changed("gxp").expect("app");
    assert!(after_user > at_open);
    assert_eq!(after_user, l.head("gxp").expect("head").seq);
    // A record is not a user: no change.
    create(&l, "gxp", "ValidationLog", validation_log(&u)).expect("create");
    assert_eq!(l.users_changed("gxp"), Some(after_user));
    // Another app's user is not this app's.
    user(&l, "hipaa", "bo");
    assert_eq!(l.users_changed("gxp"), Some(after_user));
    // An update of the user is.
    let a = l
        .append(req(
            "gxp",
            Command::UpdateRecord {
                class: "_User".into(),
                object_id: u.clone(),
                set: obj(json!({"role": "auditor"})),
                unset: Vec::new(),
            },
        ))
        .expect("update");
    assert_eq!(l.users_changed("gxp"), Some(a.event.seq));
}
