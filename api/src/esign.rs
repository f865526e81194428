//! Electronic signatures and signed audit-trail reviews under `/ledger/{app}`
//! (SPEC §6.2; 21 CFR 11.50, 11.70, 11.100, 11.200), and a record read that shows its
//! signatures.
//!
//! - `POST /ledger/{app}/sign/{class}/{objectId}`: signs one version of a record with a
//!   meaning. Two identification components: the first signing in a session re-enters
//!   username and password; later ones in the same session at least the password; a
//!   new session (after logout or timeout) starts over. The username must be the
//!   session's own: nobody, an admin included, signs as someone else. A wrong password
//!   counts toward the account lock like a failed login and is recorded.
//! - `POST /ledger/{app}/review`: the same act for an audit-trail review (a record's
//!   history, or a day), recorded as an `audit_trail.reviewed` event binding the last
//!   event examined.
//! - `GET /ledger/{app}/records/{class}/{objectId}`: the record (now, `asOf=`, or
//!   `asOfSeq=`) with its signatures and reviews up to that point; a signature on a
//!   version other than the record's version at that point shows `"current": false`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::{AppPath, AsOfQuery, ErrorBody, RecordPath};
use ledger::schema::USER_CLASS;
use ledger::{Command, EventKind, ReviewScope, SignatureMeaning};
use projections::report::EventEntry;
use projections::when;
use serde_json::{json, Map, Value};

use crate::accounts::{self, check_password};
use crate::auth::permissions::Op;
use crate::auth::Caller;
use crate::error::{code, ApiError, ApiResult};
use crate::native::{auditor, blocking, result, token, with_seq};
use crate::parse::objects::point_in_time;
use crate::parse::request::parse_json;
use crate::state::State;

/// The signing routes, nested at `/ledger` with the native ones.
pub fn routes() -> OpenApiRouter<Arc<State>> {
    OpenApiRouter::new()
        .routes(routes!(sign))
        .routes(routes!(review))
        .routes(routes!(record))
}

/// Reads a JSON object body within the server's limits.
async fn body_object(state: &State, body: Body) -> ApiResult<Map<String, Value>> {
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::OBJECT_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    })?;
    match parse_json(&bytes, "the request body", state.config.max_json_depth)? {
        Value::Object(o) => Ok(o),
        other => Err(ApiError::bad(
            code::INVALID_JSON,
            format!("the request body must be a JSON object, not {other}"),
        )),
    }
}

fn string<'a>(o: &'a Map<String, Value>, field: &str) -> ApiResult<Option<&'a str>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad(
            code::INCORRECT_TYPE,
            format!("{field}: expected a string, given {other}"),
        )),
    }
}

fn seq_field(o: &Map<String, Value>, field: &str) -> ApiResult<Option<u64>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad(
                code::INCORRECT_TYPE,
                format!("{field}: expected a sequence number (an integer ≥ 0), given {v}"),
            )
        }),
    }
}

/// The two identification components of a signing act, from the body.
struct Components {
    username: Option<String>,
    password: String,
}

fn components(o: &Map<String, Value>) -> ApiResult<Components> {
    let password = string(o, "password")?.unwrap_or_default().to_string();
    if password.is_empty() {
        return Err(ApiError::bad(
            code::PASSWORD_MISSING,
            "password: signing needs the signer's password",
        ));
    }
    Ok(Components {
        username: string(o, "username")?.map(str::to_string),
        password,
    })
}

/// Establishes that the session's own user performs this signing act (21 CFR 11.200):
/// username and password on the session's first signing, the password on later ones; a
/// different username is refused (and recorded), a wrong password counts toward the lock.
fn identify_signer(state: &State, caller: &Caller, c: &Components, act: &str) -> ApiResult<()> {
    let signed_before = state
        .auth
        .has_signed(&caller.token)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match &c.username {
        None if !signed_before => {
            return Err(ApiError::bad(
                code::USERNAME_MISSING,
                "username: the first signature of a session needs username and password (later ones in the same session need the password)",
            ))
        }
        Some(u) if *u != caller.username => {
            state.record_denial(caller, &format!("{act} as {u}"), None, None);
            return Err(ApiError::forbidden(format!(
                "username: {u:?} is not this session's user ({:?}); a signature is always the signer's own",
                caller.username
            )));
        }
        _ => {}
    }
    check_password(
        state,
        &caller.app,
        &caller.user_id,
        &caller.actor(),
        &caller.username,
        &c.password,
        act,
    )
    .map_err(|e| {
        if e.code == code::OBJECT_NOT_FOUND {
            // Not Parse's login answer: the session is valid, the component is not.
            ApiError::new(StatusCode::UNAUTHORIZED, code::OBJECT_NOT_FOUND, e.message)
        } else {
            e
        }
    })?;
    state
        .auth
        .mark_signed(&caller.token)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The signer's printed name (21 CFR 11.50(a)(1)): the account's `fullName` or `name`
/// if it has one, else its username.
fn printed_name(state: &State, caller: &Caller) -> ApiResult<String> {
    let user = state.record(&caller.app, USER_CLASS, &caller.user_id)?;
    Ok(user
        .as_ref()
        .and_then(|u| {
            ["fullName", "name"]
                .iter()
                .find_map(|f| u.fields.get(*f).and_then(Value::as_str))
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| caller.username.clone()))
}

fn meaning(o: &Map<String, Value>) -> ApiResult<SignatureMeaning> {
    let given = string(o, "meaning")?.ok_or_else(|| {
        ApiError::bad(
            code::VALIDATION_ERROR,
            "meaning: required (authorship, review, approval, responsibility)",
        )
    })?;
    serde_json::from_value(json!(given)).map_err(|_| {
        ApiError::bad(
            code::VALIDATION_ERROR,
            format!("meaning: {given:?} is not a meaning (authorship, review, approval, responsibility)"),
        )
    })
}

fn reason(headers: &HeaderMap, o: &Map<String, Value>) -> ApiResult<Option<String>> {
    let header = headers
        .get("x-audit-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok(header.or(string(o, "_Reason")?.map(str::to_string)))
}

fn signed_json(e: &ledger::Event) -> Value {
    let payload: Value = e
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null);
    json!({
        "seq": e.seq,
        "hash": hex::encode(e.hash),
        "kind": e.kind.name(),
        "recordedAt": e.recorded_at.to_rfc3339(),
        "signer": {"objectId": e.actor.user_id, "username": e.actor.username, "role": e.actor.role},
        "reason": e.reason,
        "payload": payload,
    })
}

/// `POST /ledger/{app}/sign/{class}/{objectId}` with
/// `{"meaning", "versionSeq", "username"?, "password"}`.
#[utoipa::path(post, path = "/{app}/sign/{class}/{id}", tag = "signatures", params(RecordPath), security(("bearer" = []), ("session" = [])),
    request_body(content = Object, description = "`{meaning: authorship|review|approval|responsibility, versionSeq, username?, password}`: the first signing in a session re-enters the username"),
    responses((status = 200, description = "The `record.signed` event: `{seq, hash, meaning, printedName, versionSeq, versionHash, signedAt}`", body = Object), (status = 400, description = "A bad field, named; an outdated version (142)", body = ErrorBody), (status = 401, description = "No valid session (209), or a wrong password (101, counted toward the lock)", body = ErrorBody), (status = 403, description = "Not permitted, or another user than the session's (119)", body = ErrorBody), (status = 404, description = "No such app or record", body = ErrorBody)))]
async fn sign(
    Extract(state): Extract<Arc<State>>,
    Path((app, class, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match body_object(&state, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    result(
        blocking(state, move |s| {
            s.known_app(Some(&app))?;
            let caller = accounts::caller(s, &app, token(&headers).as_deref())?;
            s.class_def(&app, &class)?;
            let meaning = meaning(&body)?;
            let version_seq = seq_field(&body, "versionSeq")?.ok_or_else(|| {
                ApiError::bad(
                    code::VALIDATION_ERROR,
                    "versionSeq: required — the version signed (the record's updatedSeq as read)",
                )
            })?;
            let c = components(&body)?;
            let reason = reason(&headers, &body)?;
            s.permit(&caller, Op::Sign, &class, Some(&id))?;
            // Refuse an absent record or an outdated version before a password is spent.
            let current = s
                .record(&app, &class, &id)?
                .ok_or_else(|| ApiError::not_found(format!("{class} {id}: no such record")))?;
            if current.updated_seq != version_seq {
                return Err(ApiError::bad(
                    code::VALIDATION_ERROR,
                    format!(
                        "versionSeq: {class} {id} version {version_seq} is not the latest ({}); read the record again and sign the current version",
                        current.updated_seq
                    ),
                ));
            }
            identify_signer(s, &caller, &c, "e-signature")?;
            let a = s.append(
                &app,
                caller.actor(),
                None,
                reason,
                Command::SignRecord {
                    class,
                    object_id: id,
                    version_seq,
                    meaning,
                    printed_name: printed_name(s, &caller)?,
                },
            )?;
            let seq = a.event.seq;
            Ok(with_seq(
                (StatusCode::CREATED, Json(signed_json(&a.event))).into_response(),
                seq,
            ))
        })
        .await,
    )
}

/// `POST /ledger/{app}/review` with `{"class", "objectId"}` (a record's history) or
/// `{"day", "tz"?}` (a day), `"throughSeq"?` (the last event the reviewer saw: refused
/// if the trail has moved on), and `"username"?`, `"password"`.
#[utoipa::path(post, path = "/{app}/review", tag = "signatures", params(AppPath), security(("bearer" = []), ("session" = [])),
    request_body(content = Object, description = "`{class, objectId}` or `{day, tz}`, `throughSeq?`, `username?`, `password`"),
    responses((status = 200, description = "The signed `audit_trail.reviewed` event", body = Object), (status = 400, description = "A bad field, named; an outdated version (142)", body = ErrorBody), (status = 401, description = "No valid session (209), or a wrong password (101, counted toward the lock)", body = ErrorBody), (status = 403, description = "Not permitted, or another user than the session's (119)", body = ErrorBody), (status = 404, description = "No such app or record", body = ErrorBody)))]
async fn review(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match body_object(&state, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    result(
        blocking(state, move |s| {
            let caller = auditor(s, &app, &headers, "audit-trail review")?;
            let seen = seq_field(&body, "throughSeq")?;
            let c = components(&body)?;
            let reason = reason(&headers, &body)?;
            let (scope, through) = match (string(&body, "day")?, string(&body, "class")?) {
                (Some(day), None) => {
                    let tz_name = string(&body, "tz")?.unwrap_or("UTC");
                    let tz = when::parse_tz(tz_name)
                        .map_err(|e| ApiError::bad(code::INVALID_QUERY, format!("tz: {e}")))?;
                    let day = when::parse(day, s.clock.now(), tz)
                        .and_then(|w| w.day(tz))
                        .map_err(|e| ApiError::bad(code::INVALID_QUERY, format!("day: {e}")))?;
                    let r = s.projections.day(&app, &day)?;
                    let (first, last) = r.seq_range.map_or((None, 0), |(f, l)| (Some(f), l));
                    (
                        ReviewScope::Day {
                            date: r.date.clone(),
                            tz: r.tz.clone(),
                            first_seq: first,
                        },
                        last,
                    )
                }
                (None, Some(class)) => {
                    let id = string(&body, "objectId")?.ok_or_else(|| {
                        ApiError::bad(code::MISSING_OBJECT_ID, "objectId: the record reviewed is required")
                    })?;
                    s.class_def(&app, class)?;
                    let h = s.projections.history(&app, class, id)?;
                    let last = h.events.last().map(|e| e.seq).ok_or_else(|| {
                        ApiError::not_found(format!("{class} {id}: no such record"))
                    })?;
                    (
                        ReviewScope::Record {
                            class: class.to_string(),
                            object_id: id.to_string(),
                        },
                        last,
                    )
                }
                _ => {
                    return Err(ApiError::bad(
                        code::VALIDATION_ERROR,
                        "review: give either day (and tz) or class and objectId",
                    ))
                }
            };
            if let Some(seen) = seen {
                if seen != through {
                    return Err(ApiError::bad(
                        code::VALIDATION_ERROR,
                        format!("throughSeq: the trail's last event is now {through}, not {seen}; review it again"),
                    ));
                }
            }
            identify_signer(s, &caller, &c, "audit-trail review")?;
            let a = s.append(
                &app,
                caller.actor(),
                None,
                reason,
                Command::ReviewAuditTrail {
                    scope,
                    through_seq: through,
                    printed_name: printed_name(s, &caller)?,
                },
            )?;
            let seq = a.event.seq;
            Ok(with_seq(
                (StatusCode::CREATED, Json(signed_json(&a.event))).into_response(),
                seq,
            ))
        })
        .await,
    )
}

/// A signature or review as a record read shows it.
fn signature_json(e: &EventEntry, version_now: u64) -> Value {
    let d = e.detail.clone().unwrap_or(Value::Null);
    let mut v = json!({
        "seq": e.seq,
        "kind": e.kind.name(),
        "signedAt": e.recorded_at.to_rfc3339(),
        "signer": {"username": e.actor.username, "role": e.actor.role},
        "printedName": d.get("printed_name"),
        "reason": e.reason,
        "hash": e.hash,
    });
    if e.kind == EventKind::RecordSigned {
        v["meaning"] = d.get("meaning").cloned().unwrap_or(Value::Null);
        v["versionSeq"] = d.get("version_seq").cloned().unwrap_or(Value::Null);
        v["versionHash"] = d.get("version_hash").cloned().unwrap_or(Value::Null);
        v["current"] = json!(d.get("version_seq").and_then(Value::as_u64) == Some(version_now));
    } else {
        v["throughSeq"] = d.get("through_seq").cloned().unwrap_or(Value::Null);
        v["throughHash"] = d.get("through_hash").cloned().unwrap_or(Value::Null);
    }
    v
}

/// `GET /ledger/{app}/records/{class}/{objectId}?asOf=WHEN|asOfSeq=N&tz=ZONE`.
#[utoipa::path(get, path = "/{app}/records/{class}/{id}", tag = "signatures", params(RecordPath, AsOfQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{record, versionSeq, signatures, reviews}` now or as of the point", body = Object), (status = 400, description = "A bad field, named; an outdated version (142)", body = ErrorBody), (status = 401, description = "No valid session (209), or a wrong password (101, counted toward the lock)", body = ErrorBody), (status = 403, description = "Not permitted, or another user than the session's (119)", body = ErrorBody), (status = 404, description = "No such app or record", body = ErrorBody)))]
async fn record(
    Extract(state): Extract<Arc<State>>,
    Path((app, class, id)): Path<(String, String, String)>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    result(
        blocking(state, move |s| {
            s.known_app(Some(&app))?;
            let caller = accounts::caller(s, &app, token(&headers).as_deref())?;
            s.class_def(&app, &class)?;
            s.permit(&caller, Op::Read, &class, Some(&id))?;
            let data: Map<String, Value> = params
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let at = point_in_time(&data, s.clock.now())?;
            let got = s.projections.get(&app, &class, &id, at)?;
            let rec = got.value.ok_or_else(|| {
                ApiError::not_found(format!("{class} {id}: no such record at {}", got.seq))
            })?;
            let history = s.projections.history(&app, &class, &id)?;
            let signatures: Vec<Value> = history
                .events
                .iter()
                .filter(|e| e.seq <= got.seq)
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventKind::RecordSigned | EventKind::AuditTrailReviewed
                    )
                })
                .map(|e| signature_json(e, rec.updated_seq))
                .collect();
            let mut object = rec.to_parse_json();
            object.insert("className".into(), json!(class));
            Ok(with_seq(
                Json(json!({
                    "record": object,
                    "versionSeq": rec.updated_seq,
                    "signatures": signatures,
                    "seq": got.seq,
                }))
                .into_response(),
                got.seq,
            ))
        })
        .await,
    )
}
