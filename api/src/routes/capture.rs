//! Capture wire (RFC-0001 v0.3): validated, never accepted. Every valid request gets
//! 503 `capture_disabled`; nothing is written anywhere (no access or audit rows either), and
//! error bodies never echo payload content.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::web::error::{AppError, AppResult};
use crate::web::extract::OptionalJsonBody;

const SUPPORTED_VERSIONS: [&str; 1] = ["0.3"];
const MAX_ENVELOPE_BYTES: usize = 262_144;
const ENVELOPE_FIELDS: [&str; 17] = [
    "tenant_id",
    "agent_id",
    "client_id",
    "client_version",
    "session_id",
    "event_id",
    "task_id",
    "sequence",
    "client_ts",
    "actor",
    "event_type",
    "payload",
    "payload_hash",
    "boundary_source",
    "source",
    "provenance",
    "envelope_version",
];
const SERVICE_FIELDS: [&str; 3] = ["received_ts", "privacy_class", "retention_class"];
const FORBIDDEN_PAYLOAD_KEYS: [&str; 5] =
    ["hidden_reasoning", "reasoning_trace", "chain_of_thought", "cot", "scratchpad"];
const FORBIDDEN_PROVENANCE_KEYS: [&str; 9] = [
    "privacy_class",
    "retention_class",
    "received_ts",
    "trust",
    "trust_level",
    "authority",
    "verified",
    "service_verified",
    "legal_hold",
];
const MAX_DEPTH: usize = 32;

fn err(status: StatusCode, code: &str, extra: Value) -> AppError {
    let mut detail = json!({ "code": code });
    if let Value::Object(m) = extra {
        detail.as_object_mut().expect("object literal").extend(m);
    }
    AppError::status(status, detail)
}

fn schema_violation(field: &str) -> AppError {
    err(StatusCode::UNPROCESSABLE_ENTITY, "schema_violation", json!({ "field": field }))
}

fn disabled() -> AppError {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "capture_disabled",
        json!({ "message": "Capture is disabled on this service" }),
    )
}

/// Capture needs write scope and *signed* agent and client ids (headers cannot supply them).
fn capture_identity(p: &Principal) -> AppResult<(String, String)> {
    p.require(Perm::Capture)?;
    let mut missing = Vec::new();
    if p.signed_agent_id.is_none() {
        missing.push("agent_id");
    }
    if p.client_id.is_none() {
        missing.push("client_id");
    }
    if !missing.is_empty() {
        return Err(err(StatusCode::FORBIDDEN, "auth_claim_missing", json!({ "missing_claims": missing })));
    }
    Ok((p.signed_agent_id.clone().unwrap_or_default(), p.client_id.clone().unwrap_or_default()))
}

fn short_string(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty() && s.chars().count() <= 256)
}

pub async fn session(
    State(_state): State<AppState>,
    p: Principal,
    OptionalJsonBody(body): OptionalJsonBody,
) -> AppResult<()> {
    capture_identity(&p)?;
    match body {
        None => {}
        Some(Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| !["client_session_ref", "client_version"].contains(&k.as_str())) {
                return Err(schema_violation(k));
            }
            if m.contains_key("client_session_ref") && !short_string(m.get("client_session_ref")) {
                return Err(schema_violation("client_session_ref"));
            }
            if m.contains_key("client_version") && !short_string(m.get("client_version")) {
                return Err(schema_violation("client_version"));
            }
        }
        Some(_) => return Err(schema_violation("body")),
    }
    Err(disabled())
}

fn has_key_deep(v: &Value, keys: &[&str], depth: usize) -> Result<bool, ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if keys.contains(&k.to_ascii_lowercase().as_str()) || has_key_deep(x, keys, depth + 1)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Value::Array(a) => {
            for x in a {
                if has_key_deep(x, keys, depth + 1)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

fn is_ulid(v: Option<&Value>) -> bool {
    const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    v.and_then(Value::as_str).is_some_and(|s| {
        s.len() == 26 && s.chars().all(|c| CROCKFORD.contains(c.to_ascii_uppercase())) && s.as_bytes()[0] <= b'7'
    })
}

fn one_of(v: Option<&Value>, allowed: &[&str]) -> Result<(), bool> {
    match v.and_then(Value::as_str) {
        Some(s) if allowed.contains(&s) => Ok(()),
        Some(_) => Err(true), // a string outside the enum
        None => Err(false),
    }
}

fn validate_envelope(m: &Map<String, Value>) -> AppResult<()> {
    if let Some(k) = m.keys().find(|k| SERVICE_FIELDS.contains(&k.as_str())) {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "client_assigned_service_field", json!({ "field": k })));
    }
    if let Some(k) = m.keys().find(|k| !ENVELOPE_FIELDS.contains(&k.as_str())) {
        return Err(schema_violation(k));
    }
    if let Some(k) = ENVELOPE_FIELDS.iter().find(|k| !m.contains_key(**k)) {
        return Err(schema_violation(k));
    }
    if !short_string(m.get("client_version")) {
        return Err(schema_violation("client_version"));
    }
    for f in ["session_id", "event_id"] {
        if !is_ulid(m.get(f)) {
            return Err(schema_violation(f));
        }
    }
    if !matches!(m.get("task_id"), Some(Value::String(_)) | Some(Value::Null)) {
        return Err(schema_violation("task_id"));
    }
    if !m.get("sequence").is_some_and(Value::is_u64) {
        return Err(schema_violation("sequence"));
    }
    if m.get("client_ts").and_then(Value::as_str).is_none_or(|s| chrono::DateTime::parse_from_rfc3339(s).is_err()) {
        return Err(schema_violation("client_ts"));
    }
    let enums: [(&str, &[&str]); 4] = [
        ("actor", &["user", "agent", "tool", "system", "policy"]),
        ("event_type", &["message", "tool_call", "tool_result", "response", "decision", "boundary"]),
        (
            "boundary_source",
            &["session_start", "session_end", "task_switch", "client_hook", "service_timeout", "explicit_marker"],
        ),
        ("source", &["hook", "cli", "api", "import", "system"]),
    ];
    for (field, allowed) in enums {
        match one_of(m.get(field), allowed) {
            Ok(()) => {}
            Err(true) => {
                return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_enum_value", json!({ "field": field })));
            }
            Err(false) => return Err(schema_violation(field)),
        }
    }
    let payload = m.get("payload").filter(|v| v.is_object()).ok_or_else(|| schema_violation("payload"))?;
    if has_key_deep(payload, &FORBIDDEN_PAYLOAD_KEYS, 0).unwrap_or(true) {
        return Err(schema_violation("payload"));
    }
    if !m
        .get("payload_hash")
        .and_then(Value::as_str)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(schema_violation("payload_hash"));
    }
    let provenance = m
        .get("provenance")
        .and_then(Value::as_object)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| schema_violation("provenance"))?;
    if provenance.keys().any(|k| FORBIDDEN_PROVENANCE_KEYS.contains(&k.as_str())) {
        return Err(schema_violation("provenance"));
    }
    Ok(())
}

pub async fn capture(
    State(_state): State<AppState>,
    p: Principal,
    OptionalJsonBody(body): OptionalJsonBody,
) -> AppResult<()> {
    let (agent_id, client_id) = capture_identity(&p)?;
    let Some(Value::Object(m)) = body else { return Err(schema_violation("body")) };
    // Order: identity binding, version, schema, size. A bound field that is present must be a
    // string equal to its claim: a number, object or null is a mismatch, not a skipped check.
    // An absent one is left to the schema check (the field is required).
    let bound =
        [("tenant_id", p.scope.tenant.as_str()), ("agent_id", agent_id.as_str()), ("client_id", client_id.as_str())];
    if let Some((field, _)) = bound.iter().find(|(f, want)| m.get(*f).is_some_and(|got| got.as_str() != Some(*want))) {
        return Err(err(StatusCode::FORBIDDEN, "auth_binding_mismatch", json!({ "field": field })));
    }
    if !m.get("envelope_version").and_then(Value::as_str).is_some_and(|v| SUPPORTED_VERSIONS.contains(&v)) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "unsupported_envelope_version",
            json!({ "supported_versions": SUPPORTED_VERSIONS }),
        ));
    }
    validate_envelope(&m)?;
    if crate::governance::audit::canonical_json(&Value::Object(m)).len() > MAX_ENVELOPE_BYTES {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "event_too_large",
            json!({ "max_bytes": MAX_ENVELOPE_BYTES }),
        ));
    }
    Err(disabled())
}
