//! Memory layer routes (`/api/v1/memory/...`): thin handlers over `write`, `records` and
//! `search`. Scope and role checks run after body/query validation, as in the contract.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::governance::access::{self, Access};
use crate::governance::actor::Actor;
use crate::governance::clients;
use crate::retrieval::search::{self, SearchOptions};
use crate::routes::paging::{self, Cursor};
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::store::layers::Layer;
use crate::store::records;
use crate::store::write::{self, Outcome};
use crate::web::error::{AppError, AppResult};
use crate::web::extract::{JsonBody, QueryParams, check_range, deserialise};

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn pick(row: &Value, keys: &[&str]) -> Value {
    Value::Object(keys.iter().map(|k| (k.to_string(), row.get(*k).cloned().unwrap_or(Value::Null))).collect())
}

/// Builds a layer payload from present fields only (absent optionals are not schema errors).
fn payload(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect())
}

fn respond(outcome: Outcome, shape: impl FnOnce(&Value) -> Value) -> Response {
    match outcome {
        Outcome::Written(row) => created(shape(&row)),
        Outcome::Quarantined(item) => (StatusCode::ACCEPTED, Json(item)).into_response(),
    }
}

/// Unknown fields are refused, as the layer schema's `additionalProperties: false`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSemantic {
    /// Declared by every layer schema; accepted and not stored.
    #[serde(rename = "schema_version")]
    _schema_version: Option<String>,
    content: String,
    tags: Option<Vec<String>>,
}

impl AddSemantic {
    fn into_payload(self) -> Value {
        payload(vec![("content", Some(json!(self.content))), ("tags", Some(json!(self.tags.unwrap_or_default())))])
    }
}

pub async fn add_semantic(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddSemantic>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Semantic))?;
    let out = write::add_document(&state, &p, Layer::Semantic, b.into_payload()).await?;
    Ok(respond(out, |r| {
        pick(
            r,
            &["id", "content", "tags", "tenant", "project_id", "created_at", "client_id", "client_name", "agent_id"],
        )
    }))
}

/// Unknown fields are refused, as the layer schema's `additionalProperties: false`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddEpisodic {
    /// Declared by every layer schema; accepted and not stored.
    #[serde(rename = "schema_version")]
    _schema_version: Option<String>,
    content: String,
    #[serde(default)]
    salience: i64,
    goal: Option<String>,
    plan: Option<Vec<String>>,
    outcome: Option<String>,
    tool_logs: Option<Vec<Map<String, Value>>>,
    /// Declared by the episodic schema; accepted and not stored (episodes have no tags).
    #[serde(rename = "tags")]
    _tags: Option<Vec<String>>,
    /// Sent by v1 clients (the prototype's episodic model had it); accepted and ignored.
    #[serde(rename = "embedding_id")]
    _embedding_id: Option<Value>,
}

impl AddEpisodic {
    fn into_payload(self) -> Value {
        payload(vec![
            ("content", Some(json!(self.content))),
            ("salience", Some(json!(self.salience))),
            ("goal", self.goal.map(Value::from)),
            ("plan", self.plan.map(|v| json!(v))),
            ("outcome", self.outcome.map(Value::from)),
            ("tool_logs", self.tool_logs.map(|v| json!(v))),
        ])
    }
}

pub async fn add_episodic(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddEpisodic>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Episodic))?;
    let out = write::add_document(&state, &p, Layer::Episodic, b.into_payload()).await?;
    Ok(respond(out, |r| pick(r, &["id", "goal", "agent_id", "client_id", "client_name"])))
}

/// Unknown fields are refused, as the layer schema's `additionalProperties: false`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddProcedural {
    /// Declared by every layer schema; accepted and not stored.
    #[serde(rename = "schema_version")]
    _schema_version: Option<String>,
    skill_name: String,
    steps: Vec<String>,
    description: Option<String>,
    trigger: Option<String>,
    code_snippet: Option<String>,
}

impl AddProcedural {
    fn into_payload(self) -> Value {
        payload(vec![
            ("skill_name", Some(json!(self.skill_name))),
            ("steps", Some(json!(self.steps))),
            ("description", self.description.map(Value::from)),
            ("trigger", self.trigger.map(Value::from)),
            ("code_snippet", self.code_snippet.map(Value::from)),
        ])
    }
}

pub async fn add_procedural(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddProcedural>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Procedural))?;
    let out = write::add_document(&state, &p, Layer::Procedural, b.into_payload()).await?;
    Ok(respond(out, |r| pick(r, &["id", "skill_name"])))
}

/// Unknown fields are refused, as the layer schema's `additionalProperties: false`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRag {
    /// Declared by every layer schema; accepted and not stored.
    #[serde(rename = "schema_version")]
    _schema_version: Option<String>,
    query: String,
    external_source: String,
    content: String,
}

impl AddRag {
    fn into_payload(self) -> Value {
        json!({ "query": self.query, "external_source": self.external_source, "content": self.content })
    }
}

pub async fn add_rag(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddRag>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Rag))?;
    let out = write::add_document(&state, &p, Layer::Rag, b.into_payload()).await?;
    Ok(respond(out, |r| pick(r, &["id", "query"])))
}

/// Most items in one batch; 500 short memories fit well inside the 1 MiB body cap.
pub const MAX_BATCH_ITEMS: usize = 500;

#[derive(Deserialize)]
pub struct AddBatch {
    layer: String,
    items: Vec<Value>,
}

/// One batch item, parsed exactly as the body of that layer's add route; an error's `loc`
/// is `["body", "items", i, <field>...]`.
fn batch_item(layer: Layer, i: usize, item: Value) -> Result<Value, AppError> {
    let loc = vec![json!("body"), json!("items"), json!(i)];
    Ok(match layer {
        Layer::Semantic => deserialise::<AddSemantic>(item, loc)?.into_payload(),
        Layer::Episodic => deserialise::<AddEpisodic>(item, loc)?.into_payload(),
        Layer::Procedural => deserialise::<AddProcedural>(item, loc)?.into_payload(),
        _ => deserialise::<AddRag>(item, loc)?.into_payload(),
    })
}

/// `POST /api/v1/memory/batch`: up to 500 adds to one document layer, all or nothing.
pub async fn add_batch(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddBatch>,
) -> AppResult<Response> {
    let layer = match Layer::parse(&b.layer) {
        Some(l @ (Layer::Semantic | Layer::Episodic | Layer::Procedural | Layer::Rag)) => l,
        _ => {
            return Err(AppError::validation(
                &["body", "layer"],
                "layer must be one of semantic, episodic, procedural, rag",
                "value_error",
            ));
        }
    };
    if b.items.is_empty() || b.items.len() > MAX_BATCH_ITEMS {
        return Err(AppError::validation(
            &["body", "items"],
            format!("items must hold 1 to {MAX_BATCH_ITEMS} entries, got {}", b.items.len()),
            "value_error",
        ));
    }
    let mut payloads = Vec::with_capacity(b.items.len());
    for (i, item) in b.items.into_iter().enumerate() {
        payloads.push(batch_item(layer, i, item)?);
    }
    p.require(Perm::Write(layer))?;
    let (status, rows, key) = match write::add_documents(&state, &p, layer, payloads).await? {
        write::BatchOutcome::Written(rows) => (StatusCode::CREATED, rows, "ids"),
        write::BatchOutcome::Quarantined(items) => (StatusCode::ACCEPTED, items, "quarantined"),
    };
    let ids: Vec<Value> = rows.iter().map(|r| r["id"].clone()).collect();
    let mut body = json!({ "layer": layer.name(), "count": ids.len() });
    body[key] = Value::Array(ids);
    Ok((status, Json(body)).into_response())
}

/// `ttl_seconds` or `expires_at` (RFC 3339) on session and working writes.
fn expiry(ttl_seconds: Option<i64>, expires_at: Option<String>) -> AppResult<Option<DateTime<Utc>>> {
    match (ttl_seconds, expires_at) {
        (Some(_), Some(_)) => Err(AppError::validation(
            &["body", "ttl_seconds"],
            "Give ttl_seconds or expires_at, not both",
            "value_error",
        )),
        (Some(ttl), None) if !(1..=10 * 365 * 86_400).contains(&ttl) => Err(AppError::validation(
            &["body", "ttl_seconds"],
            "ttl_seconds must be between 1 and 315360000",
            "value_error",
        )),
        (Some(ttl), None) => Ok(Some(Utc::now() + Duration::seconds(ttl))),
        (None, Some(at)) => DateTime::parse_from_rfc3339(&at).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
            AppError::validation(
                &["body", "expires_at"],
                "expires_at must be an RFC 3339 timestamp with offset",
                "value_error",
            )
        }),
        (None, None) => Ok(None),
    }
}

fn nonempty(loc: &str, s: &str, max_chars: usize) -> AppResult<()> {
    if s.is_empty() {
        Err(AppError::validation(&["body", loc], "String should have at least 1 character", "string_too_short"))
    } else if s.chars().count() > max_chars {
        Err(AppError::validation(
            &["body", loc],
            format!("String should have at most {max_chars} characters"),
            "string_too_long",
        ))
    } else {
        Ok(())
    }
}

/// Unknown fields are refused, as the layer schema's `additionalProperties: false`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddWorking {
    /// Declared by every layer schema; accepted and not stored.
    #[serde(rename = "schema_version")]
    _schema_version: Option<String>,
    content: String,
    session_id: Option<String>,
    key: Option<String>,
    ttl_seconds: Option<i64>,
    expires_at: Option<String>,
}

pub async fn add_working(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddWorking>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Working))?;
    let violations = state.schemas.validate(Layer::Working, &json!({ "content": b.content }));
    if !violations.is_empty() {
        return Err(write::violations_error(&violations));
    }
    let note = write::WorkingNote {
        expires_at: expiry(b.ttl_seconds, b.expires_at)?,
        content: b.content,
        session_id: b.session_id,
        key: b.key,
    };
    let actor = Actor::from(&p);
    let status = write::admit_writer(&state, &p, &actor, Some(Layer::Working)).await?;
    if write::diverts_to_quarantine(&state, &actor, &status) {
        let item = crate::governance::quarantine::propose(
            &state,
            &p,
            &actor,
            Layer::Working,
            note.to_payload(),
            Vec::new(),
            "quarantine_policy",
        )
        .await?;
        return Ok((StatusCode::ACCEPTED, Json(item)).into_response());
    }
    let mut tx = state.pool.begin().await?;
    let row = write::insert_working(&mut tx, &p.scope, &actor, &note, "working_add").await?;
    tx.commit().await?;
    // The note is committed; nudges are advice, so a failed lookup must not turn a stored
    // write into an error (a retry would then store it twice).
    let nudges = crate::retrieval::nudges::for_content(&state, &p, &note.content).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "nudge lookup failed");
        Vec::new()
    });
    let mut out = pick(&row, &["id", "tenant", "project_id", "created_at", "session_id", "key", "expires_at"]);
    out["content"] = json!(note.content);
    out["nudges"] = json!(nudges);
    Ok(created(out))
}

#[derive(Deserialize)]
pub struct AddSession {
    session_id: String,
    content: String,
    #[serde(default = "default_role")]
    role: String,
    ttl_seconds: Option<i64>,
    expires_at: Option<String>,
}

fn default_role() -> String {
    "user".into()
}

pub async fn add_session(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddSession>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Session))?;
    nonempty("session_id", &b.session_id, 256)?;
    let expires_at = expiry(b.ttl_seconds, b.expires_at)?;
    let actor = Actor::from(&p);
    write::admit_writer(&state, &p, &actor, Some(Layer::Session)).await?;
    let mut tx = state.pool.begin().await?;
    let row: Value = sqlx::query_scalar(
        "INSERT INTO logs_session AS t (id, tenant, project_id, session_id, content, role, agent_id, client_id, client_name, parent_client_id, child_client_id, expires_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING jsonb_build_object('id', t.id, 'ts', t.ts)",
    )
    .bind(Uuid::new_v4())
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(&b.session_id)
    .bind(&b.content)
    .bind(&b.role)
    .bind(&actor.agent_id)
    .bind(&actor.client_id)
    .bind(&actor.client_name)
    .bind(&actor.parent_client_id)
    .bind(&actor.child_client_id)
    .bind(expires_at)
    .fetch_one(&mut *tx)
    .await?;
    access::record_write(&mut tx, &p.scope, &actor, "session", &row, "session_add").await?;
    tx.commit().await?;
    Ok(created(row))
}

#[derive(Deserialize)]
pub struct AddEvent {
    event_type: String,
    payload: Map<String, Value>,
}

pub async fn add_event(
    State(state): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<AddEvent>,
) -> AppResult<Response> {
    p.require(Perm::Write(Layer::Event))?;
    // The stored payload is {"event_type": …, **payload}; a payload event_type wins, as in the prototype.
    let mut merged = Map::new();
    merged.insert("event_type".into(), json!(b.event_type));
    merged.extend(b.payload);
    let event_type =
        merged["event_type"].as_str().map(String::from).unwrap_or_else(|| merged["event_type"].to_string());
    nonempty("event_type", &event_type, 256)?;
    let actor = Actor::from(&p);
    write::admit_writer(&state, &p, &actor, Some(Layer::Event)).await?;
    let mut tx = state.pool.begin().await?;
    let row: Value = sqlx::query_scalar(
        "INSERT INTO logs_events AS t (id, tenant, project_id, event_type, payload) VALUES ($1,$2,$3,$4,$5)
         RETURNING jsonb_build_object('id', t.id, 'ts', t.ts)",
    )
    .bind(Uuid::new_v4())
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(&event_type)
    .bind(Value::Object(merged))
    .fetch_one(&mut *tx)
    .await?;
    access::record_write(&mut tx, &p.scope, &actor, "event", &row, "event_add").await?;
    tx.commit().await?;
    Ok(created(row))
}

/// The ranking options `/search` and `/retrieve_context` accept (`fusion.rs`), read from the
/// same query string as the route's own parameters.
#[derive(Deserialize)]
pub struct RankingParams {
    mode: Option<String>,
    fusion: Option<String>,
    rrf_k: Option<f64>,
    weight: Option<f64>,
}

impl RankingParams {
    fn options(&self) -> AppResult<SearchOptions> {
        SearchOptions::parse(self.mode.as_deref(), self.fusion.as_deref(), self.rrf_k, self.weight)
    }
}

#[derive(Deserialize)]
pub struct SearchQuery {
    query: String,
    #[serde(default = "default_k")]
    k: i64,
}
fn default_k() -> i64 {
    5
}

/// Display text of a hit, per layer.
fn hit_content(hit: &search::Hit) -> Value {
    let key = match hit.layer {
        Layer::Procedural => "skill_name",
        Layer::Working => "value",
        _ => "content",
    };
    hit.row.get(key).cloned().unwrap_or(Value::Null)
}

pub async fn search(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<SearchQuery>,
    QueryParams(ranking): QueryParams<RankingParams>,
) -> AppResult<Json<Vec<Value>>> {
    let k = check_range("k", q.k, 1, 100)?;
    search::check_query(&q.query)?;
    let options = ranking.options()?;
    p.require(Perm::Search)?;
    let hits = search::hybrid(&state, &p.scope, &q.query, k, options).await?;
    log_read(&state, &p, "search_memory", &q.query, hits.len()).await?;
    Ok(Json(
        hits.iter()
            .map(|h| {
                json!({
                    "id": h.id, "content": hit_content(h), "tags": [h.layer.name()],
                    "tenant": h.row["tenant"], "project_id": h.row["project_id"],
                    "created_at": h.row.get("created_at").or_else(|| h.row.get("updated_at")).cloned().unwrap_or(json!("")),
                    "client_id": h.row["client_id"], "client_name": h.row["client_name"], "agent_id": h.row["agent_id"],
                    "distance": 1.0 - h.score, "metadata": h.row,
                })
            })
            .collect(),
    ))
}

async fn log_read(state: &AppState, p: &Principal, detail: &str, query: &str, n: usize) -> AppResult<()> {
    let a = Access {
        event_type: "read",
        query: Some(query),
        result_count: Some(n as i64),
        status: "ok",
        detail: Some(detail),
        ..Default::default()
    };
    access::log_read(state, &p.scope, &Actor::from(p), a).await
}

#[derive(Deserialize)]
pub struct ContextQuery {
    query: String,
    #[serde(default = "default_context_limit")]
    limit: i64,
}
fn default_context_limit() -> i64 {
    20
}

pub async fn retrieve_context(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<ContextQuery>,
    QueryParams(ranking): QueryParams<RankingParams>,
) -> AppResult<Json<Value>> {
    let limit = check_range("limit", q.limit, 1, 100)?;
    search::check_query(&q.query)?;
    let options = ranking.options()?;
    p.require(Perm::Search)?;
    {
        let mut tx = state.pool.begin().await?;
        clients::observe(&mut tx, &p.scope, &p, &Actor::from(&p)).await?;
        tx.commit().await?;
    }
    let hits = search::hybrid(&state, &p.scope, &q.query, limit, options).await?;
    let mut out = json!({ "semantic": [], "episodic": [], "procedural": [], "rag": [], "working": [] });
    for h in &hits {
        if let Some(list) = out.get_mut(h.layer.name()).and_then(Value::as_array_mut) {
            list.push(h.row.clone());
        }
    }
    log_read(&state, &p, "retrieve_context", &q.query, hits.len()).await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct RagSearchQuery {
    query: String,
    #[serde(default = "default_rag_limit")]
    limit: i64,
}
fn default_rag_limit() -> i64 {
    10
}

pub async fn rag_search(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<RagSearchQuery>,
) -> AppResult<Json<Vec<Value>>> {
    let limit = check_range("limit", q.limit, 1, 100)?;
    search::check_query(&q.query)?;
    p.require(Perm::Search)?;
    let mut conn = state.pool.acquire().await?;
    let common = state.common_terms.get(&mut conn).await?;
    let rows = search::rag_matches(&mut conn, &p.scope, &q.query, limit, &common).await?;
    drop(conn);
    log_read(&state, &p, "rag_search", &q.query, rows.len()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|mut r| {
                r["type"] = json!("rag");
                r
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default = "default_list_limit")]
    limit: i64,
    cursor: Option<String>,
}
fn default_list_limit() -> i64 {
    100
}

pub async fn list_events(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<ListQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = Cursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Read(Layer::Event))?;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'event_type', event_type, 'payload', payload::text, 'tenant', tenant, 'project_id', project_id, 'ts', ts)
         FROM logs_events WHERE tenant = $1 AND project_id = $2 AND ($4::timestamptz IS NULL OR (ts, id) < ($4, $5))
         ORDER BY ts DESC, id DESC LIMIT $3",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(limit)
    .bind(cursor.ts())
    .bind(cursor.id())
    .fetch_all(&state.pool)
    .await?;
    Ok(paging::page(rows, limit, "ts"))
}

#[derive(Deserialize)]
pub struct SessionListQuery {
    session_id: String,
    #[serde(default = "default_list_limit")]
    limit: i64,
    cursor: Option<String>,
}

pub async fn list_session(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<SessionListQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = Cursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Read(Layer::Session))?;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(t) FROM logs_session t
         WHERE tenant = $1 AND project_id = $2 AND session_id = $3 AND (expires_at IS NULL OR expires_at > now())
           AND ($5::timestamptz IS NULL OR (ts, id) > ($5, $6))
         ORDER BY ts, id LIMIT $4",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(&q.session_id)
    .bind(limit)
    .bind(cursor.ts())
    .bind(cursor.id())
    .fetch_all(&state.pool)
    .await?;
    Ok(paging::page(rows, limit, "ts"))
}

pub async fn list_working(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<ListQuery>,
) -> AppResult<Response> {
    let limit = check_range("limit", q.limit, 1, 200)?;
    let cursor = Cursor::parse(q.cursor.as_deref())?;
    p.require(Perm::Read(Layer::Working))?;
    let rows: Vec<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM working_memory t
         WHERE tenant = $1 AND project_id = $2 AND (expires_at IS NULL OR expires_at > now())
           AND ($4::timestamptz IS NULL OR (updated_at, id) < ($4, $5))
         ORDER BY updated_at DESC, id DESC LIMIT $3",
        records::ROW_JSON
    )))
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(limit)
    .bind(cursor.ts())
    .bind(cursor.id())
    .fetch_all(&state.pool)
    .await?;
    Ok(paging::page(rows, limit, "updated_at"))
}

fn readable_layer(layer: &str) -> AppResult<Layer> {
    Layer::parse(layer)
        .filter(|l| Layer::DOCUMENT_LAYERS.contains(l) || *l == Layer::Working)
        .ok_or_else(|| AppError::bad_request("Unsupported layer"))
}

fn memory_not_found() -> AppError {
    AppError::not_found("Memory not found")
}

pub async fn get_memory(
    State(state): State<AppState>,
    p: Principal,
    Path((layer, id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let layer = readable_layer(&layer)?;
    p.require(Perm::Read(layer))?;
    let id = Uuid::parse_str(&id).map_err(|_| memory_not_found())?;
    let mut conn = state.pool.acquire().await?;
    let mut row = records::get(&mut conn, layer, &p.scope, id, false).await?.ok_or_else(memory_not_found)?;
    if layer == Layer::Working
        && row["expires_at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).is_some_and(|t| t < Utc::now())
    {
        return Err(memory_not_found());
    }
    row["type"] = json!(layer.name());
    Ok(Json(row))
}

/// Fields clients may send but the server owns: silently dropped from updates.
const SYSTEM_FIELDS: [&str; 5] = ["id", "tenant", "project_id", "created_at", "embedding_id"];

pub async fn update_memory(
    State(state): State<AppState>,
    p: Principal,
    Path((layer, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> AppResult<Json<Value>> {
    let layer = Layer::parse_document(&layer).ok_or_else(|| AppError::bad_request("Unsupported layer"))?;
    p.require(Perm::Edit(layer))?;
    let updates: Map<String, Value> = body.into_iter().filter(|(k, _)| !SYSTEM_FIELDS.contains(&k.as_str())).collect();
    if updates.is_empty() {
        return Err(memory_not_found());
    }
    if updates.keys().any(|k| !layer.updatable().contains(&k.as_str())) {
        return Err(AppError::bad_request("Unsupported update field"));
    }
    let id = Uuid::parse_str(&id).map_err(|_| memory_not_found())?;
    let mut tx = state.pool.begin().await?;
    let current = records::get(&mut tx, layer, &p.scope, id, true).await?.ok_or_else(memory_not_found)?;
    let mut merged = layer.payload_of_row(&current);
    for (k, v) in &updates {
        merged[k.as_str()] = v.clone();
    }
    let violations = state.schemas.validate(layer, &merged);
    if !violations.is_empty() {
        let msgs: Vec<String> = violations.into_iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        return Err(AppError::bad_request(format!("Invalid update: {}", msgs.join("; "))));
    }
    // Vectors follow their rows: a change to embedded text re-embeds in this transaction.
    let embedding = match (layer.embedding_text(&merged), layer.embedding_text(&layer.payload_of_row(&current))) {
        (Some(new), Some(old)) if new != old => write::embed_payload(&state, layer, &merged).await?,
        _ => None,
    };
    records::update_document(&mut tx, layer, &p.scope, id, &updates, embedding.as_ref())
        .await?
        .ok_or_else(memory_not_found)?;
    let actor = Actor::from(&p);
    access::record(
        &mut tx,
        &p.scope,
        &actor,
        Access {
            event_type: "update",
            layer: Some(layer.name()),
            memory_id: Some(id.to_string()),
            status: "ok",
            detail: Some("update_memory"),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "status": "updated", "id": id.to_string() })))
}

pub async fn delete_memory(
    State(state): State<AppState>,
    p: Principal,
    Path((layer, id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let layer = Layer::parse_document(&layer).ok_or_else(|| AppError::bad_request("Unsupported layer"))?;
    p.require(Perm::Edit(layer))?;
    let id = Uuid::parse_str(&id).map_err(|_| memory_not_found())?;
    let mut tx = state.pool.begin().await?;
    if !records::delete(&mut tx, layer, &p.scope, id).await? {
        return Err(memory_not_found());
    }
    let actor = Actor::from(&p);
    access::record(
        &mut tx,
        &p.scope,
        &actor,
        Access {
            event_type: "delete",
            layer: Some(layer.name()),
            memory_id: Some(id.to_string()),
            status: "ok",
            detail: Some("delete_memory"),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_schemas(State(state): State<AppState>, p: Principal) -> AppResult<Json<Value>> {
    p.require(Perm::Schemas)?;
    Ok(Json(json!({ "schemas": state.schemas.all() })))
}

pub async fn get_schema(
    State(state): State<AppState>,
    p: Principal,
    Path(layer): Path<String>,
) -> AppResult<Json<Value>> {
    if layer.is_empty() || !layer.chars().filter(|c| *c != '_' && *c != '-').all(|c| c.is_ascii_alphanumeric()) {
        return Err(AppError::bad_request("Invalid layer name"));
    }
    p.require(Perm::Schemas)?;
    state.schemas.get(&layer).cloned().map(Json).ok_or_else(|| AppError::not_found("Schema not found"))
}
