//! Live changes over Server-Sent Events: replay from a sequence number, then follow new
//! events; resume with Last-Event-ID; filtered by the caller's read permissions.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{Request, StatusCode};
use common::T;
use serde_json::{json, Value};
use tokio_stream::StreamExt;
use tower::ServiceExt;

/// One SSE message: (id, event, data).
type Message = (u64, String, Value);

struct Stream {
    body: BodyDataStream,
    buf: String,
}

impl Stream {
    /// Reads messages until `n` arrived or `wait` passed.
    async fn take(&mut self, n: usize, wait: Duration) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < n {
            while let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    out.push((id, event, serde_json::from_str(&data).unwrap()));
                }
            }
            if out.len() >= n {
                break;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                _ => break,
            }
        }
        out
    }
}

async fn subscribe(
    t: &T,
    query: &str,
    token: &str,
    last_id: Option<u64>,
) -> Result<Stream, (StatusCode, String)> {
    let mut b = Request::builder()
        .uri(format!("/ledger/gxp/changes{query}"))
        .header("Authorization", format!("Bearer {token}"));
    if let Some(id) = last_id {
        b = b.header("Last-Event-ID", id.to_string());
    }
    let resp = t
        .router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        return Err((status, String::from_utf8_lossy(&bytes).to_string()));
    }
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Ok(Stream {
        body: resp.into_body().into_data_stream(),
        buf: String::new(),
    })
}

async fn create(t: &T, token: &str) -> String {
    let a = t.create_log(token).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["objectId"].as_str().unwrap().to_string()
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn replays_then_follows_and_resumes_after_the_last_event_id() {
    let t = T::new();
    let (_, manager) = t.session("gxp", "manager").await;
    let first = create(&t, &manager).await;
    let second = create(&t, &manager).await;
    let (_, staff) = t.session("gxp", "field_staff").await;

    // A field-staff reader sees record events only; an auditor sees everything.
    let mut s = subscribe(&t, "?from=1", &staff, None).await.unwrap();
    let got = s.take(2, WAIT).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|m| m.2["subject"]["object_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    assert!(got.iter().all(|m| m.1 == "record.created"));
    // Each message is the event's export line, which verifies as such.
    let e = ledger::export::parse_event(&got[0].2).unwrap();
    assert_eq!(Some(e), t.ledger().event("gxp", got[0].0).unwrap());

    // Then new events arrive as they are appended.
    let third = create(&t, &manager).await;
    let got_new = s.take(1, WAIT).await;
    assert_eq!(got_new.len(), 1);
    assert_eq!(got_new[0].2["subject"]["object_id"], third.as_str());
    // Nothing else (the session events of the manager's login are not for field staff).
    assert!(s.take(1, Duration::from_millis(300)).await.is_empty());

    // Reconnecting with Last-Event-ID resumes right after it.
    let mut again = subscribe(&t, "?from=1", &staff, Some(got[0].0))
        .await
        .unwrap();
    let resumed = again.take(2, WAIT).await;
    assert_eq!(
        resumed.iter().map(|m| m.0).collect::<Vec<_>>(),
        [got[1].0, got_new[0].0]
    );

    // An auditor sees every event from 1, gapless.
    let (_, auditor) = t.session("gxp", "auditor").await;
    let head = t.head("gxp");
    let mut all = subscribe(&t, "?from=1", &auditor, None).await.unwrap();
    let every = all.take(head as usize, WAIT).await;
    assert_eq!(
        every.iter().map(|m| m.0).collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>()
    );
    assert_eq!(every[0].1, "app.created");

    // Without `from`, only what comes next.
    let mut live = subscribe(&t, "", &staff, None).await.unwrap();
    assert!(live.take(1, Duration::from_millis(300)).await.is_empty());
    let fourth = create(&t, &manager).await;
    assert_eq!(
        live.take(1, WAIT).await[0].2["subject"]["object_id"],
        fourth.as_str()
    );
}

#[tokio::test]
async fn a_class_filter_and_read_permissions_hold() {
    let t = T::new();
    let (manager_id, manager) = t.session("gxp", "manager").await;
    let (_, staff) = t.session("gxp", "field_staff").await;
    create(&t, &manager).await;
    let a = t
        .call(
            "POST",
            "/parse/classes/SystemAudit",
            "gxp",
            Some(&manager),
            Some(json!({
                "entityType": "ValidationLog", "entityId": "x1", "action": "review",
                "actor": {"__type": "Pointer", "className": "_User", "objectId": manager_id},
                "occurredAt": {"__type": "Date", "iso": "2026-11-20T10:00:00.000Z"}
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let mut s = subscribe(&t, "?from=1&class=ValidationLog", &staff, None)
        .await
        .unwrap();
    let got = s.take(5, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2["subject"]["class"], "ValidationLog");

    // Bad requests are plain errors, before any stream.
    let (status, body) = subscribe(&t, "?class=NoSuchClass", &staff, None)
        .await
        .err()
        .unwrap();
    assert!(
        status.is_client_error() && body.contains("NoSuchClass"),
        "{status} {body}"
    );
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/ledger/gxp/changes")
                .header("Authorization", format!("Bearer {staff}"))
                .header("Last-Event-ID", "yesterday")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (status, _) = subscribe(&t, "", "r:not-a-session", None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hidden_classes_never_reach_a_role_that_may_not_read_them() {
    let t = T::new();
    let (manager_id, manager) = t.session("hipaa", "manager").await;
    let (_, staff) = t.session("hipaa", "field_staff").await;
    let a = t
        .call(
            "POST",
            "/parse/classes/AccessLog",
            "hipaa",
            Some(&manager),
            Some(json!({
                "user": {"__type": "Pointer", "className": "_User", "objectId": manager_id},
                "resourceType": "PatientRecord", "resourceId": "p-1", "accessType": "read",
                "actionAt": {"__type": "Date", "iso": "2026-11-20T10:00:00.000Z"}, "suspicious": false
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/ledger/hipaa/changes?from=1")
                .header("Authorization", format!("Bearer {staff}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut s = Stream {
        body: resp.into_body().into_data_stream(),
        buf: String::new(),
    };
    assert!(
        s.take(1, Duration::from_millis(500)).await.is_empty(),
        "no AccessLog for field staff"
    );
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/ledger/hipaa/changes?class=AccessLog")
                .header("Authorization", format!("Bearer {staff}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
