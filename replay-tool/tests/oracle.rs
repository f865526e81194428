//! The replay tool's answers on the golden log, checked against a fold of the export's
//! own lines written here from docs/FORMAT.md (created: all fields; updated: `set` and
//! `unset`; deleted: gone), independent of the ledger and projections crates.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::{Map, Value};

const NOW: &str = "2026-09-04T12:00:00Z";

struct Ev {
    seq: u64,
    at: i64,
    kind: String,
    class: Option<String>,
    id: Option<String>,
    payload: Value,
}

fn events(app: &str) -> Vec<Ev> {
    let text = std::fs::read_to_string(golden_log()).expect("golden log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "event" && v["app"] == app)
        .map(|v| Ev {
            seq: v["seq"].as_u64().unwrap(),
            at: v["recorded_at_us"].as_i64().unwrap(),
            kind: v["kind"].as_str().unwrap().to_string(),
            class: v["subject"]["class"].as_str().map(str::to_string),
            id: v["subject"]["object_id"].as_str().map(str::to_string),
            payload: v["payload"]
                .as_str()
                .map(|p| serde_json::from_str(p).unwrap())
                .unwrap_or(Value::Null),
        })
        .collect()
}

/// objectId → (fields, created µs, updated µs) of `class` after every event at or before `t`.
fn fold(evs: &[Ev], class: &str, t: i64) -> BTreeMap<String, (Map<String, Value>, i64, i64)> {
    let mut live = BTreeMap::new();
    for e in evs
        .iter()
        .filter(|e| e.at <= t && e.class.as_deref() == Some(class))
    {
        let id = e.id.clone().unwrap();
        match e.kind.as_str() {
            "record.created" => {
                let fields = e.payload["fields"].as_object().unwrap().clone();
                live.insert(id, (fields, e.at, e.at));
            }
            "record.updated" => {
                let r: &mut (Map<String, Value>, i64, i64) = live.get_mut(&id).unwrap();
                for (k, v) in e.payload["set"].as_object().unwrap() {
                    r.0.insert(k.clone(), v.clone());
                }
                for k in e.payload["unset"].as_array().unwrap() {
                    r.0.remove(k.as_str().unwrap());
                }
                r.2 = e.at;
            }
            "record.deleted" => {
                live.remove(&id);
            }
            _ => {}
        }
    }
    live
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

fn json(args: &[&str]) -> Value {
    let mut full = vec!["--export", "log.ndjson", "--now", NOW, "--format", "json"];
    full.extend_from_slice(args);
    serde_json::from_str(&replay_ok(&golden_dir(), &full)).expect("JSON output")
}

#[test]
fn at_is_the_fold_up_to_that_instant() {
    let evs = events("gxp");
    for t in [
        "2026-09-01T09:00:00Z",
        "2026-09-02T12:00:00Z",
        "2026-09-03T23:00:00Z",
    ] {
        let out = json(&["--app", "gxp", "at", t, "--class", "ValidationLog"]);
        let want = fold(&evs, "ValidationLog", micros(t));
        let got = out[0]["classes"][0]["records"].as_array().unwrap();
        assert!(!want.is_empty(), "the fold at {t} is not empty");
        assert_eq!(got.len(), want.len(), "records at {t}");
        for r in got {
            let mut r = r.as_object().unwrap().clone();
            let id = r.remove("objectId").unwrap();
            let created = micros(r.remove("createdAt").unwrap().as_str().unwrap());
            let updated = micros(r.remove("updatedAt").unwrap().as_str().unwrap());
            let (fields, c, u) = &want[id.as_str().unwrap()];
            assert_eq!(&r, fields, "{id} at {t}");
            assert_eq!((created, updated), (*c, *u), "{id} times at {t}");
        }
        let last = evs
            .iter()
            .filter(|e| e.at <= micros(t))
            .map(|e| e.seq)
            .max();
        assert_eq!(out[0]["seq"].as_u64(), last, "the seq at {t}");
    }
}

#[test]
fn day_holds_exactly_that_days_events() {
    let evs = events("gxp");
    // 2026-09-02 in Berlin (CEST, +02:00).
    let (start, end) = (
        micros("2026-09-01T22:00:00Z"),
        micros("2026-09-02T22:00:00Z"),
    );
    let inside: Vec<&Ev> = evs.iter().filter(|e| e.at >= start && e.at < end).collect();
    let out = json(&["--app", "gxp", "--tz", "Europe/Berlin", "day", "2026-09-02"]);
    let r = &out[0];
    assert_eq!(r["summary"]["events"].as_u64(), Some(inside.len() as u64));
    assert_eq!(r["seq_range"][0].as_u64(), inside.first().map(|e| e.seq));
    assert_eq!(r["seq_range"][1].as_u64(), inside.last().map(|e| e.seq));
    let got: BTreeSet<u64> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["events"].as_array().unwrap().iter())
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let want: BTreeSet<u64> = inside.iter().map(|e| e.seq).collect();
    assert_eq!(got, want);
}

#[test]
fn diff_names_every_record_that_changed() {
    let evs = events("gxp");
    let (t1, t2) = ("2026-09-01T12:00:00Z", "2026-09-02T12:00:00Z");
    let out = json(&["--app", "gxp", "diff", t1, t2, "--class", "ValidationLog"]);
    let before = fold(&evs, "ValidationLog", micros(t1));
    let after = fold(&evs, "ValidationLog", micros(t2));
    let mut want = BTreeMap::new();
    for e in evs.iter().filter(|e| {
        e.at > micros(t1)
            && e.at <= micros(t2)
            && e.class.as_deref() == Some("ValidationLog")
            && e.kind != "record.signed"
    }) {
        let id = e.id.clone().unwrap();
        let kind = match (before.get(&id), after.get(&id)) {
            (None, Some(_)) => "created",
            (Some(_), Some(_)) => "updated",
            (Some(_), None) => "deleted",
            (None, None) => "created_and_deleted",
        };
        want.insert(id, kind.to_string());
    }
    let got: BTreeMap<String, String> = out[0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["object_id"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}
