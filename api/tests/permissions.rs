//! Each role against each operation on classes with restricted rights. The expected
//! outcomes are written out here from the seeds' Security sections, not computed from the
//! permission table under test.

#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{validation_log, T};
use serde_json::{json, Value};

const ROLES: [&str; 6] = [
    "admin",
    "manager",
    "coordinator",
    "field_staff",
    "auditor",
    "qa_reviewer",
];

/// For one class: which roles may read, create, update, delete (in `ROLES` order).
struct Expect {
    class: &'static str,
    body: fn() -> Value,
    update: Value,
    read: [bool; 6],
    create: [bool; 6],
    update_ok: [bool; 6],
    delete: [bool; 6],
}

fn system_audit(actor: &str) -> Value {
    json!({
        "entityType": "ValidationLog", "entityId": "x1", "action": "review",
        "actor": {"__type": "Pointer", "className": "_User", "objectId": actor},
        "occurredAt": {"__type": "Date", "iso": "2026-11-20T10:00:00.000Z"}
    })
}

#[tokio::test]
async fn each_role_against_each_operation() {
    let t = T::new();
    let mut sessions = Vec::new();
    for role in ROLES {
        sessions.push(t.session("gxp", role).await);
    }
    let manager = sessions[1].1.clone();
    let actor_id = sessions[1].0.clone();
    let expectations = [
        Expect {
            class: "ValidationLog",
            body: validation_log,
            update: json!({"result": "fail"}),
            //     admin  manager coord  field  auditor qa
            read: [true, true, true, true, true, true],
            create: [true, true, true, false, false, true],
            update_ok: [true, true, true, false, false, true],
            delete: [true, true, false, false, false, false],
        },
        Expect {
            class: "SystemAudit",
            body: || Value::Null,
            update: json!({"details": "changed"}),
            read: [true, true, true, true, true, true],
            create: [true, true, true, true, false, true],
            update_ok: [false; 6],
            delete: [false; 6],
        },
    ];
    for e in expectations {
        let body = if e.class == "SystemAudit" {
            system_audit(&actor_id)
        } else {
            (e.body)()
        };
        let path = format!("/parse/classes/{}", e.class);
        for (i, role) in ROLES.iter().enumerate() {
            let token = &sessions[i].1;
            let before = t.head("gxp");
            let a = t.call("GET", &path, "gxp", Some(token), None).await;
            assert_eq!(
                a.status == StatusCode::OK,
                e.read[i],
                "{role} read {}: {}",
                e.class,
                a.body
            );

            let a = t
                .call("POST", &path, "gxp", Some(token), Some(body.clone()))
                .await;
            assert_eq!(
                a.status == StatusCode::CREATED,
                e.create[i],
                "{role} create {}: {}",
                e.class,
                a.body
            );
            if !e.create[i] {
                assert_eq!(a.code(), Some(119), "{role}: {}", a.body);
                assert_eq!(t.head("gxp"), before + 1, "{role}: one access.denied event");
            }

            // A record to update and delete, made by the manager.
            let made = t
                .call("POST", &path, "gxp", Some(&manager), Some(body.clone()))
                .await;
            assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
            let one = format!("{path}/{}", made.body["objectId"].as_str().unwrap());
            let a = t
                .call("PUT", &one, "gxp", Some(token), Some(e.update.clone()))
                .await;
            assert_eq!(
                a.status == StatusCode::OK,
                e.update_ok[i],
                "{role} update {}: {}",
                e.class,
                a.body
            );
            let a = t.call("DELETE", &one, "gxp", Some(token), None).await;
            assert_eq!(
                a.status == StatusCode::OK,
                e.delete[i],
                "{role} delete {}: {}",
                e.class,
                a.body
            );
            if !e.delete[i] {
                assert_eq!(a.code(), Some(119));
                assert_eq!(t.last_event("gxp").kind.name(), "access.denied");
            }
        }
    }
}

#[tokio::test]
async fn only_managers_and_qa_reviewers_approve_a_validation_log() {
    let t = T::new();
    let (manager_id, manager) = t.session("gxp", "manager").await;
    let (_, coordinator) = t.session("gxp", "coordinator").await;
    let (_, qa) = t.session("gxp", "qa_reviewer").await;
    let (_, admin) = t.session("gxp", "admin").await;
    let made = t.create_log(&coordinator).await;
    let one = format!(
        "/parse/classes/ValidationLog/{}",
        made.body["objectId"].as_str().unwrap()
    );
    let approve =
        json!({"approvedBy": {"__type": "Pointer", "className": "_User", "objectId": manager_id}});
    for (who, token, ok) in [
        ("coordinator", &coordinator, false),
        ("admin", &admin, false),
        ("qa_reviewer", &qa, true),
        ("manager", &manager, true),
    ] {
        let a = t
            .call("PUT", &one, "gxp", Some(token), Some(approve.clone()))
            .await;
        assert_eq!(a.status == StatusCode::OK, ok, "{who}: {}", a.body);
        if !ok {
            assert_eq!(
                a.error(),
                format!("role {who} may not set ValidationLog.approvedBy (allowed: manager, qa_reviewer)")
            );
        }
    }
    // Setting it at creation is guarded the same way.
    let mut body = validation_log();
    body["approvedBy"] = approve["approvedBy"].clone();
    let a = t
        .call(
            "POST",
            "/parse/classes/ValidationLog",
            "gxp",
            Some(&coordinator),
            Some(body),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn hipaa_access_logs_are_hidden_from_field_staff() {
    let t = T::new();
    let (_, field) = t.session("hipaa", "field_staff").await;
    let (_, auditor) = t.session("hipaa", "auditor").await;
    let a = t
        .call(
            "GET",
            "/parse/classes/AccessLog",
            "hipaa",
            Some(&field),
            None,
        )
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, Some(119)));
    let a = t
        .call(
            "GET",
            "/parse/classes/AccessLog",
            "hipaa",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn accounts_signup_has_no_role_and_admins_manage_users() {
    let t = T::new();
    // Sign-up: a session, no role, can read itself but nothing else.
    let a = t
        .call("POST", "/parse/users", "gxp", None, Some(json!({"username": "newbie", "password": "long-enough-pw", "email": "n@example.org"})))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let token = a.body["sessionToken"].as_str().unwrap().to_string();
    let newbie = a.body["objectId"].as_str().unwrap().to_string();
    let me = t
        .call("GET", "/parse/users/me", "gxp", Some(&token), None)
        .await;
    assert_eq!(me.body["username"], "newbie");
    assert!(me.body.get("password").is_none());
    let a = t
        .call(
            "GET",
            "/parse/classes/ValidationLog",
            "gxp",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.error().contains("no role granted yet"), "{}", a.error());
    // A sign-up cannot grant itself a role, nor take a username.
    let a = t
        .call(
            "POST",
            "/parse/users",
            "gxp",
            None,
            Some(json!({"username": "boss", "password": "long-enough-pw", "role": "admin"})),
        )
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, Some(119)));
    let a = t
        .call(
            "POST",
            "/parse/users",
            "gxp",
            None,
            Some(json!({"username": "newbie", "password": "long-enough-pw"})),
        )
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, Some(202)));
    // Nor change its role.
    let a = t
        .call(
            "PUT",
            &format!("/parse/users/{newbie}"),
            "gxp",
            Some(&token),
            Some(json!({"role": "manager"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // An admin grants one; the user's next request acts in it.
    let (_, admin) = t.session("gxp", "admin").await;
    let a = t.set_role("gxp", &admin, &newbie, "coordinator").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = t
        .call(
            "GET",
            "/parse/classes/ValidationLog",
            "gxp",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // Deactivation ends the sessions; the account can no longer log in.
    let a = t
        .call(
            "DELETE",
            &format!("/parse/users/{newbie}"),
            "gxp",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = t
        .call("GET", "/parse/users/me", "gxp", Some(&token), None)
        .await;
    assert_eq!(a.code(), Some(209));
    let a = t
        .call(
            "POST",
            "/parse/login",
            "gxp",
            None,
            Some(json!({"username": "newbie", "password": "long-enough-pw"})),
        )
        .await;
    assert_eq!(a.code(), Some(101));
}

#[tokio::test]
async fn a_role_taken_away_counts_from_the_next_request() {
    let t = T::new();
    let (manager_id, manager) = t.session("gxp", "manager").await;
    let (_, admin) = t.session("gxp", "admin").await;
    // Several requests in the role first, so the server knows the user as a manager.
    for _ in 0..3 {
        let a = t.create_log(&manager).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let a = t.set_role("gxp", &admin, &manager_id, "auditor").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = t.create_log(&manager).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // And given back.
    let a = t.set_role("gxp", &admin, &manager_id, "manager").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = t.create_log(&manager).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}
