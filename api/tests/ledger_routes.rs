//! The native ledger routes under `/ledger/{app}`: a record's history, a day report and a
//! diff (JSON and CSV), verification, public keys, events by range and the streamed
//! export, which the offline verification accepts; and who may read them.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{validation_log, T};
use serde_json::{json, Value};
use tower::ServiceExt;

/// A GET with a session token; answers status, headers and the raw body.
async fn get(t: &T, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method("GET").uri(path);
    if let Some(tok) = token {
        b = b.header("Authorization", format!("Bearer {tok}"));
    }
    let resp = t
        .router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

async fn get_json(t: &T, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, _, body) = get(t, path, token).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

/// A ValidationLog created, updated with a reason 20 minutes later, then (20 minutes later
/// still) a second one created and the first deleted; answers (first id, second id,
/// the head before the day's second half).
async fn story(t: &T, token: &str) -> (String, String, u64) {
    let a = t.create_log(token).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let first = a.body["objectId"].as_str().unwrap().to_string();
    t.clock.advance(1_200_000_000);
    let req = Request::builder()
        .method("PUT")
        .uri(format!("/parse/classes/ValidationLog/{first}"))
        .header("X-Parse-Application-Id", "gxp")
        .header("X-Parse-Session-Token", token)
        .header("X-Audit-Reason", "re-run after calibration")
        .header("Content-Type", "application/json")
        .body(Body::from(json!({"result": "fail"}).to_string()))
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let middle = t.head("gxp");
    t.clock.advance(1_200_000_000);
    let a = t.create_log(token).await;
    let second = a.body["objectId"].as_str().unwrap().to_string();
    let a = t
        .call(
            "DELETE",
            &format!("/parse/classes/ValidationLog/{first}"),
            "gxp",
            Some(token),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    (first, second, middle)
}

#[tokio::test]
async fn history_shows_every_event_with_reason_and_field_changes() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let (first, _, _) = story(&t, &manager).await;
    let (status, h) = get_json(
        &t,
        &format!("/ledger/gxp/history/ValidationLog/{first}"),
        Some(&manager),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    let events = h["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["record.created", "record.updated", "record.deleted"]
    );
    assert_eq!(events[1]["reason"], "re-run after calibration");
    assert_eq!(events[1]["actor"]["username"], "manager.user");
    assert_eq!(events[1]["actor"]["role"], "manager");
    assert_eq!(
        events[1]["changes"],
        json!([{"field": "result", "before": "pass", "after": "fail"}])
    );
    assert_eq!(h["seq"].as_u64(), Some(t.head("gxp")));

    // A field-staff user reads ValidationLogs, so reads their history too; an unknown
    // record is 101, a bad class 119/…, no session 209.
    let (_, staff) = t.session("gxp", "field_staff").await;
    let (status, _) = get_json(
        &t,
        &format!("/ledger/gxp/history/ValidationLog/{first}"),
        Some(&staff),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = get_json(
        &t,
        "/ledger/gxp/history/ValidationLog/NoSuchId99",
        Some(&manager),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(101)),
        "{v}"
    );
    let (status, v) = get_json(&t, "/ledger/gxp/history/NoSuchClass/x", Some(&manager)).await;
    assert!(status.is_client_error(), "{v}");
    assert!(v["error"].as_str().unwrap().contains("NoSuchClass"), "{v}");
    let (status, v) = get_json(
        &t,
        &format!("/ledger/gxp/history/ValidationLog/{first}"),
        None,
    )
    .await;
    assert!(status.is_client_error(), "{v}");
    let (status, v) = get_json(&t, "/ledger/nope/keys", None).await;
    assert!(status.is_client_error(), "{v}");
    assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");
}

#[tokio::test]
async fn day_report_and_diff_as_json_and_csv() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let (first, second, middle) = story(&t, &manager).await;
    let (_, qa) = t.session("gxp", "qa_reviewer").await;

    // The clock starts at 2026-11-23T12:00Z; everything happened that day.
    let (status, r) = get_json(&t, "/ledger/gxp/day/2026-11-23?tz=Europe/Paris", Some(&qa)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["date"], "2026-11-23");
    assert_eq!(r["tz"], "Europe/Paris");
    let by_kind = &r["summary"]["by_class_and_kind"]["ValidationLog"];
    assert_eq!(by_kind["record.created"], 2, "{r}");
    assert_eq!(by_kind["record.updated"], 1);
    assert_eq!(by_kind["record.deleted"], 1);
    let groups: Vec<&Value> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["class"] == "ValidationLog")
        .collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["object_id"], first.as_str());
    assert_eq!(groups[0]["events"].as_array().unwrap().len(), 3);

    // The day before is empty.
    let (_, r) = get_json(&t, "/ledger/gxp/day/2026-11-22", Some(&qa)).await;
    assert_eq!(r["summary"]["events"], 0, "{r}");
    assert_eq!(r["seq_range"], Value::Null);

    let (status, headers, body) = get(&t, "/ledger/gxp/day/2026-11-23?format=csv", Some(&qa)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = String::from_utf8(body).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "seq,recorded_at,actor,role,kind,class,object_id,reason,field,before,after"
    );
    let update_row = csv.lines().find(|l| l.contains("record.updated")).unwrap();
    assert!(
        update_row.contains(&format!(
            "manager.user,manager,record.updated,ValidationLog,{first},re-run after calibration,result,pass,fail"
        )),
        "{update_row}"
    );

    // Between the update and now: the first was deleted, the second created.
    let (status, d) = get_json(
        &t,
        &format!("/ledger/gxp/diff?fromSeq={middle}&class=ValidationLog"),
        Some(&qa),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let changes: Vec<(String, String)> = d["records"]
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
    let mut expected = vec![
        (first.clone(), "deleted".to_string()),
        (second.clone(), "created".to_string()),
    ];
    expected.sort();
    assert_eq!(changes, expected);
    assert_eq!(d["from_seq"].as_u64(), Some(middle));

    // The same diff by time (from before anything happened) as CSV.
    let (status, _, body) = get(
        &t,
        "/ledger/gxp/diff?from=2026-11-23T11:00:00Z&format=csv&class=ValidationLog",
        Some(&qa),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(body).unwrap();
    assert!(
        csv.starts_with("class,object_id,change,field,before,after,seqs\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("ValidationLog,{second},created,result,,pass")),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("ValidationLog,{first},created_and_deleted")),
        "{csv}"
    );

    // Bad inputs name what is wrong.
    for (path, needle) in [
        ("/ledger/gxp/day/someday", "someday"),
        ("/ledger/gxp/day/2026-11-23?tz=Mars/Olympus", "Mars/Olympus"),
        ("/ledger/gxp/day/2026-11-23?format=xml", "xml"),
        ("/ledger/gxp/diff", "from"),
        ("/ledger/gxp/diff?from=yesterday&fromSeq=3", "fromSeq"),
        ("/ledger/gxp/diff?fromSeq=1&class=Nope", "Nope"),
    ] {
        let (status, v) = get_json(&t, path, Some(&qa)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
    }
}

#[tokio::test]
async fn audit_reports_need_an_audit_role_and_refusals_are_recorded() {
    let t = T::new();
    let (_, staff) = t.session("gxp", "field_staff").await;
    let (_, coordinator) = t.session("gxp", "coordinator").await;
    for token in [&staff, &coordinator] {
        for path in [
            "/ledger/gxp/day/today",
            "/ledger/gxp/diff?fromSeq=1",
            "/ledger/gxp/verify",
            "/ledger/gxp/events",
            "/ledger/gxp/export",
        ] {
            let before = t.head("gxp");
            let (status, v) = get_json(&t, path, Some(token)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {v}");
            assert_eq!(v["code"], 119, "{path}: {v}");
            let e = t.last_event("gxp");
            assert_eq!(t.head("gxp"), before + 1, "{path}: the refusal is an event");
            assert_eq!(e.kind.name(), "access.denied", "{path}");
        }
    }
    let (status, _) = get_json(&t, "/ledger/gxp/verify", None).await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn verification_keys_events_and_export_agree_with_the_chain() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    story(&t, &manager).await;
    let (_, auditor) = t.session("gxp", "auditor").await;
    let head = t.head("gxp");

    let (status, keys) = get_json(&t, "/ledger/gxp/keys", None).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key_id = keys[0]["keyId"].as_str().unwrap().to_string();
    assert_eq!(keys[0]["fromSeq"], 1);

    for mode in ["full", "links-only"] {
        let (status, v) = get_json(
            &t,
            &format!("/ledger/gxp/verify?mode={mode}"),
            Some(&auditor),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["mode"], mode);
        assert_eq!(v["lastSeq"].as_u64(), Some(head));
        assert_eq!(v["failure"], Value::Null);
        assert_eq!(v["keys"][0]["keyId"], key_id.as_str());
    }
    let (status, v) = get_json(&t, "/ledger/gxp/verify?mode=quick", Some(&auditor)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("quick"));

    // Events in pages.
    let (status, page) = get_json(&t, "/ledger/gxp/events?from=2&limit=3", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(page["next"], 5);
    for e in page["events"].as_array().unwrap() {
        let event = ledger::export::parse_event(e).unwrap();
        let stored = t.ledger().event("gxp", event.seq).unwrap();
        assert_eq!(Some(event), stored);
    }
    let (_, last) = get_json(
        &t,
        &format!("/ledger/gxp/events?from={head}"),
        Some(&auditor),
    )
    .await;
    assert_eq!(last["events"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);
    let (status, _) = get_json(&t, "/ledger/gxp/events?limit=5000", Some(&auditor)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The streamed export verifies offline, and covers the whole chain.
    let (status, headers, body) = get(&t, "/ledger/gxp/export", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let reports = ledger::export::verify_export(&body[..], ledger::VerifyMode::Full, None).unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].failure.is_none(), "{:?}", reports[0].failure);
    // The auditor's own reads above are not events; the head may only have grown by
    // logins, never shrunk.
    assert!(reports[0].last_seq >= head);
}

/// The app's public key, as the auditor takes it from `/keys`.
async fn public_key(t: &T) -> ledger::PublicKey {
    let (_, keys) = get_json(t, "/ledger/gxp/keys", None).await;
    let hex_key = keys["keys"][0]["publicKey"].as_str().unwrap();
    let bytes: [u8; 32] = hex::decode(hex_key).unwrap().try_into().unwrap();
    ledger::PublicKey::from_bytes(bytes)
}

fn checkpoint(v: &Value) -> ledger::Checkpoint {
    ledger::Checkpoint::parse(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_offline() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let (first, _, _) = story(&t, &manager).await;
    let (_, auditor) = t.session("gxp", "auditor").await;
    let key = public_key(&t).await;

    // The first checkpoint is signed on demand and covers the whole durable log.
    let (status, old) = get_json(&t, "/ledger/gxp/checkpoint", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK, "{old}");
    let old_cp = checkpoint(&old["text"]);
    old_cp.verify(&key).unwrap();
    let old_size = t.head("gxp");
    assert_eq!(old["size"].as_u64(), Some(old_size));
    assert_eq!(old_cp.size(), old_size);
    assert_eq!(old["root"], hex::encode(old_cp.root()));

    // Each event of the record's history is in it.
    let (_, h) = get_json(
        &t,
        &format!("/ledger/gxp/history/ValidationLog/{first}"),
        Some(&auditor),
    )
    .await;
    for e in h["events"].as_array().unwrap() {
        let seq = e["seq"].as_u64().unwrap();
        let (status, p) = get_json(
            &t,
            &format!("/ledger/gxp/proof/inclusion?seq={seq}"),
            Some(&auditor),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(
            p["event_hash"], e["hash"],
            "the proof is for the history's event"
        );
        let proof: ledger::InclusionProof = serde_json::from_value(p.clone()).unwrap();
        let cp = checkpoint(&p["checkpoint"]);
        cp.verify(&key).unwrap();
        let hash: [u8; 32] = hex::decode(e["hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        proof.verify(&hash, &cp).unwrap();
        // Another event's hash does not verify with this proof.
        let mut other = hash;
        other[0] ^= 1;
        assert!(proof.verify(&other, &cp).is_err());
    }

    // The log grows; a new checkpoint extends the old one, provably.
    t.create_log(&manager).await;
    let a = t
        .call(
            "POST",
            "/ledger/gxp/checkpoint",
            "gxp",
            Some(&auditor),
            None,
        )
        .await;
    let (status, new) = (a.status, a.body);
    assert_eq!(status, StatusCode::OK, "{new}");
    let new_cp = checkpoint(&new["text"]);
    new_cp.verify(&key).unwrap();
    assert!(new_cp.size() > old_size);
    let (status, p) = get_json(
        &t,
        &format!("/ledger/gxp/proof/consistency?from={old_size}"),
        Some(&auditor),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["new_size"].as_u64(), Some(new_cp.size()));
    assert_eq!(checkpoint(&p["old_checkpoint"]), old_cp);
    let proof: ledger::ConsistencyProof = serde_json::from_value(p).unwrap();
    proof.verify(&old_cp, &new_cp).unwrap();
    // Not against a checkpoint of another size.
    let (_, p) = get_json(
        &t,
        &format!(
            "/ledger/gxp/proof/consistency?from={}&to={}",
            old_size - 1,
            new_cp.size()
        ),
        Some(&auditor),
    )
    .await;
    let wrong: ledger::ConsistencyProof = serde_json::from_value(p).unwrap();
    assert!(wrong.verify(&old_cp, &new_cp).is_err());

    let (_, list) = get_json(&t, "/ledger/gxp/checkpoints", Some(&auditor)).await;
    let sizes: Vec<u64> = list["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [old_size, new_cp.size()]);
    let (_, list) = get_json(
        &t,
        &format!("/ledger/gxp/checkpoints?from={}", old_size + 1),
        Some(&auditor),
    )
    .await;
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 1);

    // Bad requests name what is wrong; a field-staff user may not ask.
    let beyond = t.head("gxp") + 10;
    for (path, needle) in [
        ("/ledger/gxp/proof/inclusion".to_string(), "seq"),
        ("/ledger/gxp/proof/inclusion?seq=0".to_string(), "seq"),
        (
            "/ledger/gxp/proof/inclusion?seq=5&size=3".to_string(),
            "seq",
        ),
        (
            format!("/ledger/gxp/proof/inclusion?seq=1&size={beyond}"),
            &beyond.to_string(),
        ),
        ("/ledger/gxp/proof/consistency".to_string(), "from"),
        (
            "/ledger/gxp/proof/consistency?from=5&to=3".to_string(),
            "from",
        ),
        (
            format!("/ledger/gxp/proof/consistency?from=1&to={beyond}"),
            &beyond.to_string(),
        ),
        (
            format!("/ledger/gxp/proof/consistency?from={beyond}"),
            &beyond.to_string(),
        ),
    ] {
        let (status, v) = get_json(&t, &path, Some(&auditor)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
    }
    let (_, staff) = t.session("gxp", "field_staff").await;
    let (status, _) = get_json(&t, "/ledger/gxp/proof/inclusion?seq=1", Some(&staff)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get_json(&t, "/ledger/gxp/checkpoint", Some(&staff)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_native_class_query_reads_the_class_now_and_as_it_stood() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let (first, second, middle) = story(&t, &manager).await;
    let (_, staff) = t.session("gxp", "field_staff").await;
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["objectId"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let (status, headers, body) = get(&t, "/ledger/gxp/classes/ValidationLog", Some(&staff)).await;
    let now: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(ids(&now), [second]);
    assert!(headers.contains_key("x-ledger-seq"));
    let (_, then) = get_json(
        &t,
        &format!("/ledger/gxp/classes/ValidationLog?asOfSeq={middle}&where=%7B%22result%22%3A%22fail%22%7D"),
        Some(&staff),
    )
    .await;
    assert_eq!(ids(&then), [first], "{then}");
    let (status, v) = get_json(
        &t,
        "/ledger/gxp/classes/ValidationLog?asOf=someday",
        Some(&staff),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("someday"), "{v}");
    let (status, _) = get_json(&t, "/ledger/gxp/classes/ValidationLog", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A request with a session, a reason for change and a JSON body.
async fn send_with_reason(
    t: &T,
    method: &str,
    path: &str,
    token: &str,
    reason: &str,
    body: Value,
) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("X-Parse-Application-Id", "gxp")
        .header("X-Parse-Session-Token", token)
        .header("X-Audit-Reason", reason)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let a = t.send(req).await;
    assert!(
        a.status.is_success(),
        "{method} {path}: {} {}",
        a.status,
        a.body
    );
    a.body
}

#[tokio::test]
async fn a_scripted_history_reads_back_step_by_step() {
    let t = T::new();
    let (_, mut manager) = t.session("gxp", "manager").await;
    t.session("gxp", "qa_reviewer").await;
    // The clock starts at 2026-11-23T12:00Z. Steps at 12:00, 14:00, 20:00 (a signature),
    // 22:30 and 23:30 UTC: the last is already 2026-11-24 in Paris (UTC+1), but every
    // step is 2026-11-23 in New York (UTC-5).
    let a = t.create_log(&manager).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["objectId"].as_str().unwrap().to_string();
    let path = format!("/parse/classes/ValidationLog/{id}");
    // (seq, the record's fields after it — None once deleted).
    let mut steps: Vec<(u64, Option<Value>)> = vec![(t.head("gxp"), Some(validation_log()))];
    let mut state = validation_log();
    for (hours, set, reason) in [
        (2, json!({"result": "fail"}), "re-run after calibration"),
        (
            6,
            json!({"testedSystem": "LIMS v2"}),
            "system renamed in the inventory",
        ),
    ] {
        t.clock.advance(hours * 3_600_000_000);
        // Sessions end after 30 idle minutes: sign in again, as a user would.
        manager = t.login("gxp", "manager.user").await;
        send_with_reason(&t, "PUT", &path, &manager, reason, set.clone()).await;
        for (k, v) in set.as_object().unwrap() {
            state[k] = v.clone();
        }
        steps.push((t.head("gxp"), Some(state.clone())));
    }
    let version = t.head("gxp");
    let mut qa = t.login("gxp", "qa_reviewer.user").await;
    let signed = send_with_reason(
        &t,
        "POST",
        &format!("/ledger/gxp/sign/ValidationLog/{id}"),
        &qa,
        "approval",
        json!({"meaning": "approval", "versionSeq": version, "username": "qa_reviewer.user", "password": common::PASSWORD}),
    )
    .await;
    assert_eq!(signed["payload"]["version_seq"], version, "{signed}");
    steps.push((t.head("gxp"), Some(state.clone())));
    t.clock.advance(9_000_000_000); // 22:30
    manager = t.login("gxp", "manager.user").await;
    send_with_reason(
        &t,
        "PUT",
        &path,
        &manager,
        "result confirmed",
        json!({"result": "pass"}),
    )
    .await;
    state["result"] = json!("pass");
    steps.push((t.head("gxp"), Some(state.clone())));
    t.clock.advance(3_600_000_000); // 23:30
    manager = t.login("gxp", "manager.user").await;
    qa = t.login("gxp", "qa_reviewer.user").await;
    send_with_reason(
        &t,
        "DELETE",
        &path,
        &manager,
        "entered in the wrong site",
        json!({}),
    )
    .await;
    steps.push((t.head("gxp"), None));

    // As of each step: exactly that step's fields, through both routes.
    for (seq, want) in &steps {
        let (status, r) = get_json(
            &t,
            &format!("/ledger/gxp/records/ValidationLog/{id}?asOfSeq={seq}"),
            Some(&qa),
        )
        .await;
        let (_, q) = get_json(
            &t,
            &format!("/ledger/gxp/classes/ValidationLog?asOfSeq={seq}&where=%7B%22objectId%22%3A%22{id}%22%7D"),
            Some(&qa),
        )
        .await;
        match want {
            Some(fields) => {
                assert_eq!(status, StatusCode::OK, "as of {seq}: {r}");
                for (k, v) in fields.as_object().unwrap() {
                    assert_eq!(&r["record"][k], v, "as of {seq}: {k}");
                    assert_eq!(&q["results"][0][k], v, "as of {seq}: {k} (class query)");
                }
            }
            None => {
                assert_eq!(status, StatusCode::NOT_FOUND, "deleted as of {seq}: {r}");
                assert_eq!(q["results"], json!([]), "deleted as of {seq}");
            }
        }
    }

    // The history: every step, with its reason and exact field changes.
    let (_, h) = get_json(
        &t,
        &format!("/ledger/gxp/history/ValidationLog/{id}"),
        Some(&qa),
    )
    .await;
    let events = h["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "record.created",
            "record.updated",
            "record.updated",
            "record.signed",
            "record.updated",
            "record.deleted"
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, steps.iter().map(|s| s.0).collect::<Vec<_>>());
    assert_eq!(events[1]["reason"], "re-run after calibration");
    assert_eq!(
        events[1]["changes"],
        json!([{"field": "result", "before": "pass", "after": "fail"}])
    );
    assert_eq!(
        events[2]["changes"],
        json!([{"field": "testedSystem", "before": "LIMS", "after": "LIMS v2"}])
    );
    assert_eq!(events[3]["detail"]["meaning"], "approval");
    assert_eq!(events[3]["detail"]["version_seq"], version);
    assert_eq!(
        events[4]["changes"],
        json!([{"field": "result", "before": "fail", "after": "pass"}])
    );
    assert_eq!(events[5]["reason"], "entered in the wrong site");

    // The day in two zones: Paris has all but the deletion (already the 24th there); New
    // York has every step.
    for (tz, want) in [
        ("Europe/Paris", &seqs[..5]),
        ("America/New_York", &seqs[..]),
    ] {
        let (_, day) = get_json(
            &t,
            &format!("/ledger/gxp/day/2026-11-23?tz={tz}"),
            Some(&qa),
        )
        .await;
        let got: Vec<u64> = day["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["object_id"] == id.as_str())
            .flat_map(|g| {
                g["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(got, want, "{tz}");
    }
    let (_, next) = get_json(&t, "/ledger/gxp/day/2026-11-24?tz=Europe/Paris", Some(&qa)).await;
    assert!(next["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["object_id"] == id.as_str()));

    // The export downloaded over HTTP verifies offline; tampered at the first update, it
    // fails there.
    let (_, _, body) = get(&t, "/ledger/gxp/export", Some(&qa)).await;
    let reports = ledger::export::verify_export(&body[..], ledger::VerifyMode::Full, None).unwrap();
    assert!(reports[0].failure.is_none(), "{:?}", reports[0].failure);
    let text = String::from_utf8(body).unwrap();
    let update = steps[1].0;
    let tampered: Vec<String> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["type"] == "event" && v["seq"] == update {
                l.replace(r#"\"fail\""#, r#"\"pass\""#)
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_ne!(
        tampered.join("\n") + "\n",
        text,
        "the tamper changed the line"
    );
    let reports = ledger::export::verify_export(
        tampered.join("\n").as_bytes(),
        ledger::VerifyMode::Full,
        None,
    )
    .unwrap();
    assert_eq!(
        reports[0].failure.as_ref().map(|f| f.seq),
        Some(update),
        "{:?}",
        reports[0].failure
    );
}
