//! `GET /openapi.json` (OpenAPI 3.1, generated from the route table and the layer JSON
//! Schemas) and `GET /docs`, a self-contained HTML reference (no external scripts, so it
//! works on air-gapped clusters).

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde_json::{Map, Value, json};

use super::catalog::{self, Access, Body, Field, Op};
use crate::runtime::state::AppState;

fn access_text(a: Access) -> &'static str {
    match a {
        Access::Public => "none",
        Access::Read => "scope memory.read",
        Access::Write => "scope memory.write",
        Access::Admin => "scope memory.admin + role admin",
    }
}

fn field_schema(f: &Field) -> Value {
    let mut s = json!({ "type": f.1 });
    if !f.3.is_empty() {
        s["description"] = json!(f.3);
    }
    s
}

fn object_schema(fields: &[Field]) -> Value {
    let props: Map<String, Value> = fields.iter().map(|f| (f.0.to_string(), field_schema(f))).collect();
    let required: Vec<&str> = fields.iter().filter(|f| f.2).map(|f| f.0).collect();
    json!({ "type": "object", "properties": props, "required": required })
}

fn layer_schema_name(layer: &str) -> String {
    let mut c = layer.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default() + "Payload"
}

fn operation(op: &Op) -> Value {
    let mut params: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    params.extend(
        op.query.iter().map(|f| json!({ "name": f.0, "in": "query", "required": f.2, "schema": field_schema(f) })),
    );
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let mut responses = Map::new();
    responses.insert(op.ok.to_string(), json!({ "description": "success" }));
    let mut codes: Vec<u16> = op.errors.to_vec();
    if op.access != Access::Public {
        codes.extend([401, 403, 503]);
    }
    for code in codes {
        responses.entry(code.to_string()).or_insert_with(
            || json!({ "description": "error", "content": { "application/json": { "schema": error } } }),
        );
    }
    let mut out = json!({
        "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}'], "_")),
        "summary": op.summary,
        "description": format!("Authorization: {}.", access_text(op.access)),
        "parameters": params,
        "responses": responses,
        "security": if op.access == Access::Public { json!([]) } else { json!([{ "bearer": [] }]) },
    });
    let body = match op.body {
        Body::None | Body::JsonLines(_) => None,
        Body::AnyObject => Some(json!({ "type": "object" })),
        Body::Fields(fields) => Some(object_schema(fields)),
        Body::Layer(layer, []) => Some(json!({ "$ref": format!("#/components/schemas/{}", layer_schema_name(layer)) })),
        Body::Layer(layer, extra) => Some(
            json!({ "allOf": [{ "$ref": format!("#/components/schemas/{}", layer_schema_name(layer)) }, object_schema(extra)] }),
        ),
    };
    if let Some(schema) = body {
        out["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    if let Body::JsonLines(what) = op.body {
        out["requestBody"] = json!({ "required": true, "description": what,
            "content": { "application/x-ndjson": { "schema": { "type": "string" } } } });
    }
    out
}

pub fn document(state: &AppState) -> Value {
    let mut paths = Map::new();
    for (op, _) in catalog::routes() {
        let item = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        item[op.method] = operation(&op);
    }
    let mut schemas = Map::new();
    schemas.insert("Error".into(), json!({ "type": "object", "properties": { "detail": {} }, "required": ["detail"] }));
    for (layer, schema) in state.schemas.all() {
        let mut s = schema;
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
        }
        schemas.insert(layer_schema_name(&layer), s);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Pinak Memory Service", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Long-term memory for AI agents. Errors are {\"detail\": ...}; validation errors are 422 with a list of {loc, msg, type}." },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }, "schemas": schemas },
        "paths": paths,
    })
}

static DOCUMENT: OnceLock<Value> = OnceLock::new();

pub async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(DOCUMENT.get_or_init(|| document(&state)).clone())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub async fn page() -> Html<String> {
    let rows: String = catalog::routes()
        .iter()
        .map(|(op, _)| {
            let query: Vec<String> =
                op.query.iter().map(|f| format!("{}{}", f.0, if f.2 { "*" } else { "" })).collect();
            format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                op.method.to_uppercase(),
                escape(op.path),
                escape(op.summary),
                access_text(op.access),
                escape(&query.join(", ")),
                op.ok
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Pinak API</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>\
         <body><h1>Pinak Memory Service</h1><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1). \
         Authenticate with <code>Authorization: Bearer &lt;JWT&gt;</code>. Query parameters marked * are required.</p>\
         <table><tr><th>method</th><th>path</th><th>what</th><th>authorization</th><th>query</th><th>success</th></tr>{rows}</table></body></html>"
    ))
}
