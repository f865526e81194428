//! `/classes/{class}` and `/classes/{class}/{objectId}`: create, get, query, update (with
//! Parse's `__op` operations) and delete. Every write is one ledger append: an update
//! carries only the changed fields, a delete is a tombstone, and nothing is overwritten.

use axum::http::StatusCode;
use ledger::{Command, Subject, Timestamp};
use projections::query::QueryParams;
use projections::At;
use serde_json::{json, Map, Value};

use super::compat::{parse_date, parse_object, rewrite_quoted_regexes};
use super::request::ParseRequest;
use super::Reply;
use crate::auth::permissions::{ClassRules, Op, Roles};
use crate::auth::Caller;
use crate::error::{code, ApiError, ApiResult};
use crate::state::{Decide, State};

/// Body keys a Parse client may send that are not record fields. `ACL`: record-level ACLs
/// are not stored; access follows the per-class role permissions (docs/API.md).
const IGNORED_KEYS: &[&str] = &["ACL", "className", "__type"];

/// Refuses values of fields the caller's role may not set (approvals), recording it.
fn check_guarded(
    state: &State,
    caller: &Caller,
    rules: &ClassRules,
    class: &str,
    object_id: Option<&str>,
    fields: &Map<String, Value>,
    unset: &[String],
) -> ApiResult<()> {
    let Some((field, roles)) = guarded_refusal(caller, rules, fields, unset) else {
        return Ok(());
    };
    let who = caller
        .role
        .map_or("no role".to_string(), |r| format!("role {r}"));
    state.record_denial(caller, &format!("set {field}"), Some(class), object_id);
    Err(ApiError::forbidden(format!(
        "{who} may not set {class}.{field} (allowed: {})",
        roles.names().join(", ")
    )))
}

/// The first guarded field the write touches that the caller's role may not set, with the
/// roles that may; records nothing.
fn guarded_refusal<'r>(
    caller: &Caller,
    rules: &'r ClassRules,
    fields: &Map<String, Value>,
    unset: &[String],
) -> Option<(&'r str, &'r Roles)> {
    rules.guarded.iter().find_map(|(field, roles)| {
        let touched = fields.contains_key(*field) || unset.iter().any(|u| u == field);
        (touched && !caller.role.is_some_and(|r| roles.contains(r))).then_some((*field, roles))
    })
}

/// Whether any value is an `__op` that needs the field's current value.
fn needs_current(data: &Map<String, Value>) -> bool {
    data.values().any(|v| {
        matches!(
            v.get("__op").and_then(Value::as_str),
            Some("Increment" | "Add" | "AddUnique" | "Remove" | "Batch")
        )
    })
}

/// What an update body resolves to against the record's current fields.
#[derive(Debug, Default, PartialEq)]
pub struct Resolved {
    /// Values to set.
    pub set: Map<String, Value>,
    /// Fields to remove.
    pub unset: Vec<String>,
    /// The new values of fields changed by an operation (Parse returns them).
    pub op_results: Map<String, Value>,
}

fn op_objects<'a>(field: &str, op: &str, v: &'a Value) -> ApiResult<&'a Vec<Value>> {
    v.get("objects").and_then(Value::as_array).ok_or_else(|| {
        ApiError::bad(
            code::INVALID_JSON,
            format!("{field}: the {op} operation needs an \"objects\" array"),
        )
    })
}

/// Applies one `__op` to a field's current value; `None` removes the field.
fn apply_op(field: &str, op: &Value, current: Option<&Value>) -> ApiResult<Option<Value>> {
    let name = op.get("__op").and_then(Value::as_str).unwrap_or_default();
    let as_array = |c: Option<&Value>| -> ApiResult<Vec<Value>> {
        match c {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(other) => Err(ApiError::bad(
                code::INCORRECT_TYPE,
                format!(
                    "{field}: {name} needs an Array field, the current value is {}",
                    ledger::schema::validate::describe(other)
                ),
            )),
        }
    };
    match name {
        "Delete" => Ok(None),
        "Increment" => {
            let amount = op.get("amount").and_then(Value::as_f64).ok_or_else(|| {
                ApiError::bad(
                    code::INVALID_JSON,
                    format!("{field}: Increment needs a numeric \"amount\""),
                )
            })?;
            let base = match current {
                None | Some(Value::Null) => json!(0),
                Some(v @ Value::Number(_)) => v.clone(),
                Some(other) => {
                    return Err(ApiError::bad(
                        code::INCORRECT_TYPE,
                        format!(
                            "{field}: Increment needs a Number field, the current value is {}",
                            ledger::schema::validate::describe(other)
                        ),
                    ))
                }
            };
            let sum = match (base.as_i64(), op.get("amount").and_then(Value::as_i64)) {
                (Some(a), Some(b)) => a.checked_add(b).map(Value::from),
                _ => None,
            };
            let sum = match sum {
                Some(s) => s,
                None => serde_json::Number::from_f64(base.as_f64().unwrap_or(0.0) + amount)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        ApiError::bad(
                            code::INCORRECT_TYPE,
                            format!("{field}: Increment gives a number out of range"),
                        )
                    })?,
            };
            Ok(Some(sum))
        }
        "Add" => {
            let mut a = as_array(current)?;
            a.extend(op_objects(field, name, op)?.iter().cloned());
            Ok(Some(Value::Array(a)))
        }
        "AddUnique" => {
            let mut a = as_array(current)?;
            for o in op_objects(field, name, op)? {
                if !a.contains(o) {
                    a.push(o.clone());
                }
            }
            Ok(Some(Value::Array(a)))
        }
        "Remove" => {
            let gone = op_objects(field, name, op)?;
            let a: Vec<Value> = as_array(current)?
                .into_iter()
                .filter(|v| !gone.contains(v))
                .collect();
            Ok(Some(Value::Array(a)))
        }
        "Batch" => {
            let ops = op.get("ops").and_then(Value::as_array).ok_or_else(|| {
                ApiError::bad(
                    code::INVALID_JSON,
                    format!("{field}: Batch needs an \"ops\" array"),
                )
            })?;
            let mut value = current.cloned();
            for o in ops {
                value = apply_op(field, o, value.as_ref())?;
            }
            Ok(value)
        }
        "AddRelation" | "RemoveRelation" => Err(ApiError::bad(
            code::INCORRECT_TYPE,
            format!("{field}: Relation fields are not supported; use an Array of Pointers"),
        )),
        other => Err(ApiError::bad(
            code::INVALID_JSON,
            format!("{field}: unknown operation {{\"__op\": {other:?}}}"),
        )),
    }
}

/// Resolves a write body against the current fields (`None` for a create).
pub fn resolve(
    data: Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> ApiResult<Resolved> {
    let mut out = Resolved::default();
    for (k, v) in data {
        if IGNORED_KEYS.contains(&k.as_str()) {
            continue;
        }
        if v.get("__op").is_some() {
            let name = v.get("__op").and_then(Value::as_str).unwrap_or_default();
            match apply_op(&k, &v, current.and_then(|c| c.get(&k)))? {
                Some(new) => {
                    if name != "Delete" {
                        out.op_results.insert(k.clone(), new.clone());
                    }
                    out.set.insert(k, new);
                }
                None => out.unset.push(k),
            }
        } else {
            out.set.insert(k, v);
        }
    }
    Ok(out)
}

/// `POST /classes/{class}`.
pub fn create(state: &State, caller: &Caller, req: &ParseRequest, class: &str) -> ApiResult<Reply> {
    let checked = prepare_create(state, caller, req, class, Decide::Blocking);
    let (r, answer) = Decide::decided("a create's checks", checked)?.split();
    let a = state.append(&r.app, r.actor, r.idempotency_key, r.reason, r.command)?;
    Ok(answer.reply(&a))
}

/// A create checked and ready to append: the server queues its request and awaits it
/// off the blocking pool, then answers with [`CreateAnswer::reply`].
pub struct PreparedCreate {
    request: ledger::AppendRequest,
    answer: CreateAnswer,
}

/// What a create answers with, besides what its append tells.
pub struct CreateAnswer {
    op_results: Map<String, Value>,
    location: String,
}

impl PreparedCreate {
    /// The append to make, and how to answer once it is durable.
    pub fn split(self) -> (ledger::AppendRequest, CreateAnswer) {
        (self.request, self.answer)
    }
}

impl CreateAnswer {
    /// The answer once the append is durable: `{objectId, createdAt}`, 201, `Location`.
    pub fn reply(self, a: &ledger::Appended) -> Reply {
        let id = subject_id(&a.event.subject);
        let mut body = self.op_results;
        body.insert("objectId".into(), json!(id));
        body.insert("createdAt".into(), json!(parse_date(a.event.recorded_at)));
        Reply::new(StatusCode::CREATED, Value::Object(body))
            .seq(a.event.seq)
            .location(format!("{}/{id}", self.location))
    }
}

/// Everything a create checks before it appends: the class, the permission (a refusal is
/// recorded), the objectId, the Parse operations and guarded fields. On the runtime
/// (`decide`) a refusal leaves the create undecided (`Ok(None)`) instead: recording it is
/// an append to wait for.
pub fn prepare_create(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    class: &str,
    decide: Decide,
) -> ApiResult<Option<PreparedCreate>> {
    state.class_def(&caller.app, class)?;
    let rules = match decide {
        Decide::Blocking => state.permit(caller, Op::Create, class, None)?,
        Decide::OnRuntime => match state.allows(caller, Op::Create, class) {
            Some(rules) => rules,
            None => return Ok(None),
        },
    };
    let mut data = req.data.clone();
    let object_id = match data.remove("objectId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(ApiError::bad(
                code::INVALID_KEY_NAME,
                format!(
                    "objectId: must be a string, given {}",
                    ledger::schema::validate::describe(&other)
                ),
            ))
        }
    };
    let r = resolve(data, None)?;
    match decide {
        Decide::Blocking => check_guarded(state, caller, &rules, class, None, &r.set, &r.unset)?,
        Decide::OnRuntime => {
            if guarded_refusal(caller, &rules, &r.set, &r.unset).is_some() {
                return Ok(None);
            }
        }
    }
    Ok(Some(PreparedCreate {
        request: ledger::AppendRequest {
            app: caller.app.clone(),
            actor: caller.actor(),
            idempotency_key: req.request_id.clone(),
            reason: req.reason.clone(),
            command: Command::CreateRecord {
                class: class.to_string(),
                object_id,
                fields: r.set,
            },
        },
        answer: CreateAnswer {
            op_results: r.op_results,
            location: format!("{}/parse/classes/{class}", req.origin),
        },
    }))
}

fn subject_id(s: &Option<Subject>) -> String {
    s.as_ref().map(|s| s.object_id.clone()).unwrap_or_default()
}

/// `PUT /classes/{class}/{objectId}`.
pub fn update(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    class: &str,
    object_id: &str,
) -> ApiResult<Reply> {
    state.class_def(&caller.app, class)?;
    let rules = state.permit(caller, Op::Update, class, Some(object_id))?;
    update_as(
        state,
        caller,
        req,
        class,
        object_id,
        &rules,
        req.data.clone(),
    )
}

/// The update itself, once permitted (also used for `_User`).
pub fn update_as(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    class: &str,
    object_id: &str,
    rules: &ClassRules,
    data: Map<String, Value>,
) -> ApiResult<Reply> {
    let append = |r: Resolved| -> ApiResult<Reply> {
        check_guarded(
            state,
            caller,
            rules,
            class,
            Some(object_id),
            &r.set,
            &r.unset,
        )?;
        require_reason(state, caller, req, class, "update")?;
        let a = state.append(
            &caller.app,
            caller.actor(),
            req.request_id.clone(),
            req.reason.clone(),
            Command::UpdateRecord {
                class: class.to_string(),
                object_id: object_id.to_string(),
                set: r.set,
                unset: r.unset,
            },
        )?;
        let mut body = r.op_results;
        body.insert("updatedAt".into(), json!(parse_date(a.event.recorded_at)));
        Ok(Reply::new(StatusCode::OK, Value::Object(body)).seq(a.event.seq))
    };
    if needs_current(&data) {
        // Read, compute and append under one lock: concurrent increments never lose one.
        let _rmw = state.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = state
            .record(&caller.app, class, object_id)?
            .ok_or_else(|| ApiError::not_found(format!("{class} {object_id}: object not found")))?;
        append(resolve(data, Some(&current.fields))?)
    } else {
        append(resolve(data, None)?)
    }
}

/// Refuses an update or delete without a reason where the app's policy requires one.
fn require_reason(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    class: &str,
    op: &str,
) -> ApiResult<()> {
    let given = req.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
    if !given
        && state
            .config
            .policy(&caller.app)
            .reason_required(&caller.app, class)
    {
        return Err(ApiError::bad(
            code::VALIDATION_ERROR,
            format!(
                "reason: {}.{class} requires a reason for change to {op} a record (the X-Audit-Reason header or a _Reason field)",
                caller.app
            ),
        ));
    }
    Ok(())
}

/// `DELETE /classes/{class}/{objectId}`.
pub fn delete(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    class: &str,
    object_id: &str,
) -> ApiResult<Reply> {
    state.class_def(&caller.app, class)?;
    state.permit(caller, Op::Delete, class, Some(object_id))?;
    require_reason(state, caller, req, class, "delete")?;
    let a = state.append(
        &caller.app,
        caller.actor(),
        req.request_id.clone(),
        req.reason.clone(),
        Command::DeleteRecord {
            class: class.to_string(),
            object_id: object_id.to_string(),
        },
    )?;
    Ok(Reply::new(StatusCode::OK, json!({})).seq(a.event.seq))
}

fn int_param(data: &Map<String, Value>, k: &str) -> ApiResult<Option<i64>> {
    match data.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad_param(k, &data[k])),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad_param(k, &data[k])),
        Some(v) => Err(bad_param(k, v)),
    }
}

fn bad_param(k: &str, v: &Value) -> ApiError {
    ApiError::bad(
        code::INVALID_QUERY,
        format!(
            "{k}: must be an integer, given {}",
            ledger::schema::validate::describe(v)
        ),
    )
}

fn str_param(data: &Map<String, Value>, k: &str) -> ApiResult<Option<String>> {
    match data.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        )),
        Some(v) => Err(ApiError::bad(
            code::INVALID_QUERY,
            format!(
                "{k}: must be a comma-separated string, given {}",
                ledger::schema::validate::describe(v)
            ),
        )),
    }
}

/// The point in time a read asks for: `asOfSeq=N` (exactly repeatable), or `asOf=WHEN`
/// (RFC 3339, `2026-11-17`, `yesterday`, `last tuesday`, `3 days ago`… in `tz=ZONE`,
/// default UTC; a day means its end), or now.
pub fn point_in_time(data: &Map<String, Value>, now: Timestamp) -> ApiResult<At> {
    let seq = int_param(data, "asOfSeq")?;
    let when = str_param(data, "asOf")?;
    match (seq, when) {
        (Some(_), Some(_)) => Err(ApiError::bad(
            code::INVALID_QUERY,
            "asOf and asOfSeq: give one or the other",
        )),
        (Some(n), None) if n >= 0 => Ok(At::Seq(n as u64)),
        (Some(n), None) => Err(ApiError::bad(
            code::INVALID_QUERY,
            format!("asOfSeq: must be a sequence number ≥ 0, given {n}"),
        )),
        (None, Some(expr)) => {
            let tz_name = str_param(data, "tz")?.unwrap_or_else(|| "UTC".into());
            let bad = |e: projections::when::WhenError| {
                ApiError::bad(code::INVALID_QUERY, format!("asOf: {e}"))
            };
            let tz = projections::when::parse_tz(&tz_name).map_err(bad)?;
            let when = projections::when::parse(&expr, now, tz).map_err(bad)?;
            Ok(At::Time(when.instant()))
        }
        (None, None) => Ok(At::Now),
    }
}

/// Reads the query parameters of a find (`where`, `order`, `limit`, `skip`, `keys`,
/// `include`, `count`) and the point in time (`asOfSeq`, `asOf`, `tz`), relative to `now`.
pub fn query_params(
    data: &Map<String, Value>,
    max_depth: usize,
    now: Timestamp,
) -> ApiResult<(QueryParams, At)> {
    let where_ = match data.get("where") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(Value::Object(o.clone())),
        Some(Value::String(s)) => Some(super::request::parse_json(
            s.as_bytes(),
            "the `where` parameter",
            max_depth,
        )?),
        Some(v) => {
            return Err(ApiError::bad(
                code::INVALID_QUERY,
                format!(
                    "where: must be a JSON object, given {}",
                    ledger::schema::validate::describe(v)
                ),
            ))
        }
    };
    let where_ = where_.map(|mut w| {
        rewrite_quoted_regexes(&mut w);
        w
    });
    let count = match data.get("count") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s == "1" || s == "true",
        Some(v) => {
            return Err(ApiError::bad(
                code::INVALID_QUERY,
                format!(
                    "count: must be 1 or true, given {}",
                    ledger::schema::validate::describe(v)
                ),
            ))
        }
    };
    let at = point_in_time(data, now)?;
    Ok((
        QueryParams {
            where_,
            order: str_param(data, "order")?,
            limit: int_param(data, "limit")?,
            skip: int_param(data, "skip")?,
            keys: str_param(data, "keys")?,
            include: str_param(data, "include")?,
            count,
        },
        at,
    ))
}

/// The `excludeKeys` of a query (the SDK's `query.exclude(…)`): field paths left out of
/// each result (`notes`, or `owner.email` inside an included object).
fn exclude_keys(data: &Map<String, Value>) -> ApiResult<Vec<String>> {
    Ok(str_param(data, "excludeKeys")?
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Removes each excluded path from a result (never its objectId or system dates).
fn remove_keys(o: &mut Map<String, Value>, paths: &[String]) {
    for path in paths {
        let mut obj = &mut *o;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                if !matches!(part, "objectId" | "createdAt" | "updatedAt") {
                    obj.remove(part);
                }
            } else {
                match obj.get_mut(part) {
                    Some(Value::Object(inner)) => obj = inner,
                    _ => break,
                }
            }
        }
    }
}

/// `GET /classes/{class}`: a query.
pub fn find(state: &State, caller: &Caller, req: &ParseRequest, class: &str) -> ApiResult<Reply> {
    state.class_def(&caller.app, class)?;
    state.permit(caller, Op::Read, class, None)?;
    let (params, at) = query_params(&req.data, state.config.max_json_depth, state.clock.now())?;
    let excluded = exclude_keys(&req.data)?;
    let answer = state.projections.find(&caller.app, class, &params, at)?;
    let results: Vec<Value> = answer
        .results
        .into_iter()
        .map(|mut o| {
            if !req.exact_dates {
                parse_object(&mut o);
            }
            remove_keys(&mut o, &excluded);
            Value::Object(o)
        })
        .collect();
    let mut body = json!({ "results": results });
    if let Some(c) = answer.count {
        body["count"] = json!(c);
    }
    Ok(Reply::new(StatusCode::OK, body).seq(answer.seq))
}

/// `GET /classes/{class}/{objectId}` (with `keys` and `include`).
pub fn get(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    class: &str,
    object_id: &str,
) -> ApiResult<Reply> {
    state.class_def(&caller.app, class)?;
    // Everyone may read their own account, role or not.
    if !(class == ledger::schema::USER_CLASS && object_id == caller.user_id) {
        state.permit(caller, Op::Read, class, Some(object_id))?;
    }
    let (mut params, at) = query_params(&req.data, state.config.max_json_depth, state.clock.now())?;
    let excluded = exclude_keys(&req.data)?;
    params.where_ = Some(json!({ "objectId": object_id }));
    params.limit = Some(1);
    params.skip = None;
    params.count = false;
    let answer = state.projections.find(&caller.app, class, &params, at)?;
    match answer.results.into_iter().next() {
        Some(mut o) => {
            parse_object(&mut o);
            remove_keys(&mut o, &excluded);
            if class == ledger::schema::USER_CLASS && object_id == caller.user_id {
                // As Parse Server does: the SDK's `user.fetch()` replaces the user's
                // fields with this answer, so without the token the current user would
                // lose its session.
                o.insert("sessionToken".into(), json!(caller.token));
            }
            Ok(Reply::new(StatusCode::OK, Value::Object(o)).seq(answer.seq))
        }
        None => Err(ApiError::not_found(format!(
            "{class} {object_id}: object not found"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn operations_resolve_against_current_values() {
        let current = obj(json!({"n": 2, "tags": ["a", "b"], "note": "x"}));
        let r = resolve(
            obj(json!({
                "n": {"__op": "Increment", "amount": 3},
                "tags": {"__op": "AddUnique", "objects": ["b", "c"]},
                "note": {"__op": "Delete"},
                "title": "t",
                "ACL": {"*": {"read": true}}
            })),
            Some(&current),
        )
        .unwrap();
        assert_eq!(r.set["n"], json!(5));
        assert_eq!(r.set["tags"], json!(["a", "b", "c"]));
        assert_eq!(r.set["title"], json!("t"));
        assert_eq!(r.unset, vec!["note".to_string()]);
        assert!(!r.set.contains_key("ACL"));
        assert_eq!(r.op_results.len(), 2);
        let r = resolve(
            obj(json!({"tags": {"__op": "Remove", "objects": ["a"]}, "n": {"__op": "Increment", "amount": 0.5}})),
            Some(&current),
        )
        .unwrap();
        assert_eq!(r.set["tags"], json!(["b"]));
        assert_eq!(r.set["n"], json!(2.5));
    }

    #[test]
    fn excluded_keys_leave_results_but_never_their_identity() {
        let data = obj(json!({"excludeKeys": "notes, owner.email,objectId,nope.x"}));
        let keys = exclude_keys(&data).unwrap();
        let mut o = obj(json!({"objectId": "a", "notes": "n", "title": "t",
            "owner": {"__type": "Object", "objectId": "u", "email": "e", "username": "m"}}));
        remove_keys(&mut o, &keys);
        assert_eq!(
            Value::Object(o),
            json!({"objectId": "a", "title": "t",
                "owner": {"__type": "Object", "objectId": "u", "username": "m"}})
        );
        assert!(exclude_keys(&obj(json!({}))).unwrap().is_empty());
    }

    #[test]
    fn bad_operations_name_the_field() {
        let current = obj(json!({"note": "x"}));
        for (body, needle) in [
            (
                json!({"note": {"__op": "Increment", "amount": 1}}),
                "note: Increment needs a Number",
            ),
            (
                json!({"n": {"__op": "Increment"}}),
                "n: Increment needs a numeric",
            ),
            (json!({"n": {"__op": "Frobnicate"}}), "n: unknown operation"),
            (json!({"n": {"__op": "Add"}}), "n: the Add operation needs"),
            (
                json!({"r": {"__op": "AddRelation", "objects": []}}),
                "r: Relation fields",
            ),
        ] {
            let e = resolve(obj(body), Some(&current)).unwrap_err();
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn query_parameters_from_the_sdk_and_from_rest() {
        let (p, at) = query_params(
            &obj(json!({"where": {"a": {"$regex": "^\\Qx.\\E"}}, "limit": 0, "count": 1, "keys": "a,b", "asOfSeq": 7})),
            32,
            Timestamp(0),
        )
        .unwrap();
        assert_eq!(p.where_, Some(json!({"a": {"$regex": "^x\\."}})));
        assert_eq!(
            (p.limit, p.count, p.keys.as_deref()),
            (Some(0), true, Some("a,b"))
        );
        assert_eq!(at, At::Seq(7));
        let e = query_params(&obj(json!({"where": 3})), 32, Timestamp(0)).unwrap_err();
        assert!(e.message.starts_with("where: must be a JSON object"));
        let e = query_params(&obj(json!({"limit": "many"})), 32, Timestamp(0)).unwrap_err();
        assert!(e.message.starts_with("limit: must be an integer"));
        let now = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let (_, at) = query_params(
            &obj(json!({"asOf": "2026-11-17", "tz": "Europe/Berlin"})),
            32,
            now,
        )
        .unwrap();
        assert_eq!(
            at,
            At::Time(Timestamp::parse_rfc3339("2026-11-17T22:59:59.999999Z").unwrap())
        );
        let e = query_params(&obj(json!({"asOf": "someday"})), 32, now).unwrap_err();
        assert!(e.message.starts_with("asOf: "), "{}", e.message);
        let e =
            query_params(&obj(json!({"asOf": "now", "tz": "Mars/Olympus"})), 32, now).unwrap_err();
        assert!(e.message.contains("Mars/Olympus"), "{}", e.message);
        let e = query_params(&obj(json!({"asOf": "now", "asOfSeq": 3})), 32, now).unwrap_err();
        assert!(e.message.contains("one or the other"));
    }
}
