//! Access log: one row per read, write, update, delete and proposal, mirrored into the
//! tenant's audit chain as `access:<event_type>`. Written in the caller's transaction.

use serde_json::json;
use sqlx::PgConnection;

use crate::actor::Actor;
use crate::audit;
use crate::tenancy::Scope;

/// Queries are stored truncated, never whole (they can carry secrets).
pub const MAX_QUERY_CHARS: usize = 256;

#[derive(Default)]
pub struct Access<'a> {
    pub event_type: &'a str,
    pub layer: Option<&'a str>,
    pub query: Option<&'a str>,
    pub memory_id: Option<String>,
    pub result_count: Option<i64>,
    pub status: &'a str,
    pub detail: Option<&'a str>,
}

pub async fn record(conn: &mut PgConnection, scope: &Scope, actor: &Actor, a: Access<'_>) -> Result<(), sqlx::Error> {
    let query: Option<String> = a.query.map(|q| q.chars().take(MAX_QUERY_CHARS).collect());
    let status = if a.status.is_empty() { "ok" } else { a.status };
    sqlx::query(
        "INSERT INTO logs_access (tenant, project_id, agent_id, client_name, client_id, parent_client_id, child_client_id,
                                  event_type, target_layer, query, memory_id, result_count, status, detail)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
    )
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(&actor.agent_id)
    .bind(&actor.client_name)
    .bind(&actor.client_id)
    .bind(&actor.parent_client_id)
    .bind(&actor.child_client_id)
    .bind(a.event_type)
    .bind(a.layer)
    .bind(&query)
    .bind(&a.memory_id)
    .bind(a.result_count.map(|n| n as i32))
    .bind(status)
    .bind(a.detail)
    .execute(&mut *conn)
    .await?;
    let payload = json!({
        "project_id": scope.project, "agent_id": actor.agent_id, "client_id": actor.client_id,
        "target_layer": a.layer, "memory_id": a.memory_id, "result_count": a.result_count,
        "status": status, "detail": a.detail,
    });
    audit::append(conn, &scope.tenant, &format!("access:{}", a.event_type), &payload).await
}

/// The access (and audit) row of a successful write of `row` to `layer`.
pub async fn record_write(conn: &mut PgConnection, scope: &Scope, actor: &Actor, layer: &str, row: &serde_json::Value, detail: &str) -> Result<(), sqlx::Error> {
    let memory_id = row["id"].as_str().map(String::from);
    record(conn, scope, actor, Access { event_type: "write", layer: Some(layer), memory_id, status: "ok", detail: Some(detail), ..Default::default() }).await
}
