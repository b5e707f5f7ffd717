//! The HTTP side: one blocking client per run, and the mapping from transport and API
//! failures to the exit codes `main` documents.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::{Failure, Global};

pub struct Api {
    base: String,
    /// `None` only for `Api::public`, whose callers use unauthenticated routes.
    token: Option<String>,
    http: Client,
}

/// A successful answer: its status (201 and 202 mean different things for writes) and body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// `X-Next-Cursor` of a list page: where the next page starts.
    pub next_cursor: Option<String>,
}

impl Api {
    /// A client that needs a token.
    pub fn new(g: &Global) -> Result<Self, Failure> {
        let api = Self::public(g)?;
        if api.token.is_none() {
            return Err(Failure::Auth("no token: pass --token or set PINAK_TOKEN".into()));
        }
        Ok(api)
    }

    /// A client that sends the token when there is one.
    pub fn public(g: &Global) -> Result<Self, Failure> {
        let token = g.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        let base = g.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::Usage(format!("--url must start with http:// or https://, got `{}`", g.url)));
        }
        let http = Client::builder()
            .timeout(Duration::from_secs(g.timeout))
            .user_agent(concat!("pinak-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api { base, token, http })
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Answer, Failure> {
        self.send("GET", path, self.http.get(self.url(path)).query(query))
    }

    /// A list route's items: one page, or with `all` every page, following `X-Next-Cursor`.
    pub fn list(&self, path: &str, query: &[(&str, String)], all: bool) -> Result<Value, Failure> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.extend(cursor.take().map(|c| ("cursor", c)));
            let answer = self.get(path, &q)?;
            match answer.body {
                Value::Array(page) => items.extend(page),
                other => return Err(Failure::Api(format!("GET {path}: expected a list, got {other}"))),
            }
            match answer.next_cursor {
                Some(next) if all => cursor = Some(next),
                _ => return Ok(Value::Array(items)),
            }
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Answer, Failure> {
        self.send("POST", path, self.http.post(self.url(path)).json(body))
    }

    /// POSTs `body` as is, with the token and `headers`; any status comes back (the MCP
    /// bridge relays it). Only a transport failure is an error.
    pub fn post_raw(
        &self,
        path: &str,
        body: String,
        headers: &[(&str, String)],
    ) -> Result<reqwest::blocking::Response, Failure> {
        let mut req = self.http.post(self.url(path)).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req.send().map_err(|e| Failure::Unreachable(format!("cannot reach {}: {}", self.base, error_chain(&e))))
    }

    /// POSTs `body` with its content type; like `post` otherwise.
    pub fn post_text(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: String,
        content_type: &str,
    ) -> Result<Answer, Failure> {
        let req = self.http.post(self.url(path)).query(query).header("content-type", content_type).body(body);
        self.send("POST", path, req)
    }

    /// GETs `path` and hands back the answer unread, for bodies too large to hold.
    pub fn get_stream(&self, path: &str) -> Result<reqwest::blocking::Response, Failure> {
        let resp = self.open(path, self.http.get(self.url(path)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        Err(refusal("GET", path, status, &text))
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn open(&self, path: &str, req: RequestBuilder) -> Result<reqwest::blocking::Response, Failure> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send().map_err(|e| {
            if e.is_builder() {
                Failure::Usage(format!("bad request to {}: {e}", self.url(path)))
            } else {
                Failure::Unreachable(format!("cannot reach {}: {}", self.base, error_chain(&e)))
            }
        })
    }

    fn send(&self, method: &str, path: &str, req: RequestBuilder) -> Result<Answer, Failure> {
        let resp = self.open(path, req)?;
        let status = resp.status();
        let next_cursor = resp.headers().get("x-next-cursor").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = resp
            .text()
            .map_err(|e| Failure::Unreachable(format!("{method} {path}: reading the answer failed: {e}")))?;
        if !status.is_success() {
            return Err(refusal(method, path, status, &text));
        }
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok(Answer { status: status.as_u16(), body, next_cursor })
    }
}

/// The failure for an error answer: its status and the API's `detail`.
fn refusal(method: &str, path: &str, status: reqwest::StatusCode, text: &str) -> Failure {
    let body = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    let msg = format!("{method} {path}: {status}: {}", detail(&body));
    match status.as_u16() {
        401 | 403 => Failure::Auth(msg),
        _ => Failure::Api(msg),
    }
}

/// reqwest's top-level message ("error sending request") hides the cause people need, such as
/// "Connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The API's `detail`, readable: a string as is, validation errors as `loc: msg` pairs.
pub fn detail(body: &Value) -> String {
    match body.get("detail") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let loc: Vec<String> = i["loc"]
                    .as_array()
                    .map(|l| l.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect())
                    .unwrap_or_default();
                format!("{}: {}", loc.join("."), i["msg"].as_str().unwrap_or("invalid"))
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
        None if body.is_null() => "(no body)".into(),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_read_well() {
        assert_eq!(detail(&json!({"detail": "Memory not found"})), "Memory not found");
        let v = json!({"detail": [{"loc": ["body", "items", 3, "content"], "msg": "Field required"}]});
        assert_eq!(detail(&v), "body.items.3.content: Field required");
        assert_eq!(detail(&json!({"detail": {"code": "x"}})), r#"{"code":"x"}"#);
        assert_eq!(detail(&Value::Null), "(no body)");
        assert_eq!(detail(&json!("plain text")), r#""plain text""#);
    }
}
