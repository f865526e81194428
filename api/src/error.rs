//! The API's one error type: an HTTP status, a Parse error code and a message that names
//! the field, value or thing at fault, sent as Parse's `{"code": …, "error": "…"}`.
//!
//! Every refusal the server makes goes through [`ApiError`], and every library error is
//! mapped here once (see the `From` impls), so the table in docs/API.md stays true. A
//! deterministic refusal is never a 5xx: the Parse SDKs retry 5xx answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger::schema::validate::ValidationError;
use ledger::schema::SchemaError;
use ledger::AppendError;
use projections::ProjectionError;
use serde_json::json;

/// Parse's error codes that the server uses (the names are Parse's).
pub mod code {
    /// Something went wrong on the server's side.
    pub const INTERNAL_SERVER_ERROR: u16 = 1;
    /// The object (or user, for a failed login) does not exist.
    pub const OBJECT_NOT_FOUND: u16 = 101;
    /// A query is malformed.
    pub const INVALID_QUERY: u16 = 102;
    /// A class name is invalid or unknown.
    pub const INVALID_CLASS_NAME: u16 = 103;
    /// An objectId is missing where one is required.
    pub const MISSING_OBJECT_ID: u16 = 104;
    /// A field name is invalid or unknown.
    pub const INVALID_KEY_NAME: u16 = 105;
    /// A pointer is malformed or points nowhere.
    pub const INVALID_POINTER: u16 = 106;
    /// The body is not valid JSON, or not the JSON expected.
    pub const INVALID_JSON: u16 = 107;
    /// A value has the wrong type for its field.
    pub const INCORRECT_TYPE: u16 = 111;
    /// The request body is too large.
    pub const OBJECT_TOO_LARGE: u16 = 116;
    /// The operation is not allowed (role, class permissions, append-only class).
    pub const OPERATION_FORBIDDEN: u16 = 119;
    /// A unique value is taken.
    pub const DUPLICATE_VALUE: u16 = 137;
    /// A value breaks a schema rule (required field, bad date, …).
    pub const VALIDATION_ERROR: u16 = 142;
    /// The username is missing.
    pub const USERNAME_MISSING: u16 = 200;
    /// The password is missing.
    pub const PASSWORD_MISSING: u16 = 201;
    /// The username is taken.
    pub const USERNAME_TAKEN: u16 = 202;
    /// The session is missing where one is required.
    pub const SESSION_MISSING: u16 = 206;
    /// The session token is unknown, expired or revoked.
    pub const INVALID_SESSION_TOKEN: u16 = 209;
}

/// A refusal or failure, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The Parse error code.
    pub code: u16,
    /// What is wrong, naming the field or value.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a Parse code.
    pub fn bad(code: u16, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404, code 101.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::OBJECT_NOT_FOUND, message)
    }

    /// 403, code 119.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code::OPERATION_FORBIDDEN, message)
    }

    /// 401, code 209: no valid session.
    pub fn invalid_session(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::INVALID_SESSION_TOKEN,
            message,
        )
    }

    /// 500, code 1: the server failed (logged; never a refusal of the input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_SERVER_ERROR,
            message,
        )
    }

    /// 503, code 1: the server cannot take writes now (durability failure, shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL_SERVER_ERROR,
            message,
        )
    }

    /// The Parse body: `{"code": …, "error": "…"}`.
    pub fn body(&self) -> serde_json::Value {
        json!({"code": self.code, "error": self.message})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, error = %self.message, "request failed");
        }
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        use ValidationError as V;
        let code = match &e {
            V::UnknownClass { .. } => code::INVALID_CLASS_NAME,
            V::UnknownField { .. } | V::ReservedField { .. } => code::INVALID_KEY_NAME,
            V::WrongType { .. } => code::INCORRECT_TYPE,
            V::BadPointer { .. } => code::INVALID_POINTER,
            V::SecretField { .. } => code::OPERATION_FORBIDDEN,
            _ => code::VALIDATION_ERROR,
        };
        ApiError::bad(code, e.to_string())
    }
}

impl From<SchemaError> for ApiError {
    fn from(e: SchemaError) -> Self {
        ApiError::bad(code::INVALID_JSON, format!("schema: {e}"))
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        use AppendError as A;
        match e {
            A::Invalid(v) => v.into(),
            A::Schema(s) => s.into(),
            A::UnknownApp(app) => unknown_app(&app),
            A::NotFound { class, object_id } | A::Deleted { class, object_id } => {
                ApiError::not_found(format!("{class} {object_id}: object not found"))
            }
            e @ A::AlreadyExists { .. } => ApiError::bad(code::DUPLICATE_VALUE, e.to_string()),
            e @ A::PointerTargetMissing { .. } => {
                ApiError::bad(code::INVALID_POINTER, e.to_string())
            }
            e @ A::OutdatedVersion { .. } => ApiError::bad(code::VALIDATION_ERROR, e.to_string()),
            e @ A::AppExists(_) => ApiError::bad(code::DUPLICATE_VALUE, e.to_string()),
            e @ A::BadRequest { .. } => ApiError::bad(code::INVALID_JSON, e.to_string()),
            e @ (A::Durability(_) | A::Closed | A::WriteFailed(_) | A::StorageUnavailable(_)) => {
                ApiError::unavailable(e.to_string())
            }
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        use ProjectionError as P;
        match e {
            P::UnknownApp(app) => unknown_app(&app),
            e @ P::UnknownClass { .. } => ApiError::bad(code::INVALID_CLASS_NAME, e.to_string()),
            e @ P::BadObjectId(_) => ApiError::not_found(e.to_string()),
            P::Query(q) => ApiError::bad(q.code(), q.to_string()),
            e @ P::BeyondHead { .. } => ApiError::bad(code::INVALID_QUERY, e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

/// 403 for an `X-Parse-Application-Id` that names no app.
pub fn unknown_app(app: &str) -> ApiError {
    ApiError::forbidden(format!(
        "unknown application id {app:?}: send X-Parse-Application-Id with one of this server's apps"
    ))
}

/// Result with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;
