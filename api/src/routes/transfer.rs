//! `GET /memory/export` and `POST /memory/import`: a project as JSON lines (`store::transfer`).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::governance::access::{self, Access};
use crate::governance::actor::Actor;
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::security::tenancy::Scope;
use crate::store::transfer::{self, LAYERS};
use crate::web::error::{AppError, AppResult};
use crate::web::extract::QueryParams;

/// A response body fed by the export task, page by page. An `Err` aborts the transfer, so a
/// client never takes a cut export for a whole one.
struct Lines(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for Lines {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|next| next.map(|r| r.map(http_body::Frame::data)))
    }
}

/// Streams the caller's project: every layer's rows from one snapshot, as JSON lines.
pub async fn export(State(state): State<AppState>, p: Principal) -> AppResult<Response> {
    p.require(Perm::Export)?;
    // The snapshot is taken before the answer starts, so an unreachable database is a 503,
    // not a 200 with an empty body.
    let mut tx = state.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let (send, receive) = mpsc::channel(4);
    let scope = p.scope.clone();
    let actor = Actor::from(&p);
    tokio::spawn(async move {
        let outcome = stream(&mut tx, &scope, &send).await;
        drop(tx);
        match outcome {
            Ok(Some(rows)) => {
                let entry = Access {
                    event_type: "read",
                    result_count: Some(rows),
                    status: "ok",
                    detail: Some("export"),
                    ..Default::default()
                };
                if let Err(e) = access::log_read(&state, &scope, &actor, entry).await {
                    tracing::error!(error = %e, "export: the access row could not be written");
                }
            }
            Ok(None) => tracing::info!("export: the client went away"),
            Err(e) => {
                tracing::error!(error = %e, "export failed part-way; the transfer is aborted");
                let _ = send.send(Err(std::io::Error::other("export failed"))).await;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson"), (header::CACHE_CONTROL, "no-store")],
        Body::new(Lines(receive)),
    )
        .into_response())
}

/// Sends every page; the number of rows, or `None` when the client stopped reading.
async fn stream(
    conn: &mut sqlx::PgConnection,
    scope: &Scope,
    send: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<Option<i64>, sqlx::Error> {
    let mut rows = 0;
    for layer in LAYERS {
        let mut after = None;
        loop {
            let page = transfer::page(conn, layer, scope, after).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            rows += page.len() as i64;
            let full = page.len() as i64 == transfer::PAGE;
            let chunk: String = page.into_iter().map(|(_, line)| line).collect();
            if send.send(Ok(Bytes::from(chunk))).await.is_err() {
                return Ok(None);
            }
            if !full {
                break;
            }
        }
    }
    Ok(Some(rows))
}

#[derive(Deserialize)]
pub struct ImportQuery {
    /// Give every imported row a fresh id (to copy a project beside its source).
    #[serde(default)]
    new_ids: bool,
}

/// Loads an export into the caller's project, all or nothing.
pub async fn import(
    State(state): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<ImportQuery>,
    body: Bytes,
) -> AppResult<Json<Value>> {
    p.require(Perm::Import)?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| AppError::validation(&["body"], format!("the body is not UTF-8 ({e})"), "value_error"))?;
    let mut tx = state.pool.begin().await?;
    let columns = transfer::columns(&mut tx).await?;
    let lines = transfer::parse(text, &columns, q.new_ids)
        .map_err(|msg| AppError::validation(&["body"], msg, "value_error"))?;
    if lines.is_empty() {
        return Err(AppError::validation(&["body"], "nothing to import: the body holds no line", "value_error"));
    }
    let mut counts: Map<String, Value> = LAYERS.iter().map(|l| (l.name().to_owned(), json!(0))).collect();
    for line in &lines {
        if let Err(e) = transfer::insert(&mut tx, &p.scope, line).await {
            return Err(refused(line, e));
        }
        let n = &mut counts[line.layer.name()];
        *n = json!(n.as_i64().unwrap_or(0) + 1);
    }
    // Every imported row is a write in the access log and the audit chain, as if added.
    let entries: Vec<Access> = lines
        .iter()
        .map(|line| Access {
            event_type: "write",
            layer: Some(line.layer.name()),
            memory_id: line.row["id"].as_str().map(str::to_owned),
            status: "ok",
            detail: Some("import"),
            ..Default::default()
        })
        .collect();
    access::record_many(&mut tx, &p.scope, &Actor::from(&p), &entries).await?;
    tx.commit().await?;
    Ok(Json(json!({ "imported": lines.len(), "layers": counts })))
}

/// A line the database refused: its number and the database's reason (a taken id is a 409).
fn refused(line: &transfer::Line, e: sqlx::Error) -> AppError {
    let Some(db) = e.as_database_error() else { return e.into() };
    let at = format!("line {}", line.number);
    match db.code().as_deref() {
        Some("23505") => AppError::status(
            axum::http::StatusCode::CONFLICT,
            format!(
                "{at}: a record with id {} already exists; import with new_ids=true to give the rows new ids",
                line.row["id"]
            ),
        ),
        // Data exceptions (22) and integrity violations (23): a value the column refuses.
        Some(code) if code.starts_with("22") || code.starts_with("23") => {
            AppError::validation(&["body"], format!("{at}: {}", db.message()), "value_error")
        }
        _ => e.into(),
    }
}
