//! Unauthenticated liveness/readiness, Prometheus metrics, and the prototype's JSON metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::runtime::metrics;
use crate::runtime::state::AppState;
use crate::security::auth;
use crate::security::permissions::Perm;
use crate::web::error::{AppError, AppResult};
use crate::web::http::not_ready;

pub async fn root() -> Json<Value> {
    Json(json!({ "status": "Memory service is running" }))
}

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

pub async fn health(State(state): State<AppState>) -> Response {
    if !state.is_ready() {
        return not_ready(&state);
    }
    let e = &state.embedder;
    Json(json!({
        "status": "ok",
        "embedding_backend": e.backend_name(),
        "vector_enabled": e.is_enabled(),
        "embedding_model": if matches!(e, crate::embedding::Embedder::Dummy(_)) { None } else { e.model_name() },
    }))
    .into_response()
}

pub async fn prometheus(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics::render(&state.pool),
    )
        .into_response()
}

/// `GET /api/v1/metrics`: admin only; per-process request counters plus store counts.
pub async fn json_metrics(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Json<Value>> {
    auth::bearer_token(&headers)?;
    let p = auth::authenticate(&headers, &state).await?;
    p.require(Perm::Metrics)?;
    if !state.is_ready() {
        return Err(AppError::status(axum::http::StatusCode::SERVICE_UNAVAILABLE, "Memory service not ready"));
    }
    // Rows of the vectorised layers with and without a vector: a gap is what the reembed job
    // fills, and what `pinak doctor` reports.
    let (vectors, without): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE v), count(*) FILTER (WHERE NOT v) FROM (
             SELECT embedding IS NOT NULL AS v FROM memories_semantic WHERE tenant = $1 AND project_id = $2
             UNION ALL SELECT embedding IS NOT NULL FROM memories_episodic WHERE tenant = $1 AND project_id = $2
             UNION ALL SELECT embedding IS NOT NULL FROM memories_procedural WHERE tenant = $1 AND project_id = $2) r",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .fetch_one(&state.pool)
    .await?;
    let schema_version = crate::store::db::migration_version(&state.pool).await?;
    let pgvector: Option<String> = sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        .fetch_optional(&state.pool)
        .await?;
    let access_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM logs_access WHERE tenant = $1 AND project_id = $2")
        .bind(&p.scope.tenant)
        .bind(&p.scope.project)
        .fetch_one(&state.pool)
        .await?;
    Ok(Json(json!({
        "verification": state.readiness_state(),
        "vectors": vectors,
        "rows_without_vectors": without,
        "schema_version": schema_version,
        "pgvector": pgvector,
        "access_rows": access_rows,
        "requests": metrics::request_summary(),
    })))
}
