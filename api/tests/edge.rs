//! What every answer carries from the server's edge, whatever the route: the request id
//! (the caller's, else a fresh one), the CORS headers with the exposed names spelt for the
//! Parse JS SDK, and no `Vary` (no answer depends on the request's origin or headers).

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).map(|v| v.to_str().unwrap())
}

async fn get(t: &T, path: &str, request_id: Option<&str>) -> Answer {
    let mut b = Request::builder().method("GET").uri(path);
    if let Some(id) = request_id {
        b = b.header("x-request-id", id);
    }
    t.send(b.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn a_callers_request_id_is_echoed_and_one_is_made_when_absent() {
    let t = T::new();
    let a = get(&t, "/health", Some("trace-42")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(header(&a, "x-request-id"), Some("trace-42"));

    let first = get(&t, "/health", None).await;
    let second = get(&t, "/health", None).await;
    let (x, y) = (
        header(&first, "x-request-id").unwrap(),
        header(&second, "x-request-id").unwrap(),
    );
    assert_ne!(x, y);
    for id in [x, y] {
        let (prefix, n) = id.split_once('-').unwrap();
        assert!(
            prefix.len() == 8 && prefix.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(n.parse::<u64>().is_ok(), "{id}");
    }
}

#[tokio::test]
async fn every_answer_carries_cors_and_the_exposed_headers_even_an_error() {
    let t = T::new();
    let ok = get(&t, "/health", None).await;
    let missing = get(&t, "/no/such/route", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let (_, token) = t.session("gxp", "manager").await;
    let created = t.create_log(&token).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for a in [&ok, &missing, &created] {
        assert_eq!(header(a, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            header(a, "access-control-expose-headers"),
            Some("x-ledger-seq, x-request-id, location")
        );
        assert!(header(a, "x-request-id").is_some());
        assert_eq!(header(a, "vary"), None);
    }
}

#[tokio::test]
async fn a_preflight_is_answered_for_any_origin_method_and_header() {
    let t = T::new();
    let a = t
        .send(
            Request::builder()
                .method("OPTIONS")
                .uri("/parse/classes/ValidationLog")
                .header("origin", "https://qa.example.org")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "x-parse-session-token, content-type",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(header(&a, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&a, "access-control-allow-methods"), Some("*"));
    assert_eq!(header(&a, "access-control-allow-headers"), Some("*"));
    assert_eq!(header(&a, "vary"), None);
}
