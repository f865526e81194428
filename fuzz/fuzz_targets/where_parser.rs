//! Fuzzes the Parse `where` parser (`projections::query`, reached through [`Query::parse`],
//! as `GET /classes/{class}?where=…` does) with arbitrary bytes.
//!
//! Input: any bytes. Those that are UTF-8 and JSON become `QueryParams::where_` against a
//! class with a field of every type (String, Number, Boolean, Date, Pointer, File, typed and
//! untyped Array, Object, a secret String); the same text is also tried as the `order`,
//! `keys` and `include` parameters.
//!
//! Property: parsing never panics (it returns `Ok` or a `QueryError` with a Parse code), and
//! a query that parses also evaluates (`matches`, sort, project) against a few records
//! holding every type without panicking.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ledger::schema::{ClassDef, FieldDef, FieldType};
use ledger::Timestamp;
use libfuzzer_sys::fuzz_target;
use projections::query::{Query, QueryParams};
use projections::Record;
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (class, records) = fixture();
    if let Ok(w) = serde_json::from_str::<Value>(text) {
        let params = QueryParams {
            where_: Some(w),
            count: true,
            ..QueryParams::default()
        };
        if let Ok(q) = Query::parse(class, &params) {
            exercise(&q, records);
        }
    }
    // The comma-separated parameters parse hostile text too.
    for params in [
        QueryParams {
            order: Some(text.to_string()),
            ..QueryParams::default()
        },
        QueryParams {
            keys: Some(text.to_string()),
            include: Some(text.to_string()),
            ..QueryParams::default()
        },
    ] {
        if let Ok(q) = Query::parse(class, &params) {
            exercise(&q, records);
        }
    }
});

/// Evaluates a parsed query: filtering, ordering, counting and projecting.
fn exercise(q: &Query, records: &[Record]) {
    let out = q.run_ref(records);
    assert!(out.results.len() <= records.len());
    for r in &out.results {
        assert!(q.matches(r), "a result the filter does not match");
        let _ = q.project(r);
    }
    let _ = q.equality_on("protocolId");
    let _ = q.equality_on("objectId");
}

/// The class queried and the records evaluated, built once.
fn fixture() -> &'static (ClassDef, Vec<Record>) {
    static FIXTURE: OnceLock<(ClassDef, Vec<Record>)> = OnceLock::new();
    FIXTURE.get_or_init(|| (class(), records()))
}

fn class() -> ClassDef {
    let f = FieldDef::new;
    let mut secret = f(FieldType::String);
    secret.secret = true;
    let fields: BTreeMap<String, FieldDef> = [
        ("protocolId", f(FieldType::String).required()),
        ("result", f(FieldType::String)),
        (
            "approvedBy",
            f(FieldType::Pointer {
                target_class: "_User".into(),
            }),
        ),
        ("executedAt", f(FieldType::Date)),
        ("score", f(FieldType::Number)),
        ("passed", f(FieldType::Boolean)),
        (
            "tags",
            f(FieldType::Array {
                inner: Some(Box::new(FieldType::String)),
            }),
        ),
        ("anyList", f(FieldType::Array { inner: None })),
        ("meta", f(FieldType::Object)),
        ("attachment", f(FieldType::File)),
        ("password", secret),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ClassDef {
        name: "ValidationLog".into(),
        fields,
    }
}

fn rec(id: &str, created: i64, fields: Value) -> Record {
    let fields: Map<String, Value> = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Record {
        object_id: id.into(),
        created_at: Timestamp(created),
        updated_at: Timestamp(created + 7),
        created_seq: 1,
        updated_seq: 2,
        fields,
    }
}

fn date(iso: &str) -> Value {
    json!({"__type": "Date", "iso": iso})
}

fn user(id: &str) -> Value {
    json!({"__type": "Pointer", "className": "_User", "objectId": id})
}

/// Records covering every type, missing values, ties, mixed Date forms and extreme numbers.
fn records() -> Vec<Record> {
    vec![
        rec(
            "a",
            1_000,
            json!({
                "protocolId": "P-1", "result": "pass", "approvedBy": user("u1"),
                "executedAt": date("2026-11-17T09:30:00.000Z"), "score": 10, "passed": true,
                "tags": ["gmp", "critical"], "meta": {"site": "A"},
                "anyList": [1, "x", date("2026-01-01T00:00:00.000Z"), user("u9"), null],
                "attachment": {"__type": "File", "name": "a.pdf", "url": "https://x/f",
                               "hash": "00".repeat(32)},
                "password": "hunter2",
            }),
        ),
        rec(
            "b",
            2_000,
            json!({
                "protocolId": "P-2", "result": "fail", "approvedBy": user("u2"),
                "executedAt": date("2026-11-17T09:30:00.000500+01:00"), "score": -2.5e300,
                "passed": false, "tags": [], "meta": {},
            }),
        ),
        rec(
            "c",
            2_000,
            json!({"protocolId": "p-3\n\u{e9}", "score": u64::MAX, "executedAt": "garbage"}),
        ),
        rec("d", i64::MIN + 1, json!({"protocolId": ""})),
        rec(
            "e",
            i64::MAX - 7,
            json!({"score": i64::MIN, "tags": [1, "x"]}),
        ),
    ]
}
