//! Every bad input of SPEC §7 over HTTP: the documented status, Parse code and a message
//! naming the field or value — and nothing appended to the ledger (a refusal for lack of
//! permission appends exactly one `access.denied` event, as the regulation wants).

#![allow(clippy::unwrap_used)]

mod common;

use api::parse::{self, request::ParseRequest};
use api::state::Decide;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use common::{validation_log, T};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    app: &'static str,
    /// Which session: "manager", "auditor", "none", "bad".
    session: &'static str,
    body: Body,
    status: StatusCode,
    code: u64,
    message: &'static str,
}

fn with(v: Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Body {
    let mut v = v;
    if let Value::Object(o) = &mut v {
        f(o);
    }
    Body::from(v.to_string())
}

fn cases() -> Vec<Case> {
    let vl = validation_log;
    let deep = format!("{{\"protocolId\": {}{}}}", "[".repeat(40), "]".repeat(40));
    vec![
        Case {
            name: "malformed JSON",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: Body::from("{\"protocolId\": \"IQ-1\","),
            status: StatusCode::BAD_REQUEST,
            code: 107,
            message: "the request body is not valid JSON",
        },
        Case {
            name: "wrong type",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: with(vl(), |o| {
                o.insert("protocolId".into(), json!(42));
            }),
            status: StatusCode::BAD_REQUEST,
            code: 111,
            message: "ValidationLog.protocolId: expected String, given Number",
        },
        Case {
            name: "missing required field",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: with(vl(), |o| {
                o.remove("testedSystem");
            }),
            status: StatusCode::BAD_REQUEST,
            code: 142,
            message: "ValidationLog.testedSystem: required field is missing",
        },
        Case {
            name: "unknown class",
            method: "POST",
            path: "/parse/classes/Nope",
            app: "gxp",
            session: "manager",
            body: Body::from("{}"),
            status: StatusCode::BAD_REQUEST,
            code: 103,
            message: "class Nope does not exist in app gxp",
        },
        Case {
            name: "unknown field (closed schema)",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: with(vl(), |o| {
                o.insert("colour".into(), json!("red"));
            }),
            status: StatusCode::BAD_REQUEST,
            code: 105,
            message: "ValidationLog.colour: no such field",
        },
        Case {
            name: "invalid date",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: with(vl(), |o| {
                o.insert(
                    "executedAt".into(),
                    json!({"__type": "Date", "iso": "2026-13-45T99:00:00Z"}),
                );
            }),
            status: StatusCode::BAD_REQUEST,
            code: 142,
            message: "ValidationLog.executedAt",
        },
        Case {
            name: "pointer to a missing object",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: with(vl(), |o| {
                o.insert(
                    "approvedBy".into(),
                    json!({"__type": "Pointer", "className": "_User", "objectId": "nobody123"}),
                );
            }),
            status: StatusCode::BAD_REQUEST,
            code: 106,
            message: "ValidationLog.approvedBy: points to _User nobody123, which does not exist",
        },
        Case {
            name: "oversized body",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: with(vl(), |o| {
                o.insert("evidenceUrl".into(), json!("x".repeat(20_000)));
            }),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: 116,
            message: "larger than the limit of 16384 bytes",
        },
        Case {
            name: "deeply nested JSON",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: Body::from(deep),
            status: StatusCode::BAD_REQUEST,
            code: 107,
            message: "nested more than 32 levels deep",
        },
        Case {
            name: "invalid regex",
            method: "GET",
            path: "/parse/classes/ValidationLog?where=%7B%22protocolId%22%3A%7B%22%24regex%22%3A%22(%22%7D%7D",
            app: "gxp",
            session: "manager",
            body: Body::empty(),
            status: StatusCode::BAD_REQUEST,
            code: 102,
            message: "protocolId",
        },
        Case {
            name: "unknown query operator",
            method: "GET",
            path: "/parse/classes/ValidationLog?where=%7B%22result%22%3A%7B%22%24near%22%3A1%7D%7D",
            app: "gxp",
            session: "manager",
            body: Body::empty(),
            status: StatusCode::BAD_REQUEST,
            code: 102,
            message: "$near",
        },
        Case {
            name: "limit out of range",
            method: "GET",
            path: "/parse/classes/ValidationLog?limit=1000000",
            app: "gxp",
            session: "manager",
            body: Body::empty(),
            status: StatusCode::BAD_REQUEST,
            code: 102,
            message: "limit",
        },
        Case {
            name: "unknown operation in an update",
            method: "PUT",
            path: "/parse/classes/ValidationLog/PLACEHOLDER",
            app: "gxp",
            session: "manager",
            body: Body::from(json!({"result": {"__op": "Frobnicate"}}).to_string()),
            status: StatusCode::BAD_REQUEST,
            code: 107,
            message: "result: unknown operation",
        },
        Case {
            name: "update of a missing object",
            method: "PUT",
            path: "/parse/classes/ValidationLog/missing42",
            app: "gxp",
            session: "manager",
            body: Body::from(json!({"result": "fail"}).to_string()),
            status: StatusCode::NOT_FOUND,
            code: 101,
            message: "ValidationLog missing42",
        },
        Case {
            name: "bad session token",
            method: "GET",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "bad",
            body: Body::empty(),
            status: StatusCode::UNAUTHORIZED,
            code: 209,
            message: "Invalid session token",
        },
        Case {
            name: "no session",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "none",
            body: Body::from(vl().to_string()),
            status: StatusCode::UNAUTHORIZED,
            code: 209,
            message: "needs a session",
        },
        Case {
            name: "unknown app",
            method: "GET",
            path: "/parse/classes/ValidationLog",
            app: "pharmax",
            session: "manager",
            body: Body::empty(),
            status: StatusCode::FORBIDDEN,
            code: 119,
            message: "unknown application id \"pharmax\"",
        },
        Case {
            name: "unknown route",
            method: "GET",
            path: "/parse/functions/hello",
            app: "gxp",
            session: "manager",
            body: Body::empty(),
            status: StatusCode::NOT_FOUND,
            code: 107,
            message: "no such route: GET /parse/functions/hello",
        },
        Case {
            name: "body not an object",
            method: "POST",
            path: "/parse/classes/ValidationLog",
            app: "gxp",
            session: "manager",
            body: Body::from("[1, 2]"),
            status: StatusCode::BAD_REQUEST,
            code: 107,
            message: "must be a JSON object",
        },
    ]
}

#[tokio::test]
async fn every_bad_input_gets_its_error_and_writes_nothing() {
    let t = T::with_config(|c| c.max_body_bytes = 16 * 1024);
    let (_, manager) = t.session("gxp", "manager").await;
    let created = t.create_log(&manager).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let existing = created.body["objectId"].as_str().unwrap().to_string();
    for case in cases() {
        let before = t.head("gxp");
        let path = case.path.replace("PLACEHOLDER", &existing);
        let mut b = Request::builder()
            .method(case.method)
            .uri(&path)
            .header("X-Parse-Application-Id", case.app)
            .header("Content-Type", "application/json");
        match case.session {
            "manager" => b = b.header("X-Parse-Session-Token", &manager),
            "bad" => b = b.header("X-Parse-Session-Token", "r:0000deadbeef"),
            _ => {}
        }
        let a = t.send(b.body(case.body).unwrap()).await;
        assert_eq!(a.status, case.status, "{}: {}", case.name, a.body);
        assert_eq!(a.code(), Some(case.code), "{}: {}", case.name, a.body);
        assert!(
            a.error().contains(case.message),
            "{}: {:?} does not name {:?}",
            case.name,
            a.error(),
            case.message
        );
        assert_eq!(
            t.head("gxp"),
            before,
            "{}: something was appended",
            case.name
        );
    }
}

#[tokio::test]
async fn a_forbidden_role_is_refused_with_one_access_denied_event() {
    let t = T::new();
    let (_, auditor) = t.session("gxp", "auditor").await;
    let before = t.head("gxp");
    let a = t.create_log(&auditor).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), Some(119));
    assert_eq!(
        a.error(),
        "role auditor may not create ValidationLog (allowed: admin, manager, coordinator, qa_reviewer)"
    );
    let e = t.assert_one_denial("gxp", before);
    assert_eq!(e.actor.role, "auditor");
    let payload: Value = serde_json::from_slice(e.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["operation"], "create");
    assert_eq!(payload["class"], "ValidationLog");
}

#[tokio::test]
async fn an_expired_or_idle_session_is_refused() {
    let t = T::with_config(|c| {
        c.default_policy.idle_timeout_secs = 600;
        c.default_policy.session_ttl_secs = 3600;
    });
    let (_, token) = t.session("gxp", "manager").await;
    t.clock.advance(500 * 1_000_000);
    assert_eq!(get(&t, &token).await.status, StatusCode::OK);
    t.clock.advance(601 * 1_000_000);
    let a = get(&t, &token).await;
    assert_eq!((a.status, a.code()), (StatusCode::UNAUTHORIZED, Some(209)));
    assert!(
        a.error().contains("10 minutes without activity"),
        "{}",
        a.error()
    );
    // The absolute lifetime, with activity all along.
    let token = t.login("gxp", "manager.user").await;
    for _ in 0..7 {
        t.clock.advance(500 * 1_000_000);
        assert_eq!(get(&t, &token).await.status, StatusCode::OK);
    }
    t.clock.advance(200 * 1_000_000);
    let a = get(&t, &token).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.error().contains("expired"), "{}", a.error());
}

/// A record create is checked on the async runtime unless something in it would block
/// there (a refusal to record, a session to end or to mark active, an account newer than
/// the projections); those are redone on the blocking pool, and each must answer as it
/// would have there.
#[tokio::test]
async fn a_create_answers_the_same_wherever_it_is_decided() {
    let t = T::with_config(|c| {
        c.default_policy.idle_timeout_secs = 600;
        c.default_policy.session_ttl_secs = 3600;
    });
    let (manager, token) = t.session("gxp", "manager").await;
    let server = &t;
    let create = |token: String, body: Value| async move {
        server
            .call(
                "POST",
                "/parse/classes/ValidationLog",
                "gxp",
                Some(&token),
                Some(body),
            )
            .await
    };
    assert_eq!(
        create(token.clone(), validation_log()).await.status,
        StatusCode::CREATED
    );
    // Once the projections have the account, a plain create is decided on the runtime.
    assert!(decided_on_runtime(&t, &token, validation_log()));
    // Creates alone keep a session alive: each one past a minute writes its last-seen
    // time, on the blocking pool.
    for _ in 0..3 {
        t.clock.advance(500 * 1_000_000);
        assert!(!decided_on_runtime(&t, &token, validation_log()));
        let a = create(token.clone(), validation_log()).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        assert!(decided_on_runtime(&t, &token, validation_log()));
    }
    t.clock.advance(601 * 1_000_000);
    let a = create(token.clone(), validation_log()).await;
    assert_eq!((a.status, a.code()), (StatusCode::UNAUTHORIZED, Some(209)));
    assert!(
        a.error().contains("10 minutes without activity"),
        "{}",
        a.error()
    );
    // A role taken away applies to the very next create, refused and recorded.
    let token = t.login("gxp", "manager.user").await;
    let (_, admin) = t.session("gxp", "admin").await;
    let a = t.set_role("gxp", &admin, &manager, "auditor").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(!decided_on_runtime(&t, &token, validation_log()));
    let before = t.head("gxp");
    let a = create(token.clone(), validation_log()).await;
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, Some(119)));
    assert_eq!(
        a.error(),
        "role auditor may not create ValidationLog (allowed: admin, manager, coordinator, qa_reviewer)"
    );
    t.assert_one_denial("gxp", before);
    // A guarded field set by a role that may create but not approve: refused, recorded.
    let (_, coordinator) = t.session("gxp", "coordinator").await;
    assert_eq!(
        create(coordinator.clone(), validation_log()).await.status,
        StatusCode::CREATED
    );
    assert!(decided_on_runtime(&t, &coordinator, validation_log()));
    let before = t.head("gxp");
    let mut body = validation_log();
    body["approvedBy"] = json!("someone");
    assert!(!decided_on_runtime(&t, &coordinator, body.clone()));
    let a = create(coordinator.clone(), body).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(
        a.error().contains("may not set ValidationLog."),
        "{}",
        a.error()
    );
    t.assert_one_denial("gxp", before);
}

/// Whether a create of `body` with `token` would be decided on the async runtime: nothing
/// in it would block (a refusal to record, a session to end or mark active, an account the
/// projections have not applied).
fn decided_on_runtime(t: &T, token: &str, body: Value) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert("X-Parse-Application-Id", HeaderValue::from_static("gxp"));
    headers.insert(
        "X-Parse-Session-Token",
        HeaderValue::from_str(token).unwrap(),
    );
    headers.insert("Content-Type", HeaderValue::from_static("application/json"));
    let body = body.to_string();
    let req = ParseRequest::from_http(
        Method::POST,
        "/classes/ValidationLog",
        None,
        &headers,
        body.as_bytes(),
        64,
    )
    .unwrap();
    let class = parse::record_create_class(&req).unwrap();
    parse::prepare_record_create(t.server.state(), &req, class, Decide::OnRuntime)
        .unwrap()
        .is_some()
}

async fn get(t: &T, token: &str) -> common::Answer {
    t.call(
        "GET",
        "/parse/classes/ValidationLog",
        "gxp",
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn the_sdk_text_plain_post_form_is_understood() {
    let t = T::new();
    let (_, token) = t.session("gxp", "manager").await;
    let body = json!({
        "_method": "POST", "_ApplicationId": "gxp", "_SessionToken": token,
        "_ClientVersion": "js6.1.1", "_InstallationId": "abc",
        "protocolId": "OQ-7", "testedSystem": "MES", "result": "pass",
        "executedAt": {"__type": "Date", "iso": "2026-11-21T08:00:00.000Z"}
    });
    let req = Request::builder()
        .method("POST")
        .uri("/parse/classes/ValidationLog")
        .header("Content-Type", "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["objectId"].as_str().unwrap();
    assert_eq!(
        a.headers["location"],
        format!("http://localhost/parse/classes/ValidationLog/{id}").as_str()
    );
    let body = json!({
        "_method": "GET", "_ApplicationId": "gxp", "_SessionToken": token,
        "where": {"protocolId": {"$regex": "^\\QOQ-7\\E"}}, "limit": 0, "count": 1
    });
    let req = Request::builder()
        .method("POST")
        .uri("/parse/classes/ValidationLog")
        .header("Content-Type", "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.body, json!({"results": [], "count": 1}));
    assert_eq!(a.seq(), Some(t.head("gxp")));
}
