//! The ledger's own API under `/ledger/{app}` (SPEC §5.2): what auditors and QA use that
//! Parse has no words for — a record's history, a day report, a diff between two points
//! (JSON, or CSV for spreadsheets), the chain's verification status, the public keys, the
//! streamed NDJSON export, events by range, and the Merkle tree's signed checkpoints and
//! inclusion and consistency proofs (docs/FORMAT.md §8).
//!
//! Sessions are the Parse ones (`X-Parse-Session-Token`, or `Authorization: Bearer`).
//! A history needs read access to the record's class; day, diff, verification, export and
//! events need an audit role (`admin`, `manager`, `qa_reviewer`, `auditor`). Public keys
//! are public.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::{VerifyMode, VerifyPolicy};
use projections::report::{DayReport, Diff};
use projections::table;
use projections::when::{self, Day};
use projections::At;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts;
use crate::auth::permissions::{Op, Role, Roles};
use crate::auth::Caller;
use crate::error::{code, ApiError, ApiResult};
use crate::openapi::{
    AppPath, AsOfQuery, AuditReadErrors, ClassPath, ErrorBody, ParseQuery, RecordPath,
};
use crate::server::SEQ_HEADER;
use crate::state::State;

/// Roles that may read audit trails as a whole.
pub(crate) fn audit_roles() -> Roles {
    Roles::of(&[Role::Admin, Role::Manager, Role::QaReviewer, Role::Auditor])
}

/// The native routes, to be nested at `/ledger`: each handler's `#[utoipa::path]`
/// registers it in the router and in the OpenAPI document at once.
pub fn routes() -> OpenApiRouter<Arc<State>> {
    OpenApiRouter::new()
        .routes(routes!(keys))
        .routes(routes!(verify))
        .routes(routes!(schema))
        .routes(routes!(class_query))
        .routes(routes!(history))
        .routes(routes!(day))
        .routes(routes!(diff))
        .routes(routes!(events))
        .routes(routes!(export))
        .routes(routes!(latest_checkpoint, new_checkpoint))
        .routes(routes!(checkpoints))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
        .merge(crate::esign::routes())
        .merge(crate::live::routes())
}

/// Runs blocking work off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    state: Arc<State>,
    f: impl FnOnce(&State) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| ApiError::internal(format!("request handler failed: {e}")))?
}

pub(crate) fn token(headers: &HeaderMap) -> Option<String> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    h("x-parse-session-token")
        .map(str::to_string)
        .or_else(|| {
            h("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(|t| t.trim().to_string())
        })
        .filter(|t| !t.is_empty())
}

/// The caller, who must hold an audit role.
pub(crate) fn auditor(
    state: &State,
    app: &str,
    headers: &HeaderMap,
    what: &str,
) -> ApiResult<Caller> {
    state.known_app(Some(app))?;
    let caller = accounts::caller(state, app, token(headers).as_deref())?;
    if caller.role.is_some_and(|r| audit_roles().contains(r)) {
        return Ok(caller);
    }
    state.record_denial(&caller, what, None, None);
    Err(ApiError::forbidden(format!(
        "{} may not read the {what} (allowed: {})",
        caller
            .role
            .map_or("an account with no role".to_string(), |r| format!(
                "role {r}"
            )),
        audit_roles().names().join(", ")
    )))
}

pub(crate) fn with_seq(mut resp: Response, seq: u64) -> Response {
    resp.headers_mut()
        .insert(SEQ_HEADER, HeaderValue::from(seq));
    resp
}

pub(crate) fn result(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /ledger/{app}/keys`: the public keys the chain declared, with their validity.
#[utoipa::path(get, path = "/{app}/keys", tag = "ledger", params(AppPath),
    responses((status = 200, description = "`{app, keys: [{keyId, algorithm, publicKey, fromSeq, toSeq}]}`", body = Object), (status = 404, description = "No such app", body = ErrorBody)))]
async fn keys(Extract(state): Extract<Arc<State>>, Path(app): Path<String>) -> Response {
    result(
        blocking(state, move |s| {
            s.known_app(Some(&app))?;
            let keys = s
                .ledger
                .public_keys(&app)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let keys: Vec<Value> = keys
                .iter()
                .map(|k| {
                    json!({"keyId": k.key_id.to_string(), "algorithm": "ed25519", "publicKey": k.public_key,
                        "fromSeq": k.from_seq, "toSeq": k.to_seq})
                })
                .collect();
            Ok(Json(json!({"app": app, "keys": keys})).into_response())
        })
        .await,
    )
}

/// `GET /ledger/{app}/schema`: the app's current schema (Parse's `{"classes": [...]}`),
/// for audit roles: what an auditor's tool lists and reads.
#[utoipa::path(get, path = "/{app}/schema", tag = "ledger", params(AppPath), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, schema: {classes: [{className, fields}]}}`", body = Object), AuditReadErrors))]
async fn schema(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "schema")?;
            let schema = s
                .ledger
                .schema(&app)
                .ok_or_else(|| ApiError::not_found(format!("app {app:?} does not exist")))?;
            let seq = s.ledger.head(&app).map_or(0, |h| h.seq);
            let body = json!({"app": app, "schema": schema.to_json()});
            Ok(with_seq(Json(body).into_response(), seq))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct VerifyParams {
    mode: Option<String>,
}

/// `GET /ledger/{app}/verify?mode=full|links-only`: verifies the chain now.
#[utoipa::path(get, path = "/{app}/verify", tag = "ledger", params(AppPath, ("mode" = Option<String>, Query, description = "`full` (default) or `links-only`")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{ok, verified, lastSeq, firstHash, lastHash, firstTime, lastTime, keys, redacted, failure: {seq, why}?}`", body = Object), AuditReadErrors))]
async fn verify(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<VerifyParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "chain verification")?;
            let mode = match p.mode.as_deref() {
                None | Some("full") => VerifyMode::Full,
                Some("links-only") => VerifyMode::LinksOnly,
                Some(other) => {
                    return Err(ApiError::bad(
                        code::INVALID_QUERY,
                        format!("mode: {other:?} is not a mode (full, links-only)"),
                    ))
                }
            };
            let r = s
                .ledger
                .verify(&app, mode, VerifyPolicy::default())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let body = json!({
                "app": r.app,
                "mode": if mode == VerifyMode::Full { "full" } else { "links-only" },
                "ok": r.failure.is_none(),
                "verified": r.verified,
                "lastSeq": r.last_seq,
                "firstHash": r.first_hash,
                "lastHash": r.last_hash,
                "firstTime": r.first_time.map(|t| t.to_rfc3339()),
                "lastTime": r.last_time.map(|t| t.to_rfc3339()),
                "keys": r.keys.iter().map(|k| json!({"keyId": k.key_id.to_string(), "fromSeq": k.from_seq, "toSeq": k.to_seq})).collect::<Vec<_>>(),
                "redacted": r.redacted,
                "failure": r.failure.as_ref().map(|f| json!({"seq": f.seq, "why": f.kind.to_string()})),
            });
            Ok(with_seq(Json(body).into_response(), r.last_seq))
        })
        .await,
    )
}

/// `GET /ledger/{app}/classes/{class}?where=…&order=…&limit=…&asOf=WHEN|asOfSeq=N&tz=…`:
/// the Parse class query (same parameters, same answer, `X-Ledger-Seq`), with the
/// session as a bearer token; `asOf` makes it the class as it stood then.
#[utoipa::path(get, path = "/{app}/classes/{class}", tag = "ledger", params(ClassPath, ParseQuery, AsOfQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{results, count?}` as Parse answers, dates with microseconds; `X-Ledger-Seq`", body = Object), AuditReadErrors))]
async fn class_query(
    Extract(state): Extract<Arc<State>>,
    Path((app, class)): Path<(String, String)>,
    uri: axum::http::Uri,
    mut headers: HeaderMap,
) -> Response {
    let result = blocking(state, move |s| {
        let app_id = HeaderValue::from_str(&app).map_err(|_| {
            ApiError::bad(code::INVALID_QUERY, format!("app: {app:?} is not a name"))
        })?;
        headers.insert("x-parse-application-id", app_id);
        if let Some(t) = token(&headers).and_then(|t| HeaderValue::from_str(&t).ok()) {
            headers.insert("x-parse-session-token", t);
        }
        let mut req = crate::parse::request::ParseRequest::from_http(
            axum::http::Method::GET,
            &format!("/classes/{class}"),
            uri.query(),
            &headers,
            &[],
            s.config.max_json_depth,
        )?;
        req.exact_dates = true;
        crate::parse::dispatch(s, &req)
    })
    .await;
    match result {
        Ok(reply) => crate::server::reply_response(reply),
        Err(e) => e.into_response(),
    }
}

/// `GET /ledger/{app}/history/{class}/{id}`: every event of one record with its diffs.
#[utoipa::path(get, path = "/{app}/history/{class}/{id}", tag = "ledger", params(RecordPath), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{class, object_id, events: [{seq, recorded_at, actor, kind, reason, changes, detail, hash}], seq}`", body = Object), AuditReadErrors))]
async fn history(
    Extract(state): Extract<Arc<State>>,
    Path((app, class, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            s.known_app(Some(&app))?;
            let caller = accounts::caller(s, &app, token(&headers).as_deref())?;
            s.class_def(&app, &class)?;
            s.permit(&caller, Op::Read, &class, Some(&id))?;
            let h = s.projections.history(&app, &class, &id)?;
            if h.events.is_empty() {
                return Err(ApiError::not_found(format!("{class} {id}: no such record")));
            }
            let seq = h.seq;
            Ok(with_seq(Json(h).into_response(), seq))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct ReportParams {
    tz: Option<String>,
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "fromSeq")]
    from_seq: Option<u64>,
    #[serde(rename = "toSeq")]
    to_seq: Option<u64>,
    class: Option<String>,
}

fn zone(p: &ReportParams) -> ApiResult<chrono_tz::Tz> {
    when::parse_tz(p.tz.as_deref().unwrap_or("UTC"))
        .map_err(|e| ApiError::bad(code::INVALID_QUERY, format!("tz: {e}")))
}

enum Format {
    Json,
    Csv,
}

fn format(p: &ReportParams) -> ApiResult<Format> {
    match p.format.as_deref() {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(ApiError::bad(
            code::INVALID_QUERY,
            format!("format: {other:?} is not a format (json, csv)"),
        )),
    }
}

fn csv_response(rows: Vec<Vec<String>>, name: &str) -> ApiResult<Response> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r)
            .map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn day_csv(r: &DayReport) -> ApiResult<Response> {
    csv_response(table::day_rows(r), &format!("{}-{}", r.app, r.date))
}

fn diff_csv(app: &str, d: &Diff) -> ApiResult<Response> {
    csv_response(
        table::diff_rows(d),
        &format!("{app}-diff-{}-{}", d.from_seq, d.to_seq),
    )
}

/// `GET /ledger/{app}/day/{when}?tz=ZONE&format=json|csv`: everything recorded that
/// calendar day, grouped by record, with a summary first.
#[utoipa::path(get, path = "/{app}/day/{when}", tag = "ledger", params(AppPath, ("when" = String, Path, description = "A day: `2026-11-17`, `yesterday`, `last tuesday`…"), ("tz" = Option<String>, Query, description = "IANA zone (default UTC)"), ("format" = Option<String>, Query, description = "`json` (default) or `csv`")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, date, tz, start, end, seq_range, summary, records}`, or CSV", body = Object, content_type = "application/json"), AuditReadErrors))]
async fn day(
    Extract(state): Extract<Arc<State>>,
    Path((app, when_expr)): Path<(String, String)>,
    Query(p): Query<ReportParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "day report")?;
            let tz = zone(&p)?;
            let fmt = format(&p)?;
            let day: Day = when::parse(&when_expr, s.clock.now(), tz)
                .and_then(|w| w.day(tz))
                .map_err(|e| ApiError::bad(code::INVALID_QUERY, format!("day: {e}")))?;
            let r = s.projections.day(&app, &day)?;
            let seq = r.seq_range.map_or(0, |(_, last)| last);
            let resp = match fmt {
                Format::Json => Json(&r).into_response(),
                Format::Csv => day_csv(&r)?,
            };
            Ok(with_seq(resp, seq))
        })
        .await,
    )
}

fn point(
    s: &State,
    name: &str,
    expr: Option<&str>,
    seq: Option<u64>,
    tz: chrono_tz::Tz,
) -> ApiResult<At> {
    match (expr, seq) {
        (Some(_), Some(_)) => Err(ApiError::bad(
            code::INVALID_QUERY,
            format!("{name} and {name}Seq: give one or the other"),
        )),
        (None, Some(n)) => Ok(At::Seq(n)),
        (Some(e), None) => when::parse(e, s.clock.now(), tz)
            .map(|w| At::Time(w.instant()))
            .map_err(|err| ApiError::bad(code::INVALID_QUERY, format!("{name}: {err}"))),
        (None, None) if name == "to" => Ok(At::Now),
        (None, None) => Err(ApiError::bad(
            code::INVALID_QUERY,
            "from: a diff needs a starting point (from=WHEN or fromSeq=N)",
        )),
    }
}

/// `GET /ledger/{app}/diff?from=WHEN|fromSeq=N&to=WHEN|toSeq=N&class=C&tz=ZONE&format=`:
/// what changed between two points (created, updated with field diffs, deleted).
#[utoipa::path(get, path = "/{app}/diff", tag = "ledger", params(AppPath, ("from" = Option<String>, Query, description = "The first point (time expression)"), ("fromSeq" = Option<u64>, Query, description = "Or its sequence number"), ("to" = Option<String>, Query, description = "The second point (default now)"), ("toSeq" = Option<u64>, Query, description = "Or its sequence number"), ("class" = Option<String>, Query, description = "Only this class"), ("tz" = Option<String>, Query, description = "IANA zone of the expressions"), ("format" = Option<String>, Query, description = "`json` (default) or `csv`")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{from_seq, to_seq, records: [{class, object_id, kind, changes, seqs}]}`, or CSV", body = Object), AuditReadErrors))]
async fn diff(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<ReportParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "diff")?;
            let tz = zone(&p)?;
            let fmt = format(&p)?;
            let from = point(s, "from", p.from.as_deref(), p.from_seq, tz)?;
            let to = point(s, "to", p.to.as_deref(), p.to_seq, tz)?;
            if let Some(c) = &p.class {
                s.class_def(&app, c)?;
            }
            let d = s.projections.diff(&app, p.class.as_deref(), from, to)?;
            let seq = d.to_seq;
            let resp = match fmt {
                Format::Json => Json(&d).into_response(),
                Format::Csv => diff_csv(&app, &d)?,
            };
            Ok(with_seq(resp, seq))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct RangeParams {
    from: Option<u64>,
    limit: Option<u64>,
}

/// Most events one `/events` answer carries.
const MAX_EVENTS: u64 = 1000;

/// `GET /ledger/{app}/events?from=N&limit=M`: events as exported (docs/FORMAT.md §4.3).
#[utoipa::path(get, path = "/{app}/events", tag = "ledger", params(AppPath, ("from" = Option<u64>, Query, description = "The first sequence number (default 1)"), ("limit" = Option<u64>, Query, description = "At most this many (≤ 1000)")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, head, events: [export lines], next}`", body = Object), AuditReadErrors))]
async fn events(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<RangeParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "events")?;
            let head = s.ledger.head(&app).map_or(0, |h| h.seq);
            let from = p.from.unwrap_or(1).max(1);
            let limit = p.limit.unwrap_or(100);
            if limit == 0 || limit > MAX_EVENTS {
                return Err(ApiError::bad(
                    code::INVALID_QUERY,
                    format!("limit: must be 1 to {MAX_EVENTS}, given {limit}"),
                ));
            }
            let to = head.min(from.saturating_add(limit - 1));
            let mut out = Vec::new();
            if from <= to {
                for e in s
                    .ledger
                    .events(&app, from, to)
                    .map_err(|e| ApiError::internal(e.to_string()))?
                {
                    let e = e.map_err(|e| ApiError::internal(e.to_string()))?;
                    out.push(
                        serde_json::from_str::<Value>(&ledger::export::event_line(&e))
                            .unwrap_or(Value::Null),
                    );
                }
            }
            let next = (to < head).then_some(to + 1);
            Ok(with_seq(
                Json(json!({"app": app, "head": head, "events": out, "next": next}))
                    .into_response(),
                head,
            ))
        })
        .await,
    )
}

/// A `Write` that hands 64 KiB chunks to a response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// `GET /ledger/{app}/export`: the app's chain as the NDJSON export of docs/FORMAT.md,
/// streamed as it is read; the offline verification accepts it as is.
#[utoipa::path(get, path = "/{app}/export", tag = "ledger", params(AppPath), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "The app's chain as the NDJSON export of docs/FORMAT.md §4, streamed", body = String, content_type = "application/x-ndjson"), AuditReadErrors))]
async fn export(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = state.clone();
    let (a, h) = (app.clone(), headers.clone());
    if let Err(e) = blocking(s, move |s| auditor(s, &a, &h, "export").map(|_| ())).await {
        return e.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let name = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let r = state.ledger.export(std::slice::from_ref(&app), &mut w);
        let r = r
            .map_err(|e| e.to_string())
            .and_then(|_| std::io::Write::flush(&mut w).map_err(|e| e.to_string()));
        if let Err(e) = r {
            tracing::warn!(app, error = %e, "export stream ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.ndjson\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn tree_error(e: ledger::TreeError) -> ApiError {
    match e {
        ledger::TreeError::OutOfRange(why) => ApiError::bad(code::INVALID_QUERY, why),
        other => ApiError::internal(other.to_string()),
    }
}

fn checkpoint_error(e: ledger::CheckpointError) -> ApiError {
    match e {
        ledger::CheckpointError::Tree(t) => tree_error(t),
        other => ApiError::internal(other.to_string()),
    }
}

/// A checkpoint as JSON: its fields, and its whole signed text (what verifiers check).
fn checkpoint_json(app: &str, cp: &ledger::Checkpoint) -> Value {
    json!({
        "app": app,
        "size": cp.size(),
        "root": hex::encode(cp.root()),
        "time": cp.time().to_rfc3339(),
        "text": cp.text(),
    })
}

/// The latest checkpoint of `app` covering at least `size` events, signing a new one if
/// none does yet (checkpoints are made on demand as well as periodically).
fn covering_checkpoint(s: &State, app: &str, size: u64) -> ApiResult<ledger::Checkpoint> {
    if let Some(cp) = s.ledger.latest_checkpoint(app).map_err(checkpoint_error)? {
        if cp.size() >= size {
            return Ok(cp);
        }
    }
    let cp = s.ledger.checkpoint(app).map_err(checkpoint_error)?;
    if cp.size() < size {
        return Err(ApiError::bad(
            code::INVALID_QUERY,
            format!(
                "size: the log of {app} has {} durable events, not {size}",
                cp.size()
            ),
        ));
    }
    Ok(cp)
}

/// `GET /ledger/{app}/checkpoint`: the latest signed checkpoint (one is signed now if the
/// app has none yet).
#[utoipa::path(get, path = "/{app}/checkpoint", tag = "ledger", params(AppPath), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, size, root, time, text}`: the latest signed checkpoint (signed now if none)", body = Object), AuditReadErrors))]
async fn latest_checkpoint(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "checkpoints")?;
            let cp = covering_checkpoint(s, &app, 0)?;
            Ok(with_seq(
                Json(checkpoint_json(&app, &cp)).into_response(),
                cp.size(),
            ))
        })
        .await,
    )
}

/// `POST /ledger/{app}/checkpoint`: signs a checkpoint of the durable log now (or
/// answers the latest if the log has not grown since).
#[utoipa::path(post, path = "/{app}/checkpoint", tag = "ledger", params(AppPath), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, size, root, time, text}`: a checkpoint of the durable log, signed now", body = Object), AuditReadErrors))]
async fn new_checkpoint(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "checkpoints")?;
            let cp = s.ledger.checkpoint(&app).map_err(checkpoint_error)?;
            Ok(with_seq(
                Json(checkpoint_json(&app, &cp)).into_response(),
                cp.size(),
            ))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct ProofParams {
    from: Option<u64>,
    to: Option<u64>,
    seq: Option<u64>,
    size: Option<u64>,
}

/// `GET /ledger/{app}/checkpoints?from=SIZE`: the kept checkpoints of tree size `SIZE` or
/// more, oldest first.
#[utoipa::path(get, path = "/{app}/checkpoints", tag = "ledger", params(AppPath, ("from" = Option<u64>, Query, description = "The smallest tree size")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, checkpoints: [{size, root, time, text}]}`, oldest first", body = Object), AuditReadErrors))]
async fn checkpoints(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<ProofParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "checkpoints")?;
            let list = s
                .ledger
                .checkpoints(&app, p.from.unwrap_or(0))
                .map_err(checkpoint_error)?;
            let last = list.last().map_or(0, ledger::Checkpoint::size);
            let list: Vec<Value> = list.iter().map(|cp| checkpoint_json(&app, cp)).collect();
            Ok(with_seq(
                Json(json!({"app": app, "checkpoints": list})).into_response(),
                last,
            ))
        })
        .await,
    )
}

/// `GET /ledger/{app}/proof/inclusion?seq=N[&size=M]`: a proof that event `N` is in the
/// tree of `M` events (docs/FORMAT.md §8.4), with the event's hash and the signed
/// checkpoint of size `M`. Without `size`, the latest checkpoint that covers `N` (signed
/// now if there is none).
#[utoipa::path(get, path = "/{app}/proof/inclusion", tag = "ledger", params(AppPath, ("seq" = u64, Query, description = "The event"), ("size" = Option<u64>, Query, description = "The tree size (default: the latest checkpoint covering the event)")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, seq, tree_size, path, event_hash, checkpoint}` (docs/FORMAT.md §8.4)", body = Object), AuditReadErrors))]
async fn inclusion(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<ProofParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "proofs")?;
            let seq = p.seq.filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad(
                    code::INVALID_QUERY,
                    "seq: the event to prove (1 or more) is required",
                )
            })?;
            let (size, checkpoint) = match p.size {
                Some(size) => (
                    size,
                    s.ledger
                        .checkpoint_at(&app, size)
                        .map_err(checkpoint_error)?,
                ),
                None => {
                    let cp = covering_checkpoint(s, &app, seq)?;
                    (cp.size(), Some(cp))
                }
            };
            if seq > size {
                return Err(ApiError::bad(
                    code::INVALID_QUERY,
                    format!("seq: event {seq} is not in a tree of {size} events"),
                ));
            }
            let proof = s
                .ledger
                .inclusion_proof(&app, seq, size)
                .map_err(tree_error)?;
            let event = s
                .ledger
                .event(&app, seq)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .ok_or_else(|| ApiError::not_found(format!("event {seq} of {app}: not found")))?;
            let mut body = serde_json::to_value(&proof)
                .map_err(|e| ApiError::internal(format!("encoding the proof: {e}")))?;
            body["event_hash"] = json!(hex::encode(event.hash));
            body["checkpoint"] = checkpoint.map_or(Value::Null, |cp| json!(cp.text()));
            Ok(with_seq(Json(body).into_response(), size))
        })
        .await,
    )
}

/// `GET /ledger/{app}/proof/consistency?from=M[&to=N]`: a proof that the tree of `M`
/// events is a prefix of the tree of `N` (docs/FORMAT.md §8.4), with the kept checkpoints
/// of both sizes when there are. Without `to`, the latest checkpoint (signed now if it
/// does not cover `M`).
#[utoipa::path(get, path = "/{app}/proof/consistency", tag = "ledger", params(AppPath, ("from" = u64, Query, description = "The older tree size"), ("to" = Option<u64>, Query, description = "The newer size (default: the latest checkpoint)")), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{app, old_size, new_size, path, old_checkpoint, checkpoint}` (docs/FORMAT.md §8.4)", body = Object), AuditReadErrors))]
async fn consistency(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<ProofParams>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            auditor(s, &app, &headers, "proofs")?;
            let from = p.from.filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad(
                    code::INVALID_QUERY,
                    "from: the older tree size (1 or more) is required",
                )
            })?;
            let to = match p.to {
                Some(to) => to,
                None => covering_checkpoint(s, &app, from)?.size(),
            };
            if from > to {
                return Err(ApiError::bad(
                    code::INVALID_QUERY,
                    format!("from: {from} is larger than to: {to}"),
                ));
            }
            let proof = s
                .ledger
                .consistency_proof(&app, from, to)
                .map_err(tree_error)?;
            let text = |size| -> ApiResult<Value> {
                Ok(s.ledger
                    .checkpoint_at(&app, size)
                    .map_err(checkpoint_error)?
                    .map_or(Value::Null, |cp| json!(cp.text())))
            };
            let mut body = serde_json::to_value(&proof)
                .map_err(|e| ApiError::internal(format!("encoding the proof: {e}")))?;
            body["old_checkpoint"] = text(from)?;
            body["checkpoint"] = text(to)?;
            Ok(with_seq(Json(body).into_response(), to))
        })
        .await,
    )
}
