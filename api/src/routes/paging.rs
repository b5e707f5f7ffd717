//! Opaque cursors for list endpoints: the response body keeps the prototype's shape and the
//! next cursor travels in `X-Next-Cursor`. A cursor is (timestamp, id) of the page's last row,
//! hex-encoded so clients treat it as opaque.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::security::tenancy::Scope;
use crate::web::error::{AppError, AppResult};

#[derive(Default)]
pub struct Cursor(Option<(DateTime<Utc>, Uuid)>);

impl Cursor {
    pub fn parse(raw: Option<&str>) -> AppResult<Cursor> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else { return Ok(Cursor(None)) };
        let invalid = invalid_cursor;
        let text = hex::decode(raw).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(invalid)?;
        let (ts, id) = text.split_once('|').ok_or_else(invalid)?;
        let ts = DateTime::parse_from_rfc3339(ts).map_err(|_| invalid())?.with_timezone(&Utc);
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Cursor(Some((ts, id))))
    }
    pub fn ts(&self) -> Option<DateTime<Utc>> {
        self.0.map(|c| c.0)
    }
    pub fn id(&self) -> Option<Uuid> {
        self.0.map(|c| c.1)
    }
    fn encode(row: &Value, ts_key: &str) -> Option<String> {
        let ts = row.get(ts_key)?.as_str()?;
        let id = row.get("id")?.as_str()?;
        Some(hex::encode(format!("{ts}|{id}")))
    }
}

fn invalid_cursor() -> AppError {
    AppError::validation(&["query", "cursor"], "Invalid cursor", "value_error")
}

/// A cursor for lists whose rows show no uuid `id` (agents, clients, the access log): the
/// (timestamp, key) of the page's last row, in the same opaque encoding. The handler names
/// the key (a row id as text, a client id).
#[derive(Default)]
pub struct KeyCursor(Option<(DateTime<Utc>, String)>);

impl KeyCursor {
    pub fn parse(raw: Option<&str>) -> AppResult<KeyCursor> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else { return Ok(KeyCursor(None)) };
        let text = hex::decode(raw).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(invalid_cursor)?;
        let (ts, key) = text.split_once('|').filter(|(_, k)| !k.is_empty()).ok_or_else(invalid_cursor)?;
        let ts = DateTime::parse_from_rfc3339(ts).map_err(|_| invalid_cursor())?.with_timezone(&Utc);
        Ok(KeyCursor(Some((ts, key.to_owned()))))
    }
    pub fn ts(&self) -> Option<DateTime<Utc>> {
        self.0.as_ref().map(|c| c.0)
    }
    pub fn key(&self) -> Option<&str> {
        self.0.as_ref().map(|c| c.1.as_str())
    }
    /// The key as a bigserial row id (the access log); anything else is an invalid cursor.
    pub fn key_i64(&self) -> AppResult<Option<i64>> {
        self.key().map(|k| k.parse::<i64>().map_err(|_| invalid_cursor())).transpose()
    }
}

/// One keyset page of a scope's rows: `sql` takes `$1` tenant, `$2` project, `$3` the limit,
/// `$4` the cursor's timestamp and `$5` its key (`key`, as the table types it), and returns
/// (row JSON, timestamp, key text) newest first. Answered as [`page_keyed`].
pub async fn keyed_page<K>(
    pool: &sqlx::PgPool,
    sql: impl sqlx::SqlSafeStr,
    scope: &Scope,
    limit: i64,
    ts: Option<DateTime<Utc>>,
    key: Option<K>,
) -> AppResult<Response>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let rows = sqlx::query_as(sql)
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(limit)
        .bind(ts)
        .bind(key)
        .fetch_all(pool)
        .await?;
    Ok(page_keyed(rows, limit))
}

/// A JSON list of rows fetched with their (timestamp, key); a full page carries the cursor
/// of its last row. The body is the rows alone.
pub fn page_keyed(rows: Vec<(Value, DateTime<Utc>, String)>, limit: i64) -> Response {
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|(_, ts, key)| hex::encode(format!("{}|{key}", ts.to_rfc3339()))))
        .flatten();
    let body: Vec<Value> = rows.into_iter().map(|(row, _, _)| row).collect();
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    if let Some(v) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    resp
}

/// A JSON list response; a full page carries the cursor of its last row.
pub fn page(rows: Vec<Value>, limit: i64, ts_key: &str) -> Response {
    let next = (rows.len() as i64 == limit).then(|| rows.last().and_then(|r| Cursor::encode(r, ts_key))).flatten();
    let mut resp = (StatusCode::OK, Json(rows)).into_response();
    if let Some(v) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    resp
}
