//! The projections' invariants, on random histories: the incrementally maintained view
//! equals a rebuild from the log, and a read as of any point equals what the history's own
//! model held at that point. The model is built from the commands the test issued, not from
//! the log, so it does not share the projector's code.

use std::collections::BTreeMap;
use std::sync::Arc;

use ledger::schema::ClassDef;
use ledger::{Actor, AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp};
use projections::{At, Projections, Record};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const T0: i64 = 1_795_435_200_000_000;
const CLASSES: [&str; 2] = ["Item", "Other"];

fn class(name: &str) -> ClassDef {
    ClassDef::from_json(&json!({"className": name, "fields": {
        "name": {"type": "String", "required": true},
        "qty": {"type": "Number"},
        "note": {"type": "String"},
        "due": {"type": "Date"},
    }}))
    .expect("class")
}

fn open() -> (Arc<Ledger>, Arc<ManualClock>, Projections) {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let ledger =
        Arc::new(Ledger::open(LedgerConfig::in_memory([3; 32], clock.clone())).expect("ledger"));
    ledger
        .create_app("t", "test", CLASSES.iter().map(|c| class(c)).collect())
        .expect("app");
    let p = Projections::temporary(ledger.clone()).expect("projections");
    (ledger, clock, p)
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        class: usize,
        fields: Map<String, Value>,
    },
    Update {
        class: usize,
        pick: usize,
        set: Map<String, Value>,
        unset: Vec<String>,
    },
    Delete {
        class: usize,
        pick: usize,
    },
    Tick(i64),
    Sync,
}

fn value_for(field: &'static str) -> BoxedStrategy<Value> {
    match field {
        "name" => "[a-z]{1,6}".prop_map(Value::from).boxed(),
        "qty" => (-5i64..50).prop_map(Value::from).boxed(),
        "note" => "[a-z ]{0,8}".prop_map(Value::from).boxed(),
        _ => (0u32..28)
            .prop_map(
                |d| json!({"__type": "Date", "iso": format!("2026-02-{:02}T10:00:00.000Z", d + 1)}),
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
    )
        .prop_map(move |(name, maybe_name, qty, note, due)| {
            let mut m = Map::new();
            if required {
                m.insert("name".into(), name);
            } else if let Some(n) = maybe_name {
                m.insert("name".into(), n);
            }
            for (k, v) in [("qty", qty), ("note", note), ("due", due)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            m
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, fields(true)).prop_map(|(class, fields)| Op::Create { class, fields }),
        4 => (0..2usize, any::<usize>(), fields(false), proptest::sample::subsequence(vec!["qty", "note", "due"], 0..=2))
            .prop_map(|(class, pick, set, unset)| Op::Update {
                class,
                pick,
                unset: unset.into_iter().filter(|u| !set.contains_key(*u)).map(String::from).collect(),
                set,
            }),
        1 => (0..2usize, any::<usize>()).prop_map(|(class, pick)| Op::Delete { class, pick }),
        2 => (0i64..3_000_000).prop_map(Op::Tick),
        1 => Just(Op::Sync),
    ]
}

/// The model: per class, objectId → record, as the test's own commands made it.
type State = BTreeMap<&'static str, BTreeMap<String, Record>>;

fn req(command: Command) -> AppendRequest {
    AppendRequest {
        app: "t".into(),
        actor: Actor::system(),
        idempotency_key: None,
        reason: Some("test".into()),
        command,
    }
}

/// The `pick`-th live record (modulo their number), if there is one.
fn chosen(records: &BTreeMap<String, Record>, pick: usize) -> Option<String> {
    let n = records.len();
    (n > 0)
        .then(|| records.keys().nth(pick % n).cloned())
        .flatten()
}

/// Runs `ops`; returns the model after every event: (seq, recorded time, state).
fn run(
    ledger: &Ledger,
    clock: &ManualClock,
    p: &Projections,
    ops: &[Op],
) -> Vec<(u64, Timestamp, State)> {
    let mut state: State = CLASSES.iter().map(|c| (*c, BTreeMap::new())).collect();
    let mut points = Vec::new();
    for op in ops {
        let appended = match op {
            Op::Tick(us) => {
                clock.advance(*us);
                continue;
            }
            Op::Sync => {
                p.sync("t").expect("sync");
                continue;
            }
            Op::Create { class, fields } => {
                let a = ledger
                    .append(req(Command::CreateRecord {
                        class: CLASSES[*class].into(),
                        object_id: None,
                        fields: fields.clone(),
                    }))
                    .expect("create");
                let e = &a.event;
                let id = e.subject.as_ref().expect("subject").object_id.clone();
                state.get_mut(CLASSES[*class]).expect("class").insert(
                    id.clone(),
                    Record {
                        object_id: id,
                        created_at: e.recorded_at,
                        updated_at: e.recorded_at,
                        created_seq: e.seq,
                        updated_seq: e.seq,
                        fields: fields.clone(),
                    },
                );
                a
            }
            Op::Update {
                class,
                pick,
                set,
                unset,
            } => {
                let records = state.get_mut(CLASSES[*class]).expect("class");
                let Some(id) = chosen(records, *pick) else {
                    continue;
                };
                if set.is_empty() && unset.is_empty() {
                    continue;
                }
                let a = ledger
                    .append(req(Command::UpdateRecord {
                        class: CLASSES[*class].into(),
                        object_id: id.clone(),
                        set: set.clone(),
                        unset: unset.clone(),
                    }))
                    .expect("update");
                let r = records.get_mut(&id).expect("record");
                for (k, v) in set {
                    r.fields.insert(k.clone(), v.clone());
                }
                for k in unset {
                    r.fields.remove(k);
                }
                r.updated_at = a.event.recorded_at;
                r.updated_seq = a.event.seq;
                a
            }
            Op::Delete { class, pick } => {
                let records = state.get_mut(CLASSES[*class]).expect("class");
                let Some(id) = chosen(records, *pick) else {
                    continue;
                };
                let a = ledger
                    .append(req(Command::DeleteRecord {
                        class: CLASSES[*class].into(),
                        object_id: id.clone(),
                    }))
                    .expect("delete");
                records.remove(&id);
                a
            }
        };
        points.push((
            appended.event.seq,
            appended.event.recorded_at,
            state.clone(),
        ));
    }
    points
}

fn view(p: &Projections, at: At) -> (State, u64) {
    let mut out = State::new();
    let mut seq = None;
    for c in CLASSES {
        let v = p.class_at("t", c, at).expect("class_at");
        seq.get_or_insert(v.seq);
        assert_eq!(seq, Some(v.seq), "one answer, one seq");
        out.insert(
            c,
            v.value
                .into_iter()
                .map(|r| (r.object_id.clone(), r))
                .collect(),
        );
    }
    (out, seq.unwrap_or(0))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_model_equals_rebuild_and_as_of_equals_the_past(ops in proptest::collection::vec(op(), 1..60)) {
        let (ledger, clock, p) = open();
        let points = run(&ledger, &clock, &p, &ops);
        let head = ledger.head("t").expect("head").seq;
        let empty: State = CLASSES.iter().map(|c| (*c, BTreeMap::new())).collect();
        let model_now = points.last().map(|(_, _, s)| s.clone()).unwrap_or(empty.clone());

        let (now, seq) = view(&p, At::Now);
        prop_assert_eq!(seq, head);
        prop_assert_eq!(&now, &model_now);

        p.rebuild("t", None).expect("rebuild");
        prop_assert_eq!(&view(&p, At::Now).0, &model_now);
        // Rebuilding one class leaves the other alone and gives the same view.
        p.rebuild("t", Some(&["Other"])).expect("rebuild one");
        prop_assert_eq!(&view(&p, At::Now).0, &model_now);

        // As of every event: the model right after it, by seq and by time.
        let genesis_end = points.first().map_or(head, |(s, _, _)| s - 1);
        prop_assert_eq!(&view(&p, At::Seq(genesis_end)).0, &empty);
        for (i, (seq, t, state)) in points.iter().enumerate() {
            let (v, s) = view(&p, At::Seq(*seq));
            prop_assert_eq!(s, *seq);
            prop_assert_eq!(&v, state, "as of seq {}", seq);
            // By time: the last event at or before t (events may share a time).
            let last_at_t = points.iter().rposition(|(_, t2, _)| t2 == t).unwrap_or(i);
            prop_assert_eq!(&view(&p, At::Time(*t)).0, &points[last_at_t].2);
            // One record as of the same point, for each record of the model.
            for c in CLASSES {
                for (id, r) in &state[c] {
                    let got = p.get("t", c, id, At::Seq(*seq)).expect("get");
                    prop_assert_eq!(got.value.as_ref(), Some(r));
                }
            }
        }
        // Records deleted by now read as absent now, and present before their deletion.
        for c in CLASSES {
            for (_, _, state) in &points {
                for id in state[c].keys() {
                    let now_has = model_now[c].contains_key(id);
                    let got = p.get("t", c, id, At::Now).expect("get");
                    prop_assert_eq!(got.value.is_some(), now_has);
                }
            }
        }
    }
}
