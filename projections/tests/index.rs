//! The planned path of queries on the current view (walking an in-memory ordered index,
//! fetching only the records it needs) returns exactly what a scan of the whole class
//! returns, on random histories and random queries — after creates, updates (with ties and
//! mixed integer/float values), deletions, incremental syncs and rebuilds.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ledger::schema::ClassDef;
use ledger::{Actor, AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp};
use projections::query::{Query, QueryParams};
use projections::{At, Projections};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const T0: i64 = 1_795_435_200_000_000;

fn class() -> ClassDef {
    ClassDef::from_json(&json!({"className": "Item", "fields": {
        "name": {"type": "String", "required": true},
        "qty": {"type": "Number"},
        "note": {"type": "String"},
        "due": {"type": "Date"},
        "ok": {"type": "Boolean"},
    }}))
    .unwrap()
}

fn open() -> (Arc<Ledger>, Arc<ManualClock>, Projections) {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let ledger = Arc::new(Ledger::open(LedgerConfig::in_memory([5; 32], clock.clone())).unwrap());
    ledger.create_app("t", "test", vec![class()]).unwrap();
    let p = Projections::temporary(ledger.clone()).unwrap();
    (ledger, clock, p)
}

#[derive(Clone, Debug)]
enum Op {
    Create(Map<String, Value>),
    Update(usize, Map<String, Value>, Vec<String>),
    Delete(usize),
    Tick,
    Sync,
    Rebuild,
    Query(QueryParams),
}

fn value_for(field: &'static str) -> BoxedStrategy<Value> {
    match field {
        "name" => "[ab]{1,2}".prop_map(Value::from).boxed(),
        "qty" => prop_oneof![
            (-3i64..4).prop_map(Value::from),
            (-3i64..4).prop_map(|i| json!(i as f64)),
            Just(json!(1.5)),
        ]
        .boxed(),
        "note" => "[xy]{0,2}".prop_map(Value::from).boxed(),
        "ok" => any::<bool>().prop_map(Value::from).boxed(),
        _ => (0u32..4)
            .prop_map(
                |d| json!({"__type": "Date", "iso": format!("2026-02-0{}T10:00:00.000Z", d + 1)}),
            )
            .boxed(),
    }
}

fn fields(required: bool) -> impl Strategy<Value = Map<String, Value>> {
    let opt = |f: &'static str| proptest::option::of(value_for(f));
    (
        value_for("name"),
        opt("name"),
        opt("qty"),
        opt("note"),
        opt("due"),
        opt("ok"),
    )
        .prop_map(move |(name, maybe_name, qty, note, due, ok)| {
            let mut m = Map::new();
            if required {
                m.insert("name".into(), name);
            } else if let Some(n) = maybe_name {
                m.insert("name".into(), n);
            }
            for (k, v) in [("qty", qty), ("note", note), ("due", due), ("ok", ok)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            m
        })
}

fn where_() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(prop_oneof![
        value_for("name").prop_map(|v| json!({"name": v})),
        value_for("qty").prop_map(|v| json!({"qty": {"$gte": v}})),
        value_for("note").prop_map(|v| json!({"note": {"$ne": v}})),
        any::<bool>().prop_map(|b| json!({"due": {"$exists": b}})),
        (value_for("name"), value_for("ok"))
            .prop_map(|(n, o)| json!({"$or": [{"name": n}, {"ok": o}]})),
        // Equalities the planner groups an index by (String, Boolean), with more.
        any::<bool>().prop_map(|b| json!({"ok": b})),
        (value_for("name"), value_for("note")).prop_map(|(n, m)| json!({"name": n, "note": m})),
        (value_for("note"), value_for("qty"))
            .prop_map(|(n, q)| json!({"note": {"$eq": n}, "qty": {"$gte": q}})),
    ])
}

fn order() -> impl Strategy<Value = Option<String>> {
    let key = prop_oneof![
        Just("name"),
        Just("qty"),
        Just("note"),
        Just("due"),
        Just("ok"),
        Just("createdAt"),
        Just("updatedAt"),
        Just("objectId"),
    ];
    proptest::option::of(
        proptest::collection::vec((key, any::<bool>()), 1..3).prop_map(|keys| {
            keys.into_iter()
                .map(|(k, d)| if d { format!("-{k}") } else { k.to_string() })
                .collect::<Vec<_>>()
                .join(",")
        }),
    )
}

fn query() -> impl Strategy<Value = QueryParams> {
    (where_(), order(), 0i64..6, proptest::option::of(0i64..4)).prop_map(
        |(where_, order, limit, skip)| QueryParams {
            where_,
            order,
            limit: Some(limit),
            skip,
            ..QueryParams::default()
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => fields(true).prop_map(Op::Create),
        4 => (any::<usize>(), fields(false), proptest::sample::subsequence(vec!["qty", "note", "due", "ok"], 0..=2))
            .prop_map(|(pick, set, unset)| {
                let unset = unset.into_iter().filter(|u| !set.contains_key(*u)).map(String::from).collect();
                Op::Update(pick, set, unset)
            }),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => Just(Op::Tick),
        1 => Just(Op::Sync),
        1 => Just(Op::Rebuild),
        4 => query().prop_map(Op::Query),
    ]
}

fn req(command: Command) -> AppendRequest {
    AppendRequest {
        app: "t".into(),
        actor: Actor::system(),
        idempotency_key: None,
        reason: None,
        command,
    }
}

/// The planned answer (now) equals a scan of the class now and a scan as of the head.
fn check(p: &Projections, params: &QueryParams) -> Result<(), TestCaseError> {
    let planned = p.find("t", "Item", params, At::Now).unwrap();
    let q = Query::parse(&class(), params).unwrap();
    let all = p.class_at("t", "Item", At::Now).unwrap();
    prop_assert_eq!(all.seq, planned.seq);
    let scanned: Vec<Map<String, Value>> = q
        .run(all.value)
        .results
        .iter()
        .map(|r| q.project(r))
        .collect();
    prop_assert_eq!(&planned.results, &scanned, "query {:?}", params);
    let past = p.find("t", "Item", params, At::Seq(planned.seq)).unwrap();
    prop_assert_eq!(
        &planned.results,
        &past.results,
        "query {:?} as of the head",
        params
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn planned_queries_equal_full_scans(ops in proptest::collection::vec(op(), 1..80), last in query()) {
        let (ledger, clock, p) = open();
        let mut live: Vec<String> = Vec::new();
        for op in &ops {
            match op {
                Op::Create(fields) => {
                    let a = ledger.append(req(Command::CreateRecord {
                        class: "Item".into(),
                        object_id: None,
                        fields: fields.clone(),
                    })).unwrap();
                    live.push(a.event.subject.unwrap().object_id);
                }
                Op::Update(pick, set, unset) => {
                    if live.is_empty() || (set.is_empty() && unset.is_empty()) {
                        continue;
                    }
                    let id = live[pick % live.len()].clone();
                    ledger.append(req(Command::UpdateRecord {
                        class: "Item".into(),
                        object_id: id,
                        set: set.clone(),
                        unset: unset.clone(),
                    })).unwrap();
                }
                Op::Delete(pick) => {
                    if live.is_empty() {
                        continue;
                    }
                    let id = live.swap_remove(pick % live.len());
                    ledger.append(req(Command::DeleteRecord { class: "Item".into(), object_id: id })).unwrap();
                }
                Op::Tick => clock.advance(1_000),
                Op::Sync => {
                    p.sync("t").unwrap();
                }
                Op::Rebuild => {
                    p.rebuild("t", None).unwrap();
                }
                Op::Query(params) => check(&p, params)?,
            }
        }
        check(&p, &last)?;
    }
}
