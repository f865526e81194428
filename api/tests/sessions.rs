//! Logins, logouts, failed logins and locks are ledger events; idempotent retries give
//! one event and the same answer; concurrent read-modify-write updates lose nothing;
//! queries, batch and updates behave as Parse clients expect.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{validation_log, PASSWORD, T};
use serde_json::{json, Value};

#[tokio::test]
async fn login_logout_and_failed_logins_are_events_and_lock_the_account() {
    let t = T::with_config(|c| {
        c.default_policy.max_failed_logins = 3;
        c.default_policy.lock_secs = 900;
    });
    t.user("gxp", "qa.lead", "qa_reviewer").await;
    let token = t.login("gxp", "qa.lead").await;
    assert_eq!(t.last_event("gxp").kind.name(), "session.login");
    let a = t
        .call("POST", "/parse/logout", "gxp", Some(&token), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(t.last_event("gxp").kind.name(), "session.logout");
    let a = t
        .call("GET", "/parse/users/me", "gxp", Some(&token), None)
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::UNAUTHORIZED, Some(209)));

    let wrong = json!({"username": "qa.lead", "password": "not-the-password"});
    for i in 1..=3 {
        let a = t
            .call("POST", "/parse/login", "gxp", None, Some(wrong.clone()))
            .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::NOT_FOUND, Some(101)),
            "attempt {i}"
        );
        assert_eq!(a.error(), "Invalid username/password.");
    }
    let e = t.last_event("gxp");
    assert_eq!(e.kind.name(), "account.locked");
    let before = t.ledger().event("gxp", e.seq - 1).unwrap().unwrap();
    assert_eq!(before.kind.name(), "session.login_failed");
    // Locked: even the right password is refused, and that attempt is recorded.
    let right = json!({"username": "qa.lead", "password": PASSWORD});
    let a = t
        .call("POST", "/parse/login", "gxp", None, Some(right.clone()))
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, Some(119)));
    assert!(
        a.error().contains("locked after 3 failed attempts"),
        "{}",
        a.error()
    );
    assert_eq!(t.last_event("gxp").kind.name(), "session.login_failed");
    // The lock ends after its time.
    t.clock.advance(901 * 1_000_000);
    let a = t
        .call("POST", "/parse/login", "gxp", None, Some(right))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // An unknown username is a failed login too, with the same answer.
    let a = t
        .call(
            "POST",
            "/parse/login",
            "gxp",
            None,
            Some(json!({"username": "ghost", "password": "whatever1"})),
        )
        .await;
    assert_eq!(a.code(), Some(101));
    assert_eq!(t.last_event("gxp").actor.user_id, "_anonymous");
    // Missing fields.
    let a = t
        .call(
            "POST",
            "/parse/login",
            "gxp",
            None,
            Some(json!({"password": "x"})),
        )
        .await;
    assert_eq!(a.code(), Some(200));
    let a = t
        .call(
            "POST",
            "/parse/login",
            "gxp",
            None,
            Some(json!({"username": "x"})),
        )
        .await;
    assert_eq!(a.code(), Some(201));
}

#[tokio::test]
async fn the_same_request_id_gives_one_event_and_the_same_answer() {
    let t = T::new();
    let (_, token) = t.session("gxp", "manager").await;
    let send = || async {
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/parse/classes/ValidationLog")
            .header("X-Parse-Application-Id", "gxp")
            .header("X-Parse-Session-Token", &token)
            .header("X-Parse-Request-Id", "c0ffee-1")
            .body(axum::body::Body::from(validation_log().to_string()))
            .unwrap();
        t.send(req).await
    };
    let first = send().await;
    let head = t.head("gxp");
    t.clock.advance(5_000_000);
    let again = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body);
    assert_eq!(t.head("gxp"), head, "no second event");
    // In a batch: sub-request i is idempotent under id:i.
    let batch = json!({"requests": [
        {"method": "POST", "path": "/parse/classes/ValidationLog", "body": validation_log()},
        {"method": "POST", "path": "/parse/classes/ValidationLog", "body": {"protocolId": 1}},
    ]});
    let send_batch = || async {
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/parse/batch")
            .header("X-Parse-Application-Id", "gxp")
            .header("X-Parse-Session-Token", &token)
            .header("X-Parse-Request-Id", "batch-7")
            .body(axum::body::Body::from(batch.to_string()))
            .unwrap();
        t.send(req).await
    };
    let b1 = send_batch().await;
    let head = t.head("gxp");
    let b2 = send_batch().await;
    assert_eq!(b1.body, b2.body);
    assert_eq!(t.head("gxp"), head);
    assert!(b1.body[0]["success"]["objectId"].is_string(), "{}", b1.body);
    assert_eq!(b1.body[1]["error"]["code"], 111);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_lose_nothing() {
    let t = Arc::new(T::new());
    let (_, token) = t.session("hipaa", "manager").await;
    let (user, _) = t.session("hipaa", "coordinator").await;
    let _ = user;
    let au = t
        .call("POST", "/parse/classes/AuditUser", "hipaa", Some(&token), Some(json!({
            "fullName": "Ada Lovelace", "email": "ada@example.org", "role": "nurse", "active": true
        })))
        .await;
    assert_eq!(au.status, StatusCode::CREATED, "{}", au.body);
    let tr = t
        .call("POST", "/parse/classes/TrainingRecord", "hipaa", Some(&token), Some(json!({
            "user": {"__type": "Pointer", "className": "AuditUser", "objectId": au.body["objectId"]},
            "courseName": "Privacy 101", "status": "open", "score": 0
        })))
        .await;
    assert_eq!(tr.status, StatusCode::CREATED, "{}", tr.body);
    let path = format!(
        "/parse/classes/TrainingRecord/{}",
        tr.body["objectId"].as_str().unwrap()
    );
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let t = t.clone();
        let (path, token) = (path.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            t.call(
                "PUT",
                &path,
                "hipaa",
                Some(&token),
                Some(json!({"score": {"__op": "Increment", "amount": 1}})),
            )
            .await
            .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let a = t.call("GET", &path, "hipaa", Some(&token), None).await;
    assert_eq!(a.body["score"], 40);
}

#[tokio::test]
async fn queries_updates_and_deletes_as_parse_clients_expect() {
    let t = T::new();
    let (me, token) = t.session("gxp", "manager").await;
    let owner = json!({"__type": "Pointer", "className": "_User", "objectId": me});
    let mut ids = Vec::new();
    for (i, status) in ["open", "open", "closed", "review"].iter().enumerate() {
        let a = t
            .call("POST", "/parse/classes/ComplianceLog", "gxp", Some(&token), Some(json!({
                "title": format!("Deviation {i}"), "category": "deviation", "owner": owner,
                "reviewStatus": status,
                "dueDate": {"__type": "Date", "iso": format!("2026-12-0{}T00:00:00.000Z", i + 1)}
            })))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        assert!(a.body["createdAt"].as_str().unwrap().ends_with("Z"));
        assert_eq!(
            a.body["createdAt"].as_str().unwrap().len(),
            24,
            "milliseconds only"
        );
        ids.push(a.body["objectId"].as_str().unwrap().to_string());
    }
    let q = |w: Value, extra: &str| {
        let url = format!(
            "/parse/classes/ComplianceLog?where={}{}",
            urlencode(&w.to_string()),
            extra
        );
        let token = token.clone();
        let t = &t;
        async move { t.call("GET", &url, "gxp", Some(&token), None).await }
    };
    let a = q(
        json!({"reviewStatus": {"$in": ["open", "review"]}}),
        "&order=-dueDate&limit=2&count=1&include=owner&keys=title,owner",
    )
    .await;
    assert_eq!(a.body["count"], 3);
    let titles: Vec<&str> = a.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Deviation 3", "Deviation 1"]);
    assert_eq!(a.body["results"][0]["owner"]["username"], "manager.user");
    assert_eq!(a.body["results"][0]["owner"]["__type"], "Object");
    assert!(a.body["results"][0].get("category").is_none(), "keys");
    let a = q(
        json!({"dueDate": {"$gte": {"__type": "Date", "iso": "2026-12-03T00:00:00.000Z"}}}),
        "&order=dueDate",
    )
    .await;
    assert_eq!(a.body["results"].as_array().unwrap().len(), 2);
    // Update with operations: Delete unsets; plain values set; history keeps both.
    let one = format!("/parse/classes/ComplianceLog/{}", ids[0]);
    let a = t
        .call(
            "PUT",
            &one,
            "gxp",
            Some(&token),
            Some(json!({"notes": "checked", "dueDate": {"__op": "Delete"}})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body["updatedAt"].is_string());
    let a = t.call("GET", &one, "gxp", Some(&token), None).await;
    assert_eq!(a.body["notes"], "checked");
    assert!(a.body.get("dueDate").is_none());
    let a = t.call("DELETE", &one, "gxp", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = t.call("GET", &one, "gxp", Some(&token), None).await;
    assert_eq!((a.status, a.code()), (StatusCode::NOT_FOUND, Some(101)));
    // The history is all there: created, updated, deleted.
    let versions = t
        .ledger()
        .versions("gxp", "ComplianceLog", &ids[0])
        .unwrap();
    assert_eq!(versions.len(), 3);
    // Reads as of a sequence number see the past.
    let created_seq = versions[0].0;
    let a = t
        .call(
            "GET",
            &format!("{one}?asOfSeq={created_seq}"),
            "gxp",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["reviewStatus"], "open");
    assert_eq!(a.seq(), Some(created_seq));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_from_many_sessions_get_one_gapless_order() {
    let t = Arc::new(T::new());
    let (_, token) = t.session("hipaa", "manager").await;
    let au = t
        .call("POST", "/parse/classes/AuditUser", "hipaa", Some(&token), Some(json!({
            "fullName": "Grace Hopper", "email": "grace@example.org", "role": "nurse", "active": true
        })))
        .await;
    assert_eq!(au.status, StatusCode::CREATED, "{}", au.body);
    let tr = t
        .call("POST", "/parse/classes/TrainingRecord", "hipaa", Some(&token), Some(json!({
            "user": {"__type": "Pointer", "className": "AuditUser", "objectId": au.body["objectId"]},
            "courseName": "Privacy 201", "status": "open", "score": 0
        })))
        .await;
    assert_eq!(tr.status, StatusCode::CREATED, "{}", tr.body);
    let id = tr.body["objectId"].as_str().unwrap().to_string();
    let path = format!("/parse/classes/TrainingRecord/{id}");
    // Eight writers, each with a session of its own, updating one record and creating
    // records of one class at the same time.
    let mut sessions = Vec::new();
    for i in 0..8 {
        let name = format!("writer{i}");
        t.user("hipaa", &name, "manager").await;
        sessions.push(t.login("hipaa", &name).await);
    }
    let mut tasks = Vec::new();
    for token in sessions {
        for j in 0..12 {
            let (t, path, token) = (t.clone(), path.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                if j % 4 == 3 {
                    let a = t
                        .call(
                            "POST",
                            "/parse/classes/AuditUser",
                            "hipaa",
                            Some(&token),
                            Some(json!({
                                "fullName": format!("Writer record {j}"), "email": "w@example.org",
                                "role": "nurse", "active": true
                            })),
                        )
                        .await;
                    (a.status, StatusCode::CREATED)
                } else {
                    let a = t
                        .call(
                            "PUT",
                            &path,
                            "hipaa",
                            Some(&token),
                            Some(json!({"score": {"__op": "Increment", "amount": 1}})),
                        )
                        .await;
                    (a.status, StatusCode::OK)
                }
            }));
        }
    }
    for task in tasks {
        let (got, want) = task.await.unwrap();
        assert_eq!(got, want);
    }
    // No lost update: 8 writers × 9 increments.
    let a = t.call("GET", &path, "hipaa", Some(&token), None).await;
    assert_eq!(a.body["score"], 72, "{}", a.body);
    let history = t
        .server
        .state()
        .projections
        .history("hipaa", "TrainingRecord", &id)
        .unwrap();
    let updates = history
        .events
        .iter()
        .filter(|e| e.kind.name() == "record.updated")
        .count();
    assert_eq!(updates, 72);
    // One order: every number from 1 to the head, each once, and the chain verifies.
    let head = t.head("hipaa");
    let seqs: Vec<u64> = t
        .ledger()
        .events("hipaa", 1, head)
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    let r = t
        .ledger()
        .verify("hipaa", ledger::VerifyMode::Full, Default::default())
        .unwrap();
    assert!(r.ok(), "{:?}", r.failure);
    assert_eq!(r.last_seq, head);
}
