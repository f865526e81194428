//! `/openapi.json`: a well-formed OpenAPI 3.1 document (every operation answered, every
//! reference resolved, the error schema present), listing every route the router has —
//! the ledger's and the server's (registered with their documentation), and every Parse
//! route the dispatcher matches (checked against its source) — and nothing the router
//! does not answer.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

async fn document(t: &T) -> Value {
    let a = t.call("GET", "/openapi.json", "gxp", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    a.body
}

#[tokio::test]
async fn the_document_is_well_formed() {
    let t = T::new();
    let doc = document(&t).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "audit-ledger");
    assert!(doc["info"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["code", "error"]));
    for scheme in ["bearer", "session"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    let mut ids = BTreeSet::new();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 30, "{} paths", paths.len());
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (status, r) in responses {
                assert!(
                    status.parse::<u16>().is_ok(),
                    "{method} {path}: status {status}"
                );
                assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()));
            }
            // Every path placeholder is a declared path parameter, and vice versa.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, placeholders, "{method} {path}: path parameters");
            if let Some(security) = op["security"].as_array() {
                for s in security {
                    for name in s.as_object().unwrap().keys() {
                        assert!(doc["components"]["securitySchemes"][name].is_object());
                    }
                }
            }
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}

/// `(method, path)` of every Parse route the dispatcher matches, read from its source:
/// `(&Method::GET, ["classes", class, id])` → `get /parse/classes/{}/{}`.
fn dispatcher_routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/parse/mod.rs");
    let arm = regex::Regex::new(r#"&Method::(\w+)(?: \| &Method::(\w+))?, \[([^\]]*)\]"#).unwrap();
    let mut out = BTreeSet::new();
    for c in arm.captures_iter(src) {
        let segments: Vec<String> = c[3]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Some(lit) => lit.to_string(),
                    None if s == "USER_CLASS" => "_User".to_string(),
                    None => "{}".to_string(),
                },
            )
            .collect();
        let path = format!("/parse/{}", segments.join("/"));
        for m in [c.get(1), c.get(2)].into_iter().flatten() {
            out.insert((m.as_str().to_lowercase(), path.clone()));
        }
    }
    out
}

fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_is_documented() {
    let t = T::new();
    let doc = document(&t).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), shape(p)))
        })
        .collect();
    let parse = dispatcher_routes();
    assert!(parse.len() > 20, "{parse:?}");
    for (method, path) in &parse {
        // `_User` routes through /classes are the /users ones under another name.
        let alias = path.replace("/classes/_User", "/users");
        assert!(
            documented.contains(&(method.clone(), path.clone()))
                || documented.contains(&(method.clone(), alias.clone()))
                || documented.contains(&(method.clone(), shape(&alias))),
            "the dispatcher's {method} {path} is not in the document"
        );
    }
    // Routes registered without documentation: only the Parse mount and the document.
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    for src in [
        include_str!("../src/server.rs"),
        include_str!("../src/native.rs"),
        include_str!("../src/esign.rs"),
        include_str!("../src/live.rs"),
    ] {
        for c in route.captures_iter(src) {
            let p = &c[1];
            assert!(
                p == "/parse" || p == "/parse/{*rest}" || p == "/openapi.json",
                "{p} is routed without its #[utoipa::path]"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_route_is_routed() {
    let t = T::new();
    let (_, token) = t.session("gxp", "admin").await;
    let doc = document(&t).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{app}", "gxp")
            .replace("{class}", "ValidationLog")
            .replace("{className}", "ValidationLog")
            .replace("{id}", "abc")
            .replace("{objectId}", "abc")
            .replace("{when}", "2026-11-17");
        assert!(!concrete.contains('{'), "{concrete}");
        for method in item.as_object().unwrap().keys() {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("X-Parse-Application-Id", "gxp")
                .header("X-Parse-Session-Token", &token)
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let resp = t.router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}"
            );
            let stream = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if stream {
                continue; // the live route: answered, and never ends
            }
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("no such route"),
                "{method} {concrete} is documented but not routed: {status} {text}"
            );
            assert!(
                !status.is_server_error(),
                "{method} {concrete}: {status} {text}"
            );
        }
    }
}
