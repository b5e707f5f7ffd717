//! The request pipeline around every route, in the contract's order: body size cap ->
//! request id, JSON access log and metrics -> readiness gate for memory routes -> timeout.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tracing::Instrument;

use crate::runtime::metrics;
use crate::runtime::state::AppState;
use crate::web::error::AppError;

pub const MAX_BODY_BYTES: usize = 1_048_576;
/// `POST /memory/import` carries a whole project (`store::transfer`), vectors included.
pub const IMPORT_MAX_BYTES: usize = 64 * 1_048_576;
pub const IMPORT_PATH: &str = "/api/v1/memory/import";

/// Route template of the matched route, carried out of the router on the response.
#[derive(Clone)]
struct RouteTemplate(String);

/// Inner layer (runs after routing): records which route template matched.
pub async fn tag_route(req: Request, next: Next) -> Response {
    let template = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let mut resp = next.run(req).await;
    if let Some(t) = template {
        resp.extensions_mut().insert(RouteTemplate(t));
    }
    resp
}

/// Outer layer: everything the contract asks of every request.
pub async fn pipeline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut resp = async {
        let req = match cap_body(req, state.config.body_timeout).await {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        if req.uri().path().starts_with("/api/v1/memory/") && !state.is_ready() {
            return not_ready(&state);
        }
        match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => AppError::status(StatusCode::SERVICE_UNAVAILABLE, "Request timed out").into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    if (resp.status().is_client_error() || resp.status().is_server_error()) && !is_json(&resp) {
        resp = json_detail(resp).await;
    }
    let route = resp.extensions().get::<RouteTemplate>().map(|r| r.0.clone()).unwrap_or_else(|| "unmatched".into());
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics::observe_request(method.as_str(), &route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(event = "request", request_id = %request_id, route = %route, method = %method, status, duration_ms = elapsed.as_secs_f64() * 1000.0)
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Errors are `{"detail": …}` everywhere (as FastAPI's). axum's own rejections (unmatched
/// path, wrong method, undecodable path parameter) are plain text or empty: rewrap them.
async fn json_detail(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() { parts.status.canonical_reason().unwrap_or("Error").to_owned() } else { text };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(json!({ "detail": detail }).to_string()))
}

pub fn not_ready(state: &AppState) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "detail": { "status": "not_ready", "verification": state.readiness_state() } })),
    )
        .into_response()
}

/// 1 MiB cap on POST/PUT/PATCH bodies (64 MiB on the import route), by declared length and
/// by what actually arrives.
async fn cap_body(req: Request, within: std::time::Duration) -> Result<Request, AppError> {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return Ok(req);
    }
    let cap = if req.uri().path() == IMPORT_PATH { IMPORT_MAX_BYTES } else { MAX_BODY_BYTES };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| AppError::bad_request("Invalid Content-Length"))?;
        if len > cap as u64 {
            return Err(too_large());
        }
    }
    let (parts, body) = req.into_parts();
    // Bounded in time too: a client that trickles or pauses its body must not hold a
    // connection and a task for ever (the request timeout starts after this).
    let bytes = match tokio::time::timeout(within, Limited::new(body, cap).collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(_)) => return Err(AppError::bad_request("Request body interrupted")),
        Err(_) => return Err(AppError::status(StatusCode::REQUEST_TIMEOUT, "Request body not received in time")),
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn too_large() -> AppError {
    AppError::status(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
}
