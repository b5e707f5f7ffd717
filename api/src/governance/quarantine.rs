//! Quarantine: proposed memories wait for an admin's review. Proposals are validated and
//! their errors stored (not rejected); approval re-validates and writes through the normal
//! write path, attributed to the proposer, in the same transaction as the status change.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::governance::access::{self, Access};
use crate::governance::actor::Actor;
use crate::governance::audit;
use crate::governance::clients::{self, NewIssue};
use crate::routes::paging::Cursor;
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::tenancy::Scope;
use crate::store::layers::Layer;
use crate::store::write;
use crate::web::error::{AppError, AppResult};
use sqlx::PgConnection;

const ITEM_JSON: &str = "to_jsonb(q)";

/// Stores a pending proposal (with its validation errors) and its access/audit rows.
pub async fn propose(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    layer: Layer,
    payload: Value,
    errors: Vec<String>,
    detail: &str,
) -> AppResult<Value> {
    let mut tx = state.pool.begin().await?;
    let item = propose_in(&mut tx, &principal.scope, actor, layer, payload, errors, detail).await?;
    tx.commit().await?;
    Ok(item)
}

/// Queues one proposal in the caller's transaction.
pub async fn propose_in(
    tx: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    layer: Layer,
    payload: Value,
    errors: Vec<String>,
    detail: &str,
) -> AppResult<Value> {
    let item: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO memory_quarantine AS q (id, tenant, project_id, layer, payload, status, agent_id, client_id, client_name, validation_errors)
         VALUES ($1,$2,$3,$4,$5,'pending',$6,$7,$8,$9) RETURNING {ITEM_JSON}"
    )))
    .bind(Uuid::new_v4())
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(layer.name())
    .bind(&payload)
    .bind(&actor.agent_id)
    .bind(&actor.client_id)
    .bind(&actor.client_name)
    .bind(json!(errors))
    .fetch_one(&mut *tx)
    .await?;
    let id = item["id"].as_str().map(String::from);
    if !errors.is_empty() {
        clients::file_issue(
            &mut *tx,
            scope,
            actor,
            // A reference, not a copy: issues are readable with `memory.observe`, the payload
            // only by the reviewers of the quarantine.
            NewIssue::new("schema_validation_failed", &errors.join("; "))
                .layer(layer.name())
                .metadata(json!({ "quarantine_id": id })),
        )
        .await?;
    }
    access::record(
        &mut *tx,
        scope,
        actor,
        Access {
            event_type: "propose",
            layer: Some(layer.name()),
            memory_id: id.clone(),
            status: "ok",
            detail: Some(detail),
            ..Default::default()
        },
    )
    .await?;
    audit::append(
        &mut *tx,
        &scope.tenant,
        "quarantine:create",
        &json!({ "id": id, "layer": layer.name(), "client_id": actor.client_id }),
    )
    .await?;
    Ok(item)
}

/// `POST /quarantine/propose/{layer}`: queue, or apply at once for trusted clients when
/// auto-approve is on. Returns the quarantine item (status `pending` or `approved`).
pub async fn propose_route(state: &AppState, principal: &Principal, layer: Layer, payload: Value) -> AppResult<Value> {
    let actor = Actor::from(principal);
    let status = write::admit_writer(state, principal, &actor, Some(layer)).await?;
    let errors: Vec<String> = state.schemas.validate(layer, &payload).into_iter().map(|v| v.message).collect();
    let trusted = clients::is_trusted(&state.config, &actor.client_id, Some(&status));
    if state.config.quarantine_auto_approve && errors.is_empty() && trusted {
        let embedding = write::embed_payload(state, layer, &payload).await?;
        let mut tx = state.pool.begin().await?;
        let row = write::insert_with_access(
            &mut tx,
            &principal.scope,
            &actor,
            layer,
            &payload,
            embedding.as_ref(),
            "auto_approved",
        )
        .await?;
        let mut item: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO memory_quarantine AS q (id, tenant, project_id, layer, payload, status, agent_id, client_id, client_name, reviewed_at, reviewed_by)
             VALUES ($1,$2,$3,$4,$5,'approved',$6,$7,$8, now(), 'auto-policy') RETURNING {ITEM_JSON}"
        )))
        .bind(Uuid::new_v4())
        .bind(&principal.scope.tenant)
        .bind(&principal.scope.project)
        .bind(layer.name())
        .bind(&payload)
        .bind(&actor.agent_id)
        .bind(&actor.client_id)
        .bind(&actor.client_name)
        .fetch_one(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            &principal.scope.tenant,
            "quarantine:approved",
            &json!({ "id": item["id"], "layer": layer.name(), "auto_approved": true }),
        )
        .await?;
        tx.commit().await?;
        item["auto_approved"] = json!(true);
        item["memory_id"] = row["id"].clone();
        return Ok(item);
    }
    propose(state, principal, &actor, layer, payload, errors, "quarantine_propose").await
}

pub async fn list(
    state: &AppState,
    principal: &Principal,
    status: &str,
    limit: i64,
    cursor: &Cursor,
) -> AppResult<Vec<Value>> {
    let rows = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_JSON} FROM memory_quarantine q WHERE tenant = $1 AND project_id = $2 AND status = $3
           AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(&principal.scope.tenant)
    .bind(&principal.scope.project)
    .bind(status)
    .bind(limit)
    .bind(cursor.ts())
    .bind(cursor.id())
    .fetch_all(&state.pool)
    .await?;
    Ok(rows)
}

/// Approve or reject a pending item in scope. Approval re-validates and writes the memory.
pub async fn review(state: &AppState, principal: &Principal, id: Uuid, approve: bool) -> AppResult<Value> {
    let scope = &principal.scope;
    let not_found = || AppError::not_found("Quarantine item not found");
    let item: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {ITEM_JSON} FROM memory_quarantine q WHERE id = $1 AND tenant = $2 AND project_id = $3 AND status = 'pending'")))
        .bind(id)
        .bind(&scope.tenant)
        .bind(&scope.project)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(not_found)?;
    let layer = item["layer"]
        .as_str()
        .and_then(|l| Layer::parse_document(l).or_else(|| Layer::parse(l).filter(|l| *l == Layer::Working)))
        .ok_or_else(not_found)?;
    let payload = item["payload"].clone();
    let invalid =
        |msgs: Vec<String>| AppError::bad_request(format!("Invalid quarantined payload: {}", msgs.join("; ")));
    // A working note (queued by the store policy) validates on its content, as `/working/add`.
    let note = if layer == Layer::Working && approve {
        let note =
            write::WorkingNote::from_payload(&payload).ok_or_else(|| invalid(vec!["not a working note".into()]))?;
        let errors = state.schemas.validate(layer, &json!({ "content": note.content }));
        if !errors.is_empty() {
            return Err(invalid(errors.into_iter().map(|v| v.message).collect()));
        }
        Some(note)
    } else {
        None
    };
    let proposer = Actor {
        agent_id: item["agent_id"].as_str().unwrap_or("unknown").into(),
        client_id: item["client_id"].as_str().unwrap_or("unknown").into(),
        client_name: item["client_name"].as_str().map(String::from),
        parent_client_id: None,
        child_client_id: None,
    };
    let embedding = if approve && note.is_none() {
        let errors = state.schemas.validate(layer, &payload);
        if !errors.is_empty() {
            let msgs: Vec<String> = errors.into_iter().map(|v| v.message).collect();
            return Err(invalid(msgs));
        }
        write::embed_payload(state, layer, &payload).await?
    } else {
        None
    };
    let reviewer = principal.sub.clone().unwrap_or_else(|| "admin".into());
    let new_status = if approve { "approved" } else { "rejected" };
    let mut tx = state.pool.begin().await?;
    // Re-check under the row lock: two reviewers racing see one success and one 404.
    let updated = sqlx::query("UPDATE memory_quarantine SET status = $4, reviewed_at = now(), reviewed_by = $5 WHERE id = $1 AND tenant = $2 AND project_id = $3 AND status = 'pending'")
        .bind(id)
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(new_status)
        .bind(&reviewer)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(not_found());
    }
    if let Some(note) = &note {
        write::insert_working(&mut tx, scope, &proposer, note, "quarantine_approved").await?;
    } else if approve {
        write::insert_with_access(
            &mut tx,
            scope,
            &proposer,
            layer,
            &payload,
            embedding.as_ref(),
            "quarantine_approved",
        )
        .await?;
    }
    audit::append(
        &mut tx,
        &scope.tenant,
        &format!("quarantine:{new_status}"),
        &json!({ "id": id.to_string(), "layer": layer.name(), "reviewed_by": reviewer }),
    )
    .await?;
    tx.commit().await?;
    Ok(json!({ "status": new_status, "id": id.to_string(), "layer": layer.name() }))
}
