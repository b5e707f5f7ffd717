//! Admin operations: audit-chain verification and head export, and token revocation.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::governance::audit::{self, ChainReport};
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::web::error::{AppError, AppResult};
use crate::web::extract::{JsonBody, OptionalJsonBody};

/// A previously exported head: the chain must still contain it, else its tail was cut.
#[derive(Deserialize)]
struct Anchor {
    seq: i64,
    head_hash: String,
}

fn parse_anchor(state: &AppState, tenant: &str, body: Option<Value>) -> AppResult<Option<Anchor>> {
    let invalid = |why: &str| AppError::bad_request(format!("Invalid anchor: {why}"));
    let Some(anchor) = body.as_ref().and_then(|b| b.get("anchor")).filter(|a| !a.is_null()) else { return Ok(None) };
    match anchor {
        Value::String(token) => {
            let key = state
                .config
                .audit_signing_key
                .as_deref()
                .ok_or_else(|| invalid("no PINAK_AUDIT_SIGNING_KEY to verify it"))?;
            let claims = audit::verify_head(key, token).ok_or_else(|| invalid("bad signature"))?;
            if claims.tenant != tenant {
                return Err(invalid("another tenant's head"));
            }
            Ok(Some(Anchor { seq: claims.seq, head_hash: claims.head_hash }))
        }
        other => serde_json::from_value(other.clone())
            .map(Some)
            .map_err(|_| invalid("expected {seq, head_hash} or a signed head")),
    }
}

/// Verifies the tenant's chain and, given an exported head (`{"anchor": …}`), that the chain
/// still reaches it: a deleted tail is otherwise undetectable.
pub async fn verify(
    State(state): State<AppState>,
    p: Principal,
    OptionalJsonBody(body): OptionalJsonBody,
) -> AppResult<Json<Value>> {
    p.require(Perm::Audit)?;
    let anchor = parse_anchor(&state, &p.scope.tenant, body)?;
    let (checked, head_hash) = match audit::verify(&state.pool, &p.scope.tenant).await? {
        ChainReport::Valid { checked, head_hash } => (checked, head_hash),
        ChainReport::Broken { checked, first_bad_id } => {
            return Err(AppError::status(
                StatusCode::CONFLICT,
                json!({ "audit": { "valid": false, "checked": checked, "first_bad_id": first_bad_id } }),
            ));
        }
    };
    if let Some(a) = anchor {
        match audit::link_at(&state.pool, &p.scope.tenant, a.seq).await? {
            Some((_, hash)) if hash == a.head_hash => {}
            Some((id, _)) => {
                return Err(AppError::status(
                    StatusCode::CONFLICT,
                    json!({ "audit": { "valid": false, "checked": checked, "first_bad_id": id, "anchor_seq": a.seq } }),
                ));
            }
            None => {
                return Err(AppError::status(
                    StatusCode::CONFLICT,
                    json!({ "audit": { "valid": false, "checked": checked, "truncated": true, "anchor_seq": a.seq } }),
                ));
            }
        }
    }
    Ok(Json(json!({
        "audit": { "valid": true, "checked": checked, "head_hash": head_hash },
        "vectors_checked": state.embedder.is_enabled(),
        "condensed": false,
    })))
}

/// The chain head, signed when `PINAK_AUDIT_SIGNING_KEY` is set, for safekeeping outside the
/// database (a later `verify` with it as `anchor` detects a truncated tail).
pub async fn audit_head(State(state): State<AppState>, p: Principal) -> AppResult<Json<Value>> {
    p.require(Perm::Audit)?;
    let Some((seq, head_hash, ts)) = audit::head(&state.pool, &p.scope.tenant).await? else {
        return Ok(Json(
            json!({ "tenant": p.scope.tenant, "seq": 0, "head_hash": null, "ts": null, "signature": null }),
        ));
    };
    let signature = match state.config.audit_signing_key.as_deref() {
        Some(key) => Some(
            audit::sign_head(key, &p.scope.tenant, seq, &head_hash).map_err(|e| AppError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    Ok(Json(json!({ "tenant": p.scope.tenant, "seq": seq, "head_hash": head_hash, "ts": ts, "signature": signature })))
}

#[derive(Deserialize)]
pub struct Revoke {
    jti: String,
    expires_at: Option<String>,
}

/// Revocations without an expiry are kept this long (longer than any token we mint).
const DEFAULT_REVOCATION_DAYS: i64 = 365;

pub async fn revoke(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<Revoke>,
) -> AppResult<StatusCode> {
    if b.jti.is_empty() || b.jti.chars().count() > 256 {
        return Err(AppError::validation(&["body", "jti"], "jti must be 1-256 characters", "value_error"));
    }
    let expires_at = match b.expires_at {
        Some(s) => DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            AppError::validation(
                &["body", "expires_at"],
                "expires_at must be an RFC 3339 timestamp with offset",
                "value_error",
            )
        })?,
        None => Utc::now() + Duration::days(DEFAULT_REVOCATION_DAYS),
    };
    p.require(Perm::Revoke)?;
    let mut tx = state.pool.begin().await?;
    // The admin's own tenant: a revocation never reaches another tenant's tokens.
    sqlx::query("INSERT INTO revoked_jti (tenant, jti, expires_at, revoked_by) VALUES ($4, $1, $2, $3) ON CONFLICT (tenant, jti) DO UPDATE SET expires_at = GREATEST(revoked_jti.expires_at, EXCLUDED.expires_at)")
        .bind(&b.jti)
        .bind(expires_at)
        .bind(p.agent_id())
        .bind(&p.scope.tenant)
        .execute(&mut *tx)
        .await?;
    audit::append(&mut tx, &p.scope.tenant, "auth:revoke", &json!({ "jti": b.jti, "by": p.agent_id() })).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
