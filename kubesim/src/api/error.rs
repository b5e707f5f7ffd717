//! Errors as the API server reports them: a `Status` object with the HTTP code, the reason
//! and the details clients parse (kubectl prints `message`; client-go matches `reason`).

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// `deployments.apps "web" not found`
    pub fn not_found(qualified: &str, name: &str) -> Self {
        let (resource, group) = split_qualified(qualified);
        ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    pub fn already_exists(qualified: &str, name: &str) -> Self {
        let (resource, group) = split_qualified(qualified);
        ApiError::new(409, "AlreadyExists", format!("{qualified} \"{name}\" already exists"))
            .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// The optimistic-concurrency conflict client-go retries on.
    pub fn conflict(qualified: &str, name: &str, why: &str) -> Self {
        let (resource, group) = split_qualified(qualified);
        ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {qualified} \"{name}\": {why}"))
            .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 422 with field causes: `Kind.group "name" is invalid: ...`.
    pub fn invalid(kind: &str, group: &str, name: &str, message: String, causes: Vec<Value>) -> Self {
        ApiError::new(422, "Invalid", message)
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// A single-field 422 in the apiserver's wording.
    pub fn invalid_field(kind: &str, group: &str, name: &str, field: &str, detail: &str) -> Self {
        let qualified = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let message = format!("{qualified} \"{name}\" is invalid: {field}: {detail}");
        let cause = json!({"reason": "FieldValueInvalid", "message": detail, "field": field});
        ApiError::invalid(kind, group, name, message, vec![cause])
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_implemented(what: &str) -> Self {
        ApiError::new(501, "NotImplemented", format!("kubesim does not implement {what}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// The `Status` object this error is served as.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// `deployments.apps` -> ("deployments", "apps"); `secrets` -> ("secrets", "").
fn split_qualified(q: &str) -> (&str, &str) {
    q.split_once('.').unwrap_or((q, ""))
}

/// The `Status` a successful delete of an object without finalizers may answer with.
pub fn success_status(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
