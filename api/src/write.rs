//! The one write path for document layers (direct adds and quarantine approvals):
//! validate -> identify the client (blocked clients stop here) -> optionally divert untrusted
//! writes to quarantine -> embed -> insert row, access row and audit row in one transaction.

use serde_json::{json, Value};

use crate::access;
use crate::actor::Actor;
use crate::auth::Principal;
use crate::clients::{self, NewIssue};
use crate::error::{AppError, AppResult};
use crate::layers::Layer;
use crate::quarantine;
use crate::records::{self, Embedding};
use crate::schemas::Violation;
use crate::state::AppState;
use crate::tenancy::Scope;
use sqlx::PgConnection;

pub enum Outcome {
    Written(Value),
    Quarantined(Value),
}

/// 422 body for payload schema violations, in FastAPI's error-list shape.
pub fn violations_error(violations: &[Violation]) -> AppError {
    let detail: Vec<Value> = violations
        .iter()
        .map(|v| {
            let mut loc = vec![json!("body")];
            loc.extend(v.path.split('/').filter(|s| !s.is_empty()).map(|s| json!(s)));
            json!({ "loc": loc, "msg": v.message, "type": "schema_violation" })
        })
        .collect();
    AppError::unprocessable(detail)
}

pub async fn embed_payload(state: &AppState, layer: Layer, payload: &Value) -> AppResult<Option<Embedding>> {
    let Some(text) = layer.embedding_text(payload) else { return Ok(None) };
    let Some(vector) = state.embedder.embed_one(&text).await? else { return Ok(None) };
    let model = state.embedder.model_name().unwrap_or_default().to_owned();
    Ok(Some(Embedding { vector, model }))
}

/// Refuses writes from a blocked client, filing a `client_blocked` issue. Returns the
/// client's registry status otherwise.
pub async fn admit_writer(state: &AppState, principal: &Principal, actor: &Actor, layer: Option<Layer>) -> AppResult<String> {
    let scope = &principal.scope;
    let mut tx = state.pool.begin().await?;
    let status = clients::observe(&mut tx, scope, principal, actor).await?;
    if status == clients::BLOCKED {
        let mut issue = NewIssue::new("client_blocked", "Write refused: client is blocked");
        if let Some(l) = layer {
            issue = issue.layer(l.name());
        }
        clients::file_issue(&mut tx, scope, actor, issue).await?;
        tx.commit().await?;
        return Err(AppError::forbidden("client blocked"));
    }
    tx.commit().await?;
    Ok(status)
}

/// Writes a direct add. `payload` is the layer payload (absent optionals omitted).
pub async fn add_document(state: &AppState, principal: &Principal, layer: Layer, payload: Value) -> AppResult<Outcome> {
    let violations = state.schemas.validate(layer, &payload);
    if !violations.is_empty() {
        return Err(violations_error(&violations));
    }
    let actor = Actor::from(principal);
    let status = admit_writer(state, principal, &actor, Some(layer)).await?;
    if state.config.quarantine_untrusted_writes && !clients::is_trusted(&state.config, &actor.client_id, Some(&status)) {
        let item = quarantine::propose(state, principal, &actor, layer, payload, Vec::new(), "quarantine_policy").await?;
        return Ok(Outcome::Quarantined(item));
    }
    let row = store_document(state, principal, &actor, layer, &payload, &format!("{}_add", layer.name())).await?;
    Ok(Outcome::Written(row))
}

/// Embeds and stores a validated payload with its access and audit rows, atomically.
pub async fn store_document(state: &AppState, principal: &Principal, actor: &Actor, layer: Layer, payload: &Value, detail: &str) -> AppResult<Value> {
    let embedding = embed_payload(state, layer, payload).await?;
    let mut tx = state.pool.begin().await?;
    let row = insert_with_access(&mut tx, &principal.scope, actor, layer, payload, embedding.as_ref(), detail).await?;
    tx.commit().await?;
    Ok(row)
}

/// Inserts the record and its access (and audit) rows in the caller's transaction.
pub async fn insert_with_access(conn: &mut PgConnection, scope: &Scope, actor: &Actor, layer: Layer, payload: &Value, embedding: Option<&Embedding>, detail: &str) -> AppResult<Value> {
    let row = records::insert_document(conn, layer, scope, actor, payload, embedding).await?;
    access::record_write(conn, scope, actor, layer.name(), &row, detail).await?;
    Ok(row)
}
