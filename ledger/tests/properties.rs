//! Property tests of the chain: any sequence of valid appends verifies (in the store and
//! through an export), and any mutation of any stored or exported event — a changed byte,
//! a deletion, an insertion, a reordering, a duplication — is reported at that event.

mod common;

use common::*;
use ledger::export::{event_line, verify_export};
use ledger::schema::{FieldDef, FieldType, SchemaChange};
use ledger::{
    Command, Event, FailureKind, Ledger, SignatureMeaning, Timestamp, VerifyMode, VerifyPolicy,
};
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
enum Op {
    User,
    Create(usize),
    Update(usize, u8),
    Delete(usize),
    Sign(usize),
    Login(usize),
    Rotate,
    AddField(u8),
    Clock(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::User),
        4 => any::<usize>().prop_map(Op::Create),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::Update(i, v)),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => any::<usize>().prop_map(Op::Sign),
        1 => any::<usize>().prop_map(Op::Login),
        1 => Just(Op::Rotate),
        1 => any::<u8>().prop_map(Op::AddField),
        2 => (-5_000_000i64..60_000_000).prop_map(Op::Clock),
    ]
}

/// Runs ops against a fresh in-memory ledger; refused appends must leave the head alone.
fn run(ops: &[Op]) -> Ledger {
    let (l, clock) = mem_ledger();
    let mut users = vec![user(&l, "gxp", "first")];
    let mut records: Vec<String> = Vec::new();
    for op in ops {
        let head = l.head("gxp");
        let pick = |v: &Vec<String>, i: usize| v.get(i % v.len().max(1)).cloned();
        let r = match op {
            Op::User => create(
                &l,
                "gxp",
                "_User",
                json!({"username": format!("u{}", users.len())}),
            )
            .map(|a| {
                users.push(a.event.subject.clone().expect("s").object_id);
            }),
            Op::Create(i) => create(
                &l,
                "gxp",
                "ValidationLog",
                validation_log(&pick(&users, *i).expect("a user")),
            )
            .map(|a| {
                records.push(a.event.subject.clone().expect("s").object_id);
            }),
            Op::Update(i, v) => match pick(&records, *i) {
                None => continue,
                Some(id) => l
                    .append(req(
                        "gxp",
                        Command::UpdateRecord {
                            class: "ValidationLog".into(),
                            object_id: id,
                            set: obj(json!({"result": format!("r{v}")})),
                            unset: vec![],
                        },
                    ))
                    .map(drop),
            },
            Op::Delete(i) => match pick(&records, *i) {
                None => continue,
                Some(id) => l
                    .append(req(
                        "gxp",
                        Command::DeleteRecord {
                            class: "ValidationLog".into(),
                            object_id: id,
                        },
                    ))
                    .map(drop),
            },
            Op::Sign(i) => match pick(&records, *i) {
                None => continue,
                Some(id) => {
                    let latest = l
                        .versions("gxp", "ValidationLog", &id)
                        .expect("versions")
                        .iter()
                        .rev()
                        .find(|v| v.1.is_record_change())
                        .map_or(0, |v| v.0);
                    l.append(req(
                        "gxp",
                        Command::SignRecord {
                            class: "ValidationLog".into(),
                            object_id: id,
                            version_seq: latest,
                            meaning: SignatureMeaning::Review,
                            printed_name: "R".into(),
                        },
                    ))
                    .map(drop)
                }
            },
            Op::Login(i) => l
                .append(req(
                    "gxp",
                    Command::Login {
                        user_id: pick(&users, *i).expect("user"),
                    },
                ))
                .map(drop),
            Op::Rotate => l.rotate_key("gxp", actor(), None).map(drop),
            Op::AddField(n) => l
                .append(req(
                    "gxp",
                    Command::ChangeSchema(SchemaChange::AddField {
                        class: "ComplianceLog".into(),
                        field: format!("f{n}"),
                        def: FieldDef::new(FieldType::Number),
                    }),
                ))
                .map(drop),
            Op::Clock(d) => {
                clock.advance(*d);
                continue;
            }
        };
        if r.is_err() {
            assert_eq!(
                l.head("gxp"),
                head,
                "a refused append moved the head: {op:?} {r:?}"
            );
        }
    }
    l
}

fn raw_events(l: &Ledger) -> Vec<(u64, Vec<u8>)> {
    l.store().scan("gxp", 1).map(|r| r.expect("scan")).collect()
}

fn export_lines(l: &Ledger) -> Vec<String> {
    export_text(l, "gxp").lines().map(str::to_string).collect()
}

fn verify_lines(lines: &[String], mode: VerifyMode) -> ledger::VerifyReport {
    let text = lines.join("\n");
    let mut reports = verify_export(text.as_bytes(), mode, None).expect("well-formed export");
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

#[derive(Clone, Debug)]
enum Mutation {
    Byte { at: usize, index: usize, xor: u8 },
    Delete { at: usize },
    Insert { at: usize },
    Swap { at: usize },
    Duplicate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(at, index, xor)| Mutation::Byte { at, index, xor }),
        1 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
        1 => any::<usize>().prop_map(|at| Mutation::Insert { at }),
        1 => any::<usize>().prop_map(|at| Mutation::Swap { at }),
        1 => any::<usize>().prop_map(|at| Mutation::Duplicate { at }),
    ]
}

/// A forged event at position `seq`: well formed and correctly linked, but not signed by
/// the app's key.
fn forged(prev: &Event, template: &Event, seq: u64) -> Event {
    let mut e = template.clone();
    e.seq = seq;
    e.prev_hash = prev.hash;
    e.recorded_at = Timestamp(prev.recorded_at.0 + 1);
    e.reason = Some("forged".into());
    e.hash = ledger::canonical::event_hash(&e);
    e.signature = ledger::AppKey::from_seed(&[0xEE; 32]).sign_hash(&e.hash);
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_valid_appends_verifies(ops in prop::collection::vec(op(), 1..40)) {
        let l = run(&ops);
        let head = l.head("gxp").expect("head");
        for mode in [VerifyMode::Full, VerifyMode::LinksOnly] {
            let r = l.verify("gxp", mode, VerifyPolicy::default()).expect("verify");
            prop_assert!(r.ok(), "{:?}", r.failure);
            prop_assert_eq!(r.last_seq, head.seq);
            let e = verify_lines(&export_lines(&l), mode);
            prop_assert!(e.ok(), "export: {:?}", e.failure);
            prop_assert_eq!(e.last_seq, head.seq);
        }
    }

    #[test]
    fn any_mutation_of_a_stored_event_is_reported_at_that_event(ops in prop::collection::vec(op(), 1..25), m in mutation()) {
        let l = run(&ops);
        let head = l.head("gxp").expect("head");
        let mut raw = raw_events(&l);
        let n = raw.len();
        // Which event the mutation touches, and so where verification must stop.
        let expected = match m {
            Mutation::Byte { at, index, xor } => {
                let k = at % n;
                let bytes = &mut raw[k].1;
                let i = index % bytes.len();
                bytes[i] ^= xor;
                raw[k].0
            }
            Mutation::Delete { at } => {
                let k = at % n;
                raw.remove(k);
                k as u64 + 1
            }
            Mutation::Insert { at } => {
                let k = 1 + at % (n - 1); // after genesis: position k (0-based) gets seq k+1
                let prev = ledger::stored::decode(&raw[k - 1].1).expect("decode");
                let template = ledger::stored::decode(&raw[k].1).expect("decode");
                let fake = forged(&prev, &template, k as u64 + 1);
                raw.insert(k, (0, ledger::stored::encode(&fake).expect("encode")));
                for (i, entry) in raw.iter_mut().enumerate() {
                    entry.0 = i as u64 + 1;
                }
                k as u64 + 1
            }
            Mutation::Swap { at } => {
                let k = at % (n - 1);
                let (a, b) = (raw[k].1.clone(), raw[k + 1].1.clone());
                raw[k].1 = b;
                raw[k + 1].1 = a;
                k as u64 + 1
            }
            Mutation::Duplicate { at } => {
                let k = at % n;
                let copy = raw[k].clone();
                raw.insert(k + 1, copy);
                for (i, entry) in raw.iter_mut().enumerate() {
                    entry.0 = i as u64 + 1;
                }
                k as u64 + 2
            }
        };
        // Verified as the store is: against its head record.
        let policy = VerifyPolicy { expected_head: Some((head.seq, head.hash)), ..VerifyPolicy::default() };
        let r = ledger::verify_raw("gxp", VerifyMode::Full, policy, raw.into_iter().map(Ok::<_, String>));
        let f = r.failure.clone();
        prop_assert!(f.is_some(), "mutation {:?} not detected", m);
        let f = f.expect("failure");
        prop_assert_eq!(f.seq, expected, "mutation {:?} reported as {}", m, f);
        prop_assert_eq!(r.last_seq, expected - 1);
    }

    #[test]
    fn any_mutation_of_an_exported_event_is_reported_at_that_event(ops in prop::collection::vec(op(), 1..25), m in mutation(), field in 0usize..14) {
        let l = run(&ops);
        let mut lines = export_lines(&l);
        // lines[0] is the header, lines[1] the app line; events start at lines[2].
        let n = lines.len() - 2;
        let ev = |lines: &Vec<String>, k: usize| -> serde_json::Value { serde_json::from_str(&lines[k + 2]).expect("json") };
        let expected = match m {
            Mutation::Byte { at, xor, .. } => {
                // Change one field's value: the semantic analogue of a flipped byte.
                let k = at % n;
                let mut v = ev(&lines, k);
                let keys = ["seq", "id", "recorded_at_us", "actor", "idempotency_key", "reason", "kind", "subject", "payload", "payload_digest", "prev_hash", "key_id", "hash", "signature"];
                let key = keys[field];
                let new = match key {
                    "seq" => json!(v["seq"].as_u64().expect("seq") + 1 + u64::from(xor)),
                    "recorded_at_us" => json!(v["recorded_at_us"].as_i64().expect("t") + i64::from(xor)),
                    "actor" => json!({"user_id": "mallory", "username": "mallory", "role": "admin"}),
                    "kind" => json!(if v["kind"] == "record.deleted" { "record.created" } else { "record.deleted" }),
                    "subject" => json!({"class": "ValidationLog", "object_id": format!("x{xor}")}),
                    "payload" => json!(format!("{{\"tampered\":{xor}}}")),
                    "idempotency_key" | "reason" => json!(format!("changed-{xor}")),
                    "key_id" => json!(format!("{:016x}", u64::from(xor))),
                    "id" => json!(format!("{:032x}", u128::from(xor))),
                    _ => {
                        let s = v[key].as_str().expect("hex").to_string();
                        let mut b = hex::decode(&s).expect("hex");
                        b[0] ^= xor;
                        json!(hex::encode(b))
                    }
                };
                prop_assume!(v[key] != new);
                v[key] = new;
                lines[k + 2] = v.to_string();
                k as u64 + 1
            }
            Mutation::Delete { at } => {
                let k = at % n;
                lines.remove(k + 2);
                k as u64 + 1
            }
            Mutation::Insert { at } => {
                let k = 1 + at % (n - 1);
                let prev = ledger::export::parse_event(&ev(&lines, k - 1)).expect("parse");
                let template = ledger::export::parse_event(&ev(&lines, k)).expect("parse");
                let fake = forged(&prev, &template, k as u64 + 1);
                lines.insert(k + 2, event_line(&fake));
                k as u64 + 1
            }
            Mutation::Swap { at } => {
                let k = at % (n - 1);
                lines.swap(k + 2, k + 3);
                k as u64 + 1
            }
            Mutation::Duplicate { at } => {
                let k = at % n;
                let copy = lines[k + 2].clone();
                lines.insert(k + 3, copy);
                k as u64 + 2
            }
        };
        let r = verify_lines(&lines, VerifyMode::Full);
        let f = r.failure.clone();
        prop_assert!(f.is_some(), "mutation {:?} (field {}) not detected", m, field);
        let f = f.expect("failure");
        prop_assert_eq!(f.seq, expected, "mutation {:?} (field {}) reported as {}", m, field, f);
    }
}

#[test]
fn a_forged_key_is_refused_when_the_genesis_key_is_pinned() {
    let l = run(&[Op::Create(0)]);
    let real = l.public_keys("gxp").expect("keys")[0].clone();
    // Re-sign the whole chain with a forger's key, rewriting genesis to declare it.
    let forger = ledger::AppKey::from_seed(&[0x66; 32]);
    let mut prev = ledger::canonical::GENESIS_PREV_HASH;
    let mut lines = vec![
        json!({"type": "export", "format": "audit-ledger/export", "version": 1, "apps": ["gxp"]})
            .to_string(),
    ];
    let forged_head_at = lines.len();
    lines.push(json!({"type": "app", "app": "gxp", "head_seq": 0, "head_hash": hex::encode([0u8; 32]), "keys": [{"key_id": forger.id().to_string(), "algorithm": "ed25519", "public_key": forger.public().hex(), "from_seq": 1, "to_seq": null}]}).to_string());
    for r in l.events("gxp", 1, u64::MAX).expect("events") {
        let mut e = r.expect("event");
        if e.seq == 1 {
            let p = json!({"app": "gxp", "format": "audit-ledger/v1", "key": {"key_id": forger.id().to_string(), "public_key": forger.public().hex()}});
            let bytes = serde_json::to_vec(&p).expect("json");
            e.payload_digest = ledger::canonical::payload_digest(&bytes);
            e.payload = Some(bytes);
        }
        e.key_id = forger.id();
        e.prev_hash = prev;
        e.hash = ledger::canonical::event_hash(&e);
        e.signature = forger.sign_hash(&e.hash);
        prev = e.hash;
        lines.push(event_line(&e));
    }
    let mut app_line: serde_json::Value =
        serde_json::from_str(&lines[forged_head_at]).expect("json");
    app_line["head_seq"] = json!(lines.len() - 2);
    app_line["head_hash"] = json!(hex::encode(prev));
    lines[forged_head_at] = app_line.to_string();
    let text = lines.join("\n");
    let unpinned = verify_export(text.as_bytes(), VerifyMode::Full, None).expect("parse");
    assert!(
        unpinned[0].ok(),
        "self-consistent forgery verifies without a pinned key: that is why keys are pinned"
    );
    assert_ne!(
        unpinned[0].keys[0].public_key, real.public_key,
        "and the report shows the forger's key fingerprint"
    );
    let real_pk = ledger::PublicKey::from_bytes(
        hex::decode(&real.public_key)
            .expect("hex")
            .try_into()
            .expect("32"),
    );
    let pinned =
        verify_export(text.as_bytes(), VerifyMode::Full, Some(vec![real_pk])).expect("parse");
    let f = pinned[0].failure.clone().expect("refused");
    assert_eq!(f.seq, 1);
    assert!(matches!(f.kind, FailureKind::UnknownKey { .. }));
}

#[test]
fn a_gap_is_reported_before_a_later_corrupt_record() {
    let l = run(&[Op::User, Op::User, Op::User]);
    let mut raw = raw_events(&l);
    raw.remove(2); // event 3
    raw[2].1[5] ^= 0xFF; // corrupt event 4, now the third record
    let r = ledger::verify_raw(
        "gxp",
        VerifyMode::Full,
        VerifyPolicy::default(),
        raw.into_iter().map(Ok::<_, String>),
    );
    let f = r.failure.expect("fails");
    assert_eq!((f.seq, f.kind), (3, FailureKind::Gap { found: 4 }));
}
