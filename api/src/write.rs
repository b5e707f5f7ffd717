//! The one write path for document layers (direct adds and quarantine approvals):
//! validate -> identify the client (blocked clients stop here) -> optionally divert untrusted
//! writes to quarantine -> embed -> insert row, access row and audit row in one transaction.

use serde_json::{Value, json};

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
    violations_error_at(&[json!("body")], violations)
}

/// The same, for a payload found at `prefix` (e.g. `["body", "items", 3]` in a batch).
pub fn violations_error_at(prefix: &[Value], violations: &[Violation]) -> AppError {
    let detail: Vec<Value> = violations
        .iter()
        .map(|v| {
            let mut loc = prefix.to_vec();
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
pub async fn admit_writer(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    layer: Option<Layer>,
) -> AppResult<String> {
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
    if state.config.quarantine_untrusted_writes && !clients::is_trusted(&state.config, &actor.client_id, Some(&status))
    {
        let item =
            quarantine::propose(state, principal, &actor, layer, payload, Vec::new(), "quarantine_policy").await?;
        return Ok(Outcome::Quarantined(item));
    }
    let row = store_document(state, principal, &actor, layer, &payload, &format!("{}_add", layer.name())).await?;
    Ok(Outcome::Written(row))
}

/// Writes a batch of direct adds to one layer, all or nothing: every payload is validated
/// before anything is written, the texts are embedded in one call, and the rows, their access
/// rows and their audit links commit in one transaction (one hold of the chain lock).
/// Returns the stored rows, or the quarantine items when the store's policy diverts them.
pub async fn add_documents(
    state: &AppState,
    principal: &Principal,
    layer: Layer,
    payloads: Vec<Value>,
) -> AppResult<BatchOutcome> {
    for (i, payload) in payloads.iter().enumerate() {
        let violations = state.schemas.validate(layer, payload);
        if !violations.is_empty() {
            return Err(violations_error_at(&[json!("body"), json!("items"), json!(i)], &violations));
        }
    }
    let actor = Actor::from(principal);
    let scope = &principal.scope;
    let status = admit_writer(state, principal, &actor, Some(layer)).await?;
    if state.config.quarantine_untrusted_writes && !clients::is_trusted(&state.config, &actor.client_id, Some(&status))
    {
        let mut tx = state.pool.begin().await?;
        let mut items = Vec::with_capacity(payloads.len());
        for payload in payloads {
            items.push(
                quarantine::propose_in(&mut tx, scope, &actor, layer, payload, Vec::new(), "quarantine_policy").await?,
            );
        }
        tx.commit().await?;
        return Ok(BatchOutcome::Quarantined(items));
    }
    let embeddings = embed_payloads(state, layer, &payloads).await?;
    let detail = format!("{}_add", layer.name());
    let mut tx = state.pool.begin().await?;
    let rows = records::copy_documents(&mut tx, layer, scope, &actor, &payloads, &embeddings).await?;
    let entries: Vec<access::Access<'_>> =
        rows.iter().map(|row| access::write_entry(layer.name(), row, &detail)).collect();
    access::record_many(&mut tx, scope, &actor, &entries).await?;
    tx.commit().await?;
    Ok(BatchOutcome::Written(rows))
}

pub enum BatchOutcome {
    Written(Vec<Value>),
    Quarantined(Vec<Value>),
}

/// Embeddings of a batch's payloads in one backend call (`None` where the layer or the
/// backend has none).
async fn embed_payloads(state: &AppState, layer: Layer, payloads: &[Value]) -> AppResult<Vec<Option<Embedding>>> {
    let texts: Vec<String> = payloads.iter().filter_map(|p| layer.embedding_text(p)).collect();
    if texts.is_empty() {
        return Ok(payloads.iter().map(|_| None).collect());
    }
    let Some(vectors) = state.embedder.embed(texts).await? else { return Ok(payloads.iter().map(|_| None).collect()) };
    let model = state.embedder.model_name().unwrap_or_default().to_owned();
    // A layer either embeds every payload or none, so the vectors line up with the payloads.
    Ok(vectors.into_iter().map(|vector| Some(Embedding { vector, model: model.clone() })).collect())
}

/// Embeds and stores a validated payload with its access and audit rows, atomically.
pub async fn store_document(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    layer: Layer,
    payload: &Value,
    detail: &str,
) -> AppResult<Value> {
    let embedding = embed_payload(state, layer, payload).await?;
    let mut tx = state.pool.begin().await?;
    let row = insert_with_access(&mut tx, &principal.scope, actor, layer, payload, embedding.as_ref(), detail).await?;
    tx.commit().await?;
    Ok(row)
}

/// Inserts the record and its access (and audit) rows in the caller's transaction.
pub async fn insert_with_access(
    conn: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    layer: Layer,
    payload: &Value,
    embedding: Option<&Embedding>,
    detail: &str,
) -> AppResult<Value> {
    let row = records::insert_document(conn, layer, scope, actor, payload, embedding).await?;
    access::record_write(conn, scope, actor, layer.name(), &row, detail).await?;
    Ok(row)
}
