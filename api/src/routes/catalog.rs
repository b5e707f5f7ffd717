//! The route table. Each entry pairs a handler with its documentation; the router and the
//! OpenAPI document are both built from this one list, so the docs cannot drift from the routes.

use axum::routing::{MethodRouter, delete, get, post, put};

use super::{admin, capture, memory, registry, review, system, transfer, units};
use crate::runtime::state::AppState;

/// Who may call a route (checked by the handler; documented here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    Read,
    Write,
    /// `memory.admin` scope + `admin` role.
    Admin,
}

#[derive(Clone, Copy, Debug)]
pub enum Body {
    None,
    /// A layer payload (JSON Schema from `api/schemas/`), plus extra fields.
    Layer(&'static str, &'static [Field]),
    Fields(&'static [Field]),
    AnyObject,
    /// JSON lines (`application/x-ndjson`), described by the text.
    JsonLines(&'static str),
}

/// (name, JSON type, required, description)
pub type Field = (&'static str, &'static str, bool, &'static str);

pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [Field],
    pub body: Body,
    /// Success status and the error statuses the route can answer besides the auth matrix.
    pub ok: u16,
    pub errors: &'static [u16],
}

const LIMIT_200: Field = ("limit", "integer", false, "1..200");
const CURSOR: Field = ("cursor", "string", false, "opaque cursor from X-Next-Cursor");
const TTL: [Field; 2] =
    [("ttl_seconds", "integer", false, "1..315360000"), ("expires_at", "string", false, "RFC 3339")];

macro_rules! op {
    ($m:literal $p:literal, $s:literal, $a:ident, q: $q:expr, b: $b:expr, ok: $ok:literal, e: $e:expr) => {
        Op { method: $m, path: $p, summary: $s, access: Access::$a, query: $q, body: $b, ok: $ok, errors: $e }
    };
}

/// Every route of the service: documentation and handler.
pub fn routes() -> Vec<(Op, MethodRouter<AppState>)> {
    const WORKING_EXTRA: [Field; 4] = [
        ("session_id", "string", false, "default global"),
        ("key", "string", false, "default current_context"),
        TTL[0],
        TTL[1],
    ];
    const SESSION: [Field; 5] = [
        ("session_id", "string", true, ""),
        ("content", "string", true, ""),
        ("role", "string", false, "default user"),
        TTL[0],
        TTL[1],
    ];
    vec![
        (op!("get" "/", "Service banner", Public, q: &[], b: Body::None, ok: 200, e: &[]), get(system::root)),
        (
            op!("get" "/api/v1/live", "Liveness (always 200)", Public, q: &[], b: Body::None, ok: 200, e: &[]),
            get(system::live),
        ),
        (
            op!("get" "/api/v1/health", "Readiness and embedding backend", Public, q: &[], b: Body::None, ok: 200, e: &[503]),
            get(system::health),
        ),
        (
            op!("get" "/api/v1/metrics", "Per-process request counters and store counts (JSON)", Admin, q: &[], b: Body::None, ok: 200, e: &[503]),
            get(system::json_metrics),
        ),
        (
            op!("get" "/metrics", "Prometheus metrics", Public, q: &[], b: Body::None, ok: 200, e: &[]),
            get(system::prometheus),
        ),
        (
            op!("get" "/openapi.json", "This OpenAPI document", Public, q: &[], b: Body::None, ok: 200, e: &[]),
            get(super::docs::openapi),
        ),
        (
            op!("get" "/docs", "Human-readable API reference", Public, q: &[], b: Body::None, ok: 200, e: &[]),
            get(super::docs::page),
        ),
        (
            op!("post" "/api/v1/auth/revoke", "Revoke a token by jti", Admin, q: &[], b: Body::Fields(&[("jti", "string", true, "1-256 chars"), ("expires_at", "string", false, "RFC 3339; default now + 365 days")]), ok: 204, e: &[422]),
            post(admin::revoke),
        ),
        (
            op!("get" "/api/v1/memory/schema", "All layer JSON Schemas", Read, q: &[], b: Body::None, ok: 200, e: &[]),
            get(memory::list_schemas),
        ),
        (
            op!("get" "/api/v1/memory/schema/{layer}", "One layer's JSON Schema", Read, q: &[], b: Body::None, ok: 200, e: &[400, 404]),
            get(memory::get_schema),
        ),
        (
            op!("post" "/api/v1/memory/capture/session", "Capture session open (validate only; always 503 capture_disabled)", Write, q: &[], b: Body::Fields(&[("client_session_ref", "string", false, "1-256 chars"), ("client_version", "string", false, "")]), ok: 503, e: &[403, 422]),
            post(capture::session),
        ),
        (
            op!("post" "/api/v1/memory/capture", "Capture envelope v0.3 (validate only; always 503 capture_disabled)", Write, q: &[], b: Body::AnyObject, ok: 503, e: &[400, 403, 422]),
            post(capture::capture),
        ),
        (
            op!("post" "/api/v1/memory/add", "Add a semantic memory", Write, q: &[], b: Body::Layer("semantic", &[]), ok: 201, e: &[202, 403, 422]),
            post(memory::add_semantic),
        ),
        (
            op!("post" "/api/v1/memory/batch", "Add up to 500 memories to one layer, all or nothing (201 ids; 202 when the quarantine policy diverts them)", Write, q: &[], b: Body::Fields(&[("layer", "string", true, "semantic, episodic, procedural or rag"), ("items", "array", true, "1-500 objects, each the body of that layer's add route")]), ok: 201, e: &[202, 403, 422]),
            post(memory::add_batch),
        ),
        (
            op!("post" "/api/v1/memory/episodic/add", "Add an episode", Write, q: &[], b: Body::Layer("episodic", &[]), ok: 201, e: &[202, 403, 422]),
            post(memory::add_episodic),
        ),
        (
            op!("post" "/api/v1/memory/procedural/add", "Add a skill", Write, q: &[], b: Body::Layer("procedural", &[]), ok: 201, e: &[202, 403, 422]),
            post(memory::add_procedural),
        ),
        (
            op!("post" "/api/v1/memory/rag/add", "Add an external snippet", Write, q: &[], b: Body::Layer("rag", &[]), ok: 201, e: &[202, 403, 422]),
            post(memory::add_rag),
        ),
        (
            op!("post" "/api/v1/memory/working/add", "Add a working-memory note (returns nudges; 202 when the quarantine policy diverts it)", Write, q: &[], b: Body::Layer("working", &WORKING_EXTRA), ok: 201, e: &[202, 403, 422]),
            post(memory::add_working),
        ),
        (
            op!("post" "/api/v1/memory/session/add", "Append a session transcript line", Write, q: &[], b: Body::Fields(&SESSION), ok: 201, e: &[403, 422]),
            post(memory::add_session),
        ),
        (
            op!("post" "/api/v1/memory/event", "Append an event", Write, q: &[], b: Body::Fields(&[("event_type", "string", true, ""), ("payload", "object", true, "")]), ok: 201, e: &[403, 422]),
            post(memory::add_event),
        ),
        (
            op!("get" "/api/v1/memory/search", "Hybrid search across layers", Read, q: &[("query", "string", true, "at most 1000 characters, words at most 100"), ("k", "integer", false, "1..100, default 5"), ("mode", "string", false, "hybrid (default), keyword or vector: which lists run"), ("fusion", "string", false, "rrf (default) or weighted: how the lists merge"), ("rrf_k", "number", false, "1..1000, default 60 (fusion=rrf)"), ("weight", "number", false, "0..1, the vector share (fusion=weighted; implies it), default 0.5")], b: Body::None, ok: 200, e: &[422]),
            get(memory::search),
        ),
        (
            op!("get" "/api/v1/memory/retrieve_context", "Hybrid search grouped by layer", Read, q: &[("query", "string", true, "at most 1000 characters, words at most 100"), ("limit", "integer", false, "1..100, default 20"), ("mode", "string", false, "hybrid (default), keyword or vector: which lists run"), ("fusion", "string", false, "rrf (default) or weighted: how the lists merge"), ("rrf_k", "number", false, "1..1000, default 60 (fusion=rrf)"), ("weight", "number", false, "0..1, the vector share (fusion=weighted; implies it), default 0.5")], b: Body::None, ok: 200, e: &[422]),
            get(memory::retrieve_context),
        ),
        (
            op!("get" "/api/v1/memory/rag/search", "Rag snippets holding any word of the query, newest first", Read, q: &[("query", "string", true, "at most 1000 characters, words at most 100"), ("limit", "integer", false, "1..100, default 10")], b: Body::None, ok: 200, e: &[422]),
            get(memory::rag_search),
        ),
        (
            op!("get" "/api/v1/memory/events", "Events, newest first", Read, q: &[LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(memory::list_events),
        ),
        (
            op!("get" "/api/v1/memory/session/list", "Session lines, oldest first", Read, q: &[("session_id", "string", true, ""), LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(memory::list_session),
        ),
        (
            op!("get" "/api/v1/memory/working/list", "Unexpired working notes, newest first", Read, q: &[LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(memory::list_working),
        ),
        (
            op!("post" "/api/v1/memory/agent/heartbeat", "Agent heartbeat (upsert)", Read, q: &[], b: Body::Fields(&[("status", "string", false, "default active"), ("hostname", "string", false, ""), ("pid", "string", false, ""), ("meta", "object", false, "")]), ok: 200, e: &[422]),
            post(registry::heartbeat),
        ),
        (
            op!("get" "/api/v1/memory/agent/list", "Agents, newest heartbeat first", Read, q: &[LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(registry::list_agents),
        ),
        (
            op!("get" "/api/v1/memory/access/list", "Access log, newest first", Read, q: &[LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(registry::list_access),
        ),
        (
            op!("post" "/api/v1/memory/client/register", "Register a client (trusted/blocked need role admin)", Write, q: &[], b: Body::Fields(&[("client_id", "string", true, ""), ("client_name", "string", false, ""), ("parent_client_id", "string", false, "a parent holds at most 100 children"), ("status", "string", false, "default registered"), ("metadata", "object", false, "")]), ok: 201, e: &[403, 422]),
            post(registry::register_client),
        ),
        (
            op!("get" "/api/v1/memory/client/list", "Registered clients", Read, q: &[LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(registry::list_clients),
        ),
        (
            op!("get" "/api/v1/memory/client/summary", "Per-layer counts for the caller's client and its children", Read, q: &[("include_children", "boolean", false, "default true")], b: Body::None, ok: 200, e: &[422]),
            get(registry::client_summary),
        ),
        (
            op!("post" "/api/v1/memory/client/issues", "File a client issue", Write, q: &[], b: Body::Fields(&[("error_code", "string", true, ""), ("message", "string", true, ""), ("layer", "string", false, ""), ("payload", "object", false, ""), ("metadata", "object", false, "")]), ok: 201, e: &[422]),
            post(registry::create_issue),
        ),
        (
            op!("get" "/api/v1/memory/client/issues", "Client issues, newest first", Read, q: &[("status_filter", "string", false, "default open"), LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(registry::list_issues),
        ),
        (
            op!("post" "/api/v1/memory/client/issues/{issue_id}/resolve", "Resolve an open issue", Admin, q: &[], b: Body::Fields(&[("resolution", "string", false, "default resolved")]), ok: 200, e: &[404, 422]),
            post(registry::resolve_issue),
        ),
        (
            op!("post" "/api/v1/memory/quarantine/propose/{layer}", "Propose a memory for review", Write, q: &[], b: Body::AnyObject, ok: 202, e: &[400, 403, 422]),
            post(review::propose),
        ),
        (
            op!("get" "/api/v1/memory/quarantine/list", "Quarantine items, newest first", Admin, q: &[("status_filter", "string", false, "default pending"), LIMIT_200, CURSOR], b: Body::None, ok: 200, e: &[422]),
            get(review::list),
        ),
        (
            op!("post" "/api/v1/memory/quarantine/approve/{item_id}", "Approve (re-validates, then writes)", Admin, q: &[], b: Body::None, ok: 200, e: &[400, 404]),
            post(review::approve),
        ),
        (
            op!("post" "/api/v1/memory/quarantine/reject/{item_id}", "Reject", Admin, q: &[], b: Body::None, ok: 200, e: &[404]),
            post(review::reject),
        ),
        (
            op!("post" "/api/v1/memory/maintenance/verify", "Verify the tenant's audit hash chain (and, with an exported head as anchor, that no tail was cut)", Admin, q: &[], b: Body::Fields(&[("anchor", "object", false, "{seq, head_hash} or the signature of GET /maintenance/audit/head")]), ok: 200, e: &[400, 409]),
            post(admin::verify),
        ),
        (
            op!("get" "/api/v1/memory/maintenance/audit/head", "The audit chain head, signed with PINAK_AUDIT_SIGNING_KEY", Admin, q: &[], b: Body::None, ok: 200, e: &[]),
            get(admin::audit_head),
        ),
        (
            op!("get" "/api/v1/memory/export", "The project as JSON lines: every layer's rows, vectors included, from one snapshot", Admin, q: &[], b: Body::None, ok: 200, e: &[]),
            get(transfer::export),
        ),
        (
            op!("post" "/api/v1/memory/import", "Load an export into the project, all or nothing (at most 64 MiB)", Admin, q: &[("new_ids", "boolean", false, "give every row a fresh id (default false: keep the file's ids)")], b: Body::JsonLines("the lines of `GET /api/v1/memory/export`: `{\"layer\": <layer>, \"row\": {<column>: <value>}}`; a row takes the importer's tenant and project"), ok: 200, e: &[409, 413, 422]),
            post(transfer::import),
        ),
        (
            op!("post" "/api/v1/memory/units", "Group records into a unit", Admin, q: &[], b: Body::Fields(&[("label", "string", true, "1-256 chars"), ("members", "array", true, "1-100 of {layer, id, role}")]), ok: 201, e: &[400]),
            post(units::create),
        ),
        (
            op!("get" "/api/v1/memory/units/related/{layer}/{record_id}", "A record's unit and siblings", Read, q: &[], b: Body::None, ok: 200, e: &[400, 404]),
            get(units::related),
        ),
        // Declared last in the prototype: a catch-all for two-segment paths.
        (
            op!("get" "/api/v1/memory/{layer}/{memory_id}", "Read one record", Read, q: &[], b: Body::None, ok: 200, e: &[400, 404]),
            get(memory::get_memory),
        ),
        (
            op!("put" "/api/v1/memory/{layer}/{memory_id}", "Edit allow-listed fields (re-embeds)", Admin, q: &[], b: Body::AnyObject, ok: 200, e: &[400, 404, 422]),
            put(memory::update_memory),
        ),
        (
            op!("delete" "/api/v1/memory/{layer}/{memory_id}", "Delete a record and its vector", Admin, q: &[], b: Body::None, ok: 204, e: &[400, 404]),
            delete(memory::delete_memory),
        ),
    ]
}
