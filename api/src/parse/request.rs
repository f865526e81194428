//! One Parse REST request, however it arrived: headers and a JSON body, a query string, or
//! the way the Parse JS SDK sends everything from a browser and from Node — a `POST` with
//! `Content-Type: text/plain` whose JSON body carries the real method in `_method` and the
//! credentials in `_ApplicationId`, `_SessionToken`, `_RequestId`… (with `where` as an
//! object, not a string). [`ParseRequest::from_http`] folds all of these into one shape,
//! checking size and nesting limits on the way, so handlers never see the difference.

use axum::http::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::error::{code, ApiError, ApiResult};

/// A normalised Parse request.
#[derive(Clone, Debug)]
pub struct ParseRequest {
    /// The effective method (after `_method`).
    pub method: Method,
    /// Path segments after the `/parse` mount (`["classes", "ValidationLog"]`).
    pub segments: Vec<String>,
    /// The app (`X-Parse-Application-Id` / `_ApplicationId`).
    pub app: Option<String>,
    /// The session token (`X-Parse-Session-Token` / `_SessionToken`).
    pub session_token: Option<String>,
    /// The idempotency key (`X-Parse-Request-Id` / `_RequestId`).
    pub request_id: Option<String>,
    /// For reads: the query parameters (`where` parsed to JSON, numbers as numbers).
    /// For writes: the body object, without the `_…` meta keys.
    pub data: Map<String, Value>,
    /// The reason for change (`X-Audit-Reason` header or `_Reason` in the body).
    pub reason: Option<String>,
    /// Scheme and host the client used (for `Location` headers).
    pub origin: String,
    /// Answer `createdAt`/`updatedAt` with the ledger's microseconds instead of Parse's
    /// milliseconds (the native `/ledger` class route, read by auditors' tools).
    pub exact_dates: bool,
}

/// Body keys the Parse SDKs use for request metadata (never record fields).
const META_KEYS: &[&str] = &[
    "_method",
    "_ApplicationId",
    "_JavaScriptKey",
    "_ClientKey",
    "_ClientVersion",
    "_InstallationId",
    "_SessionToken",
    "_MasterKey",
    "_RevocableSession",
    "_RequestId",
    "_ContentType",
    "_context",
    "_Reason",
];

/// Query parameters whose value is JSON text.
const JSON_PARAMS: &[&str] = &["where"];
/// Query parameters that are integers.
const INT_PARAMS: &[&str] = &["limit", "skip", "count", "asOfSeq"];

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The depth of a JSON value (a scalar is 0, `{}` is 1).
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Parses request JSON, refusing what is malformed or nested deeper than `max_depth`.
pub fn parse_json(bytes: &[u8], what: &str, max_depth: usize) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            too_deep(what, max_depth)
        } else {
            ApiError::bad(code::INVALID_JSON, format!("{what} is not valid JSON: {e}"))
        }
    })?;
    if depth(&v) > max_depth {
        return Err(too_deep(what, max_depth));
    }
    Ok(v)
}

fn too_deep(what: &str, max_depth: usize) -> ApiError {
    ApiError::bad(
        code::INVALID_JSON,
        format!("{what} is nested more than {max_depth} levels deep"),
    )
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a byte;
/// a `%` not followed by two hex digits stays as it is).
fn url_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns a query string into parameters: `where` parsed as JSON, integers as numbers.
pub fn query_params(query: &str, max_depth: usize) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (url_decode(k), url_decode(v));
        let value = if JSON_PARAMS.contains(&k.as_str()) {
            parse_json(v.as_bytes(), &format!("the `{k}` parameter"), max_depth)?
        } else if INT_PARAMS.contains(&k.as_str()) {
            match v.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    return Err(ApiError::bad(
                        code::INVALID_QUERY,
                        format!("the `{k}` parameter must be an integer, given {v:?}"),
                    ))
                }
            }
        } else {
            Value::String(v)
        };
        out.insert(k, value);
    }
    Ok(out)
}

impl ParseRequest {
    /// Normalises a request under the `/parse` mount. `path` is what follows the mount.
    pub fn from_http(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        max_depth: usize,
    ) -> ApiResult<Self> {
        let mut body_obj = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match parse_json(body, "the request body", max_depth)? {
                Value::Object(o) => o,
                other => {
                    return Err(ApiError::bad(
                        code::INVALID_JSON,
                        format!(
                            "the request body must be a JSON object, given {}",
                            ledger::schema::validate::describe(&other)
                        ),
                    ))
                }
            }
        };
        let take = |o: &mut Map<String, Value>, k: &str| -> Option<String> {
            match o.remove(k) {
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                _ => None,
            }
        };
        let mut method = method;
        if method == Method::POST {
            if let Some(m) = take(&mut body_obj, "_method") {
                method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    ApiError::bad(code::INVALID_JSON, format!("_method: unknown method {m:?}"))
                })?;
            }
        }
        let app = header(headers, "x-parse-application-id")
            .or_else(|| take(&mut body_obj, "_ApplicationId"));
        let session_token = header(headers, "x-parse-session-token")
            .or_else(|| take(&mut body_obj, "_SessionToken"));
        let request_id =
            header(headers, "x-parse-request-id").or_else(|| take(&mut body_obj, "_RequestId"));
        let reason = header(headers, "x-audit-reason").or_else(|| take(&mut body_obj, "_Reason"));
        for k in META_KEYS {
            body_obj.remove(*k);
        }
        let mut data = match query {
            Some(q) if !q.is_empty() => query_params(q, max_depth)?,
            _ => Map::new(),
        };
        // Body fields win over the query string (the SDK's `_method: GET` puts them there).
        data.extend(body_obj);
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(url_decode)
            .collect();
        let host = header(headers, "host").unwrap_or_else(|| "localhost".into());
        Ok(ParseRequest {
            method,
            segments,
            app,
            session_token,
            request_id,
            data,
            reason,
            origin: format!("http://{host}"),
            exact_dates: false,
        })
    }

    /// The path segments as `&str`s, for matching.
    pub fn path(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn sdk_post_with_method_and_credentials_in_the_body() {
        let body = json!({
            "_method": "GET", "_ApplicationId": "gxp", "_SessionToken": "r:abc",
            "_ClientVersion": "js6", "_InstallationId": "i1",
            "where": {"result": "pass"}, "limit": 1
        });
        let r = ParseRequest::from_http(
            Method::POST,
            "/classes/ValidationLog",
            None,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            32,
        )
        .unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.app.as_deref(), Some("gxp"));
        assert_eq!(r.session_token.as_deref(), Some("r:abc"));
        assert_eq!(r.path(), vec!["classes", "ValidationLog"]);
        assert_eq!(
            Value::Object(r.data),
            json!({"where": {"result": "pass"}, "limit": 1})
        );
    }

    #[test]
    fn query_string_where_is_json_and_numbers_are_numbers() {
        let p = query_params("where=%7B%22a%22%3A1%7D&limit=0&count=1&order=-x", 8).unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"where": {"a": 1}, "limit": 0, "count": 1, "order": "-x"})
        );
        let e = query_params("limit=ten", 8).unwrap_err();
        assert!(e.message.contains("`limit`") && e.message.contains("ten"));
        let e = query_params("where=%7Bnope", 8).unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);
    }

    #[test]
    fn malformed_and_deep_bodies_are_refused() {
        let h = HeaderMap::new();
        let e = ParseRequest::from_http(Method::POST, "/x", None, &h, b"{\"a\":", 8).unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);
        let deep = "[".repeat(10) + &"]".repeat(10);
        let body = format!("{{\"a\":{deep}}}");
        let e =
            ParseRequest::from_http(Method::POST, "/x", None, &h, body.as_bytes(), 8).unwrap_err();
        assert!(e.message.contains("nested more than 8"), "{}", e.message);
        let e = ParseRequest::from_http(Method::POST, "/x", None, &h, b"[1]", 8).unwrap_err();
        assert!(e.message.contains("must be a JSON object"));
    }
}
