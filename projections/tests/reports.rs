//! Reports on a small log with known content: a record's history, a day's events in time
//! zones whose midnight is not UTC's and across a DST change, and a diff between two points.

use std::sync::Arc;

use ledger::{
    Actor, AppendRequest, Command, EventKind, Ledger, LedgerConfig, ManualClock, Timestamp,
};
use projections::report::{ChangeKind, FieldChange};
use projections::when::{parse_tz, Day};
use projections::{At, Projections};
use serde_json::{json, Map, Value};

fn ts(iso: &str) -> Timestamp {
    Timestamp::parse_rfc3339(iso).expect("time")
}

struct Log {
    ledger: Arc<Ledger>,
    clock: Arc<ManualClock>,
    p: Projections,
    user: String,
}

fn actor() -> Actor {
    Actor {
        user_id: "u1".into(),
        username: "qa.lead".into(),
        role: "qa_reviewer".into(),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

impl Log {
    fn new(start: &str) -> Log {
        let clock = Arc::new(ManualClock::new(ts(start)));
        let ledger =
            Arc::new(Ledger::open(LedgerConfig::in_memory([5; 32], clock.clone())).expect("open"));
        ledger.ensure_builtin_apps().expect("apps");
        let p = Projections::temporary(ledger.clone()).expect("projections");
        let mut log = Log {
            ledger,
            clock,
            p,
            user: String::new(),
        };
        log.user = log.create("_User", json!({"username": "mgr"}), start);
        log
    }

    fn append(&self, at: &str, reason: Option<&str>, command: Command) -> u64 {
        self.clock.set(ts(at));
        self.ledger
            .append(AppendRequest {
                app: "gxp".into(),
                actor: actor(),
                idempotency_key: None,
                reason: reason.map(String::from),
                command,
            })
            .expect("append")
            .event
            .seq
    }

    fn create(&self, class: &str, fields: Value, at: &str) -> String {
        let seq = self.append(
            at,
            None,
            Command::CreateRecord {
                class: class.into(),
                object_id: None,
                fields: obj(fields),
            },
        );
        let e = self.ledger.event("gxp", seq).expect("read").expect("event");
        e.subject.expect("subject").object_id
    }

    fn log(&self, protocol: &str, at: &str) -> String {
        self.create(
            "ValidationLog",
            json!({"protocolId": protocol, "testedSystem": "HPLC-07", "result": "Pass",
                   "executedAt": {"__type": "Date", "iso": "2026-03-01T08:00:00.000Z"},
                   "approvedBy": {"__type": "Pointer", "className": "_User", "objectId": self.user}}),
            at,
        )
    }

    fn update(&self, id: &str, set: Value, unset: &[&str], reason: &str, at: &str) -> u64 {
        self.append(
            at,
            Some(reason),
            Command::UpdateRecord {
                class: "ValidationLog".into(),
                object_id: id.into(),
                set: obj(set),
                unset: unset.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    fn delete(&self, id: &str, reason: &str, at: &str) -> u64 {
        self.append(
            at,
            Some(reason),
            Command::DeleteRecord {
                class: "ValidationLog".into(),
                object_id: id.into(),
            },
        )
    }
}

fn seqs(report: &projections::report::DayReport) -> Vec<u64> {
    report
        .records
        .iter()
        .flat_map(|g| g.events.iter().map(|e| e.seq))
        .collect()
}

#[test]
fn history_shows_every_change_with_before_and_after() {
    let log = Log::new("2026-11-16T09:00:00Z");
    let id = log.log("VP-1", "2026-11-16T09:00:00Z");
    let s2 = log.update(
        &id,
        json!({"result": "Fail", "evidenceUrl": "https://e/1"}),
        &[],
        "re-run",
        "2026-11-16T10:00:00Z",
    );
    let s3 = log.append(
        "2026-11-16T11:00:00Z",
        None,
        Command::SignRecord {
            class: "ValidationLog".into(),
            object_id: id.clone(),
            version_seq: s2,
            meaning: ledger::SignatureMeaning::Review,
            printed_name: "Q. A. Lead".into(),
        },
    );
    log.update(
        &id,
        json!({}),
        &["evidenceUrl"],
        "link expired",
        "2026-11-16T12:00:00Z",
    );
    log.delete(&id, "duplicate", "2026-11-16T13:00:00Z");

    let h = log.p.history("gxp", "ValidationLog", &id).expect("history");
    let kinds: Vec<EventKind> = h.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::RecordCreated,
            EventKind::RecordUpdated,
            EventKind::RecordSigned,
            EventKind::RecordUpdated,
            EventKind::RecordDeleted
        ]
    );
    let created = &h.events[0];
    assert!(created
        .changes
        .iter()
        .all(|c| c.before.is_none() && c.after.is_some()));
    assert_eq!(created.changes.len(), 5);
    assert_eq!(
        h.events[1].changes,
        [
            FieldChange {
                field: "evidenceUrl".into(),
                before: None,
                after: Some(json!("https://e/1"))
            },
            FieldChange {
                field: "result".into(),
                before: Some(json!("Pass")),
                after: Some(json!("Fail"))
            },
        ]
    );
    assert_eq!(h.events[1].reason.as_deref(), Some("re-run"));
    assert_eq!(h.events[1].actor.username, "qa.lead");
    assert_eq!(h.events[1].recorded_at, ts("2026-11-16T10:00:00Z"));
    assert_eq!(h.events[2].seq, s3);
    assert!(h.events[2].changes.is_empty());
    let detail = h.events[2].detail.as_ref().expect("signature detail");
    assert_eq!(detail["meaning"], "review");
    assert_eq!(detail["printed_name"], "Q. A. Lead");
    assert_eq!(
        h.events[3].changes,
        [FieldChange {
            field: "evidenceUrl".into(),
            before: Some(json!("https://e/1")),
            after: None
        }]
    );
    // The deletion shows every field going away; the history stays.
    assert!(h.events[4].changes.iter().all(|c| c.after.is_none()));
    assert_eq!(h.events[4].changes.len(), 5);
    assert!(log
        .p
        .get("gxp", "ValidationLog", &id, At::Now)
        .expect("get")
        .value
        .is_none());
}

#[test]
fn a_day_across_the_spring_dst_change_in_berlin() {
    // 2026-03-29 in Europe/Berlin runs from 2026-03-28T23:00Z to 2026-03-29T22:00Z (23 h).
    let log = Log::new("2026-03-28T20:00:00Z");
    let before = log.log("VP-before", "2026-03-28T22:59:59.999999Z");
    let first = log.log("VP-first", "2026-03-28T23:00:00Z");
    let s_upd = log.update(
        &before,
        json!({"result": "Fail"}),
        &[],
        "retest",
        "2026-03-29T01:30:00Z",
    );
    let last = log.log("VP-last", "2026-03-29T21:59:59.999999Z");
    let after = log.log("VP-after", "2026-03-29T22:00:00Z");

    let tz = parse_tz("Europe/Berlin").expect("tz");
    let day = Day::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"),
        tz,
    )
    .expect("day");
    assert_eq!(day.start, ts("2026-03-28T23:00:00Z"));
    assert_eq!(day.end, ts("2026-03-29T22:00:00Z"));
    let r = log.p.day("gxp", &day).expect("day");
    let (s_first, s_last) = r.seq_range.expect("events");
    assert_eq!(seqs(&r), (s_first..=s_last).collect::<Vec<_>>());
    assert_eq!(r.summary.events, 3);
    // Grouped by record, in order of each record's first event that day.
    let ids: Vec<&str> = r
        .records
        .iter()
        .filter_map(|g| g.object_id.as_deref())
        .collect();
    assert_eq!(ids, [first.as_str(), before.as_str(), last.as_str()]);
    let upd = &r.records[1].events[0];
    assert_eq!(upd.seq, s_upd);
    assert_eq!(upd.reason.as_deref(), Some("retest"));
    assert_eq!(
        upd.changes,
        [FieldChange {
            field: "result".into(),
            before: Some(json!("Pass")),
            after: Some(json!("Fail"))
        }]
    );
    assert_eq!(
        r.summary.by_class_and_kind["ValidationLog"]["record.created"],
        2
    );
    assert_eq!(r.summary.by_actor["qa.lead (qa_reviewer)"], 3);

    // The day before ends with VP-before; in UTC the same events split differently.
    let prev = Day::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 28).expect("date"),
        tz,
    )
    .expect("day");
    let r = log.p.day("gxp", &prev).expect("day");
    let last_prev = r.records.last().and_then(|g| g.object_id.clone());
    assert_eq!(last_prev.as_deref(), Some(before.as_str()));
    let utc = Day::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"),
        parse_tz("UTC").expect("utc"),
    )
    .expect("day");
    let r = log.p.day("gxp", &utc).expect("day");
    let ids: Vec<&str> = r
        .records
        .iter()
        .filter_map(|g| g.object_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        [before.as_str(), last.as_str(), after.as_str()],
        "VP-first was at 23:00Z the day before"
    );
}

#[test]
fn a_day_in_a_zone_ahead_of_utc_and_an_empty_day() {
    // Asia/Kolkata (+05:30): 2026-11-17 runs from 2026-11-16T18:30Z to 2026-11-17T18:30Z.
    let log = Log::new("2026-11-16T12:00:00Z");
    log.log("VP-a", "2026-11-16T18:29:59Z");
    let b = log.log("VP-b", "2026-11-16T18:30:00Z");
    let c = log.log("VP-c", "2026-11-17T18:29:59Z");
    log.log("VP-d", "2026-11-17T18:30:00Z");
    let tz = parse_tz("Asia/Kolkata").expect("tz");
    let day = Day::new(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 17).expect("date"),
        tz,
    )
    .expect("day");
    let r = log.p.day("gxp", &day).expect("day");
    let ids: Vec<&str> = r
        .records
        .iter()
        .filter_map(|g| g.object_id.as_deref())
        .collect();
    assert_eq!(ids, [b.as_str(), c.as_str()]);
    let empty = Day::new(
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
        tz,
    )
    .expect("day");
    let r = log.p.day("gxp", &empty).expect("day");
    assert_eq!(r.seq_range, None);
    assert!(r.records.is_empty());
    assert_eq!(r.summary.events, 0);
}

#[test]
fn diff_names_created_updated_deleted_and_transient_records() {
    let log = Log::new("2026-11-16T08:00:00Z");
    let kept = log.log("VP-kept", "2026-11-16T08:00:00Z");
    let updated = log.log("VP-upd", "2026-11-16T08:00:00Z");
    let deleted = log.log("VP-del", "2026-11-16T08:00:00Z");
    let t1 = ts("2026-11-16T09:00:00Z");
    let created = log.log("VP-new", "2026-11-16T10:00:00Z");
    let transient = log.log("VP-tmp", "2026-11-16T10:00:00Z");
    log.update(
        &updated,
        json!({"result": "Fail"}),
        &[],
        "r",
        "2026-11-16T11:00:00Z",
    );
    log.update(
        &updated,
        json!({"result": "Pass with deviations"}),
        &[],
        "r",
        "2026-11-16T11:30:00Z",
    );
    log.delete(&deleted, "dup", "2026-11-16T12:00:00Z");
    log.delete(&transient, "mistake", "2026-11-16T12:00:00Z");
    let t2 = ts("2026-11-16T13:00:00Z");
    log.update(
        &kept,
        json!({"result": "Fail"}),
        &[],
        "later",
        "2026-11-16T14:00:00Z",
    );

    let d = log
        .p
        .diff("gxp", Some("ValidationLog"), At::Time(t1), At::Time(t2))
        .expect("diff");
    let mut got: Vec<(String, ChangeKind, usize)> = d
        .records
        .iter()
        .map(|r| (r.object_id.clone(), r.kind, r.seqs.len()))
        .collect();
    got.sort();
    let mut want = vec![
        (created.clone(), ChangeKind::Created, 1),
        (transient.clone(), ChangeKind::CreatedAndDeleted, 2),
        (updated.clone(), ChangeKind::Updated, 2),
        (deleted.clone(), ChangeKind::Deleted, 1),
    ];
    want.sort();
    assert_eq!(got, want);
    let upd = d
        .records
        .iter()
        .find(|r| r.object_id == updated)
        .expect("updated");
    assert_eq!(
        upd.changes,
        [FieldChange {
            field: "result".into(),
            before: Some(json!("Pass")),
            after: Some(json!("Pass with deviations"))
        }]
    );
    // Reversed bounds give the same diff; an unknown class is an error naming it.
    let rev = log
        .p
        .diff("gxp", Some("ValidationLog"), At::Time(t2), At::Time(t1))
        .expect("diff");
    assert_eq!(rev, d);
    let err = log
        .p
        .diff("gxp", Some("Nope"), At::Time(t1), At::Time(t2))
        .expect_err("unknown class");
    assert!(err.to_string().contains("Nope"), "{err}");
    // All classes: the user created before t1 is not in it.
    let all = log
        .p
        .diff("gxp", None, At::Time(t1), At::Time(t2))
        .expect("diff");
    assert_eq!(all.records.len(), 4);
}

#[test]
fn queries_read_now_and_as_of_a_past_point_with_includes() {
    use projections::query::QueryParams;
    let log = Log::new("2026-11-16T08:00:00Z");
    let a = log.log("VP-a", "2026-11-16T08:00:00Z");
    let b = log.log("VP-b", "2026-11-16T09:00:00Z");
    let t1 = ts("2026-11-16T09:30:00Z");
    log.update(
        &a,
        json!({"result": "Fail"}),
        &[],
        "retest",
        "2026-11-16T10:00:00Z",
    );
    log.delete(&b, "dup", "2026-11-16T11:00:00Z");
    let params = QueryParams {
        where_: Some(json!({"result": "Pass"})),
        order: Some("-protocolId".into()),
        include: Some("approvedBy".into()),
        count: true,
        ..QueryParams::default()
    };
    let now = log
        .p
        .find("gxp", "ValidationLog", &params, At::Now)
        .expect("find");
    assert_eq!(now.count, Some(0));
    assert_eq!(now.seq, log.ledger.head("gxp").expect("head").seq);
    let then = log
        .p
        .find("gxp", "ValidationLog", &params, At::Time(t1))
        .expect("find");
    assert_eq!(then.count, Some(2));
    let ids: Vec<&str> = then
        .results
        .iter()
        .filter_map(|r| r["objectId"].as_str())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    let included = &then.results[0]["approvedBy"];
    assert_eq!(included["__type"], "Object");
    assert_eq!(included["className"], "_User");
    assert_eq!(included["username"], "mgr");
    // The same read by sequence number gives the same answer.
    let again = log
        .p
        .find("gxp", "ValidationLog", &params, At::Seq(then.seq))
        .expect("find");
    assert_eq!(again, then);
    // Bad queries are typed errors naming what is wrong, and a seq beyond the head is refused.
    let bad = QueryParams {
        where_: Some(json!({"result": {"$near": 1}})),
        ..QueryParams::default()
    };
    let err = log
        .p
        .find("gxp", "ValidationLog", &bad, At::Now)
        .expect_err("bad operator");
    assert!(err.to_string().contains("$near"), "{err}");
    let err = log
        .p
        .find(
            "gxp",
            "ValidationLog",
            &QueryParams::default(),
            At::Seq(10_000),
        )
        .expect_err("beyond head");
    assert!(err.to_string().contains("10000"), "{err}");
    let err = log
        .p
        .find("gxp", "Nope", &QueryParams::default(), At::Now)
        .expect_err("class");
    assert!(err.to_string().contains("Nope"), "{err}");
    // An objectId no record can have is refused, not looked up: its bytes would reach into
    // another record's version keys.
    let forged = format!("{a}\0\0\0\0\0\0");
    let err = log
        .p
        .get("gxp", "ValidationLog", &forged, At::Seq(then.seq))
        .expect_err("bad id");
    assert!(
        matches!(err, projections::ProjectionError::BadObjectId(_)),
        "{err}"
    );
    let err = log
        .p
        .history("gxp", "ValidationLog", "")
        .expect_err("empty id");
    assert!(
        matches!(err, projections::ProjectionError::BadObjectId(_)),
        "{err}"
    );
}
