//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the code (utoipa).
//!
//! - The server's own routes (`/health`, `/metrics`, `/openapi.json`) and the ledger's
//!   routes (`/ledger/{app}/…`) carry `#[utoipa::path]` annotations on their handlers and
//!   are registered through `utoipa_axum::OpenApiRouter`, so the document lists exactly
//!   the routes the router has.
//! - The Parse REST routes are served by one dispatcher under `/parse`
//!   ([`crate::parse::dispatch`]); each route it matches is described here by an annotated
//!   item (never called), beside the dispatcher's match arms.
//!
//! Every error answer has the same body, [`ErrorBody`]: Parse's `{code, error}`.

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// Every error answer: a Parse error code and a message naming the field or value.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The Parse error code (101 wrong credentials, 119 not permitted, 142 validation…).
    pub code: u16,
    /// What is wrong.
    pub error: String,
}

/// The refusals every audit read under `/ledger/{app}` may answer, listed once.
#[derive(utoipa::IntoResponses)]
pub enum AuditReadErrors {
    /// A bad parameter, named.
    #[response(status = 400, description = "A bad parameter, named")]
    BadParameter(ErrorBody),
    /// No valid session.
    #[response(status = 401, description = "No valid session (209)")]
    NoSession(ErrorBody),
    /// Not an audit role.
    #[response(status = 403, description = "Not an audit role (119)")]
    NotAuditRole(ErrorBody),
    /// No such app.
    #[response(status = 404, description = "No such app (101)")]
    NoSuchApp(ErrorBody),
}

/// The app in a `/ledger/{app}` path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// The app: `gxp`, `iso9001`, `hipaa`, `training`, `iso14001`, or one created later.
    pub app: String,
}

/// An app and a class in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClassPath {
    /// The app.
    pub app: String,
    /// The class (`ValidationLog`, `_User`…).
    pub class: String,
}

/// An app, a class and a record in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RecordPath {
    /// The app.
    pub app: String,
    /// The class.
    pub class: String,
    /// The record's objectId.
    pub id: String,
}

/// A point in time: now, a time expression, or a sequence number.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// A time expression (`2026-11-17`, `yesterday`, `last tuesday`, `3 days ago`, RFC
    /// 3339…), read in `tz`: the state as it stood then.
    #[param(rename = "asOf")]
    pub as_of: Option<String>,
    /// A sequence number: the state right after that event (repeatable exactly).
    #[param(rename = "asOfSeq")]
    pub as_of_seq: Option<u64>,
    /// The IANA time zone of `asOf` (default UTC).
    pub tz: Option<String>,
}

/// The Parse query parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParseQuery {
    /// A JSON object of constraints (equality, `$lt`, `$in`, `$regex`, `$or`…).
    #[param(rename = "where")]
    pub where_: Option<String>,
    /// Comma-separated fields, `-field` for descending.
    pub order: Option<String>,
    /// At most this many results (default 100, at most 10,000).
    pub limit: Option<i64>,
    /// Matches to pass over first.
    pub skip: Option<i64>,
    /// Comma-separated fields to return.
    pub keys: Option<String>,
    /// Comma-separated Pointer paths to expand.
    pub include: Option<String>,
    /// `1`: also count every match.
    pub count: Option<u8>,
}

/// The app a Parse request is for.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ParseHeaders {
    /// The app (Parse's application id); or `_ApplicationId` in a POST body.
    #[param(rename = "X-Parse-Application-Id")]
    pub app: String,
    /// The session; or `_SessionToken` in a POST body.
    #[param(rename = "X-Parse-Session-Token")]
    pub session: Option<String>,
    /// Makes a write idempotent: the same id gets the first answer again.
    #[param(rename = "X-Parse-Request-Id")]
    pub request_id: Option<String>,
    /// The reason for an update or delete (required for GxP classes).
    #[param(rename = "X-Audit-Reason")]
    pub reason: Option<String>,
}

/// A class in a Parse path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ParseClassPath {
    /// The class.
    #[param(rename = "className")]
    pub class: String,
}

/// A record in a Parse path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ParseObjectPath {
    /// The class.
    #[param(rename = "className")]
    pub class: String,
    /// The record's objectId.
    #[param(rename = "objectId")]
    pub object_id: String,
}

/// A user in a Parse path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ParseUserPath {
    /// The user's objectId.
    #[param(rename = "objectId")]
    pub object_id: String,
}

/// Adds the two ways to send a session: `Authorization: Bearer` and
/// `X-Parse-Session-Token`.
struct Sessions;

impl Modify for Sessions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Parse-Session-Token"))),
        );
    }
}

/// The document's fixed part: info, the error schema, the session schemes and the Parse
/// routes; the router adds its own routes to it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "audit-ledger",
        description = "An immutable, hash-chained, signed audit trail with a Parse-compatible API (/parse) and the ledger's own routes (/ledger/{app}): point-in-time reads, history, day reports, diffs, verification, proofs, e-signatures and live changes. Sessions come from POST /parse/login."
    ),
    paths(
        parse_login, parse_login_get, parse_logout, parse_users_me, parse_sessions_me,
        parse_server_info, parse_config, parse_signup, parse_users_find, parse_user_get,
        parse_user_update, parse_user_delete, parse_find, parse_create, parse_get,
        parse_update, parse_delete, parse_batch, parse_schemas, parse_schema_get,
        parse_schema_create, parse_schema_update, parse_schema_delete, parse_health,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Sessions),
    tags(
        (name = "server", description = "Health, metrics and this document."),
        (name = "parse", description = "Parse REST, as the Parse SDKs speak it."),
        (name = "ledger", description = "The audit trail itself: reads as of any point, history, reports, verification, keys, export, checkpoints and proofs."),
        (name = "signatures", description = "21 CFR Part 11 electronic signatures and audit-trail reviews."),
        (name = "live", description = "Live changes over Server-Sent Events."),
    )
)]
pub struct ApiDoc;

/// `/openapi.json`, which `Server::router` serves from the document it built.
#[utoipa::path(get, path = "/openapi.json", tag = "server",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}

// The Parse routes, one item per match arm of `parse::dispatch` (never called).

#[utoipa::path(post, path = "/parse/login", tag = "parse", params(ParseHeaders),
    request_body(content = Object, description = "`{username, password}`"),
    responses((status = 200, description = "The user with its `sessionToken`", body = Object),
        (status = 401, description = "Wrong username or password (101), or the account is locked", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_login() {}

#[utoipa::path(get, path = "/parse/login", tag = "parse", params(ParseHeaders,
        ("username" = String, Query, description = "The username"),
        ("password" = String, Query, description = "The password")),
    responses((status = 200, description = "The user with its `sessionToken`", body = Object),
        (status = 401, description = "Wrong username or password (101)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_login_get() {}

#[utoipa::path(post, path = "/parse/logout", tag = "parse", params(ParseHeaders),
    responses((status = 200, description = "The session is revoked", body = Object),
        (status = 401, description = "No valid session (209)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_logout() {}

#[utoipa::path(get, path = "/parse/users/me", tag = "parse", params(ParseHeaders),
    responses((status = 200, description = "The session's user", body = Object),
        (status = 401, description = "No valid session (209)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_users_me() {}

#[utoipa::path(get, path = "/parse/sessions/me", tag = "parse", params(ParseHeaders),
    responses((status = 200, description = "The session", body = Object),
        (status = 401, description = "No valid session (209)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_sessions_me() {}

#[utoipa::path(get, path = "/parse/serverInfo", tag = "parse", params(ParseHeaders),
    responses((status = 200, description = "`{parseServerVersion, features}`", body = Object)))]
#[allow(dead_code)]
fn parse_server_info() {}

#[utoipa::path(get, path = "/parse/config", tag = "parse", params(ParseHeaders),
    responses((status = 200, description = "`{params: {}}`", body = Object)))]
#[allow(dead_code)]
fn parse_config() {}

#[utoipa::path(get, path = "/parse/health", tag = "parse",
    responses((status = 200, description = "`{status: \"ok\"}`", body = Object)))]
#[allow(dead_code)]
fn parse_health() {}

#[utoipa::path(post, path = "/parse/users", tag = "parse", params(ParseHeaders),
    request_body(content = Object, description = "`{username, password, …fields}`"),
    responses((status = 201, description = "The new user (with a session when signing up)", body = Object),
        (status = 400, description = "Missing username or password, or bad fields", body = ErrorBody),
        (status = 403, description = "Sign-up is not open in this app (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_signup() {}

#[utoipa::path(get, path = "/parse/users", tag = "parse", params(ParseHeaders, ParseQuery, AsOfQuery),
    responses((status = 200, description = "`{results, count?}`", body = Object),
        (status = 403, description = "Not permitted (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_users_find() {}

#[utoipa::path(get, path = "/parse/users/{objectId}", tag = "parse", params(ParseHeaders, ParseUserPath, AsOfQuery),
    responses((status = 200, description = "The user", body = Object),
        (status = 404, description = "No such user (101)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_user_get() {}

#[utoipa::path(put, path = "/parse/users/{objectId}", tag = "parse", params(ParseHeaders, ParseUserPath),
    request_body(content = Object, description = "Fields to set, or Parse operations (`__op`)"),
    responses((status = 200, description = "`{updatedAt}`", body = Object),
        (status = 400, description = "Bad fields", body = ErrorBody),
        (status = 403, description = "Not permitted (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_user_update() {}

#[utoipa::path(delete, path = "/parse/users/{objectId}", tag = "parse", params(ParseHeaders, ParseUserPath),
    responses((status = 200, description = "`{}`", body = Object),
        (status = 403, description = "Not permitted (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_user_delete() {}

#[utoipa::path(get, path = "/parse/classes/{className}", tag = "parse", params(ParseHeaders, ParseClassPath, ParseQuery, AsOfQuery),
    responses((status = 200, description = "`{results, count?}`, `X-Ledger-Seq`: the event the answer reflects", body = Object),
        (status = 400, description = "A bad query: the field, operator or value is named (102, 105, 107)", body = ErrorBody),
        (status = 403, description = "Not permitted (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_find() {}

#[utoipa::path(post, path = "/parse/classes/{className}", tag = "parse", params(ParseHeaders, ParseClassPath),
    request_body(content = Object, description = "The record's fields (Pointer, Date and File encodings as Parse)"),
    responses((status = 201, description = "`{objectId, createdAt}`, once durable", body = Object),
        (status = 400, description = "Schema violation naming class, field, expected and given type (111, 142)", body = ErrorBody),
        (status = 403, description = "Not permitted (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_create() {}

#[utoipa::path(get, path = "/parse/classes/{className}/{objectId}", tag = "parse", params(ParseHeaders, ParseObjectPath, AsOfQuery),
    responses((status = 200, description = "The record", body = Object),
        (status = 404, description = "No such record (101)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_get() {}

#[utoipa::path(put, path = "/parse/classes/{className}/{objectId}", tag = "parse", params(ParseHeaders, ParseObjectPath),
    request_body(content = Object, description = "Fields to set, or Parse operations (`__op`: Delete, Increment, Add…); `_Reason` may carry the reason"),
    responses((status = 200, description = "`{updatedAt}`, once durable", body = Object),
        (status = 400, description = "Bad fields, or a required reason missing (142)", body = ErrorBody),
        (status = 404, description = "No such record (101)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_update() {}

#[utoipa::path(delete, path = "/parse/classes/{className}/{objectId}", tag = "parse", params(ParseHeaders, ParseObjectPath),
    responses((status = 200, description = "`{}`: a tombstone event; the history stays", body = Object),
        (status = 400, description = "A required reason missing (142)", body = ErrorBody),
        (status = 404, description = "No such record (101)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_delete() {}

#[utoipa::path(post, path = "/parse/batch", tag = "parse", params(ParseHeaders),
    request_body(content = Object, description = "`{requests: [{method, path, body}]}`"),
    responses((status = 200, description = "`[{success} | {error}]`, one per sub-request", body = Object),
        (status = 400, description = "No `requests` array, or `transaction` asked", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_batch() {}

#[utoipa::path(get, path = "/parse/schemas", tag = "parse", params(ParseHeaders),
    responses((status = 200, description = "`{results: [class]}` (admin)", body = Object),
        (status = 403, description = "Not an admin (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_schemas() {}

#[utoipa::path(get, path = "/parse/schemas/{className}", tag = "parse", params(ParseHeaders, ParseClassPath),
    responses((status = 200, description = "The class (admin)", body = Object),
        (status = 404, description = "No such class (103)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_schema_get() {}

#[utoipa::path(post, path = "/parse/schemas/{className}", tag = "parse", params(ParseHeaders, ParseClassPath),
    request_body(content = Object, description = "`{className, fields}`"),
    responses((status = 200, description = "The new class: a `schema.changed` event", body = Object),
        (status = 400, description = "A bad definition", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_schema_create() {}

#[utoipa::path(put, path = "/parse/schemas/{className}", tag = "parse", params(ParseHeaders, ParseClassPath),
    request_body(content = Object, description = "`{fields}` to add"),
    responses((status = 200, description = "The class after the change", body = Object),
        (status = 400, description = "A bad change", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_schema_update() {}

#[utoipa::path(delete, path = "/parse/schemas/{className}", tag = "parse", params(ParseHeaders, ParseClassPath),
    responses((status = 403, description = "Classes are never deleted: their history stays readable (119)", body = ErrorBody)))]
#[allow(dead_code)]
fn parse_schema_delete() {}
