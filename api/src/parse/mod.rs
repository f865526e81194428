//! The Parse REST surface under `/parse` (SPEC §5.1): one normalised request
//! ([`request`]), one dispatcher over its method and path (also used by `/batch`), and
//! the handlers: [`objects`], [`users`], [`schemas`]. Every answer that reads or writes
//! the log carries the sequence number it reflects in the `X-Ledger-Seq` header.

pub mod compat;
pub mod objects;
pub mod request;
pub mod schemas;
pub mod users;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::accounts;
use crate::error::{code, ApiError, ApiResult};
use crate::state::{Decide, State};
use ledger::schema::USER_CLASS;
use request::ParseRequest;

/// A handler's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
    /// The sequence number the answer reflects.
    pub seq: Option<u64>,
    /// A `Location` header (creates).
    pub location: Option<String>,
}

impl Reply {
    /// An answer.
    pub fn new(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            body,
            seq: None,
            location: None,
        }
    }

    /// With the sequence number it reflects.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// With a `Location`.
    pub fn location(mut self, l: String) -> Self {
        self.location = Some(l);
        self
    }
}

/// The version this server reports to `GET /serverInfo`.
const PARSE_COMPAT_VERSION: &str = "7.0.0";

/// What a Parse request comes to on the blocking pool: an answer, or a create checked
/// and ready for the server to append asynchronously (the hot write path: no thread
/// waits for the fsync).
pub enum Step {
    /// The answer.
    Reply(Reply),
    /// A create to queue and await.
    Create(Box<objects::PreparedCreate>),
}

/// [`dispatch`], except that a record create (`POST /classes/{class}` with a session,
/// any class but `_User`) stops before its append: the same checks, in the same order.
pub fn dispatch_step(state: &State, req: &ParseRequest) -> ApiResult<Step> {
    if let Some(class) = record_create_class(req) {
        let checked = prepare_record_create(state, req, class, Decide::Blocking);
        return Decide::decided("a create's checks", checked).map(|p| Step::Create(Box::new(p)));
    }
    dispatch(state, req).map(Step::Reply)
}

/// The class a request creates a record in, if it is a record create: `POST
/// /classes/{class}` with a session, any class but `_User`.
pub fn record_create_class(req: &ParseRequest) -> Option<&str> {
    if req.method != Method::POST || req.session_token.is_none() {
        return None;
    }
    match req.path().as_slice() {
        ["classes", class] if *class != USER_CLASS => Some(*class),
        _ => None,
    }
}

/// A record create's checks up to its append (the session, then [`objects::prepare_create`]),
/// decided where `decide` says ([`Decide`]): on the runtime, `Ok(None)` when something
/// would block, and the request is to be redone with [`dispatch_step`].
pub fn prepare_record_create(
    state: &State,
    req: &ParseRequest,
    class: &str,
    decide: Decide,
) -> ApiResult<Option<objects::PreparedCreate>> {
    let app = state.known_app(req.app.as_deref())?;
    match accounts::caller_on(state, &app, req.session_token.as_deref(), decide)? {
        Some(caller) => objects::prepare_create(state, &caller, req, class, decide),
        None => Ok(None),
    }
}

/// Answers one Parse request (blocking: run it off the async runtime).
pub fn dispatch(state: &State, req: &ParseRequest) -> ApiResult<Reply> {
    let path = req.path();
    let m = &req.method;
    if path.as_slice() == ["health"] {
        return Ok(Reply::new(StatusCode::OK, json!({"status": "ok"})));
    }
    let app = state.known_app(req.app.as_deref())?;
    // Routes open without a session.
    match (m, path.as_slice()) {
        (&Method::GET | &Method::POST, ["login"]) => return users::login(state, &app, req),
        (&Method::GET, ["serverInfo"]) => {
            return Ok(Reply::new(
                StatusCode::OK,
                json!({"parseServerVersion": PARSE_COMPAT_VERSION, "features": {}}),
            ))
        }
        (&Method::POST, ["users"]) | (&Method::POST, ["classes", USER_CLASS])
            if req.session_token.is_none() =>
        {
            return users::create(state, &app, None, req)
        }
        _ => {}
    }
    let caller = accounts::caller(state, &app, req.session_token.as_deref())?;
    let c = &caller;
    match (m, path.as_slice()) {
        (&Method::POST, ["logout"]) => users::logout(state, c),
        (&Method::GET, ["users", "me"]) => users::me(state, c),
        (&Method::GET, ["sessions", "me"]) => users::session_me(c),
        (&Method::POST, ["users"]) | (&Method::POST, ["classes", USER_CLASS]) => {
            users::create(state, &app, Some(c), req)
        }
        (&Method::GET, ["users"]) => objects::find(state, c, req, USER_CLASS),
        (&Method::GET, ["users", id]) => objects::get(state, c, req, USER_CLASS, id),
        (&Method::PUT, ["users", id]) | (&Method::PUT, ["classes", USER_CLASS, id]) => {
            users::update(state, c, req, id)
        }
        (&Method::DELETE, ["users", id]) | (&Method::DELETE, ["classes", USER_CLASS, id]) => {
            users::delete(state, c, req, id)
        }
        (&Method::GET, ["classes", class]) => objects::find(state, c, req, class),
        (&Method::POST, ["classes", class]) => objects::create(state, c, req, class),
        (&Method::GET, ["classes", class, id]) => objects::get(state, c, req, class, id),
        (&Method::PUT, ["classes", class, id]) => objects::update(state, c, req, class, id),
        (&Method::DELETE, ["classes", class, id]) => objects::delete(state, c, req, class, id),
        (&Method::POST, ["batch"]) => batch(state, req),
        (&Method::GET, ["schemas"]) => schemas::list(state, c),
        (&Method::GET, ["schemas", class]) => schemas::get(state, c, class),
        (&Method::POST, ["schemas", class]) => schemas::create(state, c, req, class),
        (&Method::PUT, ["schemas", class]) => schemas::update(state, c, req, class),
        (&Method::DELETE, ["schemas", class]) => schemas::delete(state, c, class),
        (&Method::GET, ["config"]) => Ok(Reply::new(StatusCode::OK, json!({"params": {}}))),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::INVALID_JSON,
            format!("no such route: {} /parse/{}", m, req.segments.join("/")),
        )),
    }
}

/// `POST /batch`: each sub-request answered in order (not a transaction, as in Parse):
/// `[{"success": …} | {"error": {"code", "error"}}]`. Sub-request paths carry the mount
/// (`/parse/classes/X`). With a request id, sub-request `i` is idempotent under `id:i`.
fn batch(state: &State, req: &ParseRequest) -> ApiResult<Reply> {
    let requests = req
        .data
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::bad(
                code::INVALID_JSON,
                "requests: a batch needs a \"requests\" array",
            )
        })?;
    if req
        .data
        .get("transaction")
        .is_some_and(|t| t.as_bool() != Some(false))
    {
        return Err(ApiError::bad(
            code::INVALID_JSON,
            "transaction: atomic batches are not supported (each sub-request is its own ledger event); send the batch without `transaction`",
        ));
    }
    if requests.len() > state.config.max_batch {
        return Err(ApiError::bad(
            code::INVALID_JSON,
            format!(
                "requests: at most {} per batch, given {}",
                state.config.max_batch,
                requests.len()
            ),
        ));
    }
    let mut subs = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        let method = r.get("method").and_then(Value::as_str).unwrap_or_default();
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            ApiError::bad(
                code::INVALID_JSON,
                format!("requests[{i}].method: {method:?} is not a method"),
            )
        })?;
        if method == Method::POST
            && r.get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p.trim_end_matches('/').ends_with("/batch"))
        {
            return Err(ApiError::bad(
                code::INVALID_JSON,
                format!("requests[{i}]: batches do not nest"),
            ));
        }
        let path = r.get("path").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad(
                code::INVALID_JSON,
                format!("requests[{i}].path: a string is required"),
            )
        })?;
        let path = path.strip_prefix("/parse").unwrap_or(path);
        let (path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let data = match r.get("body") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => {
                return Err(ApiError::bad(
                    code::INVALID_JSON,
                    format!("requests[{i}].body: must be a JSON object"),
                ))
            }
        };
        let mut sub = req.clone();
        sub.method = method;
        sub.segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        sub.data = match query {
            Some(q) => request::query_params(q, state.config.max_json_depth)?,
            None => serde_json::Map::new(),
        };
        sub.data.extend(data);
        // A sub-request's own reason for change wins over the batch's header.
        match sub.data.remove("_Reason") {
            Some(Value::String(r)) if !r.trim().is_empty() => sub.reason = Some(r),
            None | Some(Value::String(_)) | Some(Value::Null) => {}
            Some(other) => {
                return Err(ApiError::bad(
                    code::INCORRECT_TYPE,
                    format!("requests[{i}].body._Reason: expected a string, given {other}"),
                ))
            }
        }
        sub.request_id = req.request_id.as_ref().map(|id| format!("{id}:{i}"));
        subs.push(sub);
    }
    let results: Vec<Value> = subs
        .iter()
        .map(|sub| match dispatch(state, sub) {
            Ok(reply) => json!({ "success": reply.body }),
            Err(e) => json!({ "error": e.body() }),
        })
        .collect();
    Ok(Reply::new(StatusCode::OK, Value::Array(results)))
}
