//! The one write path for document layers (direct adds and quarantine approvals), and the
//! working-note insert that shares its store policy:
//! validate -> identify the client (blocked clients stop here) -> optionally divert untrusted
//! writes to quarantine -> embed -> insert row, access row and audit row in one transaction.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::governance::access;
use crate::governance::actor::Actor;
use crate::governance::clients::{self, NewIssue};
use crate::governance::quarantine;
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::tenancy::Scope;
use crate::store::layers::Layer;
use crate::store::records::{self, Embedding};
use crate::store::schemas::Violation;
use crate::web::error::{AppError, AppResult};
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

/// The store policy: with `PINAK_QUARANTINE_UNTRUSTED_WRITES` on, every write other agents can
/// read back (document layers and working notes) from an untrusted client becomes a proposal.
pub fn diverts_to_quarantine(state: &AppState, actor: &Actor, status: &str) -> bool {
    state.config.quarantine_untrusted_writes && !clients::is_trusted(&state.config, &actor.client_id, Some(status))
}

/// A working-memory note: stored by `/working/add`, or queued under the store policy (its
/// payload) and stored on approval.
pub struct WorkingNote {
    pub content: String,
    pub session_id: Option<String>,
    pub key: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl WorkingNote {
    pub fn to_payload(&self) -> Value {
        let mut v = json!({ "content": self.content });
        if let Some(s) = &self.session_id {
            v["session_id"] = json!(s);
        }
        if let Some(k) = &self.key {
            v["key"] = json!(k);
        }
        if let Some(at) = self.expires_at {
            v["expires_at"] = json!(at.to_rfc3339());
        }
        v
    }

    pub fn from_payload(v: &Value) -> Option<Self> {
        let opt = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        let expires_at = match v.get("expires_at").and_then(Value::as_str) {
            Some(at) => Some(DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc)),
            None => None,
        };
        Some(WorkingNote { content: opt("content")?, session_id: opt("session_id"), key: opt("key"), expires_at })
    }
}

/// Inserts a working note and its access row in the caller's transaction; returns the row.
pub async fn insert_working(
    conn: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    note: &WorkingNote,
    detail: &str,
) -> AppResult<Value> {
    let row: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO working_memory AS t (id, tenant, project_id, session_id, key, value, agent_id, client_id, client_name, expires_at)
         VALUES ($1,$2,$3,coalesce($4,'global'),coalesce($5,'current_context'),$6,$7,$8,$9,$10) RETURNING {}",
        records::ROW_JSON
    )))
    .bind(uuid::Uuid::new_v4())
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(&note.session_id)
    .bind(&note.key)
    .bind(&note.content)
    .bind(&actor.agent_id)
    .bind(&actor.client_id)
    .bind(&actor.client_name)
    .bind(note.expires_at)
    .fetch_one(&mut *conn)
    .await?;
    access::record_write(conn, scope, actor, "working", &row, detail).await?;
    Ok(row)
}

/// Writes a direct add. `payload` is the layer payload (absent optionals omitted).
pub async fn add_document(state: &AppState, principal: &Principal, layer: Layer, payload: Value) -> AppResult<Outcome> {
    let violations = state.schemas.validate(layer, &payload);
    if !violations.is_empty() {
        return Err(violations_error(&violations));
    }
    let actor = Actor::from(principal);
    let status = admit_writer(state, principal, &actor, Some(layer)).await?;
    if diverts_to_quarantine(state, &actor, &status) {
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
    if diverts_to_quarantine(state, &actor, &status) {
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
