//! `AppError`: every failure a handler can return, mapped to the contract's status and
//! `{"detail": …}` body. Caller mistakes are 4xx (including values too large for Postgres to
//! store or index: 413); an unreachable database, or one refusing our login, is 503; anything
//! else is a logged 500 with no internals in the body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{1}")]
    Status(StatusCode, Value),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("embedding: {0}")]
    Embedding(#[from] crate::embedding::EmbeddingError),
    #[error("internal: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn status(code: StatusCode, detail: impl Into<Value>) -> Self {
        AppError::Status(code, detail.into())
    }
    pub fn bad_request(detail: impl Into<Value>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unauthorized(detail: &str) -> Self {
        Self::status(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn forbidden(detail: impl Into<Value>) -> Self {
        Self::status(StatusCode::FORBIDDEN, detail)
    }
    pub fn not_found(detail: &str) -> Self {
        Self::status(StatusCode::NOT_FOUND, detail)
    }
    pub fn unprocessable(detail: impl Into<Value>) -> Self {
        Self::status(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    /// FastAPI's validation error body: a list of `{loc, msg, type}`.
    pub fn validation(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self::unprocessable(json!([{ "loc": loc, "msg": msg.into(), "type": kind }]))
    }
}

/// Errors that mean "the database is not there right now" rather than "this query is wrong".
/// A refused login is one of them: the credentials are rotated outside the API (a Secret, an
/// `ALTER ROLE ... PASSWORD`), and the service recovers once they match again.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            // 57P01 admin_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions
            db.code().is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03")
                || is_login_rejected(e)
        }
        _ => false,
    }
}

/// Postgres refused to open a session: 28P01 invalid_password (wrong password), 28000
/// invalid_authorization_specification (unknown role, `NOLOGIN`, no `pg_hba.conf` entry). sqlx
/// returns the server's error as [`sqlx::Error::Database`] from the connect (and from a pool's
/// acquire, which does not retry these).
pub fn is_login_rejected(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")))
}

/// A value the caller sent is too large for Postgres to store or index: 54000
/// program_limit_exceeded ("string is too long for tsvector", "index row size exceeds btree
/// maximum"). That is a caller mistake, not ours.
pub fn is_too_large(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("54000"))
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (code, detail) = match self {
            AppError::Status(code, detail) => (code, detail),
            AppError::Db(e) if is_unavailable(&e) => {
                if is_login_rejected(&e) {
                    // Logged at error level once per change by the database watch
                    // (runtime/lifecycle.rs), not once per request.
                    tracing::debug!(error = %e, "database unavailable: login rejected");
                } else {
                    tracing::warn!(error = %e, "database unavailable");
                }
                (StatusCode::SERVICE_UNAVAILABLE, json!("Database unavailable"))
            }
            AppError::Db(e) if is_too_large(&e) => {
                tracing::info!(error = %e, "value too large to store");
                (StatusCode::PAYLOAD_TOO_LARGE, json!("Value too large to store"))
            }
            AppError::Db(e) => {
                tracing::error!(error = %e, "database error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!("Internal server error"))
            }
            AppError::Embedding(e) => {
                tracing::error!(error = %e, "embedding failed");
                (StatusCode::SERVICE_UNAVAILABLE, json!("Embedding backend unavailable"))
            }
            AppError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!("Internal server error"))
            }
        };
        (code, axum::Json(json!({ "detail": detail }))).into_response()
    }
}
