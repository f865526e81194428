//! `/login`, `/logout`, `/users`, `/users/me`, `/users/{id}`, `/sessions/me`: accounts over
//! Parse REST. Sign-up creates an account with no role (an admin grants one); an admin
//! creates accounts with a role; a user changes their own profile and password but never
//! their role. Passwords go to the credential store, never into the ledger.

use axum::http::StatusCode;
use ledger::schema::USER_CLASS;
use ledger::Command;
use serde_json::{json, Map, Value};

use super::compat::{parse_date, parse_object};
use super::objects::update_as;
use super::request::ParseRequest;
use super::Reply;
use crate::accounts::{self, NewUser};
use crate::auth::permissions::{rules, Op, Role};
use crate::auth::{check_new_password, hash_password, Caller};
use crate::error::{code, ApiError, ApiResult};
use crate::state::State;

fn take_string(data: &mut Map<String, Value>, k: &str) -> ApiResult<Option<String>> {
    match data.remove(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ApiError::bad(
            code::INCORRECT_TYPE,
            format!(
                "{k}: expected a String, given {}",
                ledger::schema::validate::describe(&v)
            ),
        )),
    }
}

/// The `_User` object a client sees (no password ever), with Parse's dates.
fn user_object(state: &State, app: &str, user_id: &str) -> ApiResult<Map<String, Value>> {
    let r = state
        .record(app, USER_CLASS, user_id)?
        .ok_or_else(|| ApiError::not_found(format!("_User {user_id}: object not found")))?;
    let mut o = r.to_parse_json();
    parse_object(&mut o);
    Ok(o)
}

/// `POST /login` and `GET /login`.
pub fn login(state: &State, app: &str, req: &ParseRequest) -> ApiResult<Reply> {
    let mut data = req.data.clone();
    let username = take_string(&mut data, "username")?.unwrap_or_default();
    let password = take_string(&mut data, "password")?.unwrap_or_default();
    let done = accounts::login(state, app, &username, &password)?;
    let mut o = user_object(state, app, &done.user_id)?;
    o.insert("sessionToken".into(), json!(done.token));
    Ok(Reply::new(StatusCode::OK, Value::Object(o)).seq(done.seq))
}

/// `POST /logout`.
pub fn logout(state: &State, caller: &Caller) -> ApiResult<Reply> {
    let seq = accounts::logout(state, caller)?;
    Ok(Reply::new(StatusCode::OK, json!({})).seq(seq))
}

/// `GET /users/me`.
pub fn me(state: &State, caller: &Caller) -> ApiResult<Reply> {
    let mut o = user_object(state, &caller.app, &caller.user_id)?;
    o.insert("sessionToken".into(), json!(caller.token));
    Ok(Reply::new(StatusCode::OK, Value::Object(o)))
}

/// `GET /sessions/me`.
pub fn session_me(caller: &Caller) -> ApiResult<Reply> {
    Ok(Reply::new(
        StatusCode::OK,
        json!({
            "sessionToken": caller.token,
            "user": {"__type": "Pointer", "className": USER_CLASS, "objectId": caller.user_id},
        }),
    ))
}

/// `POST /users` (and `POST /classes/_User`): an admin creating an account, or a sign-up.
pub fn create(
    state: &State,
    app: &str,
    caller: Option<&Caller>,
    req: &ParseRequest,
) -> ApiResult<Reply> {
    state.class_def(app, USER_CLASS)?;
    let mut data = req.data.clone();
    for k in ["ACL", "authData"] {
        data.remove(k);
    }
    let username = take_string(&mut data, "username")?.unwrap_or_default();
    let password = take_string(&mut data, "password")?.unwrap_or_default();
    // An admin's session creates an account for someone; any other session is ignored
    // and the request is a sign-up, as in Parse (the SDK sends the current user's token
    // with `signUp`).
    let by_admin = caller.is_some_and(|c| c.role == Some(Role::Admin));
    let caller = caller.filter(|_| by_admin);
    if !by_admin {
        if !state.config.policy(app).allow_signup {
            return Err(ApiError::forbidden(format!(
                "sign-up is closed in app {app}: an admin creates accounts"
            )));
        }
        if data.contains_key("role") {
            return Err(ApiError::forbidden(
                "role: an account cannot give itself a role; an admin grants roles",
            ));
        }
    }
    let (user_id, appended) = accounts::create_user(
        state,
        app,
        caller.map(Caller::actor),
        req.request_id.clone(),
        NewUser {
            username,
            password,
            fields: data,
        },
    )?;
    let mut body = json!({
        "objectId": user_id,
        "createdAt": parse_date(appended.event.recorded_at),
    });
    let mut seq = appended.event.seq;
    if !by_admin && !appended.duplicate {
        let actor = accounts::actor_of(
            &user_id,
            &state
                .record(app, USER_CLASS, &user_id)?
                .ok_or_else(|| ApiError::internal("the new user is not in the projection"))?,
        );
        let session = accounts::open_session(state, app, &user_id, actor)?;
        body["sessionToken"] = json!(session.token);
        seq = session.seq;
    }
    Ok(Reply::new(StatusCode::CREATED, body)
        .seq(seq)
        .location(format!("{}/parse/users/{user_id}", req.origin)))
}

/// `PUT /users/{id}`: an admin changes any account; a user changes their own (not the
/// role). A new password replaces the credential and ends the user's other sessions.
pub fn update(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    user_id: &str,
) -> ApiResult<Reply> {
    let r = rules(&caller.app, USER_CLASS);
    let is_admin = caller.role == Some(Role::Admin);
    if !is_admin && caller.user_id != user_id {
        return Err(state.deny(caller, Op::Update, USER_CLASS, Some(user_id), &r));
    }
    let mut data = req.data.clone();
    let password = take_string(&mut data, "password")?;
    for k in ["ACL", "sessionToken", "authData"] {
        data.remove(k);
    }
    if let Some(Value::String(role)) = data.get("role") {
        if Role::from_name(role).is_none() {
            return Err(ApiError::bad(
                code::VALIDATION_ERROR,
                format!(
                    "role: {role:?} is not a role (roles: {})",
                    Role::ALL.map(Role::name).join(", ")
                ),
            ));
        }
    }
    let mut rules_here = r.clone();
    if !is_admin {
        // Self-service: everything but the guarded fields (the role).
        rules_here.update = crate::auth::permissions::Roles::all();
    }
    let current = state
        .record(&caller.app, USER_CLASS, user_id)?
        .ok_or_else(|| ApiError::not_found(format!("_User {user_id}: object not found")))?;
    if let Some(pw) = password {
        check_new_password(&pw).map_err(|m| ApiError::bad(code::VALIDATION_ERROR, m))?;
        let phc = hash_password(&pw, state.config.password_cost)
            .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))?;
        let username = match data.get("username").and_then(Value::as_str) {
            Some(u) => u.to_string(),
            None => current
                .fields
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        let cred = crate::auth::store::Credential { username, phc };
        state
            .auth
            .set_credential(&caller.app, user_id, &cred)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let _ = state.auth.remove_sessions_of(&caller.app, user_id);
        if caller.user_id == user_id {
            // Keep the session that changed the password.
            let _ = reopen(state, caller);
        }
    }
    if data.is_empty() {
        let mut o = Map::new();
        o.insert("updatedAt".into(), json!(parse_date(current.updated_at)));
        return Ok(Reply::new(StatusCode::OK, Value::Object(o)));
    }
    if let Some(Value::String(new_name)) = data.get("username") {
        let existing = state
            .auth
            .user_by_name(&caller.app, new_name)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if existing.is_some_and(|id| id != user_id) {
            return Err(ApiError::bad(
                code::USERNAME_TAKEN,
                format!(
                    "username: {new_name:?} is already taken in app {}",
                    caller.app
                ),
            ));
        }
    }
    let reply = update_as(
        state,
        caller,
        req,
        USER_CLASS,
        user_id,
        &rules_here,
        data.clone(),
    )?;
    if let Some(Value::String(new_name)) = data.get("username") {
        if let Ok(Some(mut cred)) = state.auth.credential(&caller.app, user_id) {
            cred.username = new_name.clone();
            state
                .auth
                .set_credential(&caller.app, user_id, &cred)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
    }
    Ok(reply)
}

/// Puts the caller's own session back after a password change ended all of them.
fn reopen(state: &State, caller: &Caller) -> ApiResult<()> {
    let now = state.clock.now();
    let policy = state.config.policy(&caller.app);
    let s = crate::auth::store::Session {
        app: caller.app.clone(),
        user_id: caller.user_id.clone(),
        created_us: now.0,
        expires_us: now.0 + policy.session_ttl_secs as i64 * 1_000_000,
        last_seen_us: now.0,
    };
    state
        .auth
        .put_session(&caller.token, &s)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `DELETE /users/{id}` (admin): deactivates the account — a `user.deleted` event; the
/// credential and sessions go; the objectId is never reused.
pub fn delete(
    state: &State,
    caller: &Caller,
    req: &ParseRequest,
    user_id: &str,
) -> ApiResult<Reply> {
    state.permit(caller, Op::Delete, USER_CLASS, Some(user_id))?;
    let a = state.append(
        &caller.app,
        caller.actor(),
        req.request_id.clone(),
        req.reason.clone(),
        Command::DeleteRecord {
            class: USER_CLASS.into(),
            object_id: user_id.to_string(),
        },
    )?;
    state
        .auth
        .remove_credential(&caller.app, user_id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let _ = state.auth.remove_sessions_of(&caller.app, user_id);
    Ok(Reply::new(StatusCode::OK, json!({})).seq(a.event.seq))
}
