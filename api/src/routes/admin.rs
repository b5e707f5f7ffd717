//! Admin operations: audit-chain verification and token revocation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{self, ChainReport};
use crate::auth::Principal;
use crate::permissions::Perm;
use crate::error::{AppError, AppResult};
use crate::extract::JsonBody;
use crate::state::AppState;

pub async fn verify(State(state): State<AppState>, p: Principal) -> AppResult<Json<Value>> {
    p.require(Perm::Audit)?;
    match audit::verify(&state.pool, &p.scope.tenant).await? {
        ChainReport::Valid { checked, head_hash } => Ok(Json(json!({
            "audit": { "valid": true, "checked": checked, "head_hash": head_hash },
            "vectors_checked": state.embedder.is_enabled(),
            "condensed": false,
        }))),
        ChainReport::Broken { checked, first_bad_id } => {
            Err(AppError::status(StatusCode::CONFLICT, json!({ "audit": { "valid": false, "checked": checked, "first_bad_id": first_bad_id } })))
        }
    }
}

#[derive(Deserialize)]
pub struct Revoke {
    jti: String,
    expires_at: Option<String>,
}

/// Revocations without an expiry are kept this long (longer than any token we mint).
const DEFAULT_REVOCATION_DAYS: i64 = 365;

pub async fn revoke(State(state): State<AppState>, p: Principal, JsonBody(b): JsonBody<Revoke>) -> AppResult<StatusCode> {
    if b.jti.is_empty() || b.jti.chars().count() > 256 {
        return Err(AppError::validation(&["body", "jti"], "jti must be 1-256 characters", "value_error"));
    }
    let expires_at = match b.expires_at {
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| AppError::validation(&["body", "expires_at"], "expires_at must be an RFC 3339 timestamp with offset", "value_error"))?,
        None => Utc::now() + Duration::days(DEFAULT_REVOCATION_DAYS),
    };
    p.require(Perm::Revoke)?;
    let mut tx = state.pool.begin().await?;
    sqlx::query("INSERT INTO revoked_jti (jti, expires_at, revoked_by) VALUES ($1, $2, $3) ON CONFLICT (jti) DO UPDATE SET expires_at = GREATEST(revoked_jti.expires_at, EXCLUDED.expires_at)")
        .bind(&b.jti)
        .bind(expires_at)
        .bind(p.agent_id())
        .execute(&mut *tx)
        .await?;
    audit::append(&mut tx, &p.scope.tenant, "auth:revoke", &json!({ "jti": b.jti, "by": p.agent_id() })).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
