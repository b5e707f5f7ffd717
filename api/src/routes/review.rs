//! Quarantine routes: propose (writers), list and review (admins).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::governance::quarantine;
use crate::routes::paging::{self, Cursor};
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::store::layers::Layer;
use crate::web::error::{AppError, AppResult};
use crate::web::extract::{JsonBody, QueryParams, check_range};

pub async fn propose(
    State(state): State<AppState>,
    p: Principal,
    Path(layer): Path<String>,
    JsonBody(body): JsonBody<serde_json::Map<String, Value>>,
) -> AppResult<Response> {
    let layer = Layer::parse_document(&layer).ok_or_else(|| AppError::bad_request("Unsupported quarantine layer"))?;
    p.require(Perm::Propose)?;
    let item = quarantine::propose_route(&state, &p, layer, Value::Object(body)).await?;
    Ok((StatusCode::ACCEPTED, Json(item)).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default = "pending")]
    status_filter: String,
    #[serde(default = "default_limit")]
    limit: i64,
    cursor: Option<String>,
}
fn pending() -> String {
    "pending".into()
}
fn default_limit() -> i64 {
    100
}

pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<ListQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = Cursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Review)?;
    let rows = quarantine::list(&state, &p, &q.status_filter, limit, &cursor).await?;
    Ok(paging::page(rows, limit, "created_at"))
}

async fn review(state: AppState, p: Principal, id: String, approve: bool) -> AppResult<Json<Value>> {
    p.require(Perm::Review)?;
    let id = Uuid::parse_str(&id).map_err(|_| AppError::not_found("Quarantine item not found"))?;
    Ok(Json(quarantine::review(&state, &p, id, approve).await?))
}

pub async fn approve(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> AppResult<Json<Value>> {
    review(state, p, id, true).await
}

pub async fn reject(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> AppResult<Json<Value>> {
    review(state, p, id, false).await
}
