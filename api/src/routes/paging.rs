//! Opaque cursors for list endpoints: the response body keeps the prototype's shape and the
//! next cursor travels in `X-Next-Cursor`. A cursor is (timestamp, id) of the page's last row,
//! hex-encoded so clients treat it as opaque.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

#[derive(Default)]
pub struct Cursor(Option<(DateTime<Utc>, Uuid)>);

impl Cursor {
    pub fn parse(raw: Option<&str>) -> AppResult<Cursor> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else { return Ok(Cursor(None)) };
        let invalid = || AppError::validation(&["query", "cursor"], "Invalid cursor", "value_error");
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

/// A JSON list response; a full page carries the cursor of its last row.
pub fn page(rows: Vec<Value>, limit: i64, ts_key: &str) -> Response {
    let next = (rows.len() as i64 == limit).then(|| rows.last().and_then(|r| Cursor::encode(r, ts_key))).flatten();
    let mut resp = (StatusCode::OK, Json(rows)).into_response();
    if let Some(v) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    resp
}
