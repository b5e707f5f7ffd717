//! The MCP tool table: each tool's arguments (its input schema) and the API route it calls.
//!
//! Tool names and arguments are the prototype's MCP bridge's, so agents configured for it
//! keep working. A route's 4xx/5xx becomes a tool error carrying the status and the API's
//! `detail`; bad arguments are the protocol's invalid-params error.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::mcp::recall;

const MEMORY: &str = "/api/v1/memory";
/// Largest route response a tool relays (a full page of 200 records fits many times over).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Obj,
    StrList,
}

struct Param {
    name: &'static str,
    ty: Ty,
    required: bool,
    about: &'static str,
}

const fn req(name: &'static str, ty: Ty, about: &'static str) -> Param {
    Param { name, ty, required: true, about }
}
const fn opt(name: &'static str, ty: Ty, about: &'static str) -> Param {
    Param { name, ty, required: false, about }
}

/// What a tool returns: the route's JSON, or the same wrapped in untrusted-data markers (any
/// output holding memory text written by agents), or the recall report.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    Json,
    Untrusted,
    Recall,
}

struct Spec {
    name: &'static str,
    about: &'static str,
    params: &'static [Param],
    output: Output,
    route: fn(&Args) -> Result<Call, ErrorData>,
}

const LAYER: Param = req("layer", Ty::Str, "semantic, episodic, procedural, rag or working");
const MEMORY_ID: Param = req("memory_id", Ty::Str, "the record's id");
const LIMIT: Param = opt("limit", Ty::Int, "most records to return");

static TOOLS: &[Spec] = &[
    Spec {
        name: "recall",
        about: "Recall what is known about a task: memories of every layer, best first, and the records reviewed units link them to.",
        params: &[
            req("query", Ty::Str, "what the task is about"),
            opt("limit", Ty::Int, "most memories (1-100, default 5)"),
        ],
        output: Output::Recall,
        route: |a| {
            Ok(Call::get("/retrieve_context", vec![("query", a.str("query")?), ("limit", a.int_or("limit", 5)?)]))
        },
    },
    Spec {
        name: "remember_episode",
        about: "Propose an episode (what was done, the goal, the outcome) for review; it is stored once approved.",
        params: &[
            req("goal", Ty::Str, "what the task set out to do"),
            req("outcome", Ty::Str, "how it ended"),
            req("summary", Ty::Str, "what was done"),
            opt("tags", Ty::StrList, "unused; accepted for compatibility"),
        ],
        output: Output::Json,
        route: |a| {
            let body = json!({ "content": a.str("summary")?, "goal": a.str("goal")?, "outcome": a.str("outcome")? });
            Ok(Call::post("/quarantine/propose/episodic", body))
        },
    },
    Spec {
        name: "verify_integrity",
        about: "Verify the tenant's audit hash chain (admin).",
        params: &[],
        output: Output::Json,
        route: |_| Ok(Call::post("/maintenance/verify", json!({}))),
    },
    Spec {
        name: "search_context",
        about: "Hybrid search grouped by layer (raw records).",
        params: &[req("query", Ty::Str, "what to look for"), opt("limit", Ty::Int, "most records (1-100, default 20)")],
        output: Output::Untrusted,
        route: |a| {
            Ok(Call::get("/retrieve_context", vec![("query", a.str("query")?), ("limit", a.int_or("limit", 20)?)]))
        },
    },
    Spec {
        name: "search_rag",
        about: "Rag snippets holding any word of the query, newest first.",
        params: &[
            req("query", Ty::Str, "what to look for"),
            opt("limit", Ty::Int, "most snippets (1-100, default 10)"),
        ],
        output: Output::Untrusted,
        route: |a| Ok(Call::get("/rag/search", vec![("query", a.str("query")?), ("limit", a.int_or("limit", 10)?)])),
    },
    Spec {
        name: "read_memory",
        about: "Read one record.",
        params: &[LAYER, MEMORY_ID],
        output: Output::Untrusted,
        route: |a| Ok(Call::get(&format!("/{}/{}", a.segment("layer")?, a.segment("memory_id")?), vec![])),
    },
    Spec {
        name: "related_memory",
        about: "A record's reviewed unit and the records it links.",
        params: &[
            req("layer", Ty::Str, "semantic, episodic, procedural, rag, working, session or event"),
            req("record_id", Ty::Str, "the record's id"),
        ],
        output: Output::Untrusted,
        route: |a| {
            Ok(Call::get(&format!("/units/related/{}/{}", a.segment("layer")?, a.segment("record_id")?), vec![]))
        },
    },
    Spec {
        name: "propose_memory",
        about: "Propose a memory for review (semantic, episodic, procedural or rag); stored once approved.",
        params: &[
            req("layer", Ty::Str, "semantic, episodic, procedural or rag"),
            req("payload", Ty::Obj, "the layer's fields (list_schemas)"),
        ],
        output: Output::Json,
        route: |a| Ok(Call::post(&format!("/quarantine/propose/{}", a.segment("layer")?), a.obj("payload")?)),
    },
    Spec {
        name: "create_memory",
        about: "Write a memory directly (semantic, episodic, procedural or rag); the store's quarantine policy may still hold it for review.",
        params: &[
            req("layer", Ty::Str, "semantic, episodic, procedural or rag"),
            req("payload", Ty::Obj, "the layer's fields (list_schemas)"),
        ],
        output: Output::Json,
        route: |a| {
            let path = match a.str("layer")?.as_str() {
                "semantic" => "/add",
                "episodic" => "/episodic/add",
                "procedural" => "/procedural/add",
                "rag" => "/rag/add",
                other => {
                    let msg = format!("layer should be semantic, episodic, procedural or rag, not '{other}'");
                    return Err(ErrorData::invalid_params(msg, None));
                }
            };
            Ok(Call::post(path, a.obj("payload")?))
        },
    },
    Spec {
        name: "add_working",
        about: "Add a working-memory note.",
        params: &[req("content", Ty::Str, "the note")],
        output: Output::Json,
        route: |a| Ok(Call::post("/working/add", json!({ "content": a.str("content")? }))),
    },
    Spec {
        name: "list_working",
        about: "Unexpired working notes, newest first.",
        params: &[LIMIT],
        output: Output::Untrusted,
        route: |a| Ok(Call::get("/working/list", vec![("limit", a.int_or("limit", 100)?)])),
    },
    Spec {
        name: "add_session",
        about: "Append a line to a session transcript.",
        params: &[
            req("session_id", Ty::Str, "the session"),
            req("content", Ty::Str, "the line"),
            opt("role", Ty::Str, "who said it (default user)"),
        ],
        output: Output::Json,
        route: |a| {
            let body = json!({ "session_id": a.str("session_id")?, "content": a.str("content")?, "role": a.str_or("role", "user")? });
            Ok(Call::post("/session/add", body))
        },
    },
    Spec {
        name: "list_session",
        about: "A session's lines, oldest first.",
        params: &[req("session_id", Ty::Str, "the session"), LIMIT],
        output: Output::Untrusted,
        route: |a| {
            Ok(Call::get(
                "/session/list",
                vec![("session_id", a.str("session_id")?), ("limit", a.int_or("limit", 100)?)],
            ))
        },
    },
    Spec {
        name: "add_event",
        about: "Append an event.",
        params: &[req("event_type", Ty::Str, "the event's type"), opt("payload", Ty::Obj, "its fields")],
        output: Output::Json,
        route: |a| {
            let payload = a.opt_obj("payload")?.unwrap_or_else(|| json!({}));
            Ok(Call::post("/event", json!({ "event_type": a.str("event_type")?, "payload": payload })))
        },
    },
    Spec {
        name: "list_events",
        about: "Events, newest first.",
        params: &[LIMIT],
        output: Output::Untrusted,
        route: |a| Ok(Call::get("/events", vec![("limit", a.int_or("limit", 100)?)])),
    },
    Spec {
        name: "edit_memory",
        about: "Edit allow-listed fields of a record (admin).",
        params: &[LAYER, MEMORY_ID, req("updates", Ty::Obj, "the fields to change")],
        output: Output::Json,
        route: |a| {
            let path = format!("/{}/{}", a.segment("layer")?, a.segment("memory_id")?);
            Ok(Call { method: Method::PUT, ..Call::post(&path, a.obj("updates")?) })
        },
    },
    Spec {
        name: "delete_memory",
        about: "Delete a record and its vector (admin).",
        params: &[LAYER, MEMORY_ID],
        output: Output::Json,
        route: |a| {
            let path = format!("/{}/{}", a.segment("layer")?, a.segment("memory_id")?);
            Ok(Call { method: Method::DELETE, ..Call::get(&path, vec![]) })
        },
    },
    Spec {
        name: "list_quarantine",
        about: "Proposals held for review, newest first (admin).",
        params: &[opt("status_filter", Ty::Str, "pending (default), approved or rejected"), LIMIT],
        output: Output::Untrusted,
        route: |a| {
            let q = vec![("status_filter", a.str_or("status_filter", "pending")?), ("limit", a.int_or("limit", 100)?)];
            Ok(Call::get("/quarantine/list", q))
        },
    },
    Spec {
        name: "review_quarantine",
        about: "Approve or reject a proposal (admin).",
        params: &[req("item_id", Ty::Str, "the proposal's id"), req("decision", Ty::Str, "approve or reject")],
        output: Output::Json,
        route: |a| {
            let decision = a.str("decision")?;
            if decision != "approve" && decision != "reject" {
                let msg = format!("decision should be approve or reject, not '{decision}'");
                return Err(ErrorData::invalid_params(msg, None));
            }
            Ok(Call::post(&format!("/quarantine/{decision}/{}", a.segment("item_id")?), json!({})))
        },
    },
    Spec {
        name: "list_clients",
        about: "Registered clients.",
        params: &[LIMIT],
        output: Output::Json,
        route: |a| Ok(Call::get("/client/list", vec![("limit", a.int_or("limit", 200)?)])),
    },
    Spec {
        name: "list_issues",
        about: "Client issues, newest first.",
        params: &[opt("status_filter", Ty::Str, "open (default) or resolved"), LIMIT],
        output: Output::Json,
        route: |a| {
            let q = vec![("status_filter", a.str_or("status_filter", "open")?), ("limit", a.int_or("limit", 200)?)];
            Ok(Call::get("/client/issues", q))
        },
    },
    Spec {
        name: "resolve_issue",
        about: "Resolve an open client issue (admin).",
        params: &[req("issue_id", Ty::Str, "the issue's id"), req("resolution", Ty::Str, "what was done")],
        output: Output::Json,
        route: |a| {
            let path = format!("/client/issues/{}/resolve", a.segment("issue_id")?);
            Ok(Call::post(&path, json!({ "resolution": a.str("resolution")? })))
        },
    },
    Spec {
        name: "register_client",
        about: "Register a client of the caller's own identities (trusted or blocked need role admin).",
        params: &[
            req("client_id", Ty::Str, "the client's id"),
            opt("client_name", Ty::Str, "its name"),
            opt("status", Ty::Str, "registered (default), trusted or blocked"),
        ],
        output: Output::Json,
        route: |a| {
            let mut body = json!({ "client_id": a.str("client_id")?, "status": a.str_or("status", "registered")? });
            if let Some(name) = a.opt_str("client_name")? {
                body["client_name"] = json!(name);
            }
            Ok(Call::post("/client/register", body))
        },
    },
    Spec {
        name: "client_summary",
        about: "Per-layer counts, last writes, open issues and pending proposals of the caller's client and its children.",
        params: &[],
        output: Output::Json,
        route: |_| Ok(Call::get("/client/summary", vec![])),
    },
    Spec {
        name: "list_agents",
        about: "Agents, newest heartbeat first.",
        params: &[LIMIT],
        output: Output::Json,
        route: |a| Ok(Call::get("/agent/list", vec![("limit", a.int_or("limit", 200)?)])),
    },
    Spec {
        name: "list_access",
        about: "The access log, newest first.",
        params: &[LIMIT],
        output: Output::Untrusted,
        route: |a| Ok(Call::get("/access/list", vec![("limit", a.int_or("limit", 200)?)])),
    },
    Spec {
        name: "list_schemas",
        about: "The JSON Schema of each layer's fields.",
        params: &[],
        output: Output::Json,
        route: |_| Ok(Call::get("/schema", vec![])),
    },
];

fn schema(params: &[Param]) -> JsonObject {
    let properties: Map<String, Value> = params
        .iter()
        .map(|p| {
            let ty = match p.ty {
                Ty::Str => json!({ "type": "string" }),
                Ty::Int => json!({ "type": "integer" }),
                Ty::Obj => json!({ "type": "object" }),
                Ty::StrList => json!({ "type": "array", "items": { "type": "string" } }),
            };
            let mut prop = ty;
            prop["description"] = json!(p.about);
            (p.name.to_owned(), prop)
        })
        .collect();
    let required: Vec<&str> = params.iter().filter(|p| p.required).map(|p| p.name).collect();
    let schema =
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
    match schema {
        Value::Object(o) => o,
        _ => unreachable!("a JSON object literal"),
    }
}

/// Every tool, for `tools/list`.
pub fn list() -> Vec<Tool> {
    TOOLS.iter().map(|t| Tool::new(t.name, t.about, Arc::new(schema(t.params)))).collect()
}

/// A tool's arguments, checked against its parameters.
pub struct Args(JsonObject);

fn invalid(msg: String) -> ErrorData {
    ErrorData::invalid_params(msg, None)
}

impl Args {
    fn check(spec: &Spec, args: JsonObject) -> Result<Self, ErrorData> {
        if let Some(unknown) = args.keys().find(|k| !spec.params.iter().any(|p| p.name == k.as_str())) {
            return Err(invalid(format!("{}: unknown argument '{unknown}'", spec.name)));
        }
        for p in spec.params {
            match args.get(p.name) {
                None | Some(Value::Null) if p.required => {
                    return Err(invalid(format!("{}: argument '{}' is required", spec.name, p.name)));
                }
                None | Some(Value::Null) => {}
                Some(v) => {
                    let ok = match p.ty {
                        Ty::Str => v.is_string(),
                        Ty::Int => v.is_i64(),
                        Ty::Obj => v.is_object(),
                        Ty::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    };
                    if !ok {
                        let want = match p.ty {
                            Ty::Str => "a string",
                            Ty::Int => "an integer",
                            Ty::Obj => "an object",
                            Ty::StrList => "a list of strings",
                        };
                        return Err(invalid(format!("{}: argument '{}' should be {want}", spec.name, p.name)));
                    }
                }
            }
        }
        Ok(Args(args))
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, ErrorData> {
        Ok(self.0.get(name).and_then(Value::as_str).map(str::to_owned))
    }
    fn str(&self, name: &str) -> Result<String, ErrorData> {
        self.opt_str(name)?.ok_or_else(|| invalid(format!("argument '{name}' is required")))
    }
    fn str_or(&self, name: &str, default: &str) -> Result<String, ErrorData> {
        Ok(self.opt_str(name)?.unwrap_or_else(|| default.to_owned()))
    }
    fn int_or(&self, name: &str, default: i64) -> Result<String, ErrorData> {
        Ok(self.0.get(name).and_then(Value::as_i64).unwrap_or(default).to_string())
    }
    fn opt_obj(&self, name: &str) -> Result<Option<Value>, ErrorData> {
        Ok(self.0.get(name).filter(|v| v.is_object()).cloned())
    }
    fn obj(&self, name: &str) -> Result<Value, ErrorData> {
        self.opt_obj(name)?.ok_or_else(|| invalid(format!("argument '{name}' is required")))
    }
    /// A string argument as one path segment: percent-encoded, so it can never add a segment
    /// or a query.
    fn segment(&self, name: &str) -> Result<String, ErrorData> {
        let raw = self.str(name)?;
        // Dots are encoded too, so "." and ".." are never path steps.
        Ok(encode(&raw).replace('.', "%2E"))
    }
}

/// One call of an API route, relative to `/api/v1/memory`.
pub struct Call {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Call {
    pub fn get(path: &str, query: Vec<(&'static str, String)>) -> Self {
        Call { method: Method::GET, path: path.to_owned(), query, body: None }
    }
    fn post(path: &str, body: Value) -> Self {
        Call { method: Method::POST, path: path.to_owned(), query: Vec::new(), body: Some(body) }
    }
}

/// Calls routes as the MCP request's caller: its token and `X-Pinak-*` identity headers.
pub struct Caller<'a> {
    routes: &'a Router,
    headers: HeaderMap,
}

impl<'a> Caller<'a> {
    pub fn new(routes: &'a Router, request_headers: &HeaderMap) -> Self {
        let headers = request_headers
            .iter()
            .filter(|(name, _)| *name == header::AUTHORIZATION || name.as_str().starts_with("x-pinak-"))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Caller { routes, headers }
    }

    /// Runs `call` through the router; the status and the JSON body (or `null`).
    pub async fn send(&self, call: Call) -> Result<(StatusCode, Value), ErrorData> {
        let mut uri = format!("{MEMORY}{}", call.path);
        if !call.query.is_empty() {
            let pairs: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
            uri = format!("{uri}?{}", pairs.join("&"));
        }
        let mut request = Request::builder().method(call.method).uri(uri);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let body = match call.body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let request = request.body(body).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let response = self.routes.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| ErrorData::internal_error(format!("reading the route's response: {e}"), None))?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, value))
    }
}

/// Form-style percent-encoding of a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A route's error as a tool error: the status and the API's `detail`.
pub fn route_error(status: StatusCode, body: &Value) -> CallToolResult {
    let detail =
        body.get("detail").map_or_else(|| body.to_string(), |d| d.as_str().map_or(d.to_string(), str::to_owned));
    CallToolResult::error(vec![ContentBlock::text(format!("{} {detail}", status.as_u16()))])
}

/// Runs the tool `name` with `arguments`.
pub async fn call(caller: &Caller<'_>, name: &str, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
    let Some(spec) = TOOLS.iter().find(|t| t.name == name) else {
        return Err(invalid(format!("no tool named '{name}' (tools/list names them)")));
    };
    let args = Args::check(spec, arguments)?;
    let call = (spec.route)(&args)?;
    let query = args.opt_str("query")?.unwrap_or_default();
    let (status, body) = caller.send(call).await?;
    if !status.is_success() {
        return Ok(route_error(status, &body));
    }
    // DELETE answers 204; say what happened, as the prototype's bridge did.
    let body = if status == StatusCode::NO_CONTENT && name == "delete_memory" {
        json!({ "status": "deleted", "id": args.str("memory_id")? })
    } else {
        body
    };
    Ok(match spec.output {
        Output::Json => CallToolResult::success(vec![ContentBlock::text(body.to_string())]),
        Output::Untrusted => CallToolResult::success(vec![ContentBlock::text(recall::untrusted(&body.to_string()))]),
        Output::Recall => recall::report(caller, &query, &body).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_unique_name_and_a_closed_object_schema() {
        let tools = list();
        assert_eq!(tools.len(), TOOLS.len());
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len());
        for t in &tools {
            assert_eq!(t.input_schema["type"], "object");
            assert_eq!(t.input_schema["additionalProperties"], false);
        }
    }

    #[test]
    fn arguments_are_checked_by_name_and_type() {
        let spec = TOOLS.iter().find(|t| t.name == "read_memory").unwrap();
        let args = |v: Value| match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        };
        assert!(Args::check(spec, args(json!({"layer": "semantic", "memory_id": "x"}))).is_ok());
        for (bad, says) in [
            (json!({"layer": "semantic"}), "'memory_id' is required"),
            (json!({"layer": 1, "memory_id": "x"}), "'layer' should be a string"),
            (json!({"layer": "semantic", "memory_id": "x", "extra": 1}), "unknown argument 'extra'"),
        ] {
            let err = Args::check(spec, args(bad)).err().unwrap();
            assert!(err.message.contains(says), "{}", err.message);
        }
    }

    #[test]
    fn path_arguments_stay_one_segment() {
        let spec = TOOLS.iter().find(|t| t.name == "read_memory").unwrap();
        let args = Args::check(
            spec,
            match json!({"layer": "../admin", "memory_id": "a/b?c=d"}) {
                Value::Object(o) => o,
                _ => unreachable!(),
            },
        )
        .unwrap();
        let call = (spec.route)(&args).unwrap();
        assert_eq!(call.path, "/%2E%2E%2Fadmin/a%2Fb%3Fc%3Dd");
    }
}
