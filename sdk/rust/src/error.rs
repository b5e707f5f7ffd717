use serde_json::Value;

/// Why a call failed: an answer of the API (its status and `detail`), or no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: a malformed request (a bad path segment, a bad filter).
    #[error("{context}: 400 bad request: {detail}")]
    BadRequest { context: String, detail: Value },
    /// 401 or 403: no valid token, or the token may not do this.
    #[error("{context}: {status} refused: {detail}")]
    Auth { context: String, status: u16, detail: Value },
    #[error("{context}: 404 not found: {detail}")]
    NotFound { context: String, detail: Value },
    /// 409: a conflict (a taken id, a broken audit chain).
    #[error("{context}: 409 conflict: {detail}")]
    Conflict { context: String, detail: Value },
    /// 422: the body or query failed validation; `detail` lists `{loc, msg, type}`.
    #[error("{context}: 422 invalid: {detail}")]
    Validation { context: String, detail: Value },
    /// 503 after the retries: the service or its database is unavailable.
    #[error("{context}: 503 unavailable: {detail}")]
    Unavailable { context: String, detail: Value },
    /// Any other error status.
    #[error("{context}: {status}: {detail}")]
    Api { context: String, status: u16, detail: Value },
    /// No answer: connection refused, DNS, TLS, timeout (after the retries).
    #[error("{context}: {source}")]
    Transport {
        context: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the JSON this client expects.
    #[error("{context}: unexpected answer: {message}")]
    Decode { context: String, message: String },
    /// The client was set up wrongly (a base URL without http:// or https://).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an error answer; `None` when there was no answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::BadRequest { .. } => Some(400),
            Error::Auth { status, .. } | Error::Api { status, .. } => Some(*status),
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::Validation { .. } => Some(422),
            Error::Unavailable { .. } => Some(503),
            Error::Transport { .. } | Error::Decode { .. } | Error::Config(_) => None,
        }
    }

    pub(crate) fn for_status(context: String, status: u16, body: Value) -> Self {
        let detail = body.get("detail").cloned().unwrap_or(body);
        match status {
            400 => Error::BadRequest { context, detail },
            401 | 403 => Error::Auth { context, status, detail },
            404 => Error::NotFound { context, detail },
            409 => Error::Conflict { context, detail },
            422 => Error::Validation { context, detail },
            503 => Error::Unavailable { context, detail },
            _ => Error::Api { context, status, detail },
        }
    }
}
