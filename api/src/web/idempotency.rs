//! `Idempotency-Key` on the write routes (`POST`/`PUT`/`DELETE` under `/api/v1/memory/`): a
//! retry with the same key and the same request gets the first answer again and writes
//! nothing; the same key with another request is a 422.
//!
//! Keys belong to the caller's tenant and project. The first request claims its key (a row
//! with no answer yet, committed at once), runs, and stores its answer; a concurrent retry
//! waits for that answer (polling, within the request timeout). A 5xx answer is not kept, so
//! a retry runs again. A key is forgotten after `PINAK_IDEMPOTENCY_TTL_SECS` (the
//! `prune_idempotency_keys` job deletes it; an expired key is reclaimed before that). A claim
//! whose request died without answering (its pod was killed) is taken over after twice the
//! request timeout; if that request had already committed its write, the retry writes again:
//! the answer is stored after the write commits, not in its transaction.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::runtime::state::AppState;
use crate::security::auth;
use crate::web::error::{AppError, AppResult};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;
/// How often a retry looks for the first request's answer.
const POLL: Duration = Duration::from_millis(50);
/// Largest answer kept for replay (write answers are small; this only bounds memory).
const MAX_ANSWER_BYTES: usize = 4 * 1_048_576;

/// Whether `req` is a write that asks for idempotency.
pub fn applies(req: &Request) -> bool {
    matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE | Method::PATCH)
        && req.uri().path().starts_with("/api/v1/memory/")
        && req.headers().contains_key(HEADER)
}

/// Runs `req` once per key (see the module comment).
pub async fn run(state: &AppState, req: Request, next: Next) -> Response {
    handle(state, req, next).await.unwrap_or_else(IntoResponse::into_response)
}

/// A key as stored: 1-255 visible ASCII characters.
fn key_of(req: &Request) -> AppResult<String> {
    let bad = || {
        AppError::validation(
            &["header", "Idempotency-Key"],
            format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
            "value_error",
        )
    };
    let key = req.headers().get(HEADER).and_then(|v| v.to_str().ok()).ok_or_else(bad)?;
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(key.to_owned())
}

/// The request's fingerprint: method, path with query, and body.
fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b"\n");
    h.update(uri.path_and_query().map_or("", |p| p.as_str()));
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// Claims `key`, or takes over an expired key or a dead claim of the same request. True when
/// this request now owns the key.
const CLAIM_SQL: &str = "INSERT INTO idempotency_keys AS k (tenant, project_id, key, request_hash) VALUES ($1, $2, $3, $4)
    ON CONFLICT (tenant, project_id, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, status = NULL, content_type = NULL, body = NULL, created_at = now()
        WHERE k.created_at < now() - make_interval(secs => $5)
           OR (k.status IS NULL AND k.request_hash = EXCLUDED.request_hash AND k.created_at < now() - make_interval(secs => $6))
    RETURNING 1";

type Stored = (String, Option<i16>, Option<String>, Option<Vec<u8>>);

async fn handle(state: &AppState, req: Request, next: Next) -> AppResult<Response> {
    let key = key_of(&req)?;
    let principal = auth::authenticate(req.headers(), state).await?;
    let (tenant, project) = (principal.scope.tenant, principal.scope.project);
    let (parts, body) = req.into_parts();
    // The body was already read and capped by the pipeline.
    let bytes =
        axum::body::to_bytes(body, usize::MAX).await.map_err(|_| AppError::bad_request("Request body interrupted"))?;
    let hash = fingerprint(&parts.method, &parts.uri, &bytes);
    let ttl = state.config.idempotency_ttl.as_secs_f64();
    let dead = 2.0 * state.config.request_timeout.as_secs_f64();
    loop {
        let claimed: Option<i32> = sqlx::query_scalar(CLAIM_SQL)
            .bind(&tenant)
            .bind(&project)
            .bind(&key)
            .bind(&hash)
            .bind(ttl)
            .bind(dead)
            .fetch_optional(&state.pool)
            .await?;
        if claimed.is_some() {
            break;
        }
        let stored: Option<Stored> = sqlx::query_as(
            "SELECT request_hash, status, content_type, body FROM idempotency_keys
             WHERE tenant = $1 AND project_id = $2 AND key = $3",
        )
        .bind(&tenant)
        .bind(&project)
        .bind(&key)
        .fetch_optional(&state.pool)
        .await?;
        match stored {
            Some((h, _, _, _)) if h != hash => {
                return Err(AppError::validation(
                    &["header", "Idempotency-Key"],
                    "this Idempotency-Key was used with another request (method, path or body)",
                    "value_error",
                ));
            }
            Some((_, Some(status), content_type, body)) => return Ok(replay(status, content_type, body)),
            // Running elsewhere (wait for its answer), or deleted in between (claim again).
            _ => tokio::time::sleep(POLL).await,
        }
    }
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let forget = || async {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant = $1 AND project_id = $2 AND key = $3 AND status IS NULL",
        )
        .bind(&tenant)
        .bind(&project)
        .bind(&key)
        .execute(&state.pool)
        .await
    };
    if resp.status().is_server_error() {
        forget().await?;
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        forget().await?;
        return Err(AppError::status(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"));
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    sqlx::query(
        "UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6
         WHERE tenant = $1 AND project_id = $2 AND key = $3",
    )
    .bind(&tenant)
    .bind(&project)
    .bind(&key)
    .bind(parts.status.as_u16() as i16)
    .bind(content_type)
    .bind(bytes.to_vec())
    .execute(&state.pool)
    .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The stored answer, marked as a replay.
fn replay(status: i16, content_type: Option<String>, body: Option<Vec<u8>>) -> Response {
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let mut resp = (status, body.unwrap_or_default()).into_response();
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}
