//! Accounts: creating users with a password, logging in (with failed-login counting and
//! account locks), logging out, and turning a session token into a [`Caller`].
//!
//! The order of writes keeps the two stores honest after a crash: a new account's
//! credential is written before its `user.created` event (a credential without a user
//! cannot log in, since login checks the `_User` record), and a lock is stored before its
//! `account.locked` event is appended.

use ledger::schema::USER_CLASS;
use ledger::{Actor, Command, Timestamp};
use serde_json::{Map, Value};

use crate::auth::permissions::Role;
use crate::auth::store::{Credential, Failures, Session};
use crate::auth::{check_new_password, hash_password, new_token, verify_password, Caller};
use crate::error::{code, unknown_app, ApiError, ApiResult};
use crate::state::{Decide, State};

const MICROS: i64 = 1_000_000;

/// A new account, as asked.
pub struct NewUser {
    /// The username (unique in the app).
    pub username: String,
    /// The password (never stored, never logged).
    pub password: String,
    /// Other `_User` fields (email, role…), already checked for permission.
    pub fields: Map<String, Value>,
}

/// What a successful login or sign-up returns.
pub struct LoggedIn {
    /// The user's objectId.
    pub user_id: String,
    /// The new session token.
    pub token: String,
    /// The ledger event that recorded it.
    pub seq: u64,
}

fn store_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("credential store: {e}"))
}

/// Whether a live `_User` of `app` has this username.
fn username_taken(state: &State, app: &str, username: &str) -> ApiResult<bool> {
    if state
        .auth
        .user_by_name(app, username)
        .map_err(store_err)?
        .is_some()
    {
        return Ok(true);
    }
    let params = projections::query::QueryParams {
        where_: Some(serde_json::json!({ "username": username })),
        limit: Some(1),
        ..Default::default()
    };
    let found = state
        .projections
        .find(app, USER_CLASS, &params, projections::At::Now)?;
    Ok(!found.results.is_empty())
}

/// Creates an account: checks the username and password, stores the credential, appends
/// `user.created` by `actor` (by the new user themselves for a sign-up, when `None`).
/// Returns the new objectId and the append.
pub fn create_user(
    state: &State,
    app: &str,
    actor: Option<Actor>,
    idempotency_key: Option<String>,
    user: NewUser,
) -> ApiResult<(String, ledger::Appended)> {
    if user.username.trim().is_empty() {
        return Err(ApiError::bad(
            code::USERNAME_MISSING,
            "username: a user needs a non-empty username",
        ));
    }
    if user.password.is_empty() {
        return Err(ApiError::bad(
            code::PASSWORD_MISSING,
            "password: a user needs a password",
        ));
    }
    check_new_password(&user.password).map_err(|m| ApiError::bad(code::VALIDATION_ERROR, m))?;
    if let Some(role) = user.fields.get("role") {
        match role.as_str() {
            Some(r) if Role::from_name(r).is_some() => {}
            _ => {
                return Err(ApiError::bad(
                    code::VALIDATION_ERROR,
                    format!(
                        "role: {} is not a role (roles: {})",
                        role,
                        Role::ALL.map(Role::name).join(", ")
                    ),
                ))
            }
        }
    }
    let phc = hash_password(&user.password, state.config.password_cost)
        .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))?;
    let _one_at_a_time = state.write_lock.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(key) = &idempotency_key {
        // A retried sign-up must answer as the first did, not "username taken".
        if let Some(first) = replay(state, app, key)? {
            return Ok((
                first
                    .event
                    .subject
                    .as_ref()
                    .map(|s| s.object_id.clone())
                    .unwrap_or_default(),
                first,
            ));
        }
    }
    if username_taken(state, app, &user.username)? {
        return Err(ApiError::bad(
            code::USERNAME_TAKEN,
            format!(
                "username: {:?} is already taken in app {app}",
                user.username
            ),
        ));
    }
    let user_id = new_object_id();
    let cred = Credential {
        username: user.username.clone(),
        phc,
    };
    state
        .auth
        .set_credential(app, &user_id, &cred)
        .map_err(store_err)?;
    let actor = actor.unwrap_or_else(|| Actor {
        user_id: user_id.clone(),
        username: user.username.clone(),
        role: "none".into(),
    });
    let mut fields = user.fields;
    fields.insert("username".into(), Value::String(user.username));
    let appended = state.append(
        app,
        actor,
        idempotency_key,
        None,
        Command::CreateRecord {
            class: USER_CLASS.into(),
            object_id: Some(user_id.clone()),
            fields,
        },
    );
    match appended {
        Ok(a) => Ok((user_id, a)),
        Err(e) => {
            // Refused (bad field…): nothing in the ledger, so no credential either.
            let _ = state.auth.remove_credential(app, &user_id);
            Err(e)
        }
    }
}

/// The first event appended under an idempotency key, if any.
fn replay(state: &State, app: &str, key: &str) -> ApiResult<Option<ledger::Appended>> {
    let seq = state
        .ledger
        .store()
        .idempotent(app, key)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match seq {
        None => Ok(None),
        Some(seq) => Ok(state
            .ledger
            .event(app, seq)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(|event| ledger::Appended {
                event,
                duplicate: true,
            })),
    }
}

/// A fresh objectId: 10 characters of [A-Za-z0-9], like Parse's.
pub fn new_object_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Logs in: checks lock and password, counts failures (locking at the app's limit),
/// opens a session and records the login.
pub fn login(state: &State, app: &str, username: &str, password: &str) -> ApiResult<LoggedIn> {
    if username.is_empty() {
        return Err(ApiError::bad(
            code::USERNAME_MISSING,
            "username is required to log in",
        ));
    }
    if password.is_empty() {
        return Err(ApiError::bad(
            code::PASSWORD_MISSING,
            "password is required to log in",
        ));
    }
    let invalid = || ApiError::not_found("Invalid username/password.");
    let user_id = state.auth.user_by_name(app, username).map_err(store_err)?;
    let found = match &user_id {
        Some(id) => state.record(app, USER_CLASS, id)?.map(|r| (id.clone(), r)),
        None => None,
    };
    let Some((user_id, record)) = found else {
        failed(
            state,
            app,
            anonymous(username),
            username,
            "unknown username",
        )?;
        return Err(invalid());
    };
    let actor = actor_of(&user_id, &record);
    if let Err(e) = check_password(state, app, &user_id, &actor, username, password, "login") {
        return Err(if e.code == code::OBJECT_NOT_FOUND {
            invalid()
        } else {
            e
        });
    }
    open_session(state, app, &user_id, actor)
}

/// Checks `password` for an account, under the lock and failure rules of the app's
/// policy: a locked account is refused (and the attempt recorded); a wrong password is
/// recorded as a `session.login_failed` event (`detail` says what was attempted), counts
/// toward the lock, and locks the account (an `account.locked` event) at the limit; a
/// right one clears the count. Refusals: 403 (locked), 404 code 101 (wrong password).
pub fn check_password(
    state: &State,
    app: &str,
    user_id: &str,
    actor: &Actor,
    username: &str,
    password: &str,
    what: &str,
) -> ApiResult<()> {
    let policy = state.config.policy(app).clone();
    let now = state.clock.now();
    let mut fails = state.auth.failures(app, user_id).map_err(store_err)?;
    if let Some(until) = fails.locked_until_us {
        if now.0 < until {
            failed(
                state,
                app,
                actor.clone(),
                username,
                &format!("{what}: account locked"),
            )?;
            return Err(ApiError::forbidden(format!(
                "account {username:?} is locked after {} failed attempts until {}; an admin can unlock it sooner",
                fails.count,
                Timestamp(until).to_rfc3339()
            )));
        }
        fails = Failures::default();
    }
    let phc = state
        .auth
        .credential(app, user_id)
        .map_err(store_err)?
        .map(|c| c.phc);
    if !phc.is_some_and(|phc| verify_password(password, &phc)) {
        fails.count += 1;
        let lock = fails.count >= policy.max_failed_logins;
        if lock {
            fails.locked_until_us = Some(now.0 + policy.lock_secs as i64 * MICROS);
        }
        state
            .auth
            .set_failures(app, user_id, &fails)
            .map_err(store_err)?;
        let detail = if what == "login" {
            "wrong password".to_string()
        } else {
            format!("{what}: wrong password")
        };
        failed(state, app, actor.clone(), username, &detail)?;
        if lock {
            state.append(
                app,
                actor.clone(),
                None,
                None,
                Command::AccountLocked {
                    user_id: user_id.to_string(),
                    failed_attempts: fails.count,
                },
            )?;
        }
        return Err(ApiError::not_found(format!(
            "Invalid username/password. (failed attempt {} of {}{})",
            fails.count,
            policy.max_failed_logins,
            if lock {
                "; the account is now locked"
            } else {
                ""
            }
        )));
    }
    if fails != Failures::default() {
        state
            .auth
            .set_failures(app, user_id, &Failures::default())
            .map_err(store_err)?;
    }
    Ok(())
}

/// Opens a session for a user whose identity was just established, and records it.
pub fn open_session(state: &State, app: &str, user_id: &str, actor: Actor) -> ApiResult<LoggedIn> {
    let policy = state.config.policy(app);
    let now = state.clock.now();
    let token = new_token();
    let session = Session {
        app: app.to_string(),
        user_id: user_id.to_string(),
        created_us: now.0,
        expires_us: now.0 + policy.session_ttl_secs as i64 * MICROS,
        last_seen_us: now.0,
    };
    state
        .auth
        .put_session(&token, &session)
        .map_err(store_err)?;
    let a = state.append(
        app,
        actor,
        None,
        None,
        Command::Login {
            user_id: user_id.to_string(),
        },
    )?;
    Ok(LoggedIn {
        user_id: user_id.to_string(),
        token,
        seq: a.event.seq,
    })
}

fn failed(state: &State, app: &str, actor: Actor, username: &str, detail: &str) -> ApiResult<()> {
    metrics::counter!("failed_logins_total").increment(1);
    state.append(
        app,
        actor,
        None,
        None,
        Command::LoginFailed {
            username: username.to_string(),
            detail: detail.to_string(),
        },
    )?;
    Ok(())
}

/// The actor of a failed login for a username no account has.
fn anonymous(username: &str) -> Actor {
    Actor {
        user_id: "_anonymous".into(),
        username: username.chars().take(ledger::MAX_ACTOR_FIELD / 4).collect(),
        role: "none".into(),
    }
}

/// The actor a `_User` record acts as.
pub fn actor_of(user_id: &str, record: &projections::Record) -> Actor {
    let s = |k: &str| {
        record
            .fields
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let role = s("role");
    Actor {
        user_id: user_id.to_string(),
        username: s("username"),
        role: if Role::from_name(&role).is_some() {
            role
        } else {
            "none".into()
        },
    }
}

/// How often a session's last-seen time is written (µs): more often would be a store write
/// per request, and idle timeouts are minutes.
const TOUCH_EVERY_US: i64 = 60 * MICROS;

/// The caller a session token stands for, or 401 code 209 saying why not.
pub fn caller(state: &State, app: &str, token: Option<&str>) -> ApiResult<Caller> {
    Decide::decided(
        "a session check",
        caller_on(state, app, token, Decide::Blocking),
    )
}

/// [`caller`], decided where `decide` says. On the runtime it is left undecided (`Ok(None)`)
/// when the session has expired or gone idle (ending it flushes), when its last-seen time is
/// due to be written, when the account has no version the projections have applied (reading
/// it would wait for them to catch up), or when the projections are being written just then
/// (reading would wait for the writer's lock).
pub fn caller_on(
    state: &State,
    app: &str,
    token: Option<&str>,
    decide: Decide,
) -> ApiResult<Option<Caller>> {
    let on_runtime = decide == Decide::OnRuntime;
    let token = token.ok_or_else(|| {
        ApiError::invalid_session(
            "this request needs a session: log in and send X-Parse-Session-Token",
        )
    })?;
    let now = state.clock.now();
    let policy = state.config.policy(app);
    let mut s = state
        .auth
        .session(token)
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::invalid_session("Invalid session token (unknown or logged out)")
        })?;
    if s.app != app {
        return Err(ApiError::invalid_session(
            "Invalid session token (issued for another app)",
        ));
    }
    let idle = now.0 - s.last_seen_us >= policy.idle_timeout_secs as i64 * MICROS;
    let touch = now.0 - s.last_seen_us >= TOUCH_EVERY_US;
    if on_runtime && (now.0 >= s.expires_us || idle || touch) {
        return Ok(None);
    }
    if now.0 >= s.expires_us {
        let _ = state.auth.remove_session(token);
        return Err(ApiError::invalid_session(
            "Invalid session token (expired; log in again)",
        ));
    }
    if idle {
        let _ = state.auth.remove_session(token);
        return Err(ApiError::invalid_session(format!(
            "Invalid session token (ended after {} minutes without activity; log in again)",
            policy.idle_timeout_secs / 60
        )));
    }
    // Read before the user: a user record changed after it makes the next request read
    // the user again.
    let changed = state
        .ledger
        .users_changed(app)
        .ok_or_else(|| unknown_app(app))?;
    let actor = match state.users.get(app, &s.user_id, changed) {
        Some(actor) => actor,
        None => {
            let Some(actor) = read_actor(state, app, &s.user_id, on_runtime)? else {
                return Ok(None);
            };
            state.users.put(app, &s.user_id, changed, &actor);
            actor
        }
    };
    if touch {
        s.last_seen_us = now.0;
        state.auth.touch_session(token, &s).map_err(store_err)?;
    }
    Ok(Some(Caller {
        app: app.to_string(),
        user_id: s.user_id,
        username: actor.username,
        role: Role::from_name(&actor.role),
        token: token.to_string(),
    }))
}

/// A user's username and role as their `_User` record has them now, or 209 if it was
/// deleted; on the runtime `Ok(None)` if the projections have not applied the record's
/// latest version yet.
fn read_actor(
    state: &State,
    app: &str,
    user_id: &str,
    on_runtime: bool,
) -> ApiResult<Option<Actor>> {
    // The account as the projections have it, without waiting for them to catch up (a
    // write load would make every request wait) unless the account changed since.
    let latest = state
        .ledger
        .versions(app, USER_CLASS, user_id)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .last()
        .map(|(seq, _)| *seq);
    let record = if on_runtime {
        let Some(latest) = latest else {
            return Ok(None);
        };
        match state
            .projections
            .try_get_applied(app, USER_CLASS, user_id, latest)?
        {
            Some(v) => v.value,
            None => return Ok(None),
        }
    } else {
        let applied = state.projections.applied(app)?;
        let at = match latest {
            Some(seq) if seq <= applied => projections::At::Seq(applied),
            _ => projections::At::Now,
        };
        state.projections.get(app, USER_CLASS, user_id, at)?.value
    };
    let record = record
        .ok_or_else(|| ApiError::invalid_session("Invalid session token (the user was deleted)"))?;
    Ok(Some(actor_of(user_id, &record)))
}

/// Ends the caller's session and records the logout.
pub fn logout(state: &State, caller: &Caller) -> ApiResult<u64> {
    state
        .auth
        .remove_session(&caller.token)
        .map_err(store_err)?;
    let a = state.append(
        &caller.app,
        caller.actor(),
        None,
        None,
        Command::Logout {
            user_id: caller.user_id.clone(),
        },
    )?;
    Ok(a.event.seq)
}
