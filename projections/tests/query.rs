//! Tests of the Parse query language (`projections::query`): every operator on every field
//! type, `$or`/`$and`/`$nor`, ordering, projection, paging, counting, the bounded top-k
//! against a naive sort, and every refusal with its Parse code and message.

use std::collections::BTreeMap;

use ledger::schema::{ClassDef, FieldDef, FieldType};
use ledger::Timestamp;
use projections::query::{Query, QueryError, QueryParams, DEFAULT_LIMIT};
use projections::Record;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn class() -> ClassDef {
    let f = FieldDef::new;
    let mut secret = f(FieldType::String);
    secret.secret = true;
    let fields: BTreeMap<String, FieldDef> = [
        ("protocolId", f(FieldType::String).required()),
        ("testedSystem", f(FieldType::String)),
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

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

fn rec(id: &str, created: i64, fields: Value) -> Record {
    Record {
        object_id: id.into(),
        created_at: Timestamp(created),
        updated_at: Timestamp(created + 7),
        created_seq: 1,
        updated_seq: 2,
        fields: obj(fields),
    }
}

fn date(iso: &str) -> Value {
    json!({"__type": "Date", "iso": iso})
}

fn user(id: &str) -> Value {
    json!({"__type": "Pointer", "className": "_User", "objectId": id})
}

fn file(name: &str) -> Value {
    json!({"__type": "File", "name": name, "url": "https://x/f", "hash": "00".repeat(32)})
}

/// Five records covering every type, with missing values, ties and mixed Date forms.
fn records() -> Vec<Record> {
    vec![
        rec(
            "a",
            1000,
            json!({
                "protocolId": "P-1", "result": "pass", "approvedBy": user("u1"),
                "executedAt": date("2026-11-17T09:30:00.000Z"), "score": 10, "passed": true,
                "tags": ["gmp", "critical"], "meta": {"site": "A"},
                "anyList": [1, "x", date("2026-01-01T00:00:00.000Z"), user("u9")],
                "attachment": file("a.pdf"), "ACL": {"*": {"read": true}},
            }),
        ),
        rec(
            "b",
            2000,
            json!({
                "protocolId": "P-2", "result": "fail", "approvedBy": user("u2"),
                "executedAt": date("2026-11-17T09:30:00.000500Z"), "score": 2.5,
                "passed": false, "tags": ["gmp"], "meta": {"site": "B"},
            }),
        ),
        rec(
            "c",
            3000,
            json!({
                "protocolId": "p-3", "result": "pass",
                "executedAt": date("2026-11-18T00:00:00.000Z"), "score": -1, "tags": [],
            }),
        ),
        rec(
            "d",
            3000,
            json!({"protocolId": "P-4", "testedSystem": "LIMS\nv2", "passed": true}),
        ),
        rec(
            "e",
            500,
            json!({
                "protocolId": "Q-5", "score": 10.0,
                "executedAt": date("2025-01-01T00:00:00.000Z"),
            }),
        ),
    ]
}

fn parse(params: QueryParams) -> Result<Query, QueryError> {
    Query::parse(&class(), &params)
}

fn where_(w: Value) -> QueryParams {
    QueryParams {
        where_: Some(w),
        ..QueryParams::default()
    }
}

/// The ids of the fixtures matching `w`, in objectId order.
fn matching(w: Value) -> Vec<String> {
    let q = parse(where_(w.clone())).unwrap_or_else(|e| panic!("{w}: {e}"));
    records()
        .iter()
        .filter(|r| q.matches(r))
        .map(|r| r.object_id.clone())
        .collect()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn refused(params: QueryParams) -> QueryError {
    match parse(params) {
        Err(e) => e,
        Ok(q) => panic!("accepted: {q:?}"),
    }
}

fn refused_where(w: Value) -> QueryError {
    refused(where_(w))
}

fn run_ids(params: QueryParams) -> (Vec<String>, Option<u64>) {
    let q = parse(params).expect("parse");
    let out = q.run(records());
    (
        out.results.into_iter().map(|r| r.object_id).collect(),
        out.count,
    )
}

// ---- String ----------------------------------------------------------------------------

#[test]
fn string_equality_and_comparisons() {
    assert_eq!(matching(json!({"protocolId": "P-1"})), ids(&["a"]));
    assert_eq!(matching(json!({"protocolId": {"$eq": "P-2"}})), ids(&["b"]));
    assert_eq!(
        matching(json!({"protocolId": {"$ne": "P-1"}})),
        ids(&["b", "c", "d", "e"])
    );
    // Byte order: upper case sorts before lower case.
    assert_eq!(matching(json!({"protocolId": {"$lt": "P-2"}})), ids(&["a"]));
    assert_eq!(
        matching(json!({"protocolId": {"$lte": "P-2"}})),
        ids(&["a", "b"])
    );
    assert_eq!(
        matching(json!({"protocolId": {"$gt": "P-4"}})),
        ids(&["c", "e"])
    );
    assert_eq!(
        matching(json!({"protocolId": {"$gte": "P-4", "$lt": "a"}})),
        ids(&["d", "e"])
    );
}

#[test]
fn string_in_nin_exists_and_missing_values() {
    assert_eq!(
        matching(json!({"protocolId": {"$in": ["P-1", "Q-5", "zzz"]}})),
        ids(&["a", "e"])
    );
    assert_eq!(
        matching(json!({"protocolId": {"$nin": ["P-1", "Q-5"]}})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(
        matching(json!({"result": {"$exists": true}})),
        ids(&["a", "b", "c"])
    );
    assert_eq!(
        matching(json!({"result": {"$exists": false}})),
        ids(&["d", "e"])
    );
    // $ne and $nin match records without the field; $lt and $in never do.
    assert_eq!(
        matching(json!({"result": {"$ne": "pass"}})),
        ids(&["b", "d", "e"])
    );
    assert_eq!(
        matching(json!({"result": {"$nin": ["pass"]}})),
        ids(&["b", "d", "e"])
    );
    assert_eq!(
        matching(json!({"result": {"$lt": "zzz"}})),
        ids(&["a", "b", "c"])
    );
    // null means "missing".
    assert_eq!(matching(json!({"result": null})), ids(&["d", "e"]));
    assert_eq!(
        matching(json!({"result": {"$ne": null}})),
        ids(&["a", "b", "c"])
    );
    assert_eq!(
        matching(json!({"result": {"$in": [null, "fail"]}})),
        ids(&["b", "d", "e"])
    );
}

#[test]
fn string_regex_with_options() {
    assert_eq!(
        matching(json!({"protocolId": {"$regex": "^P-"}})),
        ids(&["a", "b", "d"])
    );
    assert_eq!(
        matching(json!({"protocolId": {"$regex": "^p-", "$options": "i"}})),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(
        matching(json!({"testedSystem": {"$regex": "^v2$"}})),
        ids(&[])
    );
    assert_eq!(
        matching(json!({"testedSystem": {"$regex": "^v2$", "$options": "m"}})),
        ids(&["d"])
    );
    assert_eq!(
        matching(json!({"testedSystem": {"$regex": "S.v", "$options": "s"}})),
        ids(&["d"])
    );
    assert_eq!(
        matching(json!({"protocolId": {"$regex": "^ q - 5 $", "$options": "xi"}})),
        ids(&["e"])
    );
    // A regex never matches a missing value.
    assert_eq!(
        matching(json!({"testedSystem": {"$regex": ".*"}})),
        ids(&["d"])
    );
}

// ---- Number ----------------------------------------------------------------------------

#[test]
fn numbers_compare_numerically_across_int_and_float() {
    assert_eq!(matching(json!({"score": 10})), ids(&["a", "e"]));
    assert_eq!(matching(json!({"score": 10.0})), ids(&["a", "e"]));
    assert_eq!(
        matching(json!({"score": {"$gt": 2}})),
        ids(&["a", "b", "e"])
    );
    assert_eq!(matching(json!({"score": {"$lte": 2.5}})), ids(&["b", "c"]));
    assert_eq!(
        matching(json!({"score": {"$gte": -1, "$lt": 10.5}})),
        ids(&["a", "b", "c", "e"])
    );
    assert_eq!(
        matching(json!({"score": {"$in": [2.5, -1]}})),
        ids(&["b", "c"])
    );
    assert_eq!(
        matching(json!({"score": {"$ne": 10}})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(
        matching(json!({"score": {"$nin": [10, 2.5]}})),
        ids(&["c", "d"])
    );
}

// ---- Boolean ---------------------------------------------------------------------------

#[test]
fn booleans_with_false_before_true() {
    assert_eq!(matching(json!({"passed": true})), ids(&["a", "d"]));
    assert_eq!(matching(json!({"passed": {"$eq": false}})), ids(&["b"]));
    assert_eq!(
        matching(json!({"passed": {"$ne": true}})),
        ids(&["b", "c", "e"])
    );
    assert_eq!(matching(json!({"passed": {"$lt": true}})), ids(&["b"]));
    assert_eq!(
        matching(json!({"passed": {"$gt": false}})),
        ids(&["a", "d"])
    );
    assert_eq!(matching(json!({"passed": {"$in": [false]}})), ids(&["b"]));
}

// ---- Date ------------------------------------------------------------------------------

#[test]
fn dates_compare_by_instant_whatever_the_offset_or_precision() {
    // a is stored with milliseconds, b with microseconds, 500 µs later.
    assert_eq!(
        matching(json!({"executedAt": {"$gt": date("2026-11-17T09:30:00Z")}})),
        ids(&["b", "c"])
    );
    assert_eq!(
        matching(json!({"executedAt": {"$gte": date("2026-11-17T09:30:00Z")}})),
        ids(&["a", "b", "c"])
    );
    assert_eq!(
        matching(json!({"executedAt": date("2026-11-17T10:30:00.000+01:00")})),
        ids(&["a"])
    );
    assert_eq!(
        matching(json!({"executedAt": {"$eq": date("2026-11-17T09:30:00.0005Z")}})),
        ids(&["b"])
    );
    assert_eq!(
        matching(json!({"executedAt": {"$lt": date("2026-01-01T00:00:00-05:00")}})),
        ids(&["e"])
    );
    assert_eq!(
        matching(json!({"executedAt": {"$lte": date("2026-11-17T09:30:00.0004Z")}})),
        ids(&["a", "e"])
    );
    assert_eq!(
        matching(
            json!({"executedAt": {"$in": [date("2025-01-01T01:00:00+01:00"), date("2026-11-18T00:00:00Z")]}})
        ),
        ids(&["c", "e"])
    );
    assert_eq!(
        matching(json!({"executedAt": {"$ne": date("2025-01-01T00:00:00Z")}})),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(
        matching(json!({"executedAt": {"$exists": false}})),
        ids(&["d"])
    );
}

// ---- Pointer ---------------------------------------------------------------------------

#[test]
fn pointers_compare_by_class_and_object_id() {
    assert_eq!(matching(json!({"approvedBy": user("u1")})), ids(&["a"]));
    assert_eq!(
        matching(
            json!({"approvedBy": {"__type": "Pointer", "className": "User", "objectId": "u2"}})
        ),
        ids(&["b"])
    );
    assert_eq!(
        matching(json!({"approvedBy": {"$ne": user("u1")}})),
        ids(&["b", "c", "d", "e"])
    );
    assert_eq!(
        matching(json!({"approvedBy": {"$in": [user("u1"), user("u2"), user("nope")]}})),
        ids(&["a", "b"])
    );
    assert_eq!(
        matching(json!({"approvedBy": {"$nin": [user("u1")]}})),
        ids(&["b", "c", "d", "e"])
    );
    assert_eq!(
        matching(json!({"approvedBy": {"$exists": false}})),
        ids(&["c", "d", "e"])
    );
}

#[test]
fn a_bare_object_id_for_a_pointer_is_refused() {
    let e = refused_where(json!({"approvedBy": "u1"}));
    assert!(matches!(e, QueryError::WrongType { .. }), "{e:?}");
    assert_eq!(e.code(), 102);
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "ValidationLog.approvedBy is a Pointer<_User>: equality needs a Pointer to _User"
        ),
        "{msg}"
    );
    assert!(msg.ends_with("given \"u1\""), "{msg}");

    let e = refused_where(
        json!({"approvedBy": {"$in": [{"__type": "Pointer", "className": "Other", "objectId": "x"}]}}),
    );
    assert!(matches!(e, QueryError::WrongType { .. }), "{e:?}");
    assert!(
        e.to_string().contains("$in needs a Pointer to _User"),
        "{e}"
    );
}

// ---- Array -----------------------------------------------------------------------------

#[test]
fn arrays_contain_in_all() {
    assert_eq!(matching(json!({"tags": "gmp"})), ids(&["a", "b"]));
    assert_eq!(matching(json!({"tags": {"$eq": "critical"}})), ids(&["a"]));
    assert_eq!(
        matching(json!({"tags": {"$ne": "gmp"}})),
        ids(&["c", "d", "e"])
    );
    // A whole array equals the exact array.
    assert_eq!(matching(json!({"tags": ["gmp"]})), ids(&["b"]));
    assert_eq!(matching(json!({"tags": []})), ids(&["c"]));
    assert_eq!(
        matching(json!({"tags": {"$in": ["critical", "x"]}})),
        ids(&["a"])
    );
    assert_eq!(
        matching(json!({"tags": {"$nin": ["critical"]}})),
        ids(&["b", "c", "d", "e"])
    );
    assert_eq!(
        matching(json!({"tags": {"$all": ["gmp", "critical"]}})),
        ids(&["a"])
    );
    assert_eq!(
        matching(json!({"tags": {"$all": ["gmp"]}})),
        ids(&["a", "b"])
    );
    assert_eq!(matching(json!({"tags": {"$all": []}})), ids(&[]));
    assert_eq!(
        matching(json!({"tags": {"$exists": true}})),
        ids(&["a", "b", "c"])
    );
}

#[test]
fn untyped_arrays_compare_elements_by_their_own_type() {
    assert_eq!(matching(json!({"anyList": 1.0})), ids(&["a"]));
    assert_eq!(matching(json!({"anyList": "x"})), ids(&["a"]));
    assert_eq!(
        matching(json!({"anyList": date("2025-12-31T19:00:00-05:00")})),
        ids(&["a"])
    );
    assert_eq!(matching(json!({"anyList": user("u9")})), ids(&["a"]));
    assert_eq!(
        matching(json!({"anyList": {"$all": [1, "x", user("u9")]}})),
        ids(&["a"])
    );
    assert_eq!(matching(json!({"anyList": true})), ids(&[]));
}

#[test]
fn array_operands_are_typed_by_the_inner_type() {
    let e = refused_where(json!({"tags": 3}));
    assert!(matches!(e, QueryError::WrongType { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "ValidationLog.tags is an Array<String>: equality needs a String, given 3"
    );
    let e = refused_where(json!({"tags": {"$all": ["a", 1]}}));
    assert!(
        e.to_string().contains("$all needs a String, given 1"),
        "{e}"
    );
    let e = refused_where(json!({"tags": {"$lt": "a"}}));
    assert!(matches!(e, QueryError::NotApplicable { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "ValidationLog.tags is an Array<String>: $lt does not apply to it"
    );
    let e = refused_where(json!({"tags": {"$size": 2}}));
    assert_eq!(e.to_string(), "unknown operator $size on field tags");
    let e = refused_where(json!({"result": {"$all": ["pass"]}}));
    assert!(matches!(e, QueryError::NotApplicable { .. }), "{e:?}");
    let e = refused_where(json!({"tags": {"$regex": "g"}}));
    assert!(matches!(e, QueryError::NotApplicable { .. }), "{e:?}");
}

// ---- Object and File -------------------------------------------------------------------

#[test]
fn objects_and_files() {
    assert_eq!(matching(json!({"meta": {"site": "A"}})), ids(&["a"]));
    assert_eq!(
        matching(json!({"meta": {"$ne": {"site": "A"}}})),
        ids(&["b", "c", "d", "e"])
    );
    assert_eq!(
        matching(json!({"meta": {"$exists": true}})),
        ids(&["a", "b"])
    );
    assert_eq!(matching(json!({"attachment": file("a.pdf")})), ids(&["a"]));
    assert_eq!(
        matching(json!({"attachment": {"__type": "File", "name": "b.pdf"}})),
        ids(&[])
    );
    for (w, op) in [
        (json!({"meta": {"$gt": {"site": "A"}}}), "$gt"),
        (json!({"attachment": {"$lte": file("a.pdf")}}), "$lte"),
        (json!({"approvedBy": {"$lt": user("u1")}}), "$lt"),
        (json!({"score": {"$regex": "1"}}), "$regex"),
        (json!({"executedAt": {"$regex": "2026"}}), "$regex"),
    ] {
        let e = refused_where(w);
        assert!(matches!(e, QueryError::NotApplicable { .. }), "{e:?}");
        assert!(e.to_string().contains(op), "{e}");
        assert_eq!(e.code(), 102);
    }
}

// ---- System fields ---------------------------------------------------------------------

#[test]
fn system_fields() {
    assert_eq!(matching(json!({"objectId": "b"})), ids(&["b"]));
    assert_eq!(
        matching(json!({"objectId": {"$in": ["a", "c", "zz"]}})),
        ids(&["a", "c"])
    );
    assert_eq!(
        matching(json!({"objectId": {"$regex": "^[ab]$"}})),
        ids(&["a", "b"])
    );
    assert_eq!(
        matching(json!({"objectId": {"$gte": "d"}})),
        ids(&["d", "e"])
    );
    let t = |us: i64| date(&Timestamp(us).to_rfc3339());
    assert_eq!(
        matching(json!({"createdAt": {"$gt": t(1000)}})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(matching(json!({"createdAt": t(3000)})), ids(&["c", "d"]));
    assert_eq!(
        matching(json!({"updatedAt": {"$lte": t(1007)}})),
        ids(&["a", "e"])
    );
    assert_eq!(matching(json!({"createdAt": {"$exists": true}})).len(), 5);
    let e = refused_where(json!({"createdAt": "1970-01-01T00:00:00Z"}));
    assert!(matches!(e, QueryError::WrongType { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("ValidationLog.createdAt is a Date"),
        "{e}"
    );
}

// ---- $or / $and / $nor -----------------------------------------------------------------

#[test]
fn logical_operators() {
    assert_eq!(
        matching(json!({"$or": [{"result": "pass"}, {"score": {"$lt": 3}}]})),
        ids(&["a", "b", "c"])
    );
    assert_eq!(
        matching(json!({"$and": [{"tags": "gmp"}, {"passed": false}]})),
        ids(&["b"])
    );
    assert_eq!(
        matching(json!({"$nor": [{"result": "pass"}, {"passed": true}]})),
        ids(&["b", "e"])
    );
    assert_eq!(
        matching(json!({
            "protocolId": {"$regex": "^P"},
            "$or": [
                {"$and": [{"score": {"$gt": 5}}, {"passed": true}]},
                {"testedSystem": {"$exists": true}}
            ]
        })),
        ids(&["a", "d"])
    );
    assert_eq!(matching(json!({})).len(), 5);
}

#[test]
fn malformed_logical_operators_are_refused() {
    for (w, needle) in [
        (json!({"$or": []}), "bad $or: needs a non-empty array"),
        (
            json!({"$and": {"a": 1}}),
            "bad $and: needs a non-empty array",
        ),
        (
            json!({"$or": [1]}),
            "bad $or: needs an array of query objects",
        ),
    ] {
        let e = refused_where(w);
        assert!(matches!(e, QueryError::BadLogical { .. }), "{e:?}");
        assert!(e.to_string().starts_with(needle), "{e}");
        assert_eq!(e.code(), 102);
    }
    let mut deep = json!({"result": "pass"});
    for _ in 0..20 {
        deep = json!({"$or": [deep]});
    }
    let e = refused_where(deep);
    assert!(e.to_string().contains("nested more than"), "{e}");
    let e = refused_where(json!({"$relatedTo": {}}));
    assert_eq!(e.to_string(), "unknown operator $relatedTo on field where");
}

// ---- Errors in where -------------------------------------------------------------------

#[test]
fn where_must_be_an_object() {
    for w in [
        json!([1]),
        json!(3),
        json!("not json"),
        json!("[1]"),
        Value::Null,
    ] {
        let e = refused_where(w.clone());
        assert!(matches!(e, QueryError::InvalidJson { .. }), "{w}: {e:?}");
        assert_eq!(e.code(), 107);
        assert!(
            e.to_string().starts_with("where must be a JSON object"),
            "{e}"
        );
    }
    // The raw text of a JSON object is accepted.
    let q = parse(where_(json!("{\"result\":\"pass\"}"))).expect("text where");
    assert_eq!(q.run(records()).results.len(), 2);
}

#[test]
fn unknown_operators_and_fields() {
    let e = refused_where(json!({"result": {"$near": [0, 0]}}));
    assert_eq!(
        e,
        QueryError::UnknownOperator {
            field: "result".into(),
            op: "$near".into()
        }
    );
    assert_eq!(e.to_string(), "unknown operator $near on field result");
    assert_eq!(e.code(), 102);

    for f in ["title", "password", "ACL", "meta.site", "_rperm"] {
        let e = refused_where(json!({ f: "x" }));
        assert!(matches!(e, QueryError::UnknownField { .. }), "{f}: {e:?}");
        assert_eq!(e.code(), 102);
        assert_eq!(e.to_string(), format!("ValidationLog has no field {f:?}"));
    }
}

#[test]
fn wrong_operand_types_name_field_operator_and_value() {
    let e = refused_where(json!({"executedAt": {"$lt": "abc"}}));
    assert_eq!(
        e.to_string(),
        "ValidationLog.executedAt is a Date: $lt needs a Date, given \"abc\""
    );
    assert_eq!(e.code(), 102);
    for (w, needle) in [
        (
            json!({"score": "10"}),
            "ValidationLog.score is a Number: equality needs a Number, given \"10\"",
        ),
        (
            json!({"score": {"$gt": null}}),
            "$gt needs a Number, given null",
        ),
        (
            json!({"passed": {"$eq": 1}}),
            "ValidationLog.passed is a Boolean: $eq needs a Boolean, given 1",
        ),
        (
            json!({"result": {"$in": ["x", 2]}}),
            "$in needs a String, given 2",
        ),
        (
            json!({"result": {"$nin": [true]}}),
            "$nin needs a String, given true",
        ),
        (
            json!({"result": {"$ne": {"a": 1}}}),
            "$ne needs a String, given {\"a\":1}",
        ),
        (
            json!({"executedAt": date("yesterday")}),
            "needs a Date, given {\"__type\":\"Date\",\"iso\":\"yesterday\"}",
        ),
        (
            json!({"meta": "x"}),
            "ValidationLog.meta is an Object: equality needs an Object, given \"x\"",
        ),
        (
            json!({"attachment": "a.pdf"}),
            "ValidationLog.attachment is a File: equality needs a File",
        ),
        (
            json!({"objectId": 5}),
            "ValidationLog.objectId is a String: equality needs a String, given 5",
        ),
    ] {
        let e = refused_where(w.clone());
        assert!(matches!(e, QueryError::WrongType { .. }), "{w}: {e:?}");
        assert!(e.to_string().contains(needle), "{w}: {e}");
    }
}

#[test]
fn malformed_operands() {
    for (w, needle) in [
        (
            json!({"result": {"$in": "pass"}}),
            "bad $in on field result: needs an array, given \"pass\"",
        ),
        (
            json!({"tags": {"$all": "gmp"}}),
            "bad $all on field tags: needs an array",
        ),
        (
            json!({"result": {"$exists": 1}}),
            "bad $exists on field result: needs true or false, given 1",
        ),
        (
            json!({"result": {"$regex": 1}}),
            "bad $regex on field result: needs a string pattern, given 1",
        ),
        (
            json!({"result": {"$options": "i"}}),
            "bad $options on field result: is only allowed with $regex",
        ),
        (
            json!({"meta": {"$exists": true, "site": "A"}}),
            "bad site on field meta: plain keys cannot be mixed",
        ),
    ] {
        let e = refused_where(w.clone());
        assert!(matches!(e, QueryError::BadOperand { .. }), "{w}: {e:?}");
        assert!(e.to_string().starts_with(needle), "{w}: {e}");
        assert_eq!(e.code(), 102);
    }
}

#[test]
fn bad_regexes_and_options() {
    let e = refused_where(json!({"result": {"$regex": "(unclosed"}}));
    assert!(matches!(e, QueryError::BadRegex { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("bad $regex \"(unclosed\" on field result: "),
        "{e}"
    );
    assert!(e.to_string().contains("unclosed group"), "{e}");
    assert_eq!(e.code(), 102);

    // Too large once compiled.
    let e = refused_where(json!({"result": {"$regex": "\\w{1000}\\w{1000}"}}));
    assert!(matches!(e, QueryError::BadRegex { .. }), "{e:?}");

    for o in [json!("g"), json!("iu"), json!(1)] {
        let e = refused_where(json!({"result": {"$regex": "a", "$options": o}}));
        assert!(matches!(e, QueryError::BadRegexOptions { .. }), "{e:?}");
        assert!(e.to_string().contains("only i, m, s and x"), "{e}");
        assert!(e.to_string().contains(&o.to_string()), "{e}");
        assert_eq!(e.code(), 102);
    }
}

// ---- order -----------------------------------------------------------------------------

fn ordered(order: &str) -> Vec<String> {
    run_ids(QueryParams {
        order: Some(order.into()),
        ..QueryParams::default()
    })
    .0
}

#[test]
fn order_with_ties_missing_values_and_directions() {
    // Missing first ascending; a and e tie on 10 and 10.0: objectId breaks it.
    assert_eq!(ordered("score"), ids(&["d", "c", "b", "a", "e"]));
    // Descending reverses, but the objectId tie-break stays ascending.
    assert_eq!(ordered("-score"), ids(&["a", "e", "b", "c", "d"]));
    assert_eq!(ordered("executedAt"), ids(&["d", "e", "a", "b", "c"]));
    assert_eq!(ordered("-executedAt"), ids(&["c", "b", "a", "e", "d"]));
    assert_eq!(ordered("passed, -score"), ids(&["e", "c", "b", "a", "d"]));
    assert_eq!(ordered("-objectId"), ids(&["e", "d", "c", "b", "a"]));
    assert_eq!(ordered("approvedBy"), ids(&["c", "d", "e", "a", "b"]));
    assert_eq!(ordered("-updatedAt"), ids(&["c", "d", "b", "a", "e"]));
    // Default: createdAt, then objectId (c and d were created together).
    assert_eq!(ordered(""), ids(&["e", "a", "b", "c", "d"]));
    assert_eq!(
        run_ids(QueryParams::default()).0,
        ids(&["e", "a", "b", "c", "d"])
    );
    let q = parse(QueryParams {
        order: Some("-score,result,score".into()),
        ..QueryParams::default()
    })
    .expect("order");
    assert_eq!(
        q.order_fields(),
        &[("score".to_string(), true), ("result".to_string(), false)]
    );
    let q = parse(QueryParams::default()).expect("default");
    assert_eq!(q.order_fields(), &[("createdAt".to_string(), false)]);
}

#[test]
fn bad_order_fields_are_refused_with_105() {
    for (order, field, needle) in [
        ("nope", "nope", "ValidationLog has no such field"),
        ("-password", "password", "no such field"),
        (
            "tags",
            "tags",
            "is of type Array<String>, which cannot be sorted on",
        ),
        ("meta", "meta", "Object"),
        ("-attachment", "attachment", "File"),
        ("score,,result", "", "empty field name"),
        ("-", "", "empty field name"),
        ("$score", "$score", "no such field"),
    ] {
        let e = refused(QueryParams {
            order: Some(order.into()),
            ..QueryParams::default()
        });
        assert!(
            matches!(&e, QueryError::BadOrder { field: f, .. } if &**f == field),
            "{order}: {e:?}"
        );
        assert_eq!(e.code(), 105);
        assert!(e.to_string().contains(needle), "{order}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot order by {field:?}")),
            "{e}"
        );
    }
}

// ---- keys and include ------------------------------------------------------------------

#[test]
fn keys_restrict_the_projection_but_keep_system_fields() {
    let rs = records();
    let q = parse(QueryParams {
        keys: Some("result, score,approvedBy.username".into()),
        ..QueryParams::default()
    })
    .expect("keys");
    let m = q.project(&rs[0]);
    let names: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "approvedBy",
            "createdAt",
            "objectId",
            "result",
            "score",
            "updatedAt"
        ]
    );
    assert_eq!(m["createdAt"], json!(Timestamp(1000).to_rfc3339()));
    assert_eq!(m["objectId"], json!("a"));
    assert_eq!(
        q.keys(),
        Some(
            &[
                "result".to_string(),
                "score".into(),
                "approvedBy.username".into()
            ][..]
        )
    );

    let q = parse(QueryParams {
        keys: Some("".into()),
        ..QueryParams::default()
    })
    .expect("empty keys");
    assert_eq!(q.project(&rs[0]).len(), 3);

    let q = parse(QueryParams {
        keys: Some("ACL,meta.site".into()),
        ..QueryParams::default()
    })
    .expect("ACL");
    let m = q.project(&rs[0]);
    assert!(m.contains_key("ACL") && m.contains_key("meta") && !m.contains_key("tags"));

    let q = parse(QueryParams::default()).expect("all");
    assert_eq!(q.project(&rs[0]), rs[0].to_parse_json());
    assert_eq!(q.keys(), None);
}

#[test]
fn bad_keys_are_refused_with_105() {
    for (keys, key, needle) in [
        ("result,nope", "nope", "ValidationLog has no field \"nope\""),
        ("password", "password", "no field"),
        (
            "result.length",
            "result.length",
            "only Pointer and Object fields have sub-keys",
        ),
        ("approvedBy..x", "approvedBy..x", "empty segment"),
        ("ACL.x", "ACL.x", "ACL has no sub-keys"),
    ] {
        let e = refused(QueryParams {
            keys: Some(keys.into()),
            ..QueryParams::default()
        });
        assert!(
            matches!(&e, QueryError::BadKey { param: "keys", key: k, .. } if &**k == key),
            "{keys}: {e:?}"
        );
        assert_eq!(e.code(), 105);
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn include_paths() {
    let q = parse(QueryParams {
        include: Some("approvedBy.role, approvedBy,approvedBy".into()),
        ..QueryParams::default()
    })
    .expect("include");
    assert_eq!(
        q.include(),
        &["approvedBy.role".to_string(), "approvedBy".into()]
    );
    let q = parse(QueryParams {
        include: Some("*".into()),
        ..QueryParams::default()
    })
    .expect("include *");
    assert_eq!(q.include(), &["approvedBy".to_string()]);

    let e = refused(QueryParams {
        include: Some("result".into()),
        ..QueryParams::default()
    });
    assert!(matches!(e, QueryError::IncludeNotPointer { .. }), "{e:?}");
    assert_eq!(e.code(), 102);
    assert_eq!(
        e.to_string(),
        "cannot include \"result\": ValidationLog.result is a String, not a Pointer"
    );
    let e = refused(QueryParams {
        include: Some("tags.x".into()),
        ..QueryParams::default()
    });
    assert!(
        e.to_string().contains("is an Array<String>, not a Pointer"),
        "{e}"
    );

    for inc in ["nope", "approvedBy.", "password"] {
        let e = refused(QueryParams {
            include: Some(inc.into()),
            ..QueryParams::default()
        });
        assert!(
            matches!(
                &e,
                QueryError::BadKey {
                    param: "include",
                    ..
                }
            ),
            "{inc}: {e:?}"
        );
        assert_eq!(e.code(), 105);
        assert!(e.to_string().contains(inc), "{e}");
    }
}

// ---- limit, skip, count ----------------------------------------------------------------

#[test]
fn limit_skip_and_count() {
    let q = parse(QueryParams::default()).expect("default");
    assert_eq!((q.limit(), q.skip(), q.count()), (DEFAULT_LIMIT, 0, false));
    assert!(q.include().is_empty());

    let (got, count) = run_ids(QueryParams {
        order: Some("-score".into()),
        limit: Some(2),
        skip: Some(1),
        count: true,
        ..QueryParams::default()
    });
    assert_eq!(got, ids(&["e", "b"]));
    assert_eq!(count, Some(5));

    let (got, count) = run_ids(QueryParams {
        where_: Some(json!({"result": "pass"})),
        limit: Some(0),
        count: true,
        ..QueryParams::default()
    });
    assert!(got.is_empty());
    assert_eq!(count, Some(2));

    let (got, count) = run_ids(QueryParams {
        limit: Some(0),
        ..QueryParams::default()
    });
    assert!(got.is_empty());
    assert_eq!(count, None);

    let (got, _) = run_ids(QueryParams {
        skip: Some(10),
        count: true,
        ..QueryParams::default()
    });
    assert!(got.is_empty());

    let q = parse(QueryParams {
        limit: Some(10_000),
        skip: Some(1_000_000),
        ..QueryParams::default()
    })
    .expect("maxima");
    assert_eq!((q.limit(), q.skip()), (10_000, 1_000_000));
}

#[test]
fn out_of_range_limit_and_skip_are_refused() {
    for n in [-1, 10_001, i64::MIN, i64::MAX] {
        let e = refused(QueryParams {
            limit: Some(n),
            ..QueryParams::default()
        });
        assert_eq!(e, QueryError::LimitOutOfRange { given: n });
        assert_eq!(e.code(), 102);
        assert_eq!(
            e.to_string(),
            format!("limit {n} is out of range (0 to 10000)")
        );
    }
    for n in [-1, 1_000_001] {
        let e = refused(QueryParams {
            skip: Some(n),
            ..QueryParams::default()
        });
        assert_eq!(e, QueryError::SkipOutOfRange { given: n });
        assert_eq!(e.code(), 102);
        assert!(e.to_string().contains(&n.to_string()), "{e}");
    }
}

// ---- equality_on -----------------------------------------------------------------------

#[test]
fn equality_constraints_are_exposed_normalised() {
    let q = parse(where_(json!({
        "protocolId": "P-1",
        "executedAt": {"$eq": date("2026-11-17T10:30:00+01:00")},
        "tags": "gmp",
        "score": {"$gt": 1},
        "$and": [{"approvedBy": {"__type": "Pointer", "className": "User", "objectId": "u1"}}],
        "$or": [{"result": "pass"}],
        "testedSystem": null,
    })))
    .expect("parse");
    assert_eq!(q.equality_on("protocolId"), Some(&json!("P-1")));
    assert_eq!(
        q.equality_on("executedAt"),
        Some(&date("2026-11-17T09:30:00.000Z"))
    );
    assert_eq!(q.equality_on("approvedBy"), Some(&user("u1")));
    assert_eq!(q.equality_on("tags"), None);
    assert_eq!(q.equality_on("score"), None);
    assert_eq!(q.equality_on("result"), None);
    assert_eq!(q.equality_on("testedSystem"), None);
    let q = parse(where_(json!({"objectId": "b"}))).expect("parse");
    assert_eq!(q.equality_on("objectId"), Some(&json!("b")));
    // The stored form of a non-whole-millisecond Date has microseconds.
    let q = parse(where_(
        json!({"executedAt": date("2026-11-17T09:30:00.0005Z")}),
    ))
    .expect("parse");
    assert_eq!(
        q.equality_on("executedAt"),
        Some(&date("2026-11-17T09:30:00.000500Z"))
    );
    assert_eq!(q.class_name(), "ValidationLog");
}

#[test]
fn run_ref_equals_run() {
    let rs = records();
    let q = parse(QueryParams {
        where_: Some(json!({"score": {"$exists": true}})),
        order: Some("-executedAt".into()),
        limit: Some(3),
        count: true,
        ..QueryParams::default()
    })
    .expect("parse");
    assert_eq!(q.run_ref(&rs), q.run(rs.clone()));
}

// ---- evaluation never panics on data of another type -----------------------------------

#[test]
fn values_of_an_unexpected_type_simply_do_not_match() {
    // e.g. a field re-added with another type after old records were written.
    let odd = rec(
        "z",
        1,
        json!({
            "protocolId": 5, "score": "high", "executedAt": "2026-01-01", "passed": "yes",
            "tags": "gmp", "approvedBy": "u1", "meta": [1],
        }),
    );
    for w in [
        json!({"protocolId": "5"}),
        json!({"protocolId": {"$regex": "5"}}),
        json!({"score": {"$gt": 0}}),
        json!({"executedAt": {"$lt": date("2030-01-01T00:00:00Z")}}),
        json!({"passed": true}),
        json!({"tags": {"$all": ["gmp"]}}),
        json!({"approvedBy": user("u1")}),
        json!({"meta": {"a": 1}}),
    ] {
        let q = parse(where_(w.clone())).expect("parse");
        assert!(!q.matches(&odd), "{w}");
    }
    for order in ["score", "-executedAt", "approvedBy", "protocolId", "passed"] {
        let q = parse(QueryParams {
            order: Some(order.into()),
            ..QueryParams::default()
        })
        .expect("parse");
        let mut all = records();
        all.push(odd.clone());
        assert_eq!(q.run(all).results.len(), 6);
    }
}

// ---- top-k equals a full sort ----------------------------------------------------------

fn arb_record(i: usize) -> impl Strategy<Value = Record> {
    let score = prop_oneof![
        Just(None),
        (-3i64..4).prop_map(|n| Some(json!(n))),
        (-3i64..4).prop_map(|n| Some(json!(n as f64 + 0.5))),
    ];
    let result = proptest::option::of(prop_oneof![Just("pass"), Just("fail"), Just("Pass")]);
    let passed = proptest::option::of(any::<bool>());
    let executed = proptest::option::of((0i64..6, any::<bool>()).prop_map(|(n, ms)| {
        // Some whole milliseconds (stored as .mmmZ), some not (.uuuuuuZ).
        let t = 1_795_000_000_000_000 + n * 500;
        let iso = Timestamp(t).to_rfc3339();
        if ms && t % 1000 == 0 {
            date(&iso.replace("000Z", "Z"))
        } else {
            date(&iso)
        }
    }));
    let tags = proptest::collection::vec(prop_oneof![Just("gmp"), Just("x")], 0..3);
    (0i64..5, score, result, passed, executed, tags).prop_map(
        move |(created, score, result, passed, executed, tags)| {
            let mut f = Map::new();
            if let Some(s) = score {
                f.insert("score".into(), s);
            }
            if let Some(r) = result {
                f.insert("result".into(), json!(r));
            }
            if let Some(p) = passed {
                f.insert("passed".into(), json!(p));
            }
            if let Some(d) = executed {
                f.insert("executedAt".into(), d);
            }
            f.insert("tags".into(), json!(tags));
            f.insert("protocolId".into(), json!(format!("P-{i}")));
            Record {
                object_id: format!("r{:03}", (i * 37) % 101),
                created_at: Timestamp(created),
                updated_at: Timestamp(created),
                created_seq: 0,
                updated_seq: 0,
                fields: f,
            }
        },
    )
}

fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    (0usize..60).prop_flat_map(|n| (0..n).map(arb_record).collect::<Vec<_>>())
}

fn arb_where() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"result": "pass"}))),
        Just(Some(json!({"score": {"$gte": 0}}))),
        Just(Some(json!({"$or": [{"passed": true}, {"tags": "gmp"}]}))),
        Just(Some(
            json!({"executedAt": {"$gt": date(&Timestamp(1_795_000_000_001_000).to_rfc3339())}})
        )),
        Just(Some(
            json!({"result": {"$ne": "pass"}, "score": {"$exists": true}})
        )),
    ]
}

fn arb_order() -> impl Strategy<Value = Option<String>> {
    let one = prop_oneof![
        Just("score"),
        Just("-score"),
        Just("result"),
        Just("-result"),
        Just("passed"),
        Just("-executedAt"),
        Just("executedAt"),
        Just("createdAt"),
        Just("-objectId"),
    ];
    proptest::option::of(proptest::collection::vec(one, 1..4).prop_map(|v| v.join(",")))
}

proptest! {
    #[test]
    fn top_k_equals_a_full_sort(
        rs in arb_records(),
        w in arb_where(),
        order in arb_order(),
        limit in proptest::option::of(0i64..15),
        skip in proptest::option::of(0i64..15),
        count in any::<bool>(),
    ) {
        let params = QueryParams { where_: w, order, limit, skip, count, ..QueryParams::default() };
        let q = Query::parse(&class(), &params).expect("parse");
        let mut naive: Vec<Record> = rs.iter().filter(|r| q.matches(r)).cloned().collect();
        let matched = naive.len() as u64;
        naive.sort_by(|a, b| q.compare(a, b));
        let naive: Vec<Record> = naive.into_iter().skip(q.skip()).take(q.limit()).collect();
        let out = q.run(rs.clone());
        prop_assert_eq!(&out.results, &naive);
        prop_assert_eq!(out.count, count.then_some(matched));
        prop_assert_eq!(q.run_ref(&rs), out);
    }

    #[test]
    fn compare_is_a_total_order(rs in arb_records(), order in arb_order()) {
        let q = Query::parse(&class(), &QueryParams { order, ..QueryParams::default() }).expect("parse");
        let rs = &rs[..rs.len().min(20)];
        for a in rs {
            prop_assert_eq!(q.compare(a, a), std::cmp::Ordering::Equal);
            for b in rs {
                prop_assert_eq!(q.compare(a, b), q.compare(b, a).reverse());
                for c in rs {
                    if q.compare(a, b).is_le() && q.compare(b, c).is_le() {
                        prop_assert!(q.compare(a, c).is_le());
                    }
                }
            }
        }
    }
}

// ---- speed (run by hand: cargo test --release -p projections --test query -- --ignored) --

#[test]
#[ignore]
fn hundred_thousand_records_where_order_limit_10() {
    let rs: Vec<Record> = (0..100_000i64)
        .map(|i| {
            rec(
                &format!("id{i:06}"),
                i,
                json!({
                    "protocolId": format!("P-{}", i % 1000),
                    "result": if i % 3 == 0 { "fail" } else { "pass" },
                    "score": (i * 7919) % 1000,
                    "executedAt": date(&Timestamp(1_795_000_000_000_000 + (i * 104_729) % 1_000_000_000).to_rfc3339()),
                    "tags": ["gmp", format!("t{}", i % 10)],
                    "approvedBy": user(&format!("u{}", i % 50)),
                }),
            )
        })
        .collect();
    let best = |f: &dyn Fn() -> usize| {
        (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let get = best(&|| {
        rs.iter()
            .filter(|r| r.fields.get("executedAt").is_some())
            .count()
    });
    let iso = best(&|| {
        rs.iter()
            .filter(|r| {
                r.fields
                    .get("executedAt")
                    .and_then(|d| d.get("iso"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| s > "2026")
            })
            .count()
    });
    println!("baselines: one field lookup {get:?}, a Date's iso {iso:?}");
    for (w, order) in [
        (
            json!({"result": "pass", "score": {"$gte": 100}}),
            "-executedAt",
        ),
        (json!({"tags": "t3"}), "-score,executedAt"),
        (json!({"protocolId": {"$regex": "^P-1"}}), "createdAt"),
        (
            json!({"executedAt": {"$gt": date("2026-11-20T00:00:00Z")}}),
            "-executedAt",
        ),
        (json!({"objectId": {"$gte": "id05"}}), "-createdAt"),
    ] {
        let q = parse(QueryParams {
            where_: Some(w.clone()),
            order: Some(order.into()),
            limit: Some(10),
            count: true,
            ..QueryParams::default()
        })
        .expect("parse");
        let out = q.run_ref(&rs);
        let dt = best(&|| q.run_ref(&rs).results.len());
        println!(
            "{w} order {order}: {} of {:?} in {dt:?}",
            out.results.len(),
            out.count
        );
    }
}
