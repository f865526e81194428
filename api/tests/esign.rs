//! Electronic signatures (two identification components, the signer's own, bound to the
//! exact version), failed attempts toward the lock, signed audit-trail reviews, signatures
//! in reads and history, and reasons for change where the app requires them.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Answer, PASSWORD, T};
use serde_json::{json, Value};

/// A POST to a `/ledger` route with a session and a JSON body.
async fn post(t: &T, path: &str, token: &str, body: Value) -> Answer {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    t.send(req).await
}

async fn read(t: &T, path: &str, token: &str) -> Answer {
    t.call("GET", path, "gxp", Some(token), None).await
}

fn payload(e: &ledger::Event) -> Value {
    serde_json::from_slice(e.payload.as_deref().unwrap()).unwrap()
}

async fn new_log(t: &T, token: &str) -> String {
    let a = t.create_log(token).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["objectId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_signature_takes_two_components_is_the_signers_own_and_binds_the_exact_version() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let (_, qa) = t.session("gxp", "qa_reviewer").await;
    let id = new_log(&t, &manager).await;
    let rec_path = format!("/ledger/gxp/records/ValidationLog/{id}");
    let sign_path = format!("/ledger/gxp/sign/ValidationLog/{id}");
    let r = read(&t, &rec_path, &qa).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v1 = r.body["versionSeq"].as_u64().unwrap();
    assert_eq!(r.body["signatures"], json!([]));
    assert_eq!(r.body["record"]["protocolId"], "IQ-001");

    // The session's first signature needs the username too; nothing is written.
    let head = t.head("gxp");
    let a = post(
        &t,
        &sign_path,
        &qa,
        json!({"meaning": "approval", "versionSeq": v1, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, Some(200)),
        "{}",
        a.body
    );
    assert!(a.error().contains("username"), "{}", a.body);
    assert_eq!(t.head("gxp"), head);

    // Nobody signs as someone else: refused, and the attempt is recorded.
    let a = post(
        &t,
        &sign_path,
        &qa,
        json!({"meaning": "approval", "versionSeq": v1, "username": "manager.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, Some(119)),
        "{}",
        a.body
    );
    assert!(a.error().contains("manager.user"), "{}", a.body);
    assert_eq!(t.last_event("gxp").kind.name(), "access.denied");

    // A wrong password is a failed attempt, recorded.
    let a = post(
        &t,
        &sign_path,
        &qa,
        json!({"meaning": "approval", "versionSeq": v1, "username": "qa_reviewer.user", "password": "not-the-password"}),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, Some(101)),
        "{}",
        a.body
    );
    let e = t.last_event("gxp");
    assert_eq!(e.kind.name(), "session.login_failed");
    assert_eq!(payload(&e)["detail"], "e-signature: wrong password");

    // Both components: signed, bound to the version's hash.
    let a = post(
        &t,
        &sign_path,
        &qa,
        json!({"meaning": "approval", "versionSeq": v1, "username": "qa_reviewer.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let e = t.last_event("gxp");
    assert_eq!(e.kind.name(), "record.signed");
    assert_eq!(e.actor.username, "qa_reviewer.user");
    let p = payload(&e);
    let version = t.ledger().event("gxp", v1).unwrap().unwrap();
    assert_eq!(p["version_hash"], hex::encode(version.hash));
    assert_eq!(p["meaning"], "approval");
    assert_eq!(p["printed_name"], "qa_reviewer.user");
    assert_eq!(a.body["seq"].as_u64(), Some(e.seq));
    let first_signature = e.seq;

    // Later in the same session, the password alone.
    let a = post(
        &t,
        &sign_path,
        &qa,
        json!({"meaning": "review", "versionSeq": v1, "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    // The record changes: a signature on the old version is refused, nothing written.
    let u = t
        .call(
            "PUT",
            &format!("/parse/classes/ValidationLog/{id}"),
            "gxp",
            Some(&manager),
            Some(json!({"result": "fail"})),
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.body);
    let head = t.head("gxp");
    let a = post(
        &t,
        &sign_path,
        &qa,
        json!({"meaning": "approval", "versionSeq": v1, "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.error().contains("not the latest"), "{}", a.body);
    assert_eq!(t.head("gxp"), head);

    // Reads show the signatures, no longer current; as of the first, it was.
    let r = read(&t, &rec_path, &qa).await;
    let sigs = r.body["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{}", r.body);
    assert_eq!(sigs[0]["meaning"], "approval");
    assert_eq!(sigs[0]["printedName"], "qa_reviewer.user");
    assert_eq!(sigs[0]["current"], false);
    assert!(r.body["versionSeq"].as_u64().unwrap() > v1);
    let r = read(&t, &format!("{rec_path}?asOfSeq={first_signature}"), &qa).await;
    let sigs = r.body["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{}", r.body);
    assert_eq!(sigs[0]["current"], true);
    assert_eq!(r.body["record"]["result"], "pass");
    // And so does the history.
    let h = read(&t, &format!("/ledger/gxp/history/ValidationLog/{id}"), &qa).await;
    let kinds: Vec<&str> = h.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "record.created",
            "record.signed",
            "record.signed",
            "record.updated"
        ]
    );

    // After logout, a new session starts over with both components.
    let out = t
        .call("POST", "/parse/logout", "gxp", Some(&qa), None)
        .await;
    assert_eq!(out.status, StatusCode::OK);
    let qa2 = t.login("gxp", "qa_reviewer.user").await;
    let v2 = read(&t, &rec_path, &qa2).await.body["versionSeq"]
        .as_u64()
        .unwrap();
    let a = post(
        &t,
        &sign_path,
        &qa2,
        json!({"meaning": "approval", "versionSeq": v2, "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.code(), Some(200), "{}", a.body);

    // Who may sign follows the class's permissions; bad bodies name the field.
    let (_, staff) = t.session("gxp", "field_staff").await;
    let a = post(
        &t,
        &sign_path,
        &staff,
        json!({"meaning": "approval", "versionSeq": v2, "username": "field_staff.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let head = t.head("gxp");
    for (body, needle) in [
        (
            json!({"meaning": "liking", "versionSeq": v2, "password": PASSWORD}),
            "liking",
        ),
        (json!({"versionSeq": v2, "password": PASSWORD}), "meaning"),
        (
            json!({"meaning": "review", "password": PASSWORD}),
            "versionSeq",
        ),
        (
            json!({"meaning": "review", "versionSeq": "v2", "password": PASSWORD}),
            "versionSeq",
        ),
        (json!({"meaning": "review", "versionSeq": v2}), "password"),
        (
            json!({"meaning": "review", "versionSeq": v2, "password": 7}),
            "password",
        ),
        (json!(["not", "an", "object"]), "object"),
    ] {
        let a = post(&t, &sign_path, &qa2, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.body);
        assert!(a.error().contains(needle), "{body}: {}", a.body);
    }
    let a = post(
        &t,
        "/ledger/gxp/sign/ValidationLog/NoSuchId1",
        &qa2,
        json!({"meaning": "review", "versionSeq": 1, "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert_eq!(t.head("gxp"), head, "bad requests write nothing");
}

#[tokio::test]
async fn failed_signing_attempts_lock_the_account_like_failed_logins() {
    let t = T::with_config(|c| c.default_policy.max_failed_logins = 3);
    let (_, manager) = t.session("gxp", "manager").await;
    let id = new_log(&t, &manager).await;
    let v = read(
        &t,
        &format!("/ledger/gxp/records/ValidationLog/{id}"),
        &manager,
    )
    .await
    .body["versionSeq"]
        .as_u64()
        .unwrap();
    let sign_path = format!("/ledger/gxp/sign/ValidationLog/{id}");
    for attempt in 1..=3 {
        let a = post(
            &t,
            &sign_path,
            &manager,
            json!({"meaning": "approval", "versionSeq": v, "username": "manager.user", "password": "wrong-wrong"}),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
        assert!(
            a.error()
                .contains(&format!("failed attempt {attempt} of 3")),
            "{}",
            a.body
        );
    }
    assert_eq!(t.last_event("gxp").kind.name(), "account.locked");
    let a = post(
        &t,
        &sign_path,
        &manager,
        json!({"meaning": "approval", "versionSeq": v, "username": "manager.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.error().contains("locked"), "{}", a.body);
    let login = t
        .call(
            "POST",
            "/parse/login",
            "gxp",
            None,
            Some(json!({"username": "manager.user", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::FORBIDDEN,
        "the lock holds for logins too"
    );
}

#[tokio::test]
async fn an_audit_trail_review_is_a_signed_event_bound_to_what_was_seen() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let id = new_log(&t, &manager).await;
    let (_, qa) = t.session("gxp", "qa_reviewer").await;
    let h = read(&t, &format!("/ledger/gxp/history/ValidationLog/{id}"), &qa).await;
    let last = h.body["events"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();

    // The trail moved on since the reviewer read it: refused.
    let head = t.head("gxp");
    let a = post(
        &t,
        "/ledger/gxp/review",
        &qa,
        json!({"class": "ValidationLog", "objectId": id, "throughSeq": last - 1, "username": "qa_reviewer.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.error().contains("throughSeq"), "{}", a.body);
    assert_eq!(t.head("gxp"), head);

    let a = post(
        &t,
        "/ledger/gxp/review",
        &qa,
        json!({"class": "ValidationLog", "objectId": id, "throughSeq": last, "username": "qa_reviewer.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let e = t.last_event("gxp");
    assert_eq!(e.kind.name(), "audit_trail.reviewed");
    let p = payload(&e);
    assert_eq!(p["through_seq"].as_u64(), Some(last));
    assert_eq!(
        p["through_hash"],
        hex::encode(t.ledger().event("gxp", last).unwrap().unwrap().hash)
    );
    let r = read(&t, &format!("/ledger/gxp/records/ValidationLog/{id}"), &qa).await;
    assert_eq!(
        r.body["signatures"][0]["kind"], "audit_trail.reviewed",
        "{}",
        r.body
    );
    assert_eq!(r.body["signatures"][0]["throughSeq"].as_u64(), Some(last));

    // A day, password only now (same session).
    let a = post(
        &t,
        "/ledger/gxp/review",
        &qa,
        json!({"day": "2026-11-23", "tz": "Europe/Paris", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let p = payload(&t.last_event("gxp"));
    assert_eq!(
        (p["scope"].as_str(), p["date"].as_str(), p["tz"].as_str()),
        (Some("day"), Some("2026-11-23"), Some("Europe/Paris"))
    );
    assert_eq!(p["first_seq"], 1);

    // Bad requests and roles without audit rights.
    for (body, needle) in [
        (json!({"password": PASSWORD}), "day"),
        (json!({"day": "someday", "password": PASSWORD}), "someday"),
        (
            json!({"day": "today", "class": "ValidationLog", "password": PASSWORD}),
            "either",
        ),
        (
            json!({"class": "ValidationLog", "password": PASSWORD}),
            "objectId",
        ),
        (
            json!({"class": "ValidationLog", "objectId": "NoSuchId1", "password": PASSWORD}),
            "NoSuchId1",
        ),
    ] {
        let a = post(&t, "/ledger/gxp/review", &qa, body.clone()).await;
        assert!(a.status.is_client_error(), "{body}: {}", a.body);
        assert!(a.error().contains(needle), "{body}: {}", a.body);
    }
    let (_, staff) = t.session("gxp", "field_staff").await;
    let a = post(
        &t,
        "/ledger/gxp/review",
        &staff,
        json!({"day": "today", "username": "field_staff.user", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
}

#[tokio::test]
async fn gxp_changes_need_a_reason_which_the_history_and_day_report_show() {
    let t = T::with_config(|c| c.default_policy.require_reason = None);
    let (_, manager) = t.session("gxp", "manager").await;
    let id = new_log(&t, &manager).await;
    let path = format!("/parse/classes/ValidationLog/{id}");
    let head = t.head("gxp");
    let a = t
        .call(
            "PUT",
            &path,
            "gxp",
            Some(&manager),
            Some(json!({"result": "fail"})),
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, Some(142)),
        "{}",
        a.body
    );
    assert!(a.error().contains("reason"), "{}", a.body);
    let a = t.call("DELETE", &path, "gxp", Some(&manager), None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(t.head("gxp"), head, "nothing written");

    // In the body (as the SDK can send it) or in the header.
    let a = t
        .call(
            "PUT",
            &path,
            "gxp",
            Some(&manager),
            Some(json!({"result": "fail", "_Reason": "re-run after calibration"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        t.last_event("gxp").reason.as_deref(),
        Some("re-run after calibration")
    );
    let req = Request::builder()
        .method("DELETE")
        .uri(&path)
        .header("X-Parse-Application-Id", "gxp")
        .header("X-Parse-Session-Token", &manager)
        .header("X-Audit-Reason", "entered in error")
        .body(Body::empty())
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        t.last_event("gxp").reason.as_deref(),
        Some("entered in error")
    );
    let (_, qa) = t.session("gxp", "qa_reviewer").await;
    let h = read(&t, &format!("/ledger/gxp/history/ValidationLog/{id}"), &qa).await;
    let reasons: Vec<&Value> = h.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["reason"])
        .collect();
    assert_eq!(
        reasons,
        [
            &Value::Null,
            &json!("re-run after calibration"),
            &json!("entered in error")
        ]
    );
    let d = read(&t, "/ledger/gxp/day/2026-11-23", &qa).await;
    assert!(d.body.to_string().contains("entered in error"));

    // Other apps need none by default; a policy can name classes.
    let t =
        T::with_config(|c| c.default_policy.require_reason = Some(vec!["ComplianceLog".into()]));
    let (_, manager) = t.session("gxp", "manager").await;
    let id = new_log(&t, &manager).await;
    let a = t
        .call(
            "PUT",
            &format!("/parse/classes/ValidationLog/{id}"),
            "gxp",
            Some(&manager),
            Some(json!({"result": "fail"})),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "ValidationLog is not named: {}",
        a.body
    );
    let policy = api::AppPolicy::default();
    assert!(policy.reason_required("gxp", "ValidationLog"));
    assert!(!policy.reason_required("iso9001", "CAPA"));
    assert!(!policy.reason_required("gxp", "_User"));
}
