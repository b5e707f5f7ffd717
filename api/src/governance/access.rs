//! Access log: one row per read, write, update, delete and proposal, mirrored into the
//! tenant's audit chain as `access:<event_type>`. Written in the caller's transaction.

use serde_json::json;
use sqlx::PgConnection;

use crate::governance::actor::Actor;
use crate::governance::audit;
use crate::runtime::state::AppState;
use crate::security::tenancy::Scope;
use crate::web::error::AppResult;

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
    record_many(conn, scope, actor, std::slice::from_ref(&a)).await
}

/// Access rows and their audit links for a batch of events by one actor in one scope, in
/// one statement.
pub async fn record_many(
    conn: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    entries: &[Access<'_>],
) -> Result<(), sqlx::Error> {
    record_statement(conn, scope, actor, entries, RECORD_SQL).await
}

macro_rules! record_insert {
    () => {
        "WITH a AS (
    INSERT INTO logs_access (tenant, project_id, agent_id, client_name, client_id, parent_client_id, child_client_id,
                             event_type, target_layer, query, memory_id, result_count, status, detail)
    SELECT $1,$2,$3,$4,$5,$6,$7, e.* FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::int4[], $13::text[], $14::text[])
        AS e(event_type, target_layer, query, memory_id, result_count, status, detail))"
    };
}
const RECORD_SQL: &str = concat!(record_insert!(), " SELECT audit_append($1, $15, $16)");
/// The same as its own transaction, committed without waiting for the WAL flush.
const RECORD_ASYNC_SQL: &str =
    concat!(record_insert!(), " SELECT set_config('synchronous_commit', 'off', true), audit_append($1, $15, $16)");

async fn record_statement(
    conn: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    entries: &[Access<'_>],
    sql: &'static str,
) -> Result<(), sqlx::Error> {
    fn status<'a>(a: &Access<'a>) -> &'a str {
        if a.status.is_empty() { "ok" } else { a.status }
    }
    let column = |f: &dyn Fn(&Access<'_>) -> Option<String>| entries.iter().map(f).collect::<Vec<Option<String>>>();
    let links: Vec<(String, serde_json::Value)> = entries
        .iter()
        .map(|a| {
            let payload = json!({
                "project_id": scope.project, "agent_id": actor.agent_id, "client_id": actor.client_id,
                "target_layer": a.layer, "memory_id": a.memory_id, "result_count": a.result_count,
                "status": status(a), "detail": a.detail,
            });
            (format!("access:{}", a.event_type), payload)
        })
        .collect();
    let (events, payloads) = audit::link_args(&links);
    sqlx::query(sql)
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(&actor.agent_id)
        .bind(&actor.client_name)
        .bind(&actor.client_id)
        .bind(&actor.parent_client_id)
        .bind(&actor.child_client_id)
        .bind(column(&|a| Some(a.event_type.to_owned())))
        .bind(column(&|a| a.layer.map(String::from)))
        .bind(column(&|a| a.query.map(|q| q.chars().take(MAX_QUERY_CHARS).collect())))
        .bind(column(&|a| a.memory_id.clone()))
        .bind(entries.iter().map(|a| a.result_count.map(|n| n as i32)).collect::<Vec<Option<i32>>>())
        .bind(column(&|a| Some(status(a).to_owned())))
        .bind(column(&|a| a.detail.map(String::from)))
        .bind(&events)
        .bind(&payloads)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The access entry of a successful write of `row` to `layer`.
pub fn write_entry<'a>(layer: &'a str, row: &serde_json::Value, detail: &'a str) -> Access<'a> {
    let memory_id = row["id"].as_str().map(String::from);
    Access {
        event_type: "write",
        layer: Some(layer),
        memory_id,
        status: "ok",
        detail: Some(detail),
        ..Default::default()
    }
}

/// The access (and audit) row of a successful write of `row` to `layer`.
pub async fn record_write(
    conn: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    layer: &str,
    row: &serde_json::Value,
    detail: &str,
) -> Result<(), sqlx::Error> {
    record(conn, scope, actor, write_entry(layer, row, detail)).await
}

/// Logs a read (search, context, rag search) as its own one-statement transaction.
///
/// Reads commit with `synchronous_commit = off` unless `PINAK_READ_LOG_SYNC_COMMIT` is set:
/// the audit append holds the tenant's chain lock until commit, so a durable commit (a WAL
/// flush) per search would serialise every search of a tenant on the disk. Asynchronous
/// commit keeps the chain intact (WAL order is commit order) and loses nothing unless
/// PostgreSQL itself crashes, and then at most the last moment of read entries
/// (3 x `wal_writer_delay`, 600 ms by default). Writes always commit durably.
pub async fn log_read(state: &AppState, scope: &Scope, actor: &Actor, a: Access<'_>) -> AppResult<()> {
    let sql = if state.config.read_log_sync_commit { RECORD_SQL } else { RECORD_ASYNC_SQL };
    let mut conn = state.pool.acquire().await?;
    record_statement(&mut conn, scope, actor, std::slice::from_ref(&a), sql).await?;
    Ok(())
}
