//! Agent heartbeats, access log, client registry and client issues.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::governance::actor::Actor;
use crate::governance::clients::{self, NewIssue};
use crate::routes::paging::{self, Cursor, KeyCursor};
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::web::error::{AppError, AppResult};
use crate::web::extract::{JsonBody, OptionalJsonBody, QueryParams, check_range};

#[derive(Deserialize)]
pub struct Heartbeat {
    #[serde(default = "active")]
    status: String,
    hostname: Option<String>,
    pid: Option<Value>,
    meta: Option<Map<String, Value>>,
}
fn active() -> String {
    "active".into()
}

pub async fn heartbeat(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<Heartbeat>,
) -> AppResult<Json<Value>> {
    p.require(Perm::Observe)?;
    let pid = b.pid.map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    });
    let row: Value = sqlx::query_scalar(
        "INSERT INTO logs_agents AS a (id, tenant, project_id, agent_id, client_name, client_id, parent_client_id, hostname, pid, status, meta, last_seen)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11, now())
         ON CONFLICT (tenant, project_id, agent_id, client_name) DO UPDATE SET
             client_id = EXCLUDED.client_id, parent_client_id = EXCLUDED.parent_client_id, hostname = EXCLUDED.hostname,
             pid = EXCLUDED.pid, status = EXCLUDED.status, meta = EXCLUDED.meta, last_seen = now()
         RETURNING to_jsonb(a) - 'id'",
    )
    .bind(Uuid::new_v4())
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(p.agent_id())
    .bind(p.client_name.clone().unwrap_or_else(|| "unknown".into()))
    .bind(&p.client_id)
    .bind(&p.parent_client_id)
    .bind(&b.hostname)
    .bind(&pid)
    .bind(&b.status)
    .bind(Value::Object(b.meta.unwrap_or_default()))
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(row))
}

#[derive(Deserialize)]
pub struct LimitQuery {
    #[serde(default = "default_limit")]
    limit: i64,
    cursor: Option<String>,
}
fn default_limit() -> i64 {
    200
}

pub async fn list_agents(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<LimitQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = KeyCursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Observe)?;
    let sql = "SELECT to_jsonb(a) - 'id', last_seen, id::text FROM logs_agents a WHERE tenant = $1 AND project_id = $2
           AND ($4::timestamptz IS NULL OR (last_seen, id::text) < ($4, $5))
         ORDER BY last_seen DESC, id::text DESC LIMIT $3";
    paging::keyed_page(&state.pool, sql, &p.scope, limit, cursor.ts(), cursor.key()).await
}

pub async fn list_access(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<LimitQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = KeyCursor::parse(q.cursor.as_deref())?;
    let after_id = cursor.key_i64()?;
    p.require(Perm::Observe)?;
    let sql = "SELECT to_jsonb(a) - 'id' - 'tenant' - 'project_id', ts, id::text FROM logs_access a
         WHERE tenant = $1 AND project_id = $2 AND ($4::timestamptz IS NULL OR (ts, id) < ($4, $5))
         ORDER BY ts DESC, id DESC LIMIT $3";
    paging::keyed_page(&state.pool, sql, &p.scope, limit, cursor.ts(), after_id).await
}

#[derive(Deserialize)]
pub struct Register {
    client_id: String,
    client_name: Option<String>,
    parent_client_id: Option<String>,
    #[serde(default = "registered")]
    status: String,
    metadata: Option<Map<String, Value>>,
}
fn registered() -> String {
    clients::REGISTERED.into()
}

const CLIENT_JSON: &str = "to_jsonb(c) - 'id'";

/// Registration rules: statuses are a closed set; only admins set or leave `trusted`/`blocked`;
/// a non-admin registers only its own signed identities, and its re-registration keeps the
/// existing status.
pub async fn register_client(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<Register>,
) -> AppResult<Response> {
    p.require(Perm::RegisterClient)?;
    if b.client_id.trim().is_empty() || b.client_id.chars().count() > 256 {
        return Err(AppError::validation(&["body", "client_id"], "client_id must be 1-256 characters", "value_error"));
    }
    if !clients::STATUSES.contains(&b.status.as_str()) {
        return Err(AppError::validation(
            &["body", "status"],
            format!("status must be one of {}", clients::STATUSES.join(", ")),
            "value_error",
        ));
    }
    if clients::is_privileged_status(&b.status) && !p.is_admin() {
        return Err(AppError::forbidden("Missing role: admin"));
    }
    clients::check_registration(&p, &b.client_id, b.parent_client_id.as_deref())?;
    let mut tx = state.pool.begin().await?;
    if let Some(parent) = &b.parent_client_id {
        check_child_cap(&mut tx, &p, parent, &b.client_id).await?;
    }
    let existing = clients::status_of(&mut tx, &p.scope, &b.client_id).await?;
    let status = match existing.as_deref() {
        Some(s) if clients::is_privileged_status(s) && !p.is_admin() => s.to_owned(),
        _ => b.status.clone(),
    };
    let row: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO clients_registry AS c (id, tenant, project_id, client_id, client_name, parent_client_id, status, metadata, last_seen)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8, now())
         ON CONFLICT (tenant, project_id, client_id) DO UPDATE SET
             client_name = COALESCE(EXCLUDED.client_name, c.client_name),
             parent_client_id = COALESCE(EXCLUDED.parent_client_id, c.parent_client_id),
             status = EXCLUDED.status, metadata = EXCLUDED.metadata, updated_at = now(), last_seen = now()
         RETURNING {CLIENT_JSON}"
    )))
    .bind(Uuid::new_v4())
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(&b.client_id)
    .bind(&b.client_name)
    .bind(&b.parent_client_id)
    .bind(&status)
    .bind(b.metadata.map(Value::Object))
    .fetch_one(&mut *tx)
    .await?;
    if existing.as_deref() != Some(status.as_str()) {
        crate::governance::audit::append(
            &mut tx,
            &p.scope.tenant,
            "client:status",
            &json!({ "client_id": b.client_id, "from": existing, "to": status, "by": p.agent_id() }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// Most children one parent client may have registered under it (422 beyond); it also bounds
/// the children a `/client/summary` lists.
pub const MAX_CHILDREN_PER_PARENT: i64 = 100;

/// Refuses registering `client_id` under `parent` when the parent already has
/// `MAX_CHILDREN_PER_PARENT` other children. Registrations under one parent are serialised by a
/// transaction lock, so concurrent ones cannot overshoot.
async fn check_child_cap(tx: &mut sqlx::PgConnection, p: &Principal, parent: &str, client_id: &str) -> AppResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pinak-children:' || $1 || ':' || $2 || ':' || $3))")
        .bind(&p.scope.tenant)
        .bind(&p.scope.project)
        .bind(parent)
        .execute(&mut *tx)
        .await?;
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM clients_registry
         WHERE tenant = $1 AND project_id = $2 AND parent_client_id = $3 AND client_id <> $4",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(parent)
    .bind(client_id)
    .fetch_one(&mut *tx)
    .await?;
    if others >= MAX_CHILDREN_PER_PARENT {
        return Err(AppError::validation(
            &["body", "parent_client_id"],
            format!("client {parent} already has {MAX_CHILDREN_PER_PARENT} children, the most a parent may have"),
            "too_many_children",
        ));
    }
    Ok(())
}

/// Clients, most recently seen first (`last_seen` is set by every upsert; `created_at`
/// stands in should it be missing), keyed by `client_id` for the cursor.
pub async fn list_clients(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<LimitQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = KeyCursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Observe)?;
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {CLIENT_JSON}, coalesce(last_seen, created_at) AS seen, client_id FROM clients_registry c
         WHERE tenant = $1 AND project_id = $2
           AND ($4::timestamptz IS NULL OR (coalesce(last_seen, created_at), client_id) < ($4, $5))
         ORDER BY seen DESC, client_id DESC LIMIT $3"
    ));
    paging::keyed_page(&state.pool, sql, &p.scope, limit, cursor.ts(), cursor.key()).await
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    #[serde(default = "yes")]
    include_children: bool,
}
fn yes() -> bool {
    true
}

/// Per-layer counts and last writes of each of `client_ids`, with open issues and pending
/// proposals, in one grouped statement (a summary with children costs one round trip, not one
/// per child). Every id gets an entry, with zero counts when it wrote nothing.
async fn client_stats(
    state: &AppState,
    p: &Principal,
    client_ids: &[String],
) -> AppResult<std::collections::HashMap<String, Value>> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "WITH ids AS (SELECT DISTINCT unnest($3::text[]) AS client_id),
         agg AS (
            SELECT 'semantic' AS layer, client_id, count(*) AS n, max(coalesce(updated_at, created_at)) AS last FROM memories_semantic WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) GROUP BY client_id
            UNION ALL SELECT 'episodic', client_id, count(*), max(coalesce(updated_at, created_at)) FROM memories_episodic WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) GROUP BY client_id
            UNION ALL SELECT 'procedural', client_id, count(*), max(coalesce(updated_at, created_at)) FROM memories_procedural WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) GROUP BY client_id
            UNION ALL SELECT 'rag', client_id, count(*), max(coalesce(updated_at, created_at)) FROM memories_rag WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) GROUP BY client_id
            UNION ALL SELECT 'working', client_id, count(*), max(updated_at) FROM working_memory WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) GROUP BY client_id),
         c AS (
            SELECT i.client_id, l.layer, coalesce(a.n, 0) AS n, a.last
            FROM ids i CROSS JOIN (VALUES ('semantic'), ('episodic'), ('procedural'), ('rag'), ('working')) AS l(layer)
            LEFT JOIN agg a ON a.client_id = i.client_id AND a.layer = l.layer),
         iss AS (SELECT client_id, count(*) AS n FROM logs_client_issues WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) AND status='open' GROUP BY client_id),
         qua AS (SELECT client_id, count(*) AS n FROM memory_quarantine WHERE tenant=$1 AND project_id=$2 AND client_id = ANY($3) AND status='pending' GROUP BY client_id)
         SELECT i.client_id, jsonb_build_object(
            'counts', (SELECT jsonb_object_agg(layer, n) FROM c WHERE c.client_id = i.client_id),
            'last_write', (SELECT jsonb_object_agg(layer, last) FROM c WHERE c.client_id = i.client_id),
            'total', (SELECT sum(n) FROM c WHERE c.client_id = i.client_id),
            'open_issues', coalesce((SELECT n FROM iss WHERE iss.client_id = i.client_id), 0),
            'pending_quarantine', coalesce((SELECT n FROM qua WHERE qua.client_id = i.client_id), 0))
         FROM ids i",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(client_ids)
    .fetch_all(&state.pool)
    .await?;
    Ok(rows.into_iter().collect())
}

fn add_stats(total: &mut Value, s: &Value) {
    for key in ["total", "open_issues", "pending_quarantine"] {
        total[key] = json!(total[key].as_i64().unwrap_or(0) + s[key].as_i64().unwrap_or(0));
    }
    for (layer, n) in s["counts"].as_object().into_iter().flatten() {
        total["counts"][layer] = json!(total["counts"][layer].as_i64().unwrap_or(0) + n.as_i64().unwrap_or(0));
    }
    for (layer, t) in s["last_write"].as_object().into_iter().flatten() {
        let cur = total["last_write"][layer].as_str().unwrap_or("").to_owned();
        if let Some(t) = t.as_str().filter(|t| *t > cur.as_str()) {
            total["last_write"][layer] = json!(t);
        }
    }
}

pub async fn client_summary(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<SummaryQuery>,
) -> AppResult<Json<Value>> {
    p.require(Perm::Observe)?;
    let client_id = p.client_id.clone().unwrap_or_else(|| p.effective_client_id());
    let reg: Option<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {CLIENT_JSON} FROM clients_registry c WHERE tenant=$1 AND project_id=$2 AND client_id=$3"
    )))
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(&client_id)
    .fetch_optional(&state.pool)
    .await?;
    let reg = reg.unwrap_or(json!({}));
    let child_rows: Vec<Value> = if q.include_children {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {CLIENT_JSON} FROM clients_registry c WHERE tenant=$1 AND project_id=$2 AND parent_client_id=$3 ORDER BY client_id LIMIT $4")))
            .bind(&p.scope.tenant)
            .bind(&p.scope.project)
            .bind(&client_id)
            .bind(MAX_CHILDREN_PER_PARENT)
            .fetch_all(&state.pool)
            .await?
    } else {
        Vec::new()
    };
    let mut ids = vec![client_id.clone()];
    ids.extend(child_rows.iter().map(|c| c["client_id"].as_str().unwrap_or_default().to_owned()));
    let mut stats = client_stats(&state, &p, &ids).await?;
    let summary = stats.remove(&client_id).unwrap_or_else(|| json!({}));
    let mut combined = json!({ "counts": {}, "last_write": {}, "total": 0, "open_issues": 0, "pending_quarantine": 0 });
    add_stats(&mut combined, &summary);
    let mut children = Vec::with_capacity(child_rows.len());
    for (child, cid) in child_rows.iter().zip(&ids[1..]) {
        // A child that is also the parent itself (a self-loop) is counted once.
        let child_stats =
            if *cid == client_id { summary.clone() } else { stats.remove(cid).unwrap_or_else(|| json!({})) };
        if *cid != client_id {
            add_stats(&mut combined, &child_stats);
        }
        let mut entry = json!({ "client_id": cid, "client_name": child["client_name"], "status": child["status"], "parent_client_id": child["parent_client_id"], "last_seen": child["last_seen"] });
        for (k, v) in child_stats.as_object().into_iter().flatten() {
            entry[k] = v.clone();
        }
        children.push(entry);
    }
    Ok(Json(json!({
        "client": { "client_id": client_id, "client_name": reg.get("client_name").cloned().or(p.client_name.clone().map(Value::from)),
                    "status": reg.get("status").cloned().unwrap_or(json!("unknown")), "parent_client_id": reg.get("parent_client_id"), "last_seen": reg.get("last_seen") },
        "summary": summary,
        "children": children,
        "combined": combined,
    })))
}

#[derive(Deserialize)]
pub struct IssueBody {
    error_code: String,
    message: String,
    layer: Option<String>,
    payload: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
}

pub async fn create_issue(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<IssueBody>,
) -> AppResult<Response> {
    p.require(Perm::FileIssue)?;
    let actor = Actor::from(&p);
    let mut tx = state.pool.begin().await?;
    let status = clients::status_of(&mut tx, &p.scope, &actor.client_id).await?;
    let mut issue = NewIssue::new(&b.error_code, &b.message);
    issue.layer = b.layer;
    issue.payload = b.payload.map(Value::Object);
    issue.metadata = b.metadata.map(Value::Object);
    let mut row = clients::file_issue(&mut tx, &p.scope, &actor, issue).await?;
    let auto = state.config.auto_resolve_issues.iter().any(|c| c == &b.error_code)
        && clients::is_trusted(&state.config, &actor.client_id, status.as_deref());
    if auto {
        let id = row["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| AppError::Internal("issue id".into()))?;
        row = clients::resolve_issue(&mut tx, &p.scope, id, "auto-policy", "auto-resolved by policy")
            .await?
            .unwrap_or(row);
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

#[derive(Deserialize)]
pub struct IssueListQuery {
    #[serde(default = "open")]
    status_filter: String,
    #[serde(default = "default_limit")]
    limit: i64,
    cursor: Option<String>,
}
fn open() -> String {
    "open".into()
}

pub async fn list_issues(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<IssueListQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = Cursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Observe)?;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(i) FROM logs_client_issues i WHERE tenant = $1 AND project_id = $2 AND status = $3
           AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))
         ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(&q.status_filter)
    .bind(limit)
    .bind(cursor.ts())
    .bind(cursor.id())
    .fetch_all(&state.pool)
    .await?;
    Ok(paging::page(rows, limit, "created_at"))
}

pub async fn resolve_issue(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> AppResult<Json<Value>> {
    let resolution = match &body {
        None => "resolved".to_owned(),
        Some(Value::Object(m)) => match m.get("resolution") {
            None | Some(Value::Null) => "resolved".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(AppError::validation(
                    &["body", "resolution"],
                    "Input should be a valid string",
                    "string_type",
                ));
            }
        },
        Some(_) => return Err(AppError::validation(&["body"], "Input should be a valid dictionary", "dict_type")),
    };
    p.require(Perm::ResolveIssue)?;
    let not_found = || AppError::not_found("Issue not found");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mut tx = state.pool.begin().await?;
    let by = p.sub.clone().unwrap_or_else(|| "admin".into());
    let row = clients::resolve_issue(&mut tx, &p.scope, id, &by, &resolution).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(Json(row))
}
